#include "studio/store/pg_studio_store.h"

#include <fmt/format.h>

#include <utility>

#include "sql/pg/migrate.h"
#include "studio/store/migrations.h"

namespace sw::store {
namespace {

using sql::pg::Connection;
using sql::pg::Param;
using sql::pg::Rows;
using sql::pg::Transaction;

// The same column lists, in the same order, as the SQLite store's readers expect. Text ordering
// uses COLLATE "C" (byte order, as SQLite compares) so that lists come out in the same order
// whatever the database's locale.
constexpr std::string_view kJobColumns =
    "seq, id, model, kind, task, model_source, vram_gb_estimate, game_id, asset_name, priority, "
    "attempts, max_attempts, idempotency_key, status, worker_id, last_worker_id, created_at, "
    "claimed_at, accepted_at, finished_at, error, prompt, result_json, result_sha256, "
    "result_content_type, result_ext, result_bytes, former_workers, completions, process_id, "
    "queue_seq, owner";
constexpr std::string_view kWorkerColumns =
    "id, token_hash, install_id, capabilities, current_job_id, created_at, last_seen_at, "
    "approved_by";
constexpr std::string_view kRequestColumns =
    "id, install_id, secret_hash, capabilities, user_agent, source_ip, status, reason, worker_id, "
    "created_at, decided_at, decided_by";
constexpr std::string_view kJoinTokenColumns =
    "id, token_hash, label, created_by, created_at, expires_at, max_uses, uses, last_used_at, "
    "revoked_at";
constexpr std::string_view kModelColumns =
    "id, kind, display_name, vram_gb_estimate, enabled, source, created_at, updated_at";

JobRecord read_job(const Rows& r, int i) {
  JobRecord job;
  job.seq = r.int64(i, 0);
  job.id = r.text(i, 1);
  job.model = r.text(i, 2);
  job.kind = proto::parse_task_kind(r.text(i, 3)).value_or(proto::TaskKind::Image);
  job.task_json = r.text(i, 4);
  job.model_source_json = r.text(i, 5);
  job.vram_gb_estimate = r.real(i, 6);
  job.game_id = r.text(i, 7);
  job.asset_name = r.text(i, 8);
  job.priority = static_cast<int>(r.int64(i, 9));
  job.attempts = static_cast<int>(r.int64(i, 10));
  job.max_attempts = static_cast<int>(r.int64(i, 11));
  job.idempotency_key = r.optional_text(i, 12);
  job.status = parse_job_status(r.text(i, 13)).value_or(JobStatus::Failed);
  job.worker_id = r.optional_text(i, 14);
  job.last_worker_id = r.optional_text(i, 15);
  job.created_at = r.int64(i, 16);
  job.claimed_at = r.optional_int64(i, 17);
  job.accepted_at = r.optional_int64(i, 18);
  job.finished_at = r.optional_int64(i, 19);
  job.error = r.optional_text(i, 20);
  job.prompt = r.optional_text(i, 21);
  job.result_json = r.optional_text(i, 22);
  if (auto sha = r.optional_text(i, 23)) {
    job.result_binary = BinaryResult{*sha, r.text(i, 24), r.text(i, 25), r.int64(i, 26)};
  }
  job.former_workers = r.text(i, 27);
  job.completions = static_cast<int>(r.int64(i, 28));
  job.process_id = r.optional_text(i, 29);
  job.queue_seq = r.int64(i, 30);
  job.owner = r.optional_text(i, 31);
  return job;
}

WorkerRecord read_worker(const Rows& r, int i) {
  return WorkerRecord{r.text(i, 0),          r.text(i, 1),  r.text(i, 2),           r.text(i, 3),
                      r.optional_text(i, 4), r.int64(i, 5), r.optional_int64(i, 6), r.text(i, 7)};
}

JoinTokenRecord read_join_token(const Rows& r, int i) {
  return JoinTokenRecord{r.text(i, 0),           r.text(i, 1),  r.text(i, 2),
                         r.text(i, 3),           r.int64(i, 4), r.optional_int64(i, 5),
                         r.optional_int64(i, 6), r.int64(i, 7), r.optional_int64(i, 8),
                         r.optional_int64(i, 9)};
}

RegistrationRecord read_request(const Rows& r, int i) {
  RegistrationRecord rec;
  rec.id = r.text(i, 0);
  rec.install_id = r.text(i, 1);
  rec.secret_hash = r.text(i, 2);
  rec.capabilities_json = r.text(i, 3);
  rec.user_agent = r.text(i, 4);
  rec.source_ip = r.text(i, 5);
  const auto status = r.text(i, 6);
  rec.status = status == "approved"   ? RequestStatus::Approved
               : status == "rejected" ? RequestStatus::Rejected
                                      : RequestStatus::Pending;
  rec.reason = r.text(i, 7);
  rec.worker_id = r.optional_text(i, 8);
  rec.created_at = r.int64(i, 9);
  rec.decided_at = r.optional_int64(i, 10);
  rec.decided_by = r.text(i, 11);
  return rec;
}

ModelRecord read_model(const Rows& r, int i) {
  ModelRecord m;
  m.id = r.text(i, 0);
  m.kind = proto::parse_task_kind(r.text(i, 1)).value_or(proto::TaskKind::Image);
  m.display_name = r.text(i, 2);
  m.vram_gb_estimate = r.real(i, 3);
  m.enabled = r.int64(i, 4) != 0;
  m.source_json = r.text(i, 5);
  m.created_at = r.int64(i, 6);
  m.updated_at = r.int64(i, 7);
  return m;
}

template <class T, class Read>
Result<std::vector<T>> collect(Result<Rows> rows, Read read) {
  if (!rows) {
    return fail(std::move(rows).error());
  }
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(rows->size()));
  for (int i = 0; i < rows->size(); ++i) {
    out.push_back(read(*rows, i));
  }
  return out;
}

template <class T, class Read>
Result<std::optional<T>> first(Result<Rows> rows, Read read) {
  if (!rows) {
    return fail(std::move(rows).error());
  }
  if (rows->empty()) {
    return std::optional<T>();
  }
  return std::optional<T>(read(*rows, 0));
}

// Whether a statement changed exactly one row.
Result<bool> one_changed(Result<Rows> rows) {
  if (!rows) {
    return fail(std::move(rows).error());
  }
  return rows->affected() == 1;
}

// `RETURNING pg_notify('sw_jobs', …)`: the changed job's id and the sending process ($n).
std::string notify_job(int process_param) {
  return fmt::format(" RETURNING pg_notify('{}', id || chr(9) || ${}::text)", kJobsChannel,
                     process_param);
}
std::string notify_cache(std::string_view table) {
  return fmt::format(" RETURNING pg_notify('{}', '{}')", kCacheChannel, table);
}

Status done(Result<Rows> rows) {
  if (!rows) {
    return fail(std::move(rows).error());
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<PgStudioStore>> PgStudioStore::open(std::string_view uri) {
  auto conn = Connection::open(uri);
  if (!conn) {
    return fail(std::move(conn).error());
  }
  SW_TRY(sql::pg::migrate(*conn, studio_migrations()));
  return std::unique_ptr<PgStudioStore>(new PgStudioStore(std::move(*conn)));
}

// ---- batch control ----

Status PgStudioStore::begin_batch() {
  release_pending_ = false;
  return conn_.exec_script("BEGIN");
}

Status PgStudioStore::begin_op() {
  // The previous op's savepoint goes in the same round trip (a simple query of two statements).
  const bool release = std::exchange(release_pending_, false);
  return conn_.exec_script(release ? "RELEASE SAVEPOINT op; SAVEPOINT op" : "SAVEPOINT op");
}

Status PgStudioStore::end_op(bool keep) {
  // An op that ignored a failed statement left the transaction aborted: only its savepoint's
  // rollback lets the batch go on.
  if (!keep || conn_.tx_state() == Connection::TxState::Aborted) {
    return conn_.exec_script("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op");
  }
  release_pending_ = true;  // released by the next begin_op() or the COMMIT
  return {};
}

Status PgStudioStore::commit_batch() {
  release_pending_ = false;  // COMMIT releases every savepoint
  if (conn_.tx_state() != Connection::TxState::Open) {
    return fail(Error::make(conn_.ok() ? Code::Internal : Code::Unavailable,
                            "postgresql: the batch's transaction is not open on {}",
                            conn_.describe()));
  }
  return conn_.exec_script("COMMIT");
}

void PgStudioStore::rollback_batch() {
  release_pending_ = false;
  if (conn_.ok() && conn_.tx_state() != Connection::TxState::Idle) {
    (void)conn_.exec_script("ROLLBACK");
  }
}

bool PgStudioStore::healthy() const {
  return conn_.ok();
}

Status PgStudioStore::recover() {
  if (conn_.ok()) {
    return {};
  }
  return conn_.reconnect();
}

// ---- settings ----

Result<std::optional<std::string>> PgStudioStore::setting(std::string_view key) {
  return first<std::string>(conn_.exec("SELECT value FROM settings WHERE key = $1", {key}),
                            [](const Rows& r, int i) { return r.text(i, 0); });
}

Status PgStudioStore::set_setting(std::string_view key, std::string_view value) {
  return done(
      conn_.exec("INSERT INTO settings(key, value) VALUES ($1, $2) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value" +
                     notify_cache("settings"),
                 {key, value}));
}

Result<bool> PgStudioStore::insert_setting_if_absent(std::string_view key, std::string_view value) {
  return one_changed(
      conn_.exec("INSERT INTO settings(key, value) VALUES ($1, $2) "
                 "ON CONFLICT (key) DO NOTHING" +
                     notify_cache("settings"),
                 {key, value}));
}

// ---- workers ----

Status PgStudioStore::insert_worker(const WorkerRecord& w) {
  return done(conn_.exec(
      "INSERT INTO workers(id, token_hash, install_id, capabilities, current_job_id, created_at, "
      "last_seen_at, approved_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)" +
          notify_cache("workers"),
      {w.id, w.token_hash, w.install_id, w.capabilities_json, w.current_job_id, w.created_at,
       w.last_seen_at, w.approved_by}));
}

Result<std::optional<WorkerRecord>> PgStudioStore::find_worker(std::string_view id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM workers WHERE id = $1", kWorkerColumns);
  return first<WorkerRecord>(conn_.exec(sql, {id}), read_worker);
}

Result<bool> PgStudioStore::worker_exists(std::string_view id) {
  auto rows = conn_.exec("SELECT 1 FROM workers WHERE id = $1", {id});
  if (!rows) {
    return fail(std::move(rows).error());
  }
  return !rows->empty();
}

Result<std::vector<WorkerRecord>> PgStudioStore::list_workers() {
  static const std::string sql =
      fmt::format("SELECT {} FROM workers ORDER BY created_at, id COLLATE \"C\"", kWorkerColumns);
  return collect<WorkerRecord>(conn_.exec(sql), read_worker);
}

Result<bool> PgStudioStore::set_worker_token(std::string_view id, std::string_view token_hash) {
  return one_changed(
      conn_.exec("UPDATE workers SET token_hash = $1 WHERE id = $2" + notify_cache("workers"),
                 {token_hash, id}));
}

Result<bool> PgStudioStore::record_heartbeat(std::string_view id,
                                             const std::string& capabilities_json,
                                             const std::optional<std::string>& current_job_id,
                                             Millis now) {
  return one_changed(
      conn_.exec("UPDATE workers SET capabilities = $1, current_job_id = $2, last_seen_at = $3 "
                 "WHERE id = $4",
                 {capabilities_json, current_job_id, now, id}));
}

Result<bool> PgStudioStore::delete_worker(std::string_view id) {
  return one_changed(
      conn_.exec("DELETE FROM workers WHERE id = $1" + notify_cache("workers"), {id}));
}

// ---- registration ----

Result<std::optional<RegistrationRecord>> PgStudioStore::find_pending_request(
    std::string_view install_id) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM registration_requests WHERE install_id = $1 AND status = 'pending' "
      "ORDER BY created_at DESC LIMIT 1",
      kRequestColumns);
  return first<RegistrationRecord>(conn_.exec(sql, {install_id}), read_request);
}

Status PgStudioStore::insert_request(const RegistrationRecord& r) {
  return done(conn_.exec(
      "INSERT INTO registration_requests(id, install_id, secret_hash, capabilities, user_agent, "
      "source_ip, status, reason, worker_id, created_at, decided_at, decided_by) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
      "RETURNING pg_notify('sw_requests', id)",
      {r.id, r.install_id, r.secret_hash, r.capabilities_json, r.user_agent, r.source_ip,
       to_string(r.status), r.reason, r.worker_id, r.created_at, r.decided_at, r.decided_by}));
}

Result<std::optional<RegistrationRecord>> PgStudioStore::find_request(std::string_view id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM registration_requests WHERE id = $1", kRequestColumns);
  return first<RegistrationRecord>(conn_.exec(sql, {id}), read_request);
}

Result<std::vector<RegistrationRecord>> PgStudioStore::list_requests(
    std::optional<RequestStatus> status) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM registration_requests WHERE $1::text IS NULL OR status = $1::text "
      "ORDER BY created_at, id COLLATE \"C\"",
      kRequestColumns);
  const Param filter = status ? Param(to_string(*status)) : Param(std::nullopt);
  return collect<RegistrationRecord>(conn_.exec(sql, {filter}), read_request);
}

Result<bool> PgStudioStore::decide_request(std::string_view id, RequestStatus decision,
                                           std::string_view reason,
                                           const std::optional<std::string>& worker_id, Millis now,
                                           std::string_view decided_by) {
  return one_changed(
      conn_.exec("UPDATE registration_requests SET status = $1, reason = $2, worker_id = $3, "
                 "decided_at = $4, decided_by = $5 WHERE id = $6 AND status = 'pending' "
                 "RETURNING pg_notify('sw_requests', id)",
                 {to_string(decision), reason, worker_id, now, decided_by, id}));
}

Result<std::optional<RegistrationRecord>> PgStudioStore::find_request_by_secret(
    std::string_view install_id, std::string_view secret_hash) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM registration_requests WHERE install_id = $1 AND secret_hash = $2 "
      "ORDER BY created_at DESC, id COLLATE \"C\" DESC LIMIT 1",
      kRequestColumns);
  return first<RegistrationRecord>(conn_.exec(sql, {install_id, secret_hash}), read_request);
}

// ---- join tokens ----

Status PgStudioStore::insert_join_token(const JoinTokenRecord& t) {
  return done(conn_.exec(
      "INSERT INTO join_tokens(id, token_hash, label, created_by, created_at, expires_at, "
      "max_uses, uses, last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
      {t.id, t.token_hash, t.label, t.created_by, t.created_at, t.expires_at, t.max_uses, t.uses,
       t.last_used_at, t.revoked_at}));
}

Result<std::vector<JoinTokenRecord>> PgStudioStore::list_join_tokens() {
  static const std::string sql =
      fmt::format("SELECT {} FROM join_tokens ORDER BY created_at DESC, id COLLATE \"C\" DESC",
                  kJoinTokenColumns);
  return collect<JoinTokenRecord>(conn_.exec(sql), read_join_token);
}

Result<std::optional<JoinTokenRecord>> PgStudioStore::find_join_token_by_hash(
    std::string_view token_hash) {
  static const std::string sql =
      fmt::format("SELECT {} FROM join_tokens WHERE token_hash = $1", kJoinTokenColumns);
  return first<JoinTokenRecord>(conn_.exec(sql, {token_hash}), read_join_token);
}

Result<bool> PgStudioStore::use_join_token(std::string_view id, Millis now) {
  // Under READ COMMITTED a concurrent use blocks on the row and re-checks the WHERE against the
  // committed row, so a token's last use goes to one caller.
  return one_changed(
      conn_.exec("UPDATE join_tokens SET uses = uses + 1, last_used_at = $1 WHERE id = $2 AND "
                 "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) AND "
                 "(max_uses IS NULL OR uses < max_uses)",
                 {now, id}));
}

Result<bool> PgStudioStore::revoke_join_token(std::string_view id, Millis now) {
  return one_changed(conn_.exec(
      "UPDATE join_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", {now, id}));
}

// ---- models ----

Status PgStudioStore::insert_model(const ModelRecord& m) {
  return done(conn_.exec(
      "INSERT INTO models(id, kind, display_name, vram_gb_estimate, enabled, source, created_at, "
      "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)" +
          notify_cache("models"),
      {m.id, proto::to_string(m.kind), m.display_name, m.vram_gb_estimate, m.enabled ? 1 : 0,
       m.source_json, m.created_at, m.updated_at}));
}

Result<bool> PgStudioStore::update_model(const ModelRecord& m) {
  return one_changed(conn_.exec(
      "UPDATE models SET kind = $1, display_name = $2, vram_gb_estimate = $3, enabled = $4, "
      "source = $5, updated_at = $6 WHERE id = $7" +
          notify_cache("models"),
      {proto::to_string(m.kind), m.display_name, m.vram_gb_estimate, m.enabled ? 1 : 0,
       m.source_json, m.updated_at, m.id}));
}

Result<bool> PgStudioStore::delete_model(std::string_view id) {
  return one_changed(conn_.exec("DELETE FROM models WHERE id = $1" + notify_cache("models"), {id}));
}

Result<std::optional<ModelRecord>> PgStudioStore::find_model(std::string_view id) {
  static const std::string sql = fmt::format("SELECT {} FROM models WHERE id = $1", kModelColumns);
  return first<ModelRecord>(conn_.exec(sql, {id}), read_model);
}

Result<std::vector<ModelRecord>> PgStudioStore::list_models() {
  static const std::string sql =
      fmt::format("SELECT {} FROM models ORDER BY id COLLATE \"C\"", kModelColumns);
  return collect<ModelRecord>(conn_.exec(sql), read_model);
}

// ---- jobs ----

Status PgStudioStore::insert_job(JobRecord& j) {
  auto rows = conn_.exec(
      "INSERT INTO jobs(id, model, kind, task, model_source, vram_gb_estimate, game_id, "
      "asset_name, priority, attempts, max_attempts, idempotency_key, status, created_at, owner) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $16) "
      // A key another process inserted meanwhile: no row, and the transaction stays usable for
      // the caller's re-read (a unique violation would abort it).
      "ON CONFLICT (idempotency_key) DO NOTHING "
      "RETURNING seq, queue_seq, pg_notify('sw_jobs', id || chr(9) || $15::text)",
      {j.id, j.model, proto::to_string(j.kind), j.task_json, j.model_source_json,
       j.vram_gb_estimate, j.game_id, j.asset_name, j.priority, j.attempts, j.max_attempts,
       j.idempotency_key, to_string(j.status), j.created_at, process_id_, j.owner});
  if (!rows) {
    return fail(std::move(rows).error());
  }
  if (rows->empty()) {
    return fail(Error::make(Code::Conflict, "idempotencyKey \"{}\" already names a job",
                            j.idempotency_key.value_or("")));
  }
  j.seq = rows->int64(0, 0);
  j.queue_seq = rows->int64(0, 1);
  return {};
}

Result<std::optional<JobRecord>> PgStudioStore::find_job(std::string_view id) {
  static const std::string sql = fmt::format("SELECT {} FROM jobs WHERE id = $1", kJobColumns);
  return first<JobRecord>(conn_.exec(sql, {id}), read_job);
}

Result<std::optional<JobRecord>> PgStudioStore::find_job_by_idempotency_key(std::string_view key) {
  static const std::string sql =
      fmt::format("SELECT {} FROM jobs WHERE idempotency_key = $1", kJobColumns);
  return first<JobRecord>(conn_.exec(sql, {key}), read_job);
}

Result<std::vector<JobRecord>> PgStudioStore::list_jobs(const JobFilter& filter) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM jobs WHERE ($1::text IS NULL OR status = $1::text) "
      "AND ($2::text IS NULL OR kind = $2::text) AND ($3::bigint IS NULL OR seq < $3::bigint) "
      "AND ($5::text IS NULL OR owner = $5::text) AND ($6::text IS NULL OR model = $6::text) "
      "ORDER BY seq DESC LIMIT $4",
      kJobColumns);
  const Param status = filter.status ? Param(to_string(*filter.status)) : Param(std::nullopt);
  const Param kind = filter.kind ? Param(proto::to_string(*filter.kind)) : Param(std::nullopt);
  return collect<JobRecord>(
      conn_.exec(sql, {status, kind, filter.before_seq, filter.limit, filter.owner, filter.model}),
      read_job);
}

Result<std::vector<JobRecord>> PgStudioStore::active_jobs() {
  static const std::string sql = fmt::format(
      "SELECT {} FROM jobs WHERE status IN ('queued', 'claimed') ORDER BY seq", kJobColumns);
  return collect<JobRecord>(conn_.exec(sql), read_job);
}

Result<std::map<std::string, std::int64_t>> PgStudioStore::count_jobs_by_status() {
  auto rows = conn_.exec("SELECT status, COUNT(*) FROM jobs GROUP BY status");
  if (!rows) {
    return fail(std::move(rows).error());
  }
  std::map<std::string, std::int64_t> counts;
  for (int i = 0; i < rows->size(); ++i) {
    counts.emplace(rows->text(i, 0), rows->int64(i, 1));
  }
  return counts;
}

Result<bool> PgStudioStore::claim_job(std::string_view id, std::string_view worker_id, Millis now) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  // The compare-and-set: of concurrent claimers (other processes included) exactly one updates
  // the row; the others wait for its lock, then find it no longer queued.
  auto claimed = conn_.exec(
      "UPDATE jobs SET status = 'claimed', worker_id = $2, last_worker_id = $2, claimed_at = $3, "
      "accepted_at = NULL, process_id = $4 WHERE id = $1 AND status = 'queued' RETURNING seq",
      {id, worker_id, now, process_id_.empty() ? Param(std::nullopt) : Param(process_id_)});
  if (!claimed) {
    return fail(std::move(claimed).error());
  }
  if (claimed->empty()) {
    return false;
  }
  SW_TRY(conn_.exec(
      "INSERT INTO job_attempts(job_id, n, worker_id, offered_at, outcome) VALUES ($1, "
      "(SELECT COALESCE(MAX(n), 0) + 1 FROM job_attempts WHERE job_id = $1), $2, $3, 'offered')",
      {id, worker_id, now}));
  SW_TRY(tx->commit());
  return true;
}

Result<bool> PgStudioStore::mark_accepted(std::string_view id, std::string_view worker_id,
                                          Millis now) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  auto accepted = one_changed(conn_.exec(
      "UPDATE jobs SET attempts = attempts + CASE WHEN accepted_at IS NULL THEN 1 ELSE 0 END, "
      "accepted_at = $1 WHERE id = $2 AND worker_id = $3 AND status IN ('claimed', 'cancelled')",
      {now, id, worker_id}));
  if (!accepted || !*accepted) {
    return accepted;
  }
  SW_TRY(
      conn_.exec("UPDATE job_attempts SET started_at = $1, outcome = 'running' "
                 "WHERE job_id = $2 AND worker_id = $3 AND outcome = 'offered'",
                 {now, id, worker_id}));
  SW_TRY(tx->commit());
  return true;
}

Status PgStudioStore::end_attempt(std::string_view id, std::string_view worker_id, bool others,
                                  const AttemptEnd& ended, Millis now) {
  const Param worker = worker_id.empty() ? Param(std::nullopt) : Param(worker_id);
  return done(conn_.exec(
      "UPDATE job_attempts SET outcome = $1, reason = $2, ended_at = $3 "
      "WHERE job_id = $4 AND outcome IN ('offered', 'running') AND ($5::text IS NULL OR "
      "($6::int = 0 AND worker_id = $5::text) OR ($6::int = 1 AND worker_id <> $5::text))",
      {to_string(ended.outcome), ended.reason, now, id, worker, others ? 1 : 0}));
}

Result<bool> PgStudioStore::release_job(std::string_view id, std::string_view worker_id,
                                        int attempts, const std::optional<std::string>& error,
                                        bool fail_job, Millis now, const AttemptEnd& ended) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  auto released = one_changed(conn_.exec(
      "UPDATE jobs SET status = $1, worker_id = NULL, attempts = $2, "
      "error = COALESCE($3, error), finished_at = $4, claimed_at = NULL, accepted_at = NULL, "
      "former_workers = former_workers || worker_id || ',', process_id = NULL, "
      "queue_seq = CASE WHEN $1 = 'queued' THEN nextval('jobs_queue_seq') ELSE queue_seq END "
      "WHERE id = $5 AND worker_id = $6 AND status = 'claimed'" +
          notify_job(7),
      {fail_job ? "failed" : "queued", attempts, error,
       fail_job ? std::optional<Millis>(now) : std::nullopt, id, worker_id, process_id_}));
  if (!released || !*released) {
    return released;
  }
  SW_TRY(end_attempt(id, worker_id, false, ended, now));
  if (fail_job) {
    SW_TRY(meter_job_end(id, {}, now));
  }
  SW_TRY(tx->commit());
  return true;
}

Status PgStudioStore::meter_job_end(std::string_view id, const KeyUsage& tokens, Millis now) {
  // As the SQLite store: attempts' run time not metered yet, and the tokens, to the job's key.
  auto basis = conn_.exec(
      "SELECT j.owner, j.metered_ms, (SELECT COALESCE(SUM(COALESCE(a.ended_at, $2::bigint) - "
      "a.started_at), 0) FROM job_attempts a WHERE a.job_id = j.id AND a.started_at IS NOT "
      "NULL) FROM jobs j WHERE j.id = $1 AND j.owner IS NOT NULL AND j.owner <> 'admin'",
      {id, now});
  if (!basis) {
    return fail(std::move(basis).error());
  }
  if (basis->empty()) {
    return {};
  }
  const std::string owner = basis->text(0, 0);
  const auto total = basis->int64(0, 2);
  KeyUsage usage = tokens;
  usage.run_ms = std::max<std::int64_t>(0, total - basis->int64(0, 1));
  if (usage.run_ms > 0) {
    SW_TRY(conn_.exec("UPDATE jobs SET metered_ms = $1 WHERE id = $2", {total, id}));
  }
  if (usage == KeyUsage{}) {
    return {};
  }
  return add_key_usage(owner, utc_day(now), usage);
}

Status PgStudioStore::end_completed_attempts(std::string_view id, std::string_view worker_id,
                                             Millis now) {
  SW_TRY(
      conn_.exec("UPDATE job_attempts SET outcome = 'done', ended_at = $3, "
                 "reason = CASE WHEN outcome IN ('offered', 'running') THEN NULL ELSE "
                 "'result arrived after the attempt had ended as ' || outcome || COALESCE(' (' || "
                 "reason || ')', '') "
                 "END WHERE job_id = $1 AND n = COALESCE((SELECT MAX(n) FROM job_attempts "
                 "WHERE job_id = $1 AND worker_id = $2 AND started_at IS NOT NULL), "
                 "(SELECT MAX(n) FROM job_attempts WHERE job_id = $1 AND worker_id = $2))",
                 {id, worker_id, now}));
  // The twin of the SQLite store: its own offer still open ends with the job.
  SW_TRY(end_attempt(
      id, worker_id, false,
      AttemptEnd{AttemptOutcome::Withdrawn, "an earlier run of this worker completed the job"},
      now));
  return end_attempt(
      id, worker_id, true,
      AttemptEnd{AttemptOutcome::Withdrawn, std::string("a result from ") + std::string(worker_id) +
                                                " completed the job first"},
      now);
}

namespace {
// The twin of the SQLite store's completion rule: the holder of the claim, or a former holder
// while the job is queued, claimed by another or failed. $1 the job, $2 the worker, $3 the time.
constexpr std::string_view kCompletionSets =
    "status = 'done', worker_id = $2::text, last_worker_id = $2::text, finished_at = $3::bigint, "
    "error = NULL, attempts = GREATEST(attempts, 1), "
    "claimed_at = COALESCE(claimed_at, $3::bigint), completions = completions + 1, "
    "former_workers = CASE WHEN worker_id IS NOT NULL AND worker_id <> $2::text "
    "THEN former_workers || worker_id || ',' ELSE former_workers END";
constexpr std::string_view kCompletableBy =
    "WHERE id = $1 AND ((status = 'claimed' AND worker_id = $2::text) OR "
    "(status IN ('queued', 'claimed', 'failed') AND "
    "strpos(former_workers, ',' || $2::text || ',') > 0))";
}  // namespace

Result<bool> PgStudioStore::complete(std::string_view sql, std::initializer_list<Param> params,
                                     std::string_view id, std::string_view worker_id, Millis now,
                                     const KeyUsage& tokens) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  auto completed = one_changed(conn_.exec(sql, params));
  if (!completed || !*completed) {
    return completed;
  }
  SW_TRY(end_completed_attempts(id, worker_id, now));
  SW_TRY(meter_job_end(id, tokens, now));
  SW_TRY(tx->commit());
  return true;
}

Result<bool> PgStudioStore::complete_job_json(std::string_view id, std::string_view worker_id,
                                              std::string_view result_json,
                                              const std::optional<std::string>& prompt,
                                              Millis now) {
  static const std::string sql =
      fmt::format("UPDATE jobs SET {}, result_json = $4, prompt = COALESCE($5, prompt) {}{}",
                  kCompletionSets, kCompletableBy, notify_job(6));
  return complete(sql, {id, worker_id, now, result_json, prompt, process_id_}, id, worker_id, now,
                  llm_result_usage(result_json));
}

Result<bool> PgStudioStore::complete_job_binary(std::string_view id, std::string_view worker_id,
                                                const BinaryResult& r,
                                                const std::optional<std::string>& prompt,
                                                Millis now) {
  static const std::string sql = fmt::format(
      "UPDATE jobs SET {}, result_sha256 = $4, result_content_type = $5, result_ext = $6, "
      "result_bytes = $7, prompt = COALESCE($8, prompt) {}{}",
      kCompletionSets, kCompletableBy, notify_job(9));
  return complete(
      sql, {id, worker_id, now, r.sha256, r.content_type, r.ext, r.bytes, prompt, process_id_}, id,
      worker_id, now, {});
}

Result<bool> PgStudioStore::cancel_job(std::string_view id, Millis now) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  auto cancelled =
      one_changed(conn_.exec("UPDATE jobs SET status = 'cancelled', finished_at = $1 "
                             "WHERE id = $2 AND status IN ('queued', 'claimed')" +
                                 notify_job(3),
                             {now, id, process_id_}));
  if (!cancelled || !*cancelled) {
    return cancelled;
  }
  SW_TRY(end_attempt(id, "", false, AttemptEnd{AttemptOutcome::Cancelled, std::nullopt}, now));
  SW_TRY(meter_job_end(id, {}, now));
  SW_TRY(tx->commit());
  return true;
}

Result<std::vector<AttemptRecord>> PgStudioStore::job_attempts(std::string_view id) {
  return collect<AttemptRecord>(
      conn_.exec("SELECT n, worker_id, offered_at, started_at, ended_at, outcome, reason "
                 "FROM job_attempts WHERE job_id = $1 ORDER BY n",
                 {id}),
      [](const Rows& r, int i) {
        AttemptRecord a;
        a.n = static_cast<int>(r.int64(i, 0));
        a.worker_id = r.text(i, 1);
        a.offered_at = r.int64(i, 2);
        a.started_at = r.optional_int64(i, 3);
        a.ended_at = r.optional_int64(i, 4);
        a.outcome = parse_attempt_outcome(r.text(i, 5)).value_or(AttemptOutcome::Failed);
        a.reason = r.optional_text(i, 6);
        return a;
      });
}

Status PgStudioStore::clear_job_holder(std::string_view id) {
  return done(
      conn_.exec("UPDATE jobs SET worker_id = NULL WHERE id = $1 AND status = 'cancelled'", {id}));
}

// ---- API keys ----

namespace {
// The quota columns as bound: period, jobs, tokens, seconds (all NULL: no quota).
std::optional<std::string> quota_period_column(const ApiKeyRecord& k) {
  return k.quota ? std::optional<std::string>(to_string(k.quota->period)) : std::nullopt;
}
std::optional<std::int64_t> quota_limit(const ApiKeyRecord& k,
                                        std::optional<std::int64_t> KeyQuota::*limit) {
  return k.quota ? (*k.quota).*limit : std::nullopt;
}
}  // namespace

Status PgStudioStore::insert_api_key(const ApiKeyRecord& k) {
  return done(conn_.exec(
      "INSERT INTO api_keys(id, name, key_hash, created_at, scope, quota_period, quota_jobs, "
      "quota_tokens, quota_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)" +
          notify_cache("keys"),
      {k.id, k.name, k.key_hash, k.created_at, to_string(k.scope), quota_period_column(k),
       quota_limit(k, &KeyQuota::jobs), quota_limit(k, &KeyQuota::tokens),
       quota_limit(k, &KeyQuota::seconds)}));
}

Result<bool> PgStudioStore::update_api_key(const ApiKeyRecord& k) {
  return one_changed(conn_.exec(
      "UPDATE api_keys SET name = $1, scope = $2, quota_period = $3, quota_jobs = $4, "
      "quota_tokens = $5, quota_seconds = $6 WHERE id = $7" +
          notify_cache("keys"),
      {k.name, to_string(k.scope), quota_period_column(k), quota_limit(k, &KeyQuota::jobs),
       quota_limit(k, &KeyQuota::tokens), quota_limit(k, &KeyQuota::seconds), k.id}));
}

Result<bool> PgStudioStore::delete_api_key(std::string_view id) {
  return one_changed(conn_.exec("DELETE FROM api_keys WHERE id = $1" + notify_cache("keys"), {id}));
}

Result<std::vector<ApiKeyRecord>> PgStudioStore::list_api_keys() {
  return collect<ApiKeyRecord>(
      conn_.exec("SELECT id, name, key_hash, created_at, scope, quota_period, quota_jobs, "
                 "quota_tokens, quota_seconds FROM api_keys ORDER BY created_at, id COLLATE "
                 "\"C\""),
      [](const Rows& r, int i) {
        ApiKeyRecord key{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.int64(i, 3)};
        key.scope = parse_key_scope(r.text(i, 4)).value_or(KeyScope::Inference);
        if (auto period = r.optional_text(i, 5)) {
          key.quota =
              KeyQuota{parse_quota_period(*period).value_or(QuotaPeriod::Day),
                       r.optional_int64(i, 6), r.optional_int64(i, 7), r.optional_int64(i, 8)};
        }
        return key;
      });
}

Status PgStudioStore::add_key_usage(std::string_view key_id, std::int64_t day, const KeyUsage& u) {
  // Every writer of a key's usage rows takes the key's lock first (hold_key_usage), so that a
  // job's end metered in one process and a job created in another never wait on each other in
  // opposite orders.
  SW_TRY(hold_key_usage(key_id));
  return done(
      conn_.exec("INSERT INTO api_key_usage(key_id, day, jobs, tokens_in, tokens_out, run_ms) "
                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id, day) DO UPDATE SET "
                 "jobs = api_key_usage.jobs + excluded.jobs, "
                 "tokens_in = api_key_usage.tokens_in + excluded.tokens_in, "
                 "tokens_out = api_key_usage.tokens_out + excluded.tokens_out, "
                 "run_ms = api_key_usage.run_ms + excluded.run_ms",
                 {key_id, day, u.jobs, u.tokens_in, u.tokens_out, u.run_ms}));
}

Status PgStudioStore::hold_key_usage(std::string_view key_id) {
  // Reentrant within the transaction; released by the batch's COMMIT or ROLLBACK, or by the
  // rollback of the op's savepoint (whose rows go with it).
  return done(conn_.exec("SELECT pg_advisory_xact_lock(hashtextextended('sw.key_usage.' || $1, 0))",
                         {key_id}));
}

Result<std::vector<KeyUsageDay>> PgStudioStore::key_usage(std::string_view key_id,
                                                          std::int64_t from_day) {
  return collect<KeyUsageDay>(
      conn_.exec("SELECT day, jobs, tokens_in, tokens_out, run_ms FROM api_key_usage "
                 "WHERE key_id = $1 AND day >= $2 ORDER BY day",
                 {key_id, from_day}),
      [](const Rows& r, int i) {
        return KeyUsageDay{r.int64(i, 0),
                           KeyUsage{r.int64(i, 1), r.int64(i, 2), r.int64(i, 3), r.int64(i, 4)}};
      });
}

Result<std::map<std::string, KeyUsage>> PgStudioStore::key_usage_totals() {
  auto rows = conn_.exec(
      "SELECT key_id, SUM(jobs), SUM(tokens_in), SUM(tokens_out), SUM(run_ms) "
      "FROM api_key_usage GROUP BY key_id");
  if (!rows) {
    return fail(std::move(rows).error());
  }
  std::map<std::string, KeyUsage> totals;
  for (int i = 0; i < rows->size(); ++i) {
    totals[rows->text(i, 0)] =
        KeyUsage{rows->int64(i, 1), rows->int64(i, 2), rows->int64(i, 3), rows->int64(i, 4)};
  }
  return totals;
}

// ---- uploads ----

namespace {
constexpr std::string_view kUploadColumns =
    "u.id, u.sha256, u.bytes, u.content_type, u.filename, u.owner, u.created_at, u.job_id";

UploadRecord read_upload(const Rows& r, int i) {
  return UploadRecord{r.text(i, 0), r.text(i, 1), r.int64(i, 2), r.text(i, 3),
                      r.text(i, 4), r.text(i, 5), r.int64(i, 6), r.optional_text(i, 7)};
}
}  // namespace

Status PgStudioStore::insert_upload(const UploadRecord& u) {
  return done(conn_.exec(
      "INSERT INTO uploads(id, sha256, bytes, content_type, filename, owner, created_at, job_id) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
      {u.id, u.sha256, u.bytes, u.content_type, u.filename, u.owner, u.created_at, u.job_id}));
}

Result<std::optional<UploadRecord>> PgStudioStore::find_upload(std::string_view id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM uploads u WHERE u.id = $1", kUploadColumns);
  return first<UploadRecord>(conn_.exec(sql, {id}), read_upload);
}

Result<bool> PgStudioStore::attach_upload(std::string_view id, std::string_view job_id) {
  return one_changed(
      conn_.exec("UPDATE uploads SET job_id = $2 WHERE id = $1 AND (job_id IS NULL OR job_id = $2)",
                 {id, job_id}));
}

Result<std::vector<UploadRecord>> PgStudioStore::disposable_uploads(Millis unattached_before,
                                                                    int limit) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM uploads u LEFT JOIN jobs j ON j.id = u.job_id "
      "WHERE (u.job_id IS NULL AND u.created_at < $1) OR (u.job_id IS NOT NULL AND "
      "(j.id IS NULL OR j.status IN ('done', 'failed', 'cancelled'))) "
      "ORDER BY u.created_at, u.id COLLATE \"C\" LIMIT $2",
      kUploadColumns);
  return collect<UploadRecord>(conn_.exec(sql, {unattached_before, std::int64_t{limit}}),
                               read_upload);
}

Result<std::optional<JobStatus>> PgStudioStore::upload_job_status(std::string_view id) {
  auto status = first<std::string>(
      conn_.exec("SELECT j.status FROM uploads u JOIN jobs j ON j.id = u.job_id WHERE u.id = $1",
                 {id}),
      [](const Rows& r, int i) { return r.text(i, 0); });
  if (!status) {
    return fail(std::move(status).error());
  }
  if (!*status) {
    return std::optional<JobStatus>();
  }
  return parse_job_status(**status);
}

Result<bool> PgStudioStore::delete_upload(std::string_view id) {
  return one_changed(conn_.exec("DELETE FROM uploads WHERE id = $1", {id}));
}

// ---- worker logs ----

Status PgStudioStore::insert_logs(std::string_view worker_id,
                                  const std::vector<proto::LogEntry>& entries, Millis now,
                                  int keep_per_worker) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  // One round trip per line: batches are small (the worker sends a few lines at a time).
  for (const auto& e : entries) {
    SW_TRY(conn_.exec(
        "INSERT INTO worker_logs(worker_id, ts, level, category, message, job_id, received_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        {worker_id, e.ts, e.level, e.category, e.message, e.job_id, now}));
  }
  // Retention: drop everything older than the newest `keep_per_worker` lines of this worker.
  SW_TRY(conn_.exec(
      "DELETE FROM worker_logs WHERE worker_id = $1 AND seq <= (SELECT seq FROM worker_logs "
      "WHERE worker_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
      {worker_id, keep_per_worker}));
  return tx->commit();
}

Result<std::vector<WorkerLogRecord>> PgStudioStore::worker_logs(std::string_view worker_id,
                                                                std::int64_t after_seq, int limit) {
  return collect<WorkerLogRecord>(
      conn_.exec("SELECT seq, worker_id, ts, level, category, message, job_id, received_at "
                 "FROM worker_logs WHERE worker_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                 {worker_id, after_seq, limit}),
      [](const Rows& r, int i) {
        WorkerLogRecord rec;
        rec.seq = r.int64(i, 0);
        rec.worker_id = r.text(i, 1);
        rec.entry = proto::LogEntry{r.text(i, 2), r.text(i, 3), r.text(i, 4), r.text(i, 5),
                                    r.optional_text(i, 6)};
        rec.received_at = r.int64(i, 7);
        return rec;
      });
}

// ---- cluster (issue 18) ----

namespace {
// The advisory lock that makes one survivor at a time adopt orphaned claims ("SWADOPT1").
constexpr std::int64_t kAdoptLock = 0x5357'4144'4f50'5431;
}  // namespace

Result<std::optional<Millis>> PgStudioStore::shared_clock() {
  // clock_timestamp(), not now(): inside a batch now() is the batch's start.
  auto rows = conn_.exec("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
  if (!rows) {
    return fail(std::move(rows).error());
  }
  return std::optional<Millis>(rows->int64(0, 0));
}

Status PgStudioStore::register_process(const ProcessRecord& p) {
  return done(
      conn_.exec("INSERT INTO studio_processes(id, host, pid, started_at, lease_until) "
                 "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET lease_until = "
                 "excluded.lease_until",
                 {p.id, p.host, p.pid, p.started_at, p.lease_until}));
}

Result<bool> PgStudioStore::renew_process_lease(std::string_view id, Millis lease_until) {
  return one_changed(
      conn_.exec("UPDATE studio_processes SET lease_until = $1 WHERE id = $2", {lease_until, id}));
}

Status PgStudioStore::remove_process(std::string_view id) {
  return done(conn_.exec("DELETE FROM studio_processes WHERE id = $1", {id}));
}

Result<std::vector<JobRecord>> PgStudioStore::adopt_orphaned_claims(Millis now) {
  auto tx = Transaction::begin(conn_);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  // Held until this transaction (or the batch around it) ends: of the survivors sweeping at the
  // same moment one adopts, the others find the lock taken and leave it to that one.
  auto locked = conn_.exec("SELECT pg_try_advisory_xact_lock($1)", {kAdoptLock});
  if (!locked) {
    return fail(std::move(locked).error());
  }
  if (!locked->boolean(0, 0)) {
    SW_TRY(tx->commit());
    return std::vector<JobRecord>{};
  }
  static const std::string sql = fmt::format(
      "UPDATE jobs SET process_id = $1 WHERE status = 'claimed' AND "
      "(process_id IS NULL OR NOT EXISTS (SELECT 1 FROM studio_processes p "
      "WHERE p.id = jobs.process_id AND p.lease_until >= $2)) "
      "AND process_id IS DISTINCT FROM $1 "
      "RETURNING {}, pg_notify('{}', id || chr(9) || COALESCE($1::text, ''))",
      kJobColumns, kJobsChannel);
  auto adopted = collect<JobRecord>(
      conn_.exec(sql, {process_id_.empty() ? Param(std::nullopt) : Param(process_id_), now}),
      read_job);
  if (!adopted) {
    return adopted;
  }
  SW_TRY(conn_.exec("DELETE FROM studio_processes WHERE lease_until < $1", {now}));
  SW_TRY(tx->commit());
  return adopted;
}

Result<std::vector<JobRecord>> PgStudioStore::queued_after(std::int64_t queue_seq, int limit) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM jobs WHERE status = 'queued' AND queue_seq > $1 ORDER BY queue_seq "
      "LIMIT $2",
      kJobColumns);
  return collect<JobRecord>(conn_.exec(sql, {queue_seq, limit}), read_job);
}

Result<bool> PgStudioStore::take_over_claim(std::string_view id, std::string_view worker_id) {
  return one_changed(conn_.exec(
      "UPDATE jobs SET process_id = $3 WHERE id = $1 AND status = 'claimed' AND worker_id = $2" +
          notify_job(3),
      {id, worker_id, process_id_.empty() ? Param(std::nullopt) : Param(process_id_)}));
}

Status PgStudioStore::notify(std::string_view channel, std::string_view payload) {
  return done(conn_.exec("SELECT pg_notify($1, $2)", {channel, payload}));
}

}  // namespace sw::store
