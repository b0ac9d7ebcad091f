#pragma once
// The studio's store on PostgreSQL (issue 18): the same methods as SqliteStudioStore, in
// PostgreSQL's SQL (RETURNING instead of last_insert_rowid, strpos instead of instr, GREATEST
// instead of a two-argument MAX), over one sql::pg::Connection.
//
// Transactions: each method here that writes more than one statement (claim, accept, release,
// complete, cancel, insert_logs) runs them in its own sql::pg::Transaction, so every method is
// atomic on its own; inside the DbWorker's batch (BEGIN … COMMIT, savepoint per op) that
// transaction is a nested SAVEPOINT. A claim is one conditional UPDATE (`… WHERE id = $1 AND status
// = 'queued' RETURNING`): of two processes claiming the same job, exactly one gets the row.
//
// Notifications (issue 18, several processes): a write other processes must hear of sends, in
// its own transaction (delivered at commit, dropped with a rollback), NOTIFY on
//   sw_jobs      "<job id>\t<process id>"  insert, requeue, fail, cancel, complete, take-over,
//                                           adoption
//   sw_cache     "workers" | "keys" | "models" | "settings"   a change to that table
//   sw_requests  "<request id>"             a registration request inserted or decided
// as `RETURNING pg_notify(…)` of the changing statement (no extra round trip; only when a row
// changed). Hints only: a receiver re-reads the row.
//
// Blocking (every call waits for the server): use it from a database thread, never from the event
// loop. Not thread-safe: one thread at a time, like its Connection.

#include <memory>
#include <string_view>

#include "sql/pg/connection.h"
#include "studio/store/studio_store.h"

namespace sw::store {

// The notification channels (see above).
inline constexpr std::string_view kJobsChannel = "sw_jobs";
inline constexpr std::string_view kCacheChannel = "sw_cache";
inline constexpr std::string_view kRequestsChannel = "sw_requests";
inline constexpr std::string_view kEventsChannel = "sw_events";

class PgStudioStore final : public StudioStore {
 public:
  // Connects to `uri` (postgresql://…) and applies the studio's migrations (under an advisory
  // lock, so processes starting together apply them once). Errors: those of
  // sql::pg::Connection::open and sql::pg::migrate (Conflict for a newer schema).
  static Result<std::unique_ptr<PgStudioStore>> open(std::string_view uri);

  sql::pg::Connection& connection() { return conn_; }

  // Batch control (StudioStore): BEGIN, a SAVEPOINT per op. A lost connection fails the batch
  // with Unavailable; recover() then reconnects (PQreset with the same parameters). A kept op's
  // savepoint is released with the next op's SAVEPOINT in one round trip (or by the COMMIT,
  // which releases every savepoint), not by a round trip of its own.
  Status begin_batch() override;
  Status begin_op() override;
  Status end_op(bool keep) override;
  Status commit_batch() override;
  void rollback_batch() override;
  bool healthy() const override;
  Status recover() override;

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
  Status notify(std::string_view channel, std::string_view payload) override;

 private:
  explicit PgStudioStore(sql::pg::Connection conn) : conn_(std::move(conn)) {}
  Status end_attempt(std::string_view id, std::string_view worker_id, bool others,
                     const AttemptEnd& ended, Millis now);
  Status end_completed_attempts(std::string_view id, std::string_view worker_id, Millis now);
  Status meter_job_end(std::string_view id, const KeyUsage& tokens, Millis now);
  Result<bool> complete(std::string_view sql, std::initializer_list<sql::pg::Param> params,
                        std::string_view id, std::string_view worker_id, Millis now,
                        const KeyUsage& tokens);

  sql::pg::Connection conn_;
  // The last op was kept: its savepoint "op" is still open, to be released by the next
  // begin_op() or the COMMIT.
  bool release_pending_ = false;
};

}  // namespace sw::store
