#include "studio/store/studio_store.h"

#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "studio/store/migrations.h"

namespace sw::store {
namespace {

constexpr std::string_view kJobColumns =
    "seq, id, model, kind, task, model_source, vram_gb_estimate, game_id, asset_name, priority, "
    "attempts, max_attempts, idempotency_key, status, worker_id, last_worker_id, created_at, "
    "claimed_at, accepted_at, finished_at, error, prompt, result_json, result_sha256, "
    "result_content_type, result_ext, result_bytes, former_workers, completions, process_id, "
    "queue_seq, owner";

// Column lists in the order the read_* functions below expect.
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

JobRecord read_job(const Stmt& s) {
  JobRecord job;
  job.seq = s.int64(0);
  job.id = s.text(1);
  job.model = s.text(2);
  job.kind = proto::parse_task_kind(s.text(3)).value_or(proto::TaskKind::Image);
  job.task_json = s.text(4);
  job.model_source_json = s.text(5);
  job.vram_gb_estimate = s.real(6);
  job.game_id = s.text(7);
  job.asset_name = s.text(8);
  job.priority = static_cast<int>(s.int64(9));
  job.attempts = static_cast<int>(s.int64(10));
  job.max_attempts = static_cast<int>(s.int64(11));
  job.idempotency_key = s.optional_text(12);
  job.status = parse_job_status(s.text(13)).value_or(JobStatus::Failed);
  job.worker_id = s.optional_text(14);
  job.last_worker_id = s.optional_text(15);
  job.created_at = s.int64(16);
  job.claimed_at = s.optional_int64(17);
  job.accepted_at = s.optional_int64(18);
  job.finished_at = s.optional_int64(19);
  job.error = s.optional_text(20);
  job.prompt = s.optional_text(21);
  job.result_json = s.optional_text(22);
  if (auto sha = s.optional_text(23)) {
    job.result_binary = BinaryResult{*sha, s.text(24), s.text(25), s.int64(26)};
  }
  job.former_workers = s.text(27);
  job.completions = static_cast<int>(s.int64(28));
  job.process_id = s.optional_text(29);
  job.queue_seq = s.int64(30);
  job.owner = s.optional_text(31);
  return job;
}

WorkerRecord read_worker(const Stmt& s) {
  return WorkerRecord{s.text(0),          s.text(1),  s.text(2),           s.text(3),
                      s.optional_text(4), s.int64(5), s.optional_int64(6), s.text(7)};
}

JoinTokenRecord read_join_token(const Stmt& s) {
  return JoinTokenRecord{s.text(0),           s.text(1),           s.text(2),           s.text(3),
                         s.int64(4),          s.optional_int64(5), s.optional_int64(6), s.int64(7),
                         s.optional_int64(8), s.optional_int64(9)};
}

RegistrationRecord read_request(const Stmt& s) {
  RegistrationRecord r;
  r.id = s.text(0);
  r.install_id = s.text(1);
  r.secret_hash = s.text(2);
  r.capabilities_json = s.text(3);
  r.user_agent = s.text(4);
  r.source_ip = s.text(5);
  const auto status = s.text(6);
  r.status = status == "approved"   ? RequestStatus::Approved
             : status == "rejected" ? RequestStatus::Rejected
                                    : RequestStatus::Pending;
  r.reason = s.text(7);
  r.worker_id = s.optional_text(8);
  r.created_at = s.int64(9);
  r.decided_at = s.optional_int64(10);
  r.decided_by = s.text(11);
  return r;
}

ModelRecord read_model(const Stmt& s) {
  ModelRecord m;
  m.id = s.text(0);
  m.kind = proto::parse_task_kind(s.text(1)).value_or(proto::TaskKind::Image);
  m.display_name = s.text(2);
  m.vram_gb_estimate = s.real(3);
  m.enabled = s.int64(4) != 0;
  m.source_json = s.text(5);
  m.created_at = s.int64(6);
  m.updated_at = s.int64(7);
  return m;
}

template <class T, class Read>
Result<std::vector<T>> collect(Stmt& stmt, Read read) {
  std::vector<T> rows;
  while (true) {
    auto row = stmt.step();
    if (!row) {
      return fail(std::move(row).error());
    }
    if (!*row) {
      return rows;
    }
    rows.push_back(read(stmt));
  }
}

template <class T, class Read>
Result<std::optional<T>> first(Stmt& stmt, Read read) {
  auto row = stmt.step();
  if (!row) {
    return fail(std::move(row).error());
  }
  if (!*row) {
    return std::optional<T>();
  }
  return std::optional<T>(read(stmt));
}

}  // namespace

std::string_view to_string(JobStatus status) {
  switch (status) {
    case JobStatus::Queued: return "queued";
    case JobStatus::Claimed: return "claimed";
    case JobStatus::Done: return "done";
    case JobStatus::Failed: return "failed";
    case JobStatus::Cancelled: return "cancelled";
  }
  return "failed";
}

std::optional<JobStatus> parse_job_status(std::string_view text) {
  for (auto status : {JobStatus::Queued, JobStatus::Claimed, JobStatus::Done, JobStatus::Failed,
                      JobStatus::Cancelled}) {
    if (to_string(status) == text) {
      return status;
    }
  }
  return std::nullopt;
}

KeyUsage& KeyUsage::operator+=(const KeyUsage& other) {
  jobs += other.jobs;
  tokens_in += other.tokens_in;
  tokens_out += other.tokens_out;
  run_ms += other.run_ms;
  return *this;
}

std::int64_t utc_day(Millis at) {
  constexpr Millis kDay = 86'400'000;
  return at >= 0 ? at / kDay : (at - kDay + 1) / kDay;
}

KeyUsage llm_result_usage(std::string_view result_json) {
  KeyUsage usage;
  const auto doc = nlohmann::json::parse(result_json, nullptr, false);
  if (!doc.is_object() || !doc.contains("usage") || !doc["usage"].is_object()) {
    return usage;
  }
  const auto& u = doc["usage"];
  const auto count = [&](const char* name) -> std::int64_t {
    const auto it = u.find(name);
    return it != u.end() && it->is_number_unsigned() ? it->get<std::int64_t>() : 0;
  };
  usage.tokens_in = count("prompt_tokens");
  usage.tokens_out = count("completion_tokens");
  return usage;
}

std::string_view to_string(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::Offered: return "offered";
    case AttemptOutcome::Running: return "running";
    case AttemptOutcome::Rejected: return "rejected";
    case AttemptOutcome::Failed: return "failed";
    case AttemptOutcome::Requeued: return "requeued";
    case AttemptOutcome::Done: return "done";
    case AttemptOutcome::Withdrawn: return "withdrawn";
    case AttemptOutcome::Cancelled: return "cancelled";
  }
  return "failed";
}

std::optional<AttemptOutcome> parse_attempt_outcome(std::string_view text) {
  for (auto outcome : {AttemptOutcome::Offered, AttemptOutcome::Running, AttemptOutcome::Rejected,
                       AttemptOutcome::Failed, AttemptOutcome::Requeued, AttemptOutcome::Done,
                       AttemptOutcome::Withdrawn, AttemptOutcome::Cancelled}) {
    if (to_string(outcome) == text) {
      return outcome;
    }
  }
  return std::nullopt;
}

std::string_view to_string(RequestStatus status) {
  switch (status) {
    case RequestStatus::Pending: return "pending";
    case RequestStatus::Approved: return "approved";
    case RequestStatus::Rejected: return "rejected";
  }
  return "pending";
}

Result<std::unique_ptr<SqliteStudioStore>> SqliteStudioStore::open(
    const std::filesystem::path& path) {
  // No allocation statistics (nothing here reads them): with them on, every sqlite3_malloc and
  // free takes a process-wide mutex, a profile's second-largest cost on the database thread.
  // Effective only before SQLite's first use in the process; later it is refused, harmlessly.
  static const bool memstatus_off = [] {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  }();
  (void)memstatus_off;
  auto db = Db::open(path);
  if (!db) {
    return fail(std::move(db).error());
  }
  SW_TRY(migrate(*db, studio_migrations()));
  // Up to 32 MiB of pages cached (SQLite's default is 2 MiB): the active jobs and their index
  // pages stay in memory instead of being read again with a pread per page (a profile of
  // studio_bench showed more than one per job). Memory is taken only as pages are read.
  SW_TRY(db->exec("PRAGMA cache_size=-32768"));
  // A checkpoint every 8192 WAL pages (32 MiB; SQLite's default is 1000): the hot pages (the
  // newest jobs, attempts and their indexes) are rewritten by every commit, and a checkpoint
  // copies only their latest version into the database, so rarer checkpoints write far less per
  // job (studio_bench: ~5 % of the database thread's CPU was checkpointing, in the commit path).
  SW_TRY(db->exec("PRAGMA wal_autocheckpoint=8192"));
  return std::unique_ptr<SqliteStudioStore>(new SqliteStudioStore(std::move(*db)));
}

Status SqliteStudioStore::prepare_batch_statements() {
  auto make = [this](std::optional<Stmt>& slot, std::string_view sql) -> Status {
    if (!slot) {
      auto stmt = db_.prepare(sql);
      if (!stmt) {
        return fail(std::move(stmt).error());
      }
      slot.emplace(std::move(*stmt));
    }
    return {};
  };
  SW_TRY(make(batch_.begin, "BEGIN IMMEDIATE"));
  SW_TRY(make(batch_.commit, "COMMIT"));
  SW_TRY(make(batch_.rollback, "ROLLBACK"));
  SW_TRY(make(batch_.savepoint, "SAVEPOINT op"));
  SW_TRY(make(batch_.release, "RELEASE op"));
  SW_TRY(make(batch_.rollback_to, "ROLLBACK TO op"));
  return {};
}

namespace {
// Steps a prepared transaction-control statement and rewinds it for the next batch.
Status step_once(Stmt& stmt) {
  auto ran = stmt.run();
  stmt.reset();
  return ran;
}
}  // namespace

Status SqliteStudioStore::begin_batch() {
  SW_TRY(prepare_batch_statements());
  return step_once(*batch_.begin);
}

Status SqliteStudioStore::begin_op() {
  return step_once(*batch_.savepoint);
}

Status SqliteStudioStore::end_op(bool keep) {
  if (!keep) {
    SW_TRY(step_once(*batch_.rollback_to));
  }
  return step_once(*batch_.release);
}

Status SqliteStudioStore::commit_batch() {
  return step_once(*batch_.commit);
}

void SqliteStudioStore::rollback_batch() {
  if (batch_.rollback) {
    (void)step_once(*batch_.rollback);
  }
}

Result<Stmt*> SqliteStudioStore::cached(std::string_view sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    auto stmt = db_.prepare(sql);
    if (!stmt) {
      return fail(std::move(stmt).error());
    }
    it = statements_.emplace(std::string(sql), std::move(*stmt)).first;
  }
  it->second.reset();
  return &it->second;
}

namespace {
// Resets a cached statement when the caller is done with it. A SELECT left mid-way keeps its read
// transaction open; once another process (the admin CLI) commits, that stale snapshot makes every
// later BEGIN IMMEDIATE on this connection fail with SQLITE_BUSY until the statement is reset.
class StmtReset {
 public:
  explicit StmtReset(Stmt& stmt) : stmt_(stmt) {}
  ~StmtReset() { stmt_.reset(); }
  StmtReset(const StmtReset&) = delete;
  StmtReset& operator=(const StmtReset&) = delete;

 private:
  Stmt& stmt_;
};
}  // namespace

#define SW_STMT(name, sql)                         \
  auto name##_result = cached(sql);                \
  if (!name##_result) {                            \
    return fail(std::move(name##_result).error()); \
  }                                                \
  Stmt& name = **name##_result;                    \
  const StmtReset name##_reset(name)

// ---- settings ----

Result<std::optional<std::string>> SqliteStudioStore::setting(std::string_view key) {
  SW_STMT(s, "SELECT value FROM settings WHERE key = ?");
  s.bind(1, key);
  return first<std::string>(s, [](const Stmt& st) { return st.text(0); });
}

Status SqliteStudioStore::set_setting(std::string_view key, std::string_view value) {
  SW_STMT(s,
          "INSERT INTO settings(key, value) VALUES (?, ?) "
          "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  return s.bind(1, key).bind(2, value).run();
}

Result<bool> SqliteStudioStore::insert_setting_if_absent(std::string_view key,
                                                         std::string_view value) {
  SW_STMT(s, "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING");
  SW_TRY(s.bind(1, key).bind(2, value).run());
  return db_.changes() == 1;
}

// ---- workers ----

Status SqliteStudioStore::insert_worker(const WorkerRecord& w) {
  SW_STMT(s,
          "INSERT INTO workers(id, token_hash, install_id, capabilities, current_job_id, "
          "created_at, last_seen_at, approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  return s.bind(1, w.id)
      .bind(2, w.token_hash)
      .bind(3, w.install_id)
      .bind(4, w.capabilities_json)
      .bind(5, w.current_job_id)
      .bind(6, w.created_at)
      .bind(7, w.last_seen_at)
      .bind(8, w.approved_by)
      .run();
}

Result<std::optional<WorkerRecord>> SqliteStudioStore::find_worker(std::string_view id) {
  static const std::string sql = fmt::format("SELECT {} FROM workers WHERE id = ?", kWorkerColumns);
  SW_STMT(s, sql);
  s.bind(1, id);
  return first<WorkerRecord>(s, read_worker);
}

Result<bool> SqliteStudioStore::worker_exists(std::string_view id) {
  SW_STMT(s, "SELECT 1 FROM workers WHERE id = ?");
  s.bind(1, id);
  return s.step();
}

Result<std::vector<WorkerRecord>> SqliteStudioStore::list_workers() {
  static const std::string sql =
      fmt::format("SELECT {} FROM workers ORDER BY created_at, id", kWorkerColumns);
  SW_STMT(s, sql);
  return collect<WorkerRecord>(s, read_worker);
}

Result<bool> SqliteStudioStore::set_worker_token(std::string_view id, std::string_view token_hash) {
  SW_STMT(s, "UPDATE workers SET token_hash = ? WHERE id = ?");
  SW_TRY(s.bind(1, token_hash).bind(2, id).run());
  return db_.changes() == 1;
}

Result<bool> SqliteStudioStore::record_heartbeat(std::string_view id,
                                                 const std::string& capabilities_json,
                                                 const std::optional<std::string>& current_job_id,
                                                 Millis now) {
  SW_STMT(s,
          "UPDATE workers SET capabilities = ?, current_job_id = ?, last_seen_at = ? "
          "WHERE id = ?");
  SW_TRY(s.bind(1, capabilities_json).bind(2, current_job_id).bind(3, now).bind(4, id).run());
  return db_.changes() == 1;
}

Result<bool> SqliteStudioStore::delete_worker(std::string_view id) {
  SW_STMT(s, "DELETE FROM workers WHERE id = ?");
  SW_TRY(s.bind(1, id).run());
  return db_.changes() == 1;
}

// ---- registration ----

Result<std::optional<RegistrationRecord>> SqliteStudioStore::find_pending_request(
    std::string_view install_id) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM registration_requests WHERE install_id = ? AND status = 'pending' ORDER BY "
      "created_at DESC LIMIT 1",
      kRequestColumns);
  SW_STMT(s, sql);
  s.bind(1, install_id);
  return first<RegistrationRecord>(s, read_request);
}

Status SqliteStudioStore::insert_request(const RegistrationRecord& r) {
  SW_STMT(s,
          "INSERT INTO registration_requests(id, install_id, secret_hash, capabilities, "
          "user_agent, source_ip, status, reason, worker_id, created_at, decided_at, decided_by) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  return s.bind(1, r.id)
      .bind(2, r.install_id)
      .bind(3, r.secret_hash)
      .bind(4, r.capabilities_json)
      .bind(5, r.user_agent)
      .bind(6, r.source_ip)
      .bind(7, to_string(r.status))
      .bind(8, r.reason)
      .bind(9, r.worker_id)
      .bind(10, r.created_at)
      .bind(11, r.decided_at)
      .bind(12, r.decided_by)
      .run();
}

Result<std::optional<RegistrationRecord>> SqliteStudioStore::find_request(std::string_view id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM registration_requests WHERE id = ?", kRequestColumns);
  SW_STMT(s, sql);
  s.bind(1, id);
  return first<RegistrationRecord>(s, read_request);
}

Result<std::vector<RegistrationRecord>> SqliteStudioStore::list_requests(
    std::optional<RequestStatus> status) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM registration_requests WHERE ?1 IS NULL OR status = ?1 ORDER BY created_at, "
      "id",
      kRequestColumns);
  SW_STMT(s, sql);
  if (status) {
    s.bind(1, to_string(*status));
  } else {
    s.bind_null(1);
  }
  return collect<RegistrationRecord>(s, read_request);
}

Result<bool> SqliteStudioStore::decide_request(std::string_view id, RequestStatus decision,
                                               std::string_view reason,
                                               const std::optional<std::string>& worker_id,
                                               Millis now, std::string_view decided_by) {
  SW_STMT(s,
          "UPDATE registration_requests SET status = ?, reason = ?, worker_id = ?, "
          "decided_at = ?, decided_by = ? WHERE id = ? AND status = 'pending'");
  SW_TRY(s.bind(1, to_string(decision))
             .bind(2, reason)
             .bind(3, worker_id)
             .bind(4, now)
             .bind(5, decided_by)
             .bind(6, id)
             .run());
  return db_.changes() == 1;
}

Result<std::optional<RegistrationRecord>> SqliteStudioStore::find_request_by_secret(
    std::string_view install_id, std::string_view secret_hash) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM registration_requests WHERE install_id = ? AND secret_hash = ? "
      "ORDER BY created_at DESC, id DESC LIMIT 1",
      kRequestColumns);
  SW_STMT(s, sql);
  s.bind(1, install_id).bind(2, secret_hash);
  return first<RegistrationRecord>(s, read_request);
}

// ---- join tokens ----

Status SqliteStudioStore::insert_join_token(const JoinTokenRecord& t) {
  SW_STMT(s,
          "INSERT INTO join_tokens(id, token_hash, label, created_by, created_at, expires_at, "
          "max_uses, uses, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  return s.bind(1, t.id)
      .bind(2, t.token_hash)
      .bind(3, t.label)
      .bind(4, t.created_by)
      .bind(5, t.created_at)
      .bind(6, t.expires_at)
      .bind(7, t.max_uses)
      .bind(8, t.uses)
      .bind(9, t.last_used_at)
      .bind(10, t.revoked_at)
      .run();
}

Result<std::vector<JoinTokenRecord>> SqliteStudioStore::list_join_tokens() {
  static const std::string sql = fmt::format(
      "SELECT {} FROM join_tokens ORDER BY created_at DESC, id DESC", kJoinTokenColumns);
  SW_STMT(s, sql);
  return collect<JoinTokenRecord>(s, read_join_token);
}

Result<std::optional<JoinTokenRecord>> SqliteStudioStore::find_join_token_by_hash(
    std::string_view token_hash) {
  static const std::string sql =
      fmt::format("SELECT {} FROM join_tokens WHERE token_hash = ?", kJoinTokenColumns);
  SW_STMT(s, sql);
  s.bind(1, token_hash);
  return first<JoinTokenRecord>(s, read_join_token);
}

Result<bool> SqliteStudioStore::use_join_token(std::string_view id, Millis now) {
  SW_STMT(s,
          "UPDATE join_tokens SET uses = uses + 1, last_used_at = ?1 WHERE id = ?2 AND "
          "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1) AND "
          "(max_uses IS NULL OR uses < max_uses)");
  SW_TRY(s.bind(1, now).bind(2, id).run());
  return db_.changes() == 1;
}

Result<bool> SqliteStudioStore::revoke_join_token(std::string_view id, Millis now) {
  SW_STMT(s, "UPDATE join_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
  SW_TRY(s.bind(1, now).bind(2, id).run());
  return db_.changes() == 1;
}

// ---- models ----

Status SqliteStudioStore::insert_model(const ModelRecord& m) {
  SW_STMT(s,
          "INSERT INTO models(id, kind, display_name, vram_gb_estimate, enabled, source, "
          "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  return s.bind(1, m.id)
      .bind(2, proto::to_string(m.kind))
      .bind(3, m.display_name)
      .bind(4, m.vram_gb_estimate)
      .bind(5, m.enabled ? 1 : 0)
      .bind(6, m.source_json)
      .bind(7, m.created_at)
      .bind(8, m.updated_at)
      .run();
}

Result<bool> SqliteStudioStore::update_model(const ModelRecord& m) {
  SW_STMT(s,
          "UPDATE models SET kind = ?, display_name = ?, vram_gb_estimate = ?, enabled = ?, "
          "source = ?, updated_at = ? WHERE id = ?");
  SW_TRY(s.bind(1, proto::to_string(m.kind))
             .bind(2, m.display_name)
             .bind(3, m.vram_gb_estimate)
             .bind(4, m.enabled ? 1 : 0)
             .bind(5, m.source_json)
             .bind(6, m.updated_at)
             .bind(7, m.id)
             .run());
  return db_.changes() == 1;
}

Result<bool> SqliteStudioStore::delete_model(std::string_view id) {
  SW_STMT(s, "DELETE FROM models WHERE id = ?");
  SW_TRY(s.bind(1, id).run());
  return db_.changes() == 1;
}

Result<std::optional<ModelRecord>> SqliteStudioStore::find_model(std::string_view id) {
  static const std::string sql = fmt::format("SELECT {} FROM models WHERE id = ?", kModelColumns);
  SW_STMT(s, sql);
  s.bind(1, id);
  return first<ModelRecord>(s, read_model);
}

Result<std::vector<ModelRecord>> SqliteStudioStore::list_models() {
  static const std::string sql = fmt::format("SELECT {} FROM models ORDER BY id", kModelColumns);
  SW_STMT(s, sql);
  return collect<ModelRecord>(s, read_model);
}

// ---- jobs ----

Status SqliteStudioStore::insert_job(JobRecord& j) {
  SW_STMT(s,
          "INSERT INTO jobs(id, model, kind, task, model_source, vram_gb_estimate, game_id, "
          "asset_name, priority, attempts, max_attempts, idempotency_key, status, created_at, "
          "owner, queue_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
          "(SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs)) RETURNING queue_seq");
  SW_TRY(s.bind(1, j.id)
             .bind(2, j.model)
             .bind(3, proto::to_string(j.kind))
             .bind(4, j.task_json)
             .bind(5, j.model_source_json)
             .bind(6, j.vram_gb_estimate)
             .bind(7, j.game_id)
             .bind(8, j.asset_name)
             .bind(9, j.priority)
             .bind(10, j.attempts)
             .bind(11, j.max_attempts)
             .bind(12, j.idempotency_key)
             .bind(13, to_string(j.status))
             .bind(14, j.created_at)
             .bind(15, j.owner)
             .step());
  j.seq = db_.last_insert_rowid();
  j.queue_seq = s.int64(0);
  return {};
}

Result<std::optional<JobRecord>> SqliteStudioStore::find_job(std::string_view id) {
  static const std::string sql = fmt::format("SELECT {} FROM jobs WHERE id = ?", kJobColumns);
  SW_STMT(s, sql);
  s.bind(1, id);
  return first<JobRecord>(s, read_job);
}

Result<std::optional<JobRecord>> SqliteStudioStore::find_job_by_idempotency_key(
    std::string_view key) {
  static const std::string sql =
      fmt::format("SELECT {} FROM jobs WHERE idempotency_key = ?", kJobColumns);
  SW_STMT(s, sql);
  s.bind(1, key);
  return first<JobRecord>(s, read_job);
}

Result<std::vector<JobRecord>> SqliteStudioStore::list_jobs(const JobFilter& filter) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) "
      "AND (?3 IS NULL OR seq < ?3) AND (?5 IS NULL OR owner = ?5) AND (?6 IS NULL OR model = ?6) "
      "ORDER BY seq DESC LIMIT ?4",
      kJobColumns);
  SW_STMT(s, sql);
  if (filter.status) {
    s.bind(1, to_string(*filter.status));
  }
  if (filter.kind) {
    s.bind(2, proto::to_string(*filter.kind));
  }
  s.bind(3, filter.before_seq);
  s.bind(4, filter.limit);
  s.bind(5, filter.owner);
  s.bind(6, filter.model);
  return collect<JobRecord>(s, read_job);
}

Result<std::vector<JobRecord>> SqliteStudioStore::active_jobs() {
  static const std::string sql = fmt::format(
      "SELECT {} FROM jobs WHERE status IN ('queued', 'claimed') ORDER BY seq", kJobColumns);
  SW_STMT(s, sql);
  return collect<JobRecord>(s, read_job);
}

Result<std::map<std::string, std::int64_t>> SqliteStudioStore::count_jobs_by_status() {
  SW_STMT(s, "SELECT status, COUNT(*) FROM jobs GROUP BY status");
  auto rows = collect<std::pair<std::string, std::int64_t>>(
      s, [](const Stmt& st) { return std::pair(st.text(0), st.int64(1)); });
  if (!rows) {
    return fail(std::move(rows).error());
  }
  return std::map<std::string, std::int64_t>(rows->begin(), rows->end());
}

Result<bool> SqliteStudioStore::claim_job(std::string_view id, std::string_view worker_id,
                                          Millis now) {
  SW_STMT(s,
          "UPDATE jobs SET status = 'claimed', worker_id = ?, last_worker_id = ?, "
          "claimed_at = ?, accepted_at = NULL, process_id = ? WHERE id = ? AND status = 'queued'");
  SW_TRY(s.bind(1, worker_id)
             .bind(2, worker_id)
             .bind(3, now)
             .bind(4, process_id_.empty() ? std::nullopt
                                          : std::optional<std::string_view>(process_id_))
             .bind(5, id)
             .run());
  if (db_.changes() != 1) {
    return false;
  }
  SW_STMT(attempt,
          "INSERT INTO job_attempts(job_id, n, worker_id, offered_at, outcome) VALUES (?1, "
          "(SELECT COALESCE(MAX(n), 0) + 1 FROM job_attempts WHERE job_id = ?1), ?2, ?3, "
          "'offered')");
  SW_TRY(attempt.bind(1, id).bind(2, worker_id).bind(3, now).run());
  return true;
}

Result<bool> SqliteStudioStore::mark_accepted(std::string_view id, std::string_view worker_id,
                                              Millis now) {
  SW_STMT(s,
          "UPDATE jobs SET attempts = attempts + (accepted_at IS NULL), accepted_at = ? "
          "WHERE id = ? AND worker_id = ? AND status IN ('claimed', 'cancelled')");
  SW_TRY(s.bind(1, now).bind(2, id).bind(3, worker_id).run());
  if (db_.changes() != 1) {
    return false;
  }
  SW_STMT(attempt,
          "UPDATE job_attempts SET started_at = ?1, outcome = 'running' "
          "WHERE job_id = ?2 AND worker_id = ?3 AND outcome = 'offered'");
  SW_TRY(attempt.bind(1, now).bind(2, id).bind(3, worker_id).run());
  return true;
}

// Ends the open attempt(s) of a job: the worker's own, or with `others` every other worker's.
Status SqliteStudioStore::end_attempt(std::string_view id, std::string_view worker_id, bool others,
                                      const AttemptEnd& ended, Millis now) {
  SW_STMT(s,
          "UPDATE job_attempts SET outcome = ?1, reason = ?2, ended_at = ?3 "
          "WHERE job_id = ?4 AND outcome IN ('offered', 'running') "
          "AND (?5 IS NULL OR (?6 = 0 AND worker_id = ?5) OR (?6 = 1 AND worker_id <> ?5))");
  return s.bind(1, to_string(ended.outcome))
      .bind(2, ended.reason)
      .bind(3, now)
      .bind(4, id)
      .bind(5, worker_id.empty() ? std::nullopt : std::optional<std::string_view>(worker_id))
      .bind(6, others ? 1 : 0)
      .run();
}

Result<bool> SqliteStudioStore::release_job(std::string_view id, std::string_view worker_id,
                                            int attempts, const std::optional<std::string>& error,
                                            bool fail_job, Millis now, const AttemptEnd& ended) {
  SW_STMT(s,
          "UPDATE jobs SET status = ?1, worker_id = NULL, attempts = ?, "
          "error = COALESCE(?, error), finished_at = ?, claimed_at = NULL, accepted_at = NULL, "
          "former_workers = former_workers || worker_id || ',' , process_id = NULL, "
          "queue_seq = CASE WHEN ?1 = 'queued' THEN (SELECT MAX(queue_seq) + 1 FROM jobs) "
          "ELSE queue_seq END "
          "WHERE id = ? AND worker_id = ? AND status = 'claimed'");
  SW_TRY(s.bind(1, fail_job ? "failed" : "queued")
             .bind(2, attempts)
             .bind(3, error)
             .bind(4, fail_job ? std::optional<Millis>(now) : std::nullopt)
             .bind(5, id)
             .bind(6, worker_id)
             .run());
  if (db_.changes() != 1) {
    return false;
  }
  SW_TRY(end_attempt(id, worker_id, false, ended, now));
  if (fail_job) {
    SW_TRY(meter_job_end(id, {}, now));
  }
  return true;
}

Status SqliteStudioStore::meter_job_end(std::string_view id, const KeyUsage& tokens, Millis now) {
  // The run time of every attempt that started, minus what an earlier end metered already (a
  // late result can complete a failed job: its time is counted once).
  SW_STMT(basis,
          "SELECT j.owner, j.metered_ms, (SELECT COALESCE(SUM(COALESCE(a.ended_at, ?2) - "
          "a.started_at), 0) FROM job_attempts a WHERE a.job_id = j.id AND a.started_at IS NOT "
          "NULL) FROM jobs j WHERE j.id = ?1 AND j.owner IS NOT NULL AND j.owner <> 'admin'");
  basis.bind(1, id).bind(2, now);
  auto row = basis.step();
  if (!row) {
    return fail(std::move(row).error());
  }
  if (!*row) {
    return {};
  }
  const std::string owner = basis.text(0);
  const auto total = basis.int64(2);
  KeyUsage usage = tokens;
  usage.run_ms = std::max<std::int64_t>(0, total - basis.int64(1));
  basis.reset();
  if (usage.run_ms > 0) {
    SW_STMT(mark, "UPDATE jobs SET metered_ms = ? WHERE id = ?");
    SW_TRY(mark.bind(1, total).bind(2, id).run());
  }
  if (usage == KeyUsage{}) {
    return {};
  }
  return add_key_usage(owner, utc_day(now), usage);
}

Status SqliteStudioStore::end_completed_attempts(std::string_view id, std::string_view worker_id,
                                                 Millis now) {
  // The completer's last run (its last attempt that started; without one, its last attempt) is
  // done; if its claim had lapsed, the reason keeps how. A later offer it declined or never
  // answered keeps its own outcome (a rejected offer stays rejected).
  SW_STMT(done,
          "UPDATE job_attempts SET outcome = 'done', ended_at = ?3, "
          "reason = CASE WHEN outcome IN ('offered', 'running') THEN NULL ELSE "
          "'result arrived after the attempt had ended as ' || outcome || COALESCE(' (' || reason "
          "|| ')', '') "
          "END WHERE job_id = ?1 AND n = COALESCE((SELECT MAX(n) FROM job_attempts "
          "WHERE job_id = ?1 AND worker_id = ?2 AND started_at IS NOT NULL), "
          "(SELECT MAX(n) FROM job_attempts WHERE job_id = ?1 AND worker_id = ?2))");
  SW_TRY(done.bind(1, id).bind(2, worker_id).bind(3, now).run());
  // Its own offer still open (a re-offer it had not answered) ends with the job.
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

// Who may complete: the holder of the claim, or a worker whose claim lapsed while the job is not
// over yet (its late result is taken; another holder's claim moves to the former list) or after
// it failed (issue 18: the run limit decides when to try elsewhere, not whose result counts).
// ?1 is the job, ?2 the completing worker, ?3 the time.
constexpr std::string_view kCompletionSets =
    "status = 'done', worker_id = ?2, last_worker_id = ?2, finished_at = ?3, error = NULL, "
    "attempts = MAX(attempts, 1), "
    "claimed_at = COALESCE(claimed_at, ?3), completions = completions + 1, "
    "former_workers = CASE WHEN worker_id IS NOT NULL AND worker_id <> ?2 "
    "THEN former_workers || worker_id || ',' ELSE former_workers END";
constexpr std::string_view kCompletableBy =
    "WHERE id = ?1 AND ((status = 'claimed' AND worker_id = ?2) OR "
    "(status IN ('queued', 'claimed', 'failed') AND instr(former_workers, ',' || ?2 || ',') > 0))";

Result<bool> SqliteStudioStore::complete_job_json(std::string_view id, std::string_view worker_id,
                                                  std::string_view result_json,
                                                  const std::optional<std::string>& prompt,
                                                  Millis now) {
  static const std::string sql =
      fmt::format("UPDATE jobs SET {}, result_json = ?4, prompt = COALESCE(?5, prompt) {}",
                  kCompletionSets, kCompletableBy);
  SW_STMT(s, sql);
  SW_TRY(s.bind(1, id).bind(2, worker_id).bind(3, now).bind(4, result_json).bind(5, prompt).run());
  if (db_.changes() != 1) {
    return false;
  }
  SW_TRY(end_completed_attempts(id, worker_id, now));
  SW_TRY(meter_job_end(id, llm_result_usage(result_json), now));
  return true;
}

Result<bool> SqliteStudioStore::complete_job_binary(std::string_view id, std::string_view worker_id,
                                                    const BinaryResult& r,
                                                    const std::optional<std::string>& prompt,
                                                    Millis now) {
  static const std::string sql = fmt::format(
      "UPDATE jobs SET {}, result_sha256 = ?4, result_content_type = ?5, result_ext = ?6, "
      "result_bytes = ?7, prompt = COALESCE(?8, prompt) {}",
      kCompletionSets, kCompletableBy);
  SW_STMT(s, sql);
  SW_TRY(s.bind(1, id)
             .bind(2, worker_id)
             .bind(3, now)
             .bind(4, r.sha256)
             .bind(5, r.content_type)
             .bind(6, r.ext)
             .bind(7, r.bytes)
             .bind(8, prompt)
             .run());
  if (db_.changes() != 1) {
    return false;
  }
  SW_TRY(end_completed_attempts(id, worker_id, now));
  SW_TRY(meter_job_end(id, {}, now));
  return true;
}

Result<bool> SqliteStudioStore::cancel_job(std::string_view id, Millis now) {
  SW_STMT(s,
          "UPDATE jobs SET status = 'cancelled', finished_at = ? "
          "WHERE id = ? AND status IN ('queued', 'claimed')");
  SW_TRY(s.bind(1, now).bind(2, id).run());
  if (db_.changes() != 1) {
    return false;
  }
  SW_TRY(end_attempt(id, "", false, AttemptEnd{AttemptOutcome::Cancelled, std::nullopt}, now));
  SW_TRY(meter_job_end(id, {}, now));
  return true;
}

Result<std::vector<AttemptRecord>> SqliteStudioStore::job_attempts(std::string_view id) {
  SW_STMT(s,
          "SELECT n, worker_id, offered_at, started_at, ended_at, outcome, reason "
          "FROM job_attempts WHERE job_id = ? ORDER BY n");
  s.bind(1, id);
  return collect<AttemptRecord>(s, [](const Stmt& st) {
    AttemptRecord a;
    a.n = static_cast<int>(st.int64(0));
    a.worker_id = st.text(1);
    a.offered_at = st.int64(2);
    a.started_at = st.optional_int64(3);
    a.ended_at = st.optional_int64(4);
    a.outcome = parse_attempt_outcome(st.text(5)).value_or(AttemptOutcome::Failed);
    a.reason = st.optional_text(6);
    return a;
  });
}

Status SqliteStudioStore::clear_job_holder(std::string_view id) {
  SW_STMT(s, "UPDATE jobs SET worker_id = NULL WHERE id = ? AND status = 'cancelled'");
  return s.bind(1, id).run();
}

// ---- API keys ----

namespace {
// The quota columns as bound and read: period, jobs, tokens, seconds (all NULL: no quota).
std::optional<std::string_view> quota_period_column(const ApiKeyRecord& k) {
  return k.quota ? std::optional<std::string_view>(to_string(k.quota->period)) : std::nullopt;
}
std::optional<std::int64_t> quota_limit(const ApiKeyRecord& k,
                                        std::optional<std::int64_t> KeyQuota::*limit) {
  return k.quota ? (*k.quota).*limit : std::nullopt;
}
}  // namespace

Status SqliteStudioStore::insert_api_key(const ApiKeyRecord& k) {
  SW_STMT(s,
          "INSERT INTO api_keys(id, name, key_hash, created_at, scope, quota_period, quota_jobs, "
          "quota_tokens, quota_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  return s.bind(1, k.id)
      .bind(2, k.name)
      .bind(3, k.key_hash)
      .bind(4, k.created_at)
      .bind(5, to_string(k.scope))
      .bind(6, quota_period_column(k))
      .bind(7, quota_limit(k, &KeyQuota::jobs))
      .bind(8, quota_limit(k, &KeyQuota::tokens))
      .bind(9, quota_limit(k, &KeyQuota::seconds))
      .run();
}

Result<bool> SqliteStudioStore::update_api_key(const ApiKeyRecord& k) {
  SW_STMT(s,
          "UPDATE api_keys SET name = ?, scope = ?, quota_period = ?, quota_jobs = ?, "
          "quota_tokens = ?, quota_seconds = ? WHERE id = ?");
  SW_TRY(s.bind(1, k.name)
             .bind(2, to_string(k.scope))
             .bind(3, quota_period_column(k))
             .bind(4, quota_limit(k, &KeyQuota::jobs))
             .bind(5, quota_limit(k, &KeyQuota::tokens))
             .bind(6, quota_limit(k, &KeyQuota::seconds))
             .bind(7, k.id)
             .run());
  return db_.changes() == 1;
}

Status SqliteStudioStore::add_key_usage(std::string_view key_id, std::int64_t day,
                                        const KeyUsage& u) {
  SW_STMT(s,
          "INSERT INTO api_key_usage(key_id, day, jobs, tokens_in, tokens_out, run_ms) "
          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key_id, day) DO UPDATE SET "
          "jobs = jobs + excluded.jobs, tokens_in = tokens_in + excluded.tokens_in, "
          "tokens_out = tokens_out + excluded.tokens_out, run_ms = run_ms + excluded.run_ms");
  return s.bind(1, key_id)
      .bind(2, day)
      .bind(3, u.jobs)
      .bind(4, u.tokens_in)
      .bind(5, u.tokens_out)
      .bind(6, u.run_ms)
      .run();
}

Status SqliteStudioStore::hold_key_usage(std::string_view /*key_id*/) {
  return {};  // the batch holds SQLite's one write lock: no other check runs meanwhile
}

Result<std::vector<KeyUsageDay>> SqliteStudioStore::key_usage(std::string_view key_id,
                                                              std::int64_t from_day) {
  SW_STMT(s,
          "SELECT day, jobs, tokens_in, tokens_out, run_ms FROM api_key_usage "
          "WHERE key_id = ? AND day >= ? ORDER BY day");
  s.bind(1, key_id).bind(2, from_day);
  return collect<KeyUsageDay>(s, [](const Stmt& st) {
    return KeyUsageDay{st.int64(0), KeyUsage{st.int64(1), st.int64(2), st.int64(3), st.int64(4)}};
  });
}

Result<std::map<std::string, KeyUsage>> SqliteStudioStore::key_usage_totals() {
  SW_STMT(s,
          "SELECT key_id, SUM(jobs), SUM(tokens_in), SUM(tokens_out), SUM(run_ms) "
          "FROM api_key_usage GROUP BY key_id");
  auto rows = collect<std::pair<std::string, KeyUsage>>(s, [](const Stmt& st) {
    return std::pair(st.text(0), KeyUsage{st.int64(1), st.int64(2), st.int64(3), st.int64(4)});
  });
  if (!rows) {
    return fail(std::move(rows).error());
  }
  return std::map<std::string, KeyUsage>(rows->begin(), rows->end());
}

Result<bool> SqliteStudioStore::delete_api_key(std::string_view id) {
  SW_STMT(s, "DELETE FROM api_keys WHERE id = ?");
  SW_TRY(s.bind(1, id).run());
  return db_.changes() == 1;
}

Result<std::vector<ApiKeyRecord>> SqliteStudioStore::list_api_keys() {
  SW_STMT(s,
          "SELECT id, name, key_hash, created_at, scope, quota_period, quota_jobs, quota_tokens, "
          "quota_seconds FROM api_keys ORDER BY created_at, id");
  return collect<ApiKeyRecord>(s, [](const Stmt& st) {
    ApiKeyRecord key{st.text(0), st.text(1), st.text(2), st.int64(3)};
    // A scope this binary does not know (a newer one wrote it) grants the least.
    key.scope = parse_key_scope(st.text(4)).value_or(KeyScope::Inference);
    if (auto period = st.optional_text(5)) {
      key.quota = KeyQuota{parse_quota_period(*period).value_or(QuotaPeriod::Day),
                           st.optional_int64(6), st.optional_int64(7), st.optional_int64(8)};
    }
    return key;
  });
}

// ---- uploads ----

namespace {
constexpr std::string_view kUploadColumns =
    "u.id, u.sha256, u.bytes, u.content_type, u.filename, u.owner, u.created_at, u.job_id";

UploadRecord read_upload(const Stmt& s) {
  return UploadRecord{s.text(0), s.text(1), s.int64(2), s.text(3),
                      s.text(4), s.text(5), s.int64(6), s.optional_text(7)};
}
}  // namespace

Status SqliteStudioStore::insert_upload(const UploadRecord& u) {
  SW_STMT(s,
          "INSERT INTO uploads(id, sha256, bytes, content_type, filename, owner, created_at, "
          "job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  return s.bind(1, u.id)
      .bind(2, u.sha256)
      .bind(3, u.bytes)
      .bind(4, u.content_type)
      .bind(5, u.filename)
      .bind(6, u.owner)
      .bind(7, u.created_at)
      .bind(8, u.job_id)
      .run();
}

Result<std::optional<UploadRecord>> SqliteStudioStore::find_upload(std::string_view id) {
  static const std::string sql =
      fmt::format("SELECT {} FROM uploads u WHERE u.id = ?", kUploadColumns);
  SW_STMT(s, sql);
  s.bind(1, id);
  return first<UploadRecord>(s, read_upload);
}

Result<bool> SqliteStudioStore::attach_upload(std::string_view id, std::string_view job_id) {
  SW_STMT(s, "UPDATE uploads SET job_id = ?2 WHERE id = ?1 AND (job_id IS NULL OR job_id = ?2)");
  SW_TRY(s.bind(1, id).bind(2, job_id).run());
  return db_.changes() == 1;
}

Result<std::vector<UploadRecord>> SqliteStudioStore::disposable_uploads(Millis unattached_before,
                                                                        int limit) {
  // A job_id whose row is gone counts as finished: nothing can ever need those bytes.
  static const std::string sql = fmt::format(
      "SELECT {} FROM uploads u LEFT JOIN jobs j ON j.id = u.job_id "
      "WHERE (u.job_id IS NULL AND u.created_at < ?1) OR (u.job_id IS NOT NULL AND "
      "(j.id IS NULL OR j.status IN ('done', 'failed', 'cancelled'))) "
      "ORDER BY u.created_at, u.id LIMIT ?2",
      kUploadColumns);
  SW_STMT(s, sql);
  s.bind(1, unattached_before).bind(2, limit);
  return collect<UploadRecord>(s, read_upload);
}

Result<std::optional<JobStatus>> SqliteStudioStore::upload_job_status(std::string_view id) {
  SW_STMT(s, "SELECT j.status FROM uploads u JOIN jobs j ON j.id = u.job_id WHERE u.id = ?");
  s.bind(1, id);
  auto status = first<std::string>(s, [](const Stmt& st) { return st.text(0); });
  if (!status) {
    return fail(std::move(status).error());
  }
  if (!*status) {
    return std::optional<JobStatus>();
  }
  return parse_job_status(**status);
}

Result<bool> SqliteStudioStore::delete_upload(std::string_view id) {
  SW_STMT(s, "DELETE FROM uploads WHERE id = ?");
  SW_TRY(s.bind(1, id).run());
  return db_.changes() == 1;
}

// ---- worker logs ----

Status SqliteStudioStore::insert_logs(std::string_view worker_id,
                                      const std::vector<proto::LogEntry>& entries, Millis now,
                                      int keep_per_worker) {
  {
    SW_STMT(s,
            "INSERT INTO worker_logs(worker_id, ts, level, category, message, job_id, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (const auto& e : entries) {
      s.reset();
      SW_TRY(s.bind(1, worker_id)
                 .bind(2, e.ts)
                 .bind(3, e.level)
                 .bind(4, e.category)
                 .bind(5, e.message)
                 .bind(6, e.job_id)
                 .bind(7, now)
                 .run());
    }
  }
  // Retention: drop everything older than the newest `keep_per_worker` lines of this worker.
  SW_STMT(prune,
          "DELETE FROM worker_logs WHERE worker_id = ?1 AND seq <= "
          "(SELECT seq FROM worker_logs WHERE worker_id = ?1 ORDER BY seq DESC "
          "LIMIT 1 OFFSET ?2)");
  return prune.bind(1, worker_id).bind(2, keep_per_worker).run();
}

Result<std::vector<WorkerLogRecord>> SqliteStudioStore::worker_logs(std::string_view worker_id,
                                                                    std::int64_t after_seq,
                                                                    int limit) {
  SW_STMT(s,
          "SELECT seq, worker_id, ts, level, category, message, job_id, received_at "
          "FROM worker_logs WHERE worker_id = ? AND seq > ? ORDER BY seq LIMIT ?");
  s.bind(1, worker_id).bind(2, after_seq).bind(3, limit);
  return collect<WorkerLogRecord>(s, [](const Stmt& st) {
    WorkerLogRecord r;
    r.seq = st.int64(0);
    r.worker_id = st.text(1);
    r.entry = proto::LogEntry{st.text(2), st.text(3), st.text(4), st.text(5), st.optional_text(6)};
    r.received_at = st.int64(7);
    return r;
  });
}

// ---- cluster (issue 18) ----
// One process owns a SQLite database (its data-dir lock), so these only keep the rows the way
// PostgreSQL's store does: the shared suite checks both.

Result<std::optional<Millis>> SqliteStudioStore::shared_clock() {
  return std::optional<Millis>();  // one process: its own clock
}

Status SqliteStudioStore::register_process(const ProcessRecord& p) {
  SW_STMT(
      s,
      "INSERT INTO studio_processes(id, host, pid, started_at, lease_until) "
      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until");
  return s.bind(1, p.id)
      .bind(2, p.host)
      .bind(3, p.pid)
      .bind(4, p.started_at)
      .bind(5, p.lease_until)
      .run();
}

Result<bool> SqliteStudioStore::renew_process_lease(std::string_view id, Millis lease_until) {
  SW_STMT(s, "UPDATE studio_processes SET lease_until = ? WHERE id = ?");
  SW_TRY(s.bind(1, lease_until).bind(2, id).run());
  return db_.changes() == 1;
}

Status SqliteStudioStore::remove_process(std::string_view id) {
  SW_STMT(s, "DELETE FROM studio_processes WHERE id = ?");
  return s.bind(1, id).run();
}

Result<std::vector<JobRecord>> SqliteStudioStore::adopt_orphaned_claims(Millis now) {
  std::vector<std::string> ids;
  {
    SW_STMT(s,
            "SELECT id FROM jobs WHERE status = 'claimed' AND (process_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM studio_processes p WHERE p.id = jobs.process_id AND "
            "p.lease_until >= ?1)) AND (?2 IS NULL OR process_id IS NOT ?2)");
    s.bind(1, now).bind(
        2, process_id_.empty() ? std::nullopt : std::optional<std::string_view>(process_id_));
    auto rows = collect<std::string>(s, [](const Stmt& st) { return st.text(0); });
    if (!rows) {
      return fail(std::move(rows).error());
    }
    ids = std::move(*rows);
  }
  std::vector<JobRecord> adopted;
  for (const auto& id : ids) {
    {
      SW_STMT(u, "UPDATE jobs SET process_id = ? WHERE id = ?");
      SW_TRY(u.bind(1, process_id_.empty() ? std::nullopt
                                           : std::optional<std::string_view>(process_id_))
                 .bind(2, id)
                 .run());
    }
    auto job = find_job(id);
    if (!job) {
      return fail(std::move(job).error());
    }
    if (*job) {
      adopted.push_back(std::move(**job));
    }
  }
  SW_STMT(d, "DELETE FROM studio_processes WHERE lease_until < ?");
  SW_TRY(d.bind(1, now).run());
  return adopted;
}

Result<std::vector<JobRecord>> SqliteStudioStore::queued_after(std::int64_t queue_seq, int limit) {
  static const std::string sql = fmt::format(
      "SELECT {} FROM jobs WHERE queue_seq > ? AND status = 'queued' ORDER BY queue_seq LIMIT ?",
      kJobColumns);
  SW_STMT(s, sql);
  s.bind(1, queue_seq).bind(2, limit);
  return collect<JobRecord>(s, read_job);
}

Result<bool> SqliteStudioStore::take_over_claim(std::string_view id, std::string_view worker_id) {
  SW_STMT(s,
          "UPDATE jobs SET process_id = ? WHERE id = ? AND status = 'claimed' AND worker_id = ?");
  SW_TRY(
      s.bind(1, process_id_.empty() ? std::nullopt : std::optional<std::string_view>(process_id_))
          .bind(2, id)
          .bind(3, worker_id)
          .run());
  return db_.changes() == 1;
}

}  // namespace sw::store
