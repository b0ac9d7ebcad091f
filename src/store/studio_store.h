#pragma once
// The studio's durable state on SQLite: workers, registration requests, models, jobs, API keys,
// worker logs and settings. Each method is one statement or a few in the caller's transaction;
// callers group them (the studio's DbWorker batches many into one BEGIN IMMEDIATE).
//
// Not thread-safe: owned and used by one thread (the studio's database thread, or the CLI).
// Timestamps are Unix milliseconds. JSON columns hold the protocol codec's compact JSON.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
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
  Millis created_at = 0;
  std::optional<Millis> last_seen_at;
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
  int limit = 50;
};

struct ApiKeyRecord {
  std::string id;
  std::string name;
  std::string key_hash;
  Millis created_at = 0;
};

struct WorkerLogRecord {
  std::int64_t seq = 0;
  std::string worker_id;
  proto::LogEntry entry;
  Millis received_at = 0;
};

class StudioStore {
 public:
  // Opens `path` (":memory:" for tests) and applies the migrations.
  static Result<std::unique_ptr<StudioStore>> open(const std::filesystem::path& path);

  Db& db() { return db_; }

  // ---- settings ----
  Result<std::optional<std::string>> setting(std::string_view key);
  Status set_setting(std::string_view key, std::string_view value);

  // ---- workers ----
  Status insert_worker(const WorkerRecord& worker);
  Result<std::optional<WorkerRecord>> find_worker(std::string_view id);
  // Whether the worker's row exists: what every claim and accept asks, without copying the row.
  Result<bool> worker_exists(std::string_view id);
  Result<std::vector<WorkerRecord>> list_workers();
  Result<bool> set_worker_token(std::string_view id, std::string_view token_hash);
  // False when the worker no longer exists (deleted while connected).
  Result<bool> record_heartbeat(std::string_view id, const std::string& capabilities_json,
                                const std::optional<std::string>& current_job_id, Millis now);
  Result<bool> delete_worker(std::string_view id);

  // ---- registration ----
  Result<std::optional<RegistrationRecord>> find_pending_request(std::string_view install_id);
  Status insert_request(const RegistrationRecord& request);
  Result<std::optional<RegistrationRecord>> find_request(std::string_view id);
  Result<std::vector<RegistrationRecord>> list_requests(std::optional<RequestStatus> status);
  // pending → approved/rejected; false when the request was not pending.
  Result<bool> decide_request(std::string_view id, RequestStatus decision, std::string_view reason,
                              const std::optional<std::string>& worker_id, Millis now);

  // ---- models ----
  // Conflict when the id exists.
  Status insert_model(const ModelRecord& model);
  Result<bool> update_model(const ModelRecord& model);
  Result<bool> delete_model(std::string_view id);
  Result<std::optional<ModelRecord>> find_model(std::string_view id);
  Result<std::vector<ModelRecord>> list_models();

  // ---- jobs ----
  // Conflict when the id or idempotency key exists. Fills `seq`.
  Status insert_job(JobRecord& job);
  Result<std::optional<JobRecord>> find_job(std::string_view id);
  Result<std::optional<JobRecord>> find_job_by_idempotency_key(std::string_view key);
  Result<std::vector<JobRecord>> list_jobs(const JobFilter& filter);
  // Jobs in `queued` or `claimed`, oldest first: the scheduler's working set at start-up.
  Result<std::vector<JobRecord>> active_jobs();
  Result<std::map<std::string, std::int64_t>> count_jobs_by_status();
  // queued → claimed by `worker_id` (compare-and-set); false when the job was not queued.
  // Opens an attempt (`offered`).
  Result<bool> claim_job(std::string_view id, std::string_view worker_id, Millis now);
  // The holder's open attempt becomes `running`, and the job's `attempts` (runs started) grows
  // by one (once per claim: a repeated accept does not count again).
  Result<bool> mark_accepted(std::string_view id, std::string_view worker_id, Millis now);
  // claimed by `worker_id` → queued with `attempts` (the caller's count of runs started), or →
  // failed when `fail` is set; the
  // worker's open attempt ends as `ended` says.
  Result<bool> release_job(std::string_view id, std::string_view worker_id, int attempts,
                           const std::optional<std::string>& error, bool fail, Millis now,
                           const AttemptEnd& ended = {});
  // → done, by the holder of the claim or by a worker whose claim lapsed while the job is still
  // queued or claimed by another (that holder's claim then lapses), or after it failed. The
  // completing worker's last attempt ends `done` (a lapsed one says so in its reason); another open
  // attempt `withdrawn`.
  Result<bool> complete_job_json(std::string_view id, std::string_view worker_id,
                                 std::string_view result_json,
                                 const std::optional<std::string>& prompt, Millis now);
  Result<bool> complete_job_binary(std::string_view id, std::string_view worker_id,
                                   const BinaryResult& result,
                                   const std::optional<std::string>& prompt, Millis now);
  // queued or claimed → cancelled (the holder stays recorded until it lets go); an open attempt
  // ends `cancelled`.
  Result<bool> cancel_job(std::string_view id, Millis now);
  // The job's attempts, oldest first.
  Result<std::vector<AttemptRecord>> job_attempts(std::string_view id);
  // A cancelled job's holder let go of it.
  Status clear_job_holder(std::string_view id);

  // ---- API keys ----
  Status insert_api_key(const ApiKeyRecord& key);
  Result<bool> delete_api_key(std::string_view id);
  Result<std::vector<ApiKeyRecord>> list_api_keys();

  // ---- worker logs (bounded per worker) ----
  Status insert_logs(std::string_view worker_id, const std::vector<proto::LogEntry>& entries,
                     Millis now, int keep_per_worker);
  Result<std::vector<WorkerLogRecord>> worker_logs(std::string_view worker_id,
                                                   std::int64_t after_seq, int limit);

 private:
  explicit StudioStore(Db db) : db_(std::move(db)) {}
  // A prepared statement kept for the store's lifetime, reset before each use.
  Result<Stmt*> cached(std::string_view sql);
  // Ends the job's open attempt by `worker_id` (any worker's when empty), or with `others` the
  // open attempts of every other worker.
  Status end_attempt(std::string_view id, std::string_view worker_id, bool others,
                     const AttemptEnd& ended, Millis now);
  Status end_completed_attempts(std::string_view id, std::string_view worker_id, Millis now);

  Db db_;
  std::map<std::string, Stmt, std::less<>> statements_;
};

}  // namespace sw::store
