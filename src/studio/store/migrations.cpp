#include "studio/store/migrations.h"

namespace sw::store {
namespace {

// Version 1: the whole first schema. Statuses are CHECKed so that a bad write fails loudly.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE workers (
  id                TEXT PRIMARY KEY,
  token_hash        TEXT NOT NULL,
  install_id        TEXT NOT NULL,
  capabilities      TEXT NOT NULL,
  current_job_id    TEXT,
  created_at        INTEGER NOT NULL,
  last_seen_at      INTEGER
);
CREATE TABLE registration_requests (
  id            TEXT PRIMARY KEY,
  install_id    TEXT NOT NULL,
  secret_hash   TEXT NOT NULL,
  capabilities  TEXT NOT NULL,
  user_agent    TEXT NOT NULL,
  source_ip     TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  reason        TEXT NOT NULL DEFAULT '',
  worker_id     TEXT,
  created_at    INTEGER NOT NULL,
  decided_at    INTEGER
);
CREATE INDEX registration_requests_pending ON registration_requests(install_id)
  WHERE status = 'pending';
CREATE TABLE models (
  id                TEXT PRIMARY KEY,
  kind              TEXT NOT NULL,
  display_name      TEXT NOT NULL,
  vram_gb_estimate  REAL NOT NULL,
  enabled           INTEGER NOT NULL,
  source            TEXT NOT NULL,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL
);
CREATE TABLE jobs (
  seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
  id                   TEXT NOT NULL UNIQUE,
  model                TEXT NOT NULL,
  kind                 TEXT NOT NULL,
  task                 TEXT NOT NULL,
  model_source         TEXT NOT NULL,
  vram_gb_estimate     REAL NOT NULL,
  game_id              TEXT NOT NULL,
  asset_name           TEXT NOT NULL,
  priority             INTEGER NOT NULL,
  attempts             INTEGER NOT NULL DEFAULT 0,
  max_attempts         INTEGER NOT NULL,
  idempotency_key      TEXT UNIQUE,
  status               TEXT NOT NULL
                       CHECK (status IN ('queued', 'claimed', 'done', 'failed', 'cancelled')),
  worker_id            TEXT,
  last_worker_id       TEXT,
  created_at           INTEGER NOT NULL,
  claimed_at           INTEGER,
  accepted_at          INTEGER,
  finished_at          INTEGER,
  error                TEXT,
  prompt               TEXT,
  result_json          TEXT,
  result_sha256        TEXT,
  result_content_type  TEXT,
  result_ext           TEXT,
  result_bytes         INTEGER,
  CHECK (status <> 'claimed' OR worker_id IS NOT NULL),
  CHECK (status <> 'done' OR result_json IS NOT NULL OR result_sha256 IS NOT NULL)
);
CREATE INDEX jobs_by_status ON jobs(status, seq);
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  created_at  INTEGER NOT NULL
);
CREATE TABLE worker_logs (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  worker_id    TEXT NOT NULL,
  ts           TEXT NOT NULL,
  level        TEXT NOT NULL,
  category     TEXT NOT NULL,
  message      TEXT NOT NULL,
  job_id       TEXT,
  received_at  INTEGER NOT NULL
);
CREATE INDEX worker_logs_by_worker ON worker_logs(worker_id, seq);
)sql";

// Version 2 (nothing lost, issue 7): the workers whose claim on a job lapsed (a late result from
// one of them is still accepted), as ",w-1,w-2," for an exact `instr` match; and how many times
// the job was recorded done, which an invariant checker holds at exactly one.
constexpr std::string_view kSchemaV2 = R"sql(
ALTER TABLE jobs ADD COLUMN former_workers TEXT NOT NULL DEFAULT ',';
ALTER TABLE jobs ADD COLUMN completions INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 3 (issue 14): each job's attempts, so that an operator sees which workers had a job and
// how each try ended. Jobs claimed at the upgrade get their open attempt; older history was not
// recorded and stays empty.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE job_attempts (
  job_id      TEXT NOT NULL,
  n           INTEGER NOT NULL,
  worker_id   TEXT NOT NULL,
  offered_at  INTEGER NOT NULL,
  started_at  INTEGER,
  ended_at    INTEGER,
  outcome     TEXT NOT NULL CHECK (outcome IN ('offered', 'running', 'rejected', 'failed',
                                               'requeued', 'done', 'withdrawn', 'cancelled')),
  reason      TEXT,
  PRIMARY KEY (job_id, n),
  CHECK ((ended_at IS NULL) = (outcome IN ('offered', 'running')))
) WITHOUT ROWID;
INSERT INTO job_attempts(job_id, n, worker_id, offered_at, started_at, outcome)
  SELECT id, 1, worker_id, COALESCE(claimed_at, created_at), accepted_at,
         CASE WHEN accepted_at IS NULL THEN 'offered' ELSE 'running' END
  FROM jobs WHERE status = 'claimed';
)sql";

// The same three versions on PostgreSQL, column for column. Translations: SQLite's INTEGER is
// 64-bit, so timestamps (Unix ms), byte counts and sequence numbers are BIGINT, small counters
// INTEGER; REAL is 8 bytes in SQLite, DOUBLE PRECISION here (PostgreSQL's REAL is 4); the
// AUTOINCREMENT keys are identity columns (never reused, like AUTOINCREMENT; BY DEFAULT so that
// an import may carry its sequence numbers over); WITHOUT ROWID has no counterpart. NULLs in a
// UNIQUE column are distinct in both, so idempotency_key keeps its meaning. SQL the store runs
// differs too (instr → strpos): that is the PostgreSQL store's concern, not the schema's.
constexpr std::string_view kPgSchemaV1 = R"sql(
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE workers (
  id                TEXT PRIMARY KEY,
  token_hash        TEXT NOT NULL,
  install_id        TEXT NOT NULL,
  capabilities      TEXT NOT NULL,
  current_job_id    TEXT,
  created_at        BIGINT NOT NULL,
  last_seen_at      BIGINT
);
CREATE TABLE registration_requests (
  id            TEXT PRIMARY KEY,
  install_id    TEXT NOT NULL,
  secret_hash   TEXT NOT NULL,
  capabilities  TEXT NOT NULL,
  user_agent    TEXT NOT NULL,
  source_ip     TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  reason        TEXT NOT NULL DEFAULT '',
  worker_id     TEXT,
  created_at    BIGINT NOT NULL,
  decided_at    BIGINT
);
CREATE INDEX registration_requests_pending ON registration_requests(install_id)
  WHERE status = 'pending';
CREATE TABLE models (
  id                TEXT PRIMARY KEY,
  kind              TEXT NOT NULL,
  display_name      TEXT NOT NULL,
  vram_gb_estimate  DOUBLE PRECISION NOT NULL,
  enabled           INTEGER NOT NULL,
  source            TEXT NOT NULL,
  created_at        BIGINT NOT NULL,
  updated_at        BIGINT NOT NULL
);
CREATE TABLE jobs (
  seq                  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  id                   TEXT NOT NULL UNIQUE,
  model                TEXT NOT NULL,
  kind                 TEXT NOT NULL,
  task                 TEXT NOT NULL,
  model_source         TEXT NOT NULL,
  vram_gb_estimate     DOUBLE PRECISION NOT NULL,
  game_id              TEXT NOT NULL,
  asset_name           TEXT NOT NULL,
  priority             INTEGER NOT NULL,
  attempts             INTEGER NOT NULL DEFAULT 0,
  max_attempts         INTEGER NOT NULL,
  idempotency_key      TEXT UNIQUE,
  status               TEXT NOT NULL
                       CHECK (status IN ('queued', 'claimed', 'done', 'failed', 'cancelled')),
  worker_id            TEXT,
  last_worker_id       TEXT,
  created_at           BIGINT NOT NULL,
  claimed_at           BIGINT,
  accepted_at          BIGINT,
  finished_at          BIGINT,
  error                TEXT,
  prompt               TEXT,
  result_json          TEXT,
  result_sha256        TEXT,
  result_content_type  TEXT,
  result_ext           TEXT,
  result_bytes         BIGINT,
  CHECK (status <> 'claimed' OR worker_id IS NOT NULL),
  CHECK (status <> 'done' OR result_json IS NOT NULL OR result_sha256 IS NOT NULL)
);
CREATE INDEX jobs_by_status ON jobs(status, seq);
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  created_at  BIGINT NOT NULL
);
CREATE TABLE worker_logs (
  seq          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  worker_id    TEXT NOT NULL,
  ts           TEXT NOT NULL,
  level        TEXT NOT NULL,
  category     TEXT NOT NULL,
  message      TEXT NOT NULL,
  job_id       TEXT,
  received_at  BIGINT NOT NULL
);
CREATE INDEX worker_logs_by_worker ON worker_logs(worker_id, seq);
)sql";

constexpr std::string_view kPgSchemaV2 = R"sql(
ALTER TABLE jobs ADD COLUMN former_workers TEXT NOT NULL DEFAULT ',';
ALTER TABLE jobs ADD COLUMN completions INTEGER NOT NULL DEFAULT 0;
)sql";

constexpr std::string_view kPgSchemaV3 = R"sql(
CREATE TABLE job_attempts (
  job_id      TEXT NOT NULL,
  n           INTEGER NOT NULL,
  worker_id   TEXT NOT NULL,
  offered_at  BIGINT NOT NULL,
  started_at  BIGINT,
  ended_at    BIGINT,
  outcome     TEXT NOT NULL CHECK (outcome IN ('offered', 'running', 'rejected', 'failed',
                                               'requeued', 'done', 'withdrawn', 'cancelled')),
  reason      TEXT,
  PRIMARY KEY (job_id, n),
  CHECK ((ended_at IS NULL) = (outcome IN ('offered', 'running')))
);
INSERT INTO job_attempts(job_id, n, worker_id, offered_at, started_at, outcome)
  SELECT id, 1, worker_id, COALESCE(claimed_at, created_at), accepted_at,
         CASE WHEN accepted_at IS NULL THEN 'offered' ELSE 'running' END
  FROM jobs WHERE status = 'claimed';
)sql";

// Version 4 (issue 18, several studio processes on one database): the processes and their
// leases; which process's session holds a claim; and each queued job's place in the queue,
// renewed at every requeue, so that a process polling for jobs queued elsewhere asks "after the
// last I saw". SQLite (one process) keeps the columns for a database moved between backends and
// the shared store suite; its queue_seq is MAX + 1, which the index answers in one seek.
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE studio_processes (
  id           TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   INTEGER NOT NULL,
  lease_until  INTEGER NOT NULL
);
ALTER TABLE jobs ADD COLUMN process_id TEXT;
ALTER TABLE jobs ADD COLUMN queue_seq INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET queue_seq = seq;
CREATE INDEX jobs_by_queue_seq ON jobs(queue_seq);
)sql";

// PostgreSQL: queue_seq comes from a sequence (its default on insert, nextval on requeue);
// the index covers queued rows only, which is all queued_after reads.
constexpr std::string_view kPgSchemaV4 = R"sql(
CREATE TABLE studio_processes (
  id           TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          BIGINT NOT NULL,
  started_at   BIGINT NOT NULL,
  lease_until  BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN process_id TEXT;
CREATE SEQUENCE jobs_queue_seq;
SELECT setval('jobs_queue_seq', COALESCE((SELECT MAX(seq) FROM jobs), 0) + 1, false);
ALTER TABLE jobs ADD COLUMN queue_seq BIGINT;
UPDATE jobs SET queue_seq = seq;
ALTER TABLE jobs ALTER COLUMN queue_seq SET DEFAULT nextval('jobs_queue_seq');
ALTER TABLE jobs ALTER COLUMN queue_seq SET NOT NULL;
CREATE INDEX jobs_queued_by_queue_seq ON jobs(queue_seq) WHERE status = 'queued';
)sql";

// Version 5 (issue 20): files clients upload as job inputs (audio to transcribe, images to
// edit). The bytes are a file named by the id under <data_dir>/uploads; the row says who sent them
// and which job took them (NULL until a job refers to them). Rows that no job took are swept after
// the retention period; those of a finished job go with it. The index serves both sweeps.
constexpr std::string_view kSchemaV5 = R"sql(
CREATE TABLE uploads (
  id            TEXT PRIMARY KEY,
  sha256        TEXT NOT NULL,
  bytes         INTEGER NOT NULL,
  content_type  TEXT NOT NULL,
  filename      TEXT NOT NULL,
  owner         TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  job_id        TEXT
);
CREATE INDEX uploads_by_job ON uploads(job_id, created_at);
)sql";

constexpr std::string_view kPgSchemaV5 = R"sql(
CREATE TABLE uploads (
  id            TEXT PRIMARY KEY,
  sha256        TEXT NOT NULL,
  bytes         BIGINT NOT NULL,
  content_type  TEXT NOT NULL,
  filename      TEXT NOT NULL,
  owner         TEXT NOT NULL,
  created_at    BIGINT NOT NULL,
  job_id        TEXT
);
CREATE INDEX uploads_by_job ON uploads(job_id, created_at);
)sql";

// Version 6 (issue 20): API keys get a scope and optional quotas; jobs record who created them
// and how much of their run time was metered already; and each key's usage is kept per UTC day
// (one row per key and day: the quota check sums a month in at most 31 rows).
constexpr std::string_view kSchemaV6 = R"sql(
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'client';
ALTER TABLE api_keys ADD COLUMN quota_period TEXT;
ALTER TABLE api_keys ADD COLUMN quota_jobs INTEGER;
ALTER TABLE api_keys ADD COLUMN quota_tokens INTEGER;
ALTER TABLE api_keys ADD COLUMN quota_seconds INTEGER;
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN metered_ms INTEGER NOT NULL DEFAULT 0;
CREATE TABLE api_key_usage (
  key_id      TEXT NOT NULL,
  day         INTEGER NOT NULL,
  jobs        INTEGER NOT NULL DEFAULT 0,
  tokens_in   INTEGER NOT NULL DEFAULT 0,
  tokens_out  INTEGER NOT NULL DEFAULT 0,
  run_ms      INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, day)
);
)sql";

constexpr std::string_view kPgSchemaV6 = R"sql(
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'client';
ALTER TABLE api_keys ADD COLUMN quota_period TEXT;
ALTER TABLE api_keys ADD COLUMN quota_jobs BIGINT;
ALTER TABLE api_keys ADD COLUMN quota_tokens BIGINT;
ALTER TABLE api_keys ADD COLUMN quota_seconds BIGINT;
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN metered_ms BIGINT NOT NULL DEFAULT 0;
CREATE TABLE api_key_usage (
  key_id      TEXT NOT NULL,
  day         BIGINT NOT NULL,
  jobs        BIGINT NOT NULL DEFAULT 0,
  tokens_in   BIGINT NOT NULL DEFAULT 0,
  tokens_out  BIGINT NOT NULL DEFAULT 0,
  run_ms      BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, day)
);
)sql";

// Version 7 (issue 22): join tokens, for workers that join a fleet unattended. A register-request
// that carries a valid one is approved at once. Only the token's SHA-256 is kept. A token ends by
// expiry, by its use count, or by revocation; its row stays, so a worker it approved still names
// it. Workers and requests record who approved them: "admin", "key:<id>", "cli" or
// "join-token:<id>".
constexpr std::string_view kSchemaV7 = R"sql(
CREATE TABLE join_tokens (
  id            TEXT PRIMARY KEY,
  token_hash    TEXT NOT NULL UNIQUE,
  label         TEXT NOT NULL DEFAULT '',
  created_by    TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER,
  max_uses      INTEGER,
  uses          INTEGER NOT NULL DEFAULT 0,
  last_used_at  INTEGER,
  revoked_at    INTEGER
);
ALTER TABLE workers ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE registration_requests ADD COLUMN decided_by TEXT NOT NULL DEFAULT '';
)sql";

constexpr std::string_view kPgSchemaV7 = R"sql(
CREATE TABLE join_tokens (
  id            TEXT PRIMARY KEY,
  token_hash    TEXT NOT NULL UNIQUE,
  label         TEXT NOT NULL DEFAULT '',
  created_by    TEXT NOT NULL,
  created_at    BIGINT NOT NULL,
  expires_at    BIGINT,
  max_uses      BIGINT,
  uses          BIGINT NOT NULL DEFAULT 0,
  last_used_at  BIGINT,
  revoked_at    BIGINT
);
ALTER TABLE workers ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE registration_requests ADD COLUMN decided_by TEXT NOT NULL DEFAULT '';
)sql";

}  // namespace

std::span<const sql::Migration> studio_migrations() {
  static constexpr sql::Migration kMigrations[] = {
      {1, kSchemaV1, kPgSchemaV1}, {2, kSchemaV2, kPgSchemaV2}, {3, kSchemaV3, kPgSchemaV3},
      {4, kSchemaV4, kPgSchemaV4}, {5, kSchemaV5, kPgSchemaV5}, {6, kSchemaV6, kPgSchemaV6},
      {7, kSchemaV7, kPgSchemaV7}};
  return kMigrations;
}

}  // namespace sw::store
