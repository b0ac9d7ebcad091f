#pragma once
// The studio's durable state: workers, registration requests, models, jobs, API keys, worker
// logs and settings, behind one interface (StudioStore) with a SQLite and a PostgreSQL
// implementation. Each method is one statement or a few in the caller's transaction.
//
// Not thread-safe: a store is owned and used by one thread (the studio's database thread, or
// the CLI).
// Timestamps are Unix milliseconds. JSON columns hold the protocol codec's compact JSON.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proto/types.h"
#include "sql/sqlite.h"

namespace sw::store {

// The generic SQLite layer lives in sql/ (shared with the worker's outbox); the studio's store
// keeps its short names until it moves under studio/store/.
using sql::Db;
using sql::Migration;
using sql::Stmt;
using sql::Tx;

using Millis = std::int64_t;

enum class JobStatus { Queued, Claimed, Done, Failed, Cancelled };
std::string_view to_string(JobStatus status);
std::optional<JobStatus> parse_job_status(std::string_view text);

struct WorkerRecord {
  std::string id;
  std::string token_hash;  // sha256 hex of the current token
  std::string install_id;
  std::string capabilities_json;
  std::optional<std::string> current_job_id;
  Millis created_at = 0;  // when it was approved
  std::optional<Millis> last_seen_at;
  // Who approved it (issue 22): "admin" (the admin token), "key:<id>" (an admin-scope API key),
  // "cli" (`studio-server workers approve` on the database) or "join-token:<id>". Empty for
  // workers approved before this was recorded.
  std::string approved_by;
};

enum class RequestStatus { Pending, Approved, Rejected };
std::string_view to_string(RequestStatus status);

struct RegistrationRecord {
  std::string id;
  std::string install_id;
  std::string secret_hash;
  std::string capabilities_json;
  std::string user_agent;
  std::string source_ip;  // "address:port" of the request (older rows: the address alone)
  RequestStatus status = RequestStatus::Pending;
  std::string reason;
  std::optional<std::string> worker_id;
  Millis created_at = 0;
  std::optional<Millis> decided_at;
  // Who decided it, as WorkerRecord::approved_by says; "studio" for a request superseded by a
  // newer one from the same install.
  std::string decided_by;
};

// A join token (issue 22): a worker whose register-request carries one that is valid is approved
// at once. Only its SHA-256 is stored. It stops working at `expires_at`, after `max_uses`
// approvals, or when revoked; the row stays for the record.
struct JoinTokenRecord {
  std::string id;          // "jt-<uuid>"
  std::string token_hash;  // sha256 hex of the token
  std::string label;
  std::string created_by;  // as WorkerRecord::approved_by says who
  Millis created_at = 0;
  std::optional<Millis> expires_at;      // none: never
  std::optional<std::int64_t> max_uses;  // none: unlimited
  std::int64_t uses = 0;
  std::optional<Millis> last_used_at;
  std::optional<Millis> revoked_at;
};

struct ModelRecord {
  std::string id;
  proto::TaskKind kind = proto::TaskKind::Image;
  std::string display_name;
  double vram_gb_estimate = 0;
  bool enabled = true;
  std::string source_json;
  Millis created_at = 0;
  Millis updated_at = 0;
};

// A binary result's metadata; the bytes are a file named by `sha256` under the results dir.
struct BinaryResult {
  std::string sha256;
  std::string content_type;
  std::string ext;
  std::int64_t bytes = 0;
};

struct JobRecord {
  std::int64_t seq = 0;  // insertion order; the list cursor
  std::string id;
  std::string model;
  proto::TaskKind kind = proto::TaskKind::Image;
  std::string task_json;
  std::string model_source_json;
  double vram_gb_estimate = 0;
  std::string game_id;
  std::string asset_name;
  int priority = 0;
  // Runs started: offers a worker accepted (issue 17). A rejected or unanswered offer is not a
  // run; a done job has at least 1. maxAttempts bounds runs that end without a result.
  int attempts = 0;
  int max_attempts = 3;
  std::optional<std::string> idempotency_key;
  JobStatus status = JobStatus::Queued;
  std::optional<std::string> worker_id;  // holder while claimed (kept on cancel until released)
  std::optional<std::string> last_worker_id;
  Millis created_at = 0;
  std::optional<Millis> claimed_at;
  std::optional<Millis> accepted_at;
  std::optional<Millis> finished_at;
  std::optional<std::string> error;
  std::optional<std::string> prompt;
  std::optional<std::string> result_json;
  std::optional<BinaryResult> result_binary;
  // Workers whose claim lapsed (requeued or taken over), as ",w-1,w-2,".
  std::string former_workers = ",";
  int completions = 0;  // times recorded done: 0 or 1 in a consistent database
  // Several studio processes (issue 18): the process whose session holds the claim (set by
  // claim_job, moved by take_over_claim and adopt_orphaned_claims), and the job's place in the
  // queue, renewed on every requeue, so that queued_after() finds jobs queued since a poll.
  std::optional<std::string> process_id;
  std::int64_t queue_seq = 0;
  // Who created the job (issue 20): an API key's id, "admin" for the admin token, or nullopt for
  // jobs from before owners were recorded. Jobs of a key count towards its usage.
  std::optional<std::string> owner = std::nullopt;

  bool formerly_held_by(std::string_view worker) const {
    return former_workers.find(std::string(",").append(worker).append(",")) != std::string::npos;
  }
};

// One offer of a job to a worker and how it ended (issue 14): the job's history. Written by the
// same calls that move the job (claim, accept, release, complete, cancel), in their transaction.
enum class AttemptOutcome {
  Offered,   // open: the offer is out
  Running,   // open: the worker accepted
  Rejected,  // the worker refused the offer (reason: its words)
  Failed,    // the worker failed it, or this attempt used up maxAttempts (reason: the error)
  Requeued,  // the claim lapsed: offer timeout, run limit, session lost, grace over (reason: which)
  Done,      // this worker's result completed the job
  Withdrawn,  // a former holder's late result completed the job first
  Cancelled,  // the job was cancelled while this worker held it
};
std::string_view to_string(AttemptOutcome outcome);
std::optional<AttemptOutcome> parse_attempt_outcome(std::string_view text);

struct AttemptEnd {
  AttemptOutcome outcome = AttemptOutcome::Requeued;
  std::optional<std::string> reason;
};

struct AttemptRecord {
  int n = 0;  // 1, 2, … in offer order
  std::string worker_id;
  Millis offered_at = 0;
  std::optional<Millis> started_at;  // accepted
  std::optional<Millis> ended_at;
  AttemptOutcome outcome = AttemptOutcome::Offered;
  std::optional<std::string> reason;
};

struct JobFilter {
  std::optional<JobStatus> status;
  std::optional<proto::TaskKind> kind;
  std::optional<std::int64_t> before_seq;
  std::optional<std::string> owner;  // only this owner's jobs (issue 20)
  std::optional<std::string> model;  // only jobs of this model id (issue 21: the dashboard)
  int limit = 50;
};

// What a client API key may do (issue 20). Inference: run jobs (native and OpenAI routes), its
// uploads, read the model list. Client: also the model registry (studio-server.md's client API;
// the default, as keys were before scopes). Admin: every route the admin token opens.
// (Inline: the request-body readers, fuzzed without the store, parse them too.)
enum class KeyScope { Inference, Client, Admin };
inline std::string_view to_string(KeyScope scope) {
  switch (scope) {
    case KeyScope::Inference: return "inference";
    case KeyScope::Client: return "client";
    case KeyScope::Admin: return "admin";
  }
  return "inference";
}
inline std::optional<KeyScope> parse_key_scope(std::string_view text) {
  for (auto scope : {KeyScope::Inference, KeyScope::Client, KeyScope::Admin}) {
    if (to_string(scope) == text) {
      return scope;
    }
  }
  return std::nullopt;
}

// Optional limits on a key's use per UTC calendar day or month (issue 20); a limit that is absent
// does not apply. A key at or over any of its limits is refused new jobs (429) until the period
// turns.
enum class QuotaPeriod { Day, Month };
inline std::string_view to_string(QuotaPeriod period) {
  return period == QuotaPeriod::Month ? "month" : "day";
}
inline std::optional<QuotaPeriod> parse_quota_period(std::string_view text) {
  if (text == "day") return QuotaPeriod::Day;
  if (text == "month") return QuotaPeriod::Month;
  return std::nullopt;
}
struct KeyQuota {
  QuotaPeriod period = QuotaPeriod::Day;
  std::optional<std::int64_t> jobs;     // jobs created
  std::optional<std::int64_t> tokens;   // llm tokens, prompt + completion
  std::optional<std::int64_t> seconds;  // worker run time
  bool operator==(const KeyQuota&) const = default;
};

struct ApiKeyRecord {
  std::string id;
  std::string name;
  std::string key_hash;
  Millis created_at = 0;
  KeyScope scope = KeyScope::Client;
  std::optional<KeyQuota> quota = std::nullopt;
};

// What a key's jobs used (issue 20): jobs counted when created; tokens (an llm result's usage)
// and run time (the sum of its attempts from accept to end, on any worker) when the job ends
// (done, failed or cancelled).
struct KeyUsage {
  std::int64_t jobs = 0;
  std::int64_t tokens_in = 0;   // prompt tokens
  std::int64_t tokens_out = 0;  // completion tokens
  std::int64_t run_ms = 0;
  KeyUsage& operator+=(const KeyUsage& other);
  bool operator==(const KeyUsage&) const = default;
};
// One UTC day of a key's usage; `day` counts days since 1970-01-01.
struct KeyUsageDay {
  std::int64_t day = 0;
  KeyUsage usage;
};
// The UTC day `at` falls on, as KeyUsageDay::day counts.
std::int64_t utc_day(Millis at);
// The token counts of an llm result (a chat.completion's usage); zero for anything else, or JSON
// that does not parse.
KeyUsage llm_result_usage(std::string_view result_json);

// A studio process sharing the database (issue 18): it holds its claims while its lease lasts.
struct ProcessRecord {
  std::string id;  // "sp-<uuid>"
  std::string host;
  std::int64_t pid = 0;
  Millis started_at = 0;
  Millis lease_until = 0;
};

// A file a client uploaded as a job's input (issue 20). The bytes are the file <uploads dir>/<id>;
// the row is what the studio knows of it.
struct UploadRecord {
  std::string id;      // "upl-<time-ordered uuid>"
  std::string sha256;  // lowercase hex of the bytes
  std::int64_t bytes = 0;
  std::string content_type;  // as the client sent it ("application/octet-stream" when none)
  std::string filename;      // as the client named it; may be empty
  std::string owner;         // the API key id that uploaded it, or "admin"
  Millis created_at = 0;
  std::optional<std::string> job_id;  // the job that took it; none yet
};

struct WorkerLogRecord {
  std::int64_t seq = 0;
  std::string worker_id;
  proto::LogEntry entry;
  Millis received_at = 0;
};

// The studio's store: what the studio asks of its database, one backend-neutral method per
// statement group. Two implementations: SqliteStudioStore (the default, below) and PgStudioStore
// (store/pg_studio_store.h, PostgreSQL). Callers hold a StudioStore&; each method is one virtual
// call, never one per row.
class StudioStore {
 public:
  StudioStore() = default;
  StudioStore(const StudioStore&) = delete;
  StudioStore& operator=(const StudioStore&) = delete;
  virtual ~StudioStore() = default;

  // ---- batch control (the studio's DbWorker; the CLI calls methods one by one) ----
  // A batch is one transaction holding many ops, each in its own savepoint, so that thousands of
  // small writes per second cost a few commits and one failing op is rolled back alone. The
  // order is begin_batch, then per op begin_op … end_op(keep), then commit_batch (or
  // rollback_batch after any failure of the batch's own statements). SQLite: BEGIN IMMEDIATE and
  // SAVEPOINTs on prepared statements; PostgreSQL: BEGIN and SAVEPOINTs (the store's own
  // multi-statement methods then nest as savepoints). Errors: the backend's; Unavailable when a
  // PostgreSQL connection is lost (the batch is lost with it: nothing in it committed).
  virtual Status begin_batch() = 0;
  virtual Status begin_op() = 0;
  // keep=false rolls the op back to its savepoint; so does keep=true when a statement of the op
  // failed and the op ignored it (PostgreSQL could not commit the batch otherwise).
  virtual Status end_op(bool keep) = 0;
  virtual Status commit_batch() = 0;
  virtual void rollback_batch() = 0;
  // Whether the store can run a batch now: false once a PostgreSQL connection is lost.
  virtual bool healthy() const { return true; }
  // Reconnects a lost PostgreSQL connection (blocking, bounded by the connect timeout);
  // Unavailable while the server cannot be reached. SQLite: nothing to do.
  virtual Status recover() { return {}; }

  // ---- settings ----
  virtual Result<std::optional<std::string>> setting(std::string_view key) = 0;
  virtual Status set_setting(std::string_view key, std::string_view value) = 0;
  // Stores `value` only when `key` has none yet; true when this call stored it. One statement, so
  // two processes starting at once on one database cannot both believe they set it.
  virtual Result<bool> insert_setting_if_absent(std::string_view key, std::string_view value) = 0;

  // ---- workers ----
  virtual Status insert_worker(const WorkerRecord& worker) = 0;
  virtual Result<std::optional<WorkerRecord>> find_worker(std::string_view id) = 0;
  // Whether the worker's row exists: what every claim and accept asks, without copying the row.
  virtual Result<bool> worker_exists(std::string_view id) = 0;
  virtual Result<std::vector<WorkerRecord>> list_workers() = 0;
  virtual Result<bool> set_worker_token(std::string_view id, std::string_view token_hash) = 0;
  // False when the worker no longer exists (deleted while connected).
  virtual Result<bool> record_heartbeat(std::string_view id, const std::string& capabilities_json,
                                        const std::optional<std::string>& current_job_id,
                                        Millis now) = 0;
  virtual Result<bool> delete_worker(std::string_view id) = 0;

  // ---- registration ----
  virtual Result<std::optional<RegistrationRecord>> find_pending_request(
      std::string_view install_id) = 0;
  virtual Status insert_request(const RegistrationRecord& request) = 0;
  virtual Result<std::optional<RegistrationRecord>> find_request(std::string_view id) = 0;
  virtual Result<std::vector<RegistrationRecord>> list_requests(
      std::optional<RequestStatus> status) = 0;
  // pending → approved/rejected; false when the request was not pending.
  virtual Result<bool> decide_request(std::string_view id, RequestStatus decision,
                                      std::string_view reason,
                                      const std::optional<std::string>& worker_id, Millis now,
                                      std::string_view decided_by) = 0;
  // The newest request of `install_id` with this secret hash, whatever its status: a worker that
  // repeats a register-request whose answer it lost (issue 22: one join, one use).
  virtual Result<std::optional<RegistrationRecord>> find_request_by_secret(
      std::string_view install_id, std::string_view secret_hash) = 0;

  // ---- join tokens (issue 22) ----
  // Conflict when the id or the hash exists.
  virtual Status insert_join_token(const JoinTokenRecord& token) = 0;
  // Newest first.
  virtual Result<std::vector<JoinTokenRecord>> list_join_tokens() = 0;
  virtual Result<std::optional<JoinTokenRecord>> find_join_token_by_hash(
      std::string_view token_hash) = 0;
  // Counts one use when the token is still valid at `now` (not revoked, not expired, uses left):
  // one conditional UPDATE, so two workers racing for a token's last use cannot both win. False
  // when it was not valid.
  virtual Result<bool> use_join_token(std::string_view id, Millis now) = 0;
  // False when there is no such token or it was revoked already.
  virtual Result<bool> revoke_join_token(std::string_view id, Millis now) = 0;

  // ---- models ----
  // Conflict when the id exists.
  virtual Status insert_model(const ModelRecord& model) = 0;
  virtual Result<bool> update_model(const ModelRecord& model) = 0;
  virtual Result<bool> delete_model(std::string_view id) = 0;
  virtual Result<std::optional<ModelRecord>> find_model(std::string_view id) = 0;
  virtual Result<std::vector<ModelRecord>> list_models() = 0;

  // ---- jobs ----
  // Conflict when the id or idempotency key exists. Fills `seq`.
  virtual Status insert_job(JobRecord& job) = 0;
  virtual Result<std::optional<JobRecord>> find_job(std::string_view id) = 0;
  virtual Result<std::optional<JobRecord>> find_job_by_idempotency_key(std::string_view key) = 0;
  virtual Result<std::vector<JobRecord>> list_jobs(const JobFilter& filter) = 0;
  // Jobs in `queued` or `claimed`, oldest first: the scheduler's working set at start-up.
  virtual Result<std::vector<JobRecord>> active_jobs() = 0;
  virtual Result<std::map<std::string, std::int64_t>> count_jobs_by_status() = 0;
  // queued → claimed by `worker_id` (compare-and-set); false when the job was not queued.
  // Opens an attempt (`offered`).
  virtual Result<bool> claim_job(std::string_view id, std::string_view worker_id, Millis now) = 0;
  // The holder's open attempt becomes `running`, and the job's `attempts` (runs started) grows
  // by one (once per claim: a repeated accept does not count again).
  virtual Result<bool> mark_accepted(std::string_view id, std::string_view worker_id,
                                     Millis now) = 0;
  // claimed by `worker_id` → queued with `attempts` (the caller's count of runs started), or →
  // failed when `fail` is set; the
  // worker's open attempt ends as `ended` says.
  virtual Result<bool> release_job(std::string_view id, std::string_view worker_id, int attempts,
                                   const std::optional<std::string>& error, bool fail, Millis now,
                                   const AttemptEnd& ended = {}) = 0;
  // → done, by the holder of the claim or by a worker whose claim lapsed while the job is still
  // queued or claimed by another (that holder's claim then lapses), or after it failed. The
  // completing worker's last attempt ends `done` (a lapsed one says so in its reason); another open
  // attempt `withdrawn`.
  virtual Result<bool> complete_job_json(std::string_view id, std::string_view worker_id,
                                         std::string_view result_json,
                                         const std::optional<std::string>& prompt, Millis now) = 0;
  virtual Result<bool> complete_job_binary(std::string_view id, std::string_view worker_id,
                                           const BinaryResult& result,
                                           const std::optional<std::string>& prompt,
                                           Millis now) = 0;
  // queued or claimed → cancelled (the holder stays recorded until it lets go); an open attempt
  // ends `cancelled`.
  virtual Result<bool> cancel_job(std::string_view id, Millis now) = 0;
  // The job's attempts, oldest first.
  virtual Result<std::vector<AttemptRecord>> job_attempts(std::string_view id) = 0;
  // A cancelled job's holder let go of it.
  virtual Status clear_job_holder(std::string_view id) = 0;

  // ---- API keys ----
  virtual Status insert_api_key(const ApiKeyRecord& key) = 0;
  virtual Result<bool> delete_api_key(std::string_view id) = 0;
  virtual Result<std::vector<ApiKeyRecord>> list_api_keys() = 0;
  // Changes name, scope and quota (the hash and creation time stay); false when there is no key.
  virtual Result<bool> update_api_key(const ApiKeyRecord& key) = 0;
  // Adds `usage` to the key's row for `day` (issue 20).
  virtual Status add_key_usage(std::string_view key_id, std::int64_t day,
                               const KeyUsage& usage) = 0;
  // Holds the key's usage for the rest of the transaction (the batch), so that a quota check and
  // the job it admits are one step for every studio process on the database: another process's
  // check for this key waits until this batch ends, then sees its jobs. SQLite: nothing to do
  // (the batch's BEGIN IMMEDIATE already excludes every other writer). PostgreSQL: a
  // transaction-scoped advisory lock on the key id, which add_key_usage takes too (every writer
  // of the key's usage comes in one order). A batch that waits for it while holding a row
  // another process's batch waits for (two keys in opposite orders, say) is a deadlock that
  // PostgreSQL breaks after a second by failing one operation (Unavailable: 503, retryable).
  virtual Status hold_key_usage(std::string_view key_id) = 0;
  // The key's usage per day from `from_day` on, oldest first; days without use are left out.
  virtual Result<std::vector<KeyUsageDay>> key_usage(std::string_view key_id,
                                                     std::int64_t from_day) = 0;
  // Every key's usage summed over all days, by key id (for /metrics).
  virtual Result<std::map<std::string, KeyUsage>> key_usage_totals() = 0;

  // ---- uploads (issue 20) ----
  // Conflict when the id exists.
  virtual Status insert_upload(const UploadRecord& upload) = 0;
  virtual Result<std::optional<UploadRecord>> find_upload(std::string_view id) = 0;
  // The upload becomes `job_id`'s; false when it does not exist or another job took it (taking
  // it again for the same job is true).
  virtual Result<bool> attach_upload(std::string_view id, std::string_view job_id) = 0;
  // Uploads whose file may go, oldest first, at most `limit`: those no job took that were created
  // before `unattached_before`, and those of a job that is done, failed or cancelled.
  virtual Result<std::vector<UploadRecord>> disposable_uploads(Millis unattached_before,
                                                               int limit) = 0;
  // The status of the job an upload was attached to, or nullopt when none took it (or the job
  // row is gone).
  virtual Result<std::optional<JobStatus>> upload_job_status(std::string_view id) = 0;
  // False when there was no such upload.
  virtual Result<bool> delete_upload(std::string_view id) = 0;

  // ---- worker logs (bounded per worker) ----
  virtual Status insert_logs(std::string_view worker_id,
                             const std::vector<proto::LogEntry>& entries, Millis now,
                             int keep_per_worker) = 0;
  virtual Result<std::vector<WorkerLogRecord>> worker_logs(std::string_view worker_id,
                                                           std::int64_t after_seq, int limit) = 0;

  // ---- cluster: several studio processes on one database (issue 18) ----
  // The process this store works for: claim_job, take_over_claim and adopt_orphaned_claims record
  // it in jobs.process_id (empty: NULL), and PostgreSQL notifications carry it so that a process
  // can skip its own. Set once, before the store is shared with the database thread.
  void set_process_id(std::string id) { process_id_ = std::move(id); }
  const std::string& process_id() const { return process_id_; }
  // The time, in Unix milliseconds, that every process sharing this store reads alike: the
  // database server's clock on PostgreSQL (processes on several hosts compare one another's
  // leases by it, so a host whose clock runs ahead takes no live process for dead); nullopt on
  // SQLite, which has one process (its own clock is the only one).
  virtual Result<std::optional<Millis>> shared_clock() = 0;
  // Inserts or refreshes the process's row (its lease).
  virtual Status register_process(const ProcessRecord& process) = 0;
  // Moves the process's lease on; false when its row is gone (a survivor took it for dead and
  // adopted its claims: register again and give up the claims no longer recorded as ours).
  virtual Result<bool> renew_process_lease(std::string_view id, Millis lease_until) = 0;
  // The process stops: its row goes, so that a survivor adopts its claims at once.
  virtual Status remove_process(std::string_view id) = 0;
  // Claims (status claimed) that no live process holds (its lease ended before `now`, its row is
  // gone, or none was recorded) become this store's process's; the expired processes' rows go.
  // Returns the adopted rows. One adopter at a time: on PostgreSQL the caller that does not win
  // pg_try_advisory_xact_lock gets an empty list (another survivor is adopting).
  virtual Result<std::vector<JobRecord>> adopt_orphaned_claims(Millis now) = 0;
  // Queued jobs with queue_seq > `queue_seq`, in queue_seq order, at most `limit`: jobs queued
  // (new or requeued) through any process since a poll saw `queue_seq`.
  virtual Result<std::vector<JobRecord>> queued_after(std::int64_t queue_seq, int limit) = 0;
  // A worker connected to this process reports a job it runs whose claim another process holds
  // (or a survivor adopted): the claim moves to this process. False unless the job is claimed by
  // `worker_id`.
  virtual Result<bool> take_over_claim(std::string_view id, std::string_view worker_id) = 0;
  // Tells the other processes (PostgreSQL NOTIFY, delivered when the surrounding transaction
  // commits; payloads up to 8000 bytes). SQLite: nobody to tell, nothing done.
  virtual Status notify(std::string_view /*channel*/, std::string_view /*payload*/) { return {}; }

 protected:
  std::string process_id_;
};

// The store on SQLite. Each method is one statement or a few in the caller's transaction; the
// studio's DbWorker groups many into one BEGIN IMMEDIATE (savepoint per op) through the batch
// control above.
class SqliteStudioStore final : public StudioStore {
 public:
  // Opens `path` (":memory:" for tests) and applies the migrations.
  static Result<std::unique_ptr<SqliteStudioStore>> open(const std::filesystem::path& path);

  Db& db() { return db_; }

  Status begin_batch() override;
  Status begin_op() override;
  Status end_op(bool keep) override;
  Status commit_batch() override;
  void rollback_batch() override;

  Result<std::optional<std::string>> setting(std::string_view key) override;
  Status set_setting(std::string_view key, std::string_view value) override;
  Result<bool> insert_setting_if_absent(std::string_view key, std::string_view value) override;
  Status insert_worker(const WorkerRecord& worker) override;
  Result<std::optional<WorkerRecord>> find_worker(std::string_view id) override;
  Result<bool> worker_exists(std::string_view id) override;
  Result<std::vector<WorkerRecord>> list_workers() override;
  Result<bool> set_worker_token(std::string_view id, std::string_view token_hash) override;
  Result<bool> record_heartbeat(std::string_view id, const std::string& capabilities_json,
                                const std::optional<std::string>& current_job_id,
                                Millis now) override;
  Result<bool> delete_worker(std::string_view id) override;
  Result<std::optional<RegistrationRecord>> find_pending_request(
      std::string_view install_id) override;
  Status insert_request(const RegistrationRecord& request) override;
  Result<std::optional<RegistrationRecord>> find_request(std::string_view id) override;
  Result<std::vector<RegistrationRecord>> list_requests(
      std::optional<RequestStatus> status) override;
  Result<bool> decide_request(std::string_view id, RequestStatus decision, std::string_view reason,
                              const std::optional<std::string>& worker_id, Millis now,
                              std::string_view decided_by) override;
  Result<std::optional<RegistrationRecord>> find_request_by_secret(
      std::string_view install_id, std::string_view secret_hash) override;
  Status insert_join_token(const JoinTokenRecord& token) override;
  Result<std::vector<JoinTokenRecord>> list_join_tokens() override;
  Result<std::optional<JoinTokenRecord>> find_join_token_by_hash(
      std::string_view token_hash) override;
  Result<bool> use_join_token(std::string_view id, Millis now) override;
  Result<bool> revoke_join_token(std::string_view id, Millis now) override;
  Status insert_model(const ModelRecord& model) override;
  Result<bool> update_model(const ModelRecord& model) override;
  Result<bool> delete_model(std::string_view id) override;
  Result<std::optional<ModelRecord>> find_model(std::string_view id) override;
  Result<std::vector<ModelRecord>> list_models() override;
  Status insert_job(JobRecord& job) override;
  Result<std::optional<JobRecord>> find_job(std::string_view id) override;
  Result<std::optional<JobRecord>> find_job_by_idempotency_key(std::string_view key) override;
  Result<std::vector<JobRecord>> list_jobs(const JobFilter& filter) override;
  Result<std::vector<JobRecord>> active_jobs() override;
  Result<std::map<std::string, std::int64_t>> count_jobs_by_status() override;
  Result<bool> claim_job(std::string_view id, std::string_view worker_id, Millis now) override;
  Result<bool> mark_accepted(std::string_view id, std::string_view worker_id, Millis now) override;
  Result<bool> release_job(std::string_view id, std::string_view worker_id, int attempts,
                           const std::optional<std::string>& error, bool fail, Millis now,
                           const AttemptEnd& ended = {}) override;
  Result<bool> complete_job_json(std::string_view id, std::string_view worker_id,
                                 std::string_view result_json,
                                 const std::optional<std::string>& prompt, Millis now) override;
  Result<bool> complete_job_binary(std::string_view id, std::string_view worker_id,
                                   const BinaryResult& result,
                                   const std::optional<std::string>& prompt, Millis now) override;
  Result<bool> cancel_job(std::string_view id, Millis now) override;
  Result<std::vector<AttemptRecord>> job_attempts(std::string_view id) override;
  Status clear_job_holder(std::string_view id) override;
  Status insert_api_key(const ApiKeyRecord& key) override;
  Result<bool> delete_api_key(std::string_view id) override;
  Result<std::vector<ApiKeyRecord>> list_api_keys() override;
  Result<bool> update_api_key(const ApiKeyRecord& key) override;
  Status add_key_usage(std::string_view key_id, std::int64_t day, const KeyUsage& usage) override;
  Status hold_key_usage(std::string_view key_id) override;
  Result<std::vector<KeyUsageDay>> key_usage(std::string_view key_id,
                                             std::int64_t from_day) override;
  Result<std::map<std::string, KeyUsage>> key_usage_totals() override;
  Status insert_upload(const UploadRecord& upload) override;
  Result<std::optional<UploadRecord>> find_upload(std::string_view id) override;
  Result<bool> attach_upload(std::string_view id, std::string_view job_id) override;
  Result<std::vector<UploadRecord>> disposable_uploads(Millis unattached_before,
                                                       int limit) override;
  Result<std::optional<JobStatus>> upload_job_status(std::string_view id) override;
  Result<bool> delete_upload(std::string_view id) override;
  Status insert_logs(std::string_view worker_id, const std::vector<proto::LogEntry>& entries,
                     Millis now, int keep_per_worker) override;
  Result<std::vector<WorkerLogRecord>> worker_logs(std::string_view worker_id,
                                                   std::int64_t after_seq, int limit) override;
  Result<std::optional<Millis>> shared_clock() override;
  Status register_process(const ProcessRecord& process) override;
  Result<bool> renew_process_lease(std::string_view id, Millis lease_until) override;
  Status remove_process(std::string_view id) override;
  Result<std::vector<JobRecord>> adopt_orphaned_claims(Millis now) override;
  Result<std::vector<JobRecord>> queued_after(std::int64_t queue_seq, int limit) override;
  Result<bool> take_over_claim(std::string_view id, std::string_view worker_id) override;

 private:
  explicit SqliteStudioStore(Db db) : db_(std::move(db)) {}
  // A prepared statement kept for the store's lifetime, reset before each use.
  Result<Stmt*> cached(std::string_view sql);
  // Ends the job's open attempt by `worker_id` (any worker's when empty), or with `others` the
  // open attempts of every other worker.
  Status end_attempt(std::string_view id, std::string_view worker_id, bool others,
                     const AttemptEnd& ended, Millis now);
  Status end_completed_attempts(std::string_view id, std::string_view worker_id, Millis now);
  // A job ended (done, failed, cancelled): its key's usage gains the run time of its attempts not
  // counted yet and `tokens`. Nothing for a job without a key owner.
  Status meter_job_end(std::string_view id, const KeyUsage& tokens, Millis now);

  // The batch's transaction-control statements, prepared once: a batch of N ops runs 2N + 2 of
  // them, and sqlite3_exec parsed each one anew (a profile showed the parser).
  struct BatchStatements {
    std::optional<Stmt> begin, commit, rollback, savepoint, release, rollback_to;
  };
  Status prepare_batch_statements();

  Db db_;
  std::map<std::string, Stmt, std::less<>> statements_;
  BatchStatements batch_;
};

}  // namespace sw::store
