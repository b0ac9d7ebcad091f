#pragma once
// The studio: worker registry and sessions, the job queue and its state machine, results, and the
// HTTP routes of both the worker protocol (reference §2, §8) and the client API (/api/v1).
//
//   A job's phases, and every verdict on a job (who stands how towards it, what a completion, a
//   late result or a repeat does, how a released job goes on) are in studio/jobs/job_book.h;
//   `attempts` counts runs started (accepted offers), nothing else (issue 17). The book
//   (jobs::JobBook) holds the active jobs and their phases and deadlines; the studio holds the
//   sessions and the jobs' timers, and carries out the effects the book returns.
//
// Threading: loop-thread only. Every piece of mutable state is owned by the io_context thread;
// the database runs on its DbWorker thread and result files are hashed and written on a small
// blocking pool, both posting their results back. In memory the studio holds what scheduling
// needs (active jobs, sessions, token and key hashes, models); the database is the truth, and
// nothing is acknowledged to a worker or a client before it is committed.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "net/http_server.h"
#include "proto/frames.h"
#include "studio/config.h"
#include "studio/jobs/job_book.h"
#include "studio/metrics.h"
#include "studio/rate_limiter.h"
#include "studio/registry.h"
#include "studio/result_upload.h"
#include "studio/scheduler.h"
#include "studio/store/studio_store.h"
#include "studio/transactions.h"

namespace boost::asio {
class thread_pool;
}  // namespace boost::asio

namespace sw::studio {

class DbWorker;
class Studio;
namespace cluster {
class Cluster;
}  // namespace cluster

// One worker WebSocket. Holds the studio weakly: a session can outlive a stopped studio.
class WorkerSession : public net::WebSocketHandler,
                      public std::enable_shared_from_this<WorkerSession> {
 public:
  WorkerSession(std::weak_ptr<Studio> studio, std::string worker_id)
      : studio_(std::move(studio)), worker_id_(std::move(worker_id)) {}
  void on_open(std::shared_ptr<net::WebSocket> socket) override;
  void on_text(std::string text) override;
  void on_binary(std::size_t bytes) override;
  void on_closed() override;

 private:
  friend class Studio;
  friend class cluster::Cluster;  // takes over the job a worker reports
  std::weak_ptr<Studio> studio_;
  std::string worker_id_;
  // Weak: the socket owns this handler, and its coroutines own the socket.
  std::weak_ptr<net::WebSocket> socket_;
  std::shared_ptr<net::WebSocket> socket() const { return socket_.lock(); }
  bool welcomed_ = false;
  bool hello_pending_ = false;  // hello checked against the cache; the row is being re-read
  bool ended_ = false;          // closed, or being closed by us: frames are ignored
  std::uint64_t order_ = 0;
  proto::WorkerCapabilities capabilities_;
  std::string persisted_capabilities_;
  std::optional<std::string> persisted_job_;
  std::int64_t persisted_at_ = 0;
  std::int64_t welcomed_at_ = 0;        // unix ms of its welcome (the dashboard's "since")
  std::int64_t last_heartbeat_at_ = 0;  // unix ms of its last heartbeat, 0 before the first
  SteadyTime last_frame_{};
  // The jobs this session holds (offered or running): at most one, unless its hello announced
  // "capacity" (then as many as the worker's heartbeats leave room for).
  std::set<std::string> jobs_;
  bool capacity_ = false;  // hello announced "capacity" and it was welcomed
  bool progress_ = false;  // "progress" welcomed: its jobProgress frames are taken (issue 20)
  bool cancel_ = false;    // "cancel" welcomed: a client's cancel is sent to it (issue 20)
  bool uploads_ = false;   // hello announced "uploads": it fetches studio uploads (issue 20)
  std::optional<std::string> reported_job_;  // currentJobId of the last heartbeat
  // Every studio job the last heartbeat named (capacity.jobIds, else currentJobId).
  std::vector<std::string> reported_jobs_;
  bool first_beat_seen_ = false;  // claims it held before and does not name are looked at once
};

class Studio : public std::enable_shared_from_this<Studio> {
 public:
  // Opens <data_dir>/studio.db (migrating it), loads workers, models, keys and active jobs, and
  // requeues jobs that were claimed by sessions of a previous run.
  // `clock` gives every time the studio reads (its timers still wait on the loop's steady clock);
  // it must outlive the studio.
  static Result<std::shared_ptr<Studio>> create(boost::asio::any_io_executor loop,
                                                StudioConfig config,
                                                const Clock& clock = SystemClock::instance());
  ~Studio();

  net::HttpHandler& http_handler() { return *router_; }
  // First start only (no stored token, none from STUDIO_SERVER_ADMIN_TOKEN): mints the admin
  // token, stores its hash and returns it, to print once; nullopt when the studio has one.
  // Called by `serve` after its listener is bound and before the loop runs (issue 17: a start
  // that cannot listen must not create a token nobody saw). Blocking: a short write on its own
  // database connection (the studio's writer is idle before the loop runs).
  Result<std::optional<std::string>> mint_admin_token_if_missing();
  // Closes every session with 1000, finishes queued database writes, stops the timers. `done`
  // runs on the loop once all writes are committed.
  void shutdown(std::function<void()> done);

  // Joins the database and file threads without the graceful path (tests' crash simulation):
  // after this, nothing posts to the loop any more, so the loop can be destroyed first.
  void halt_threads_for_test();

  std::size_t connected_workers() const { return sessions_.size(); }
  std::size_t open_sessions() const { return open_sessions_.size(); }
  std::size_t queued_jobs() const { return scheduler_.queued(); }

  // ---- what the HTTP routes (studio/api/*) may ask and do ----
  // The routes hold a Studio& and see only this section: they read the job book, never change
  // it; every change to a job's life goes through the operations below, which carry out what the
  // book decides. Loop thread only, like the rest of the studio.
  const StudioConfig& config() const { return config_; }
  SteadyTime steady_now() const { return clock_.steady_now(); }
  std::int64_t unix_millis() const { return clock_.unix_millis(); }
  bool stopping() const { return stopping_; }
  // On PostgreSQL (issue 18): other studio processes may share the database, so a cache miss or
  // a pending request is read again from it rather than trusted.
  bool clustered() const { return cluster_ != nullptr; }
  // The database thread: routes name a transaction (store methods, studio/transactions.h).
  DbWorker& database() { return *db_; }
  // Who may talk to the studio, and the model catalogue.
  Registry& registry() { return registry_; }
  const Registry& registry() const { return registry_; }
  const jobs::JobBook& book() const { return book_; }
  Metrics& metrics() { return metrics_; }
  // Where result bytes live: files named by their sha256.
  std::filesystem::path results_dir() const { return config_.results_path(); }
  const std::shared_ptr<UploadBudget>& upload_budget() const { return upload_budget_; }
  // A small pool for blocking file work (hashing, writing results).
  boost::asio::thread_pool& blocking_pool() { return *blocking_; }
  const boost::asio::any_io_executor& loop() const { return loop_; }
  // Registration requests per source address (per process: each studio process counts its own).
  bool allow_registration(const std::string& address) {
    return register_limiter_.allow(address, steady_now());
  }
  // The Prometheus text of /metrics, with the job counts by status read from the database.
  std::string render_metrics(const std::map<std::string, std::int64_t>& counts_by_status) const;
  // The same as JSON (Metrics::snapshot), with "at" (now, RFC 3339).
  nlohmann::json metrics_snapshot(
      const std::map<std::string, std::int64_t>& counts_by_status) const;

  // A welcomed session's live view of its worker, or nullopt when it is not connected here.
  struct ConnectedWorker {
    std::string capabilities_json;      // as last reported (hello or heartbeat)
    std::optional<std::string> job_id;  // the oldest job its session holds
    std::vector<std::string> job_ids;   // every job its session holds (feature "capacity")
    std::int64_t connected_at = 0;      // unix ms its session was welcomed
    std::optional<std::int64_t> last_heartbeat_at;  // unix ms; none before its first heartbeat
  };
  std::optional<ConnectedWorker> connected_worker(const std::string& worker_id) const;
  // Why a queued job waits (the scheduler's words), or nullopt.
  std::optional<std::string> waiting_reason(const std::string& job_id) const;
  // The same with its class (no worker, kind, engine, memory; busy; pending), or nullopt.
  std::optional<Waiting> waiting_for(const std::string& job_id) const {
    return scheduler_.waiting(job_id, steady_now());
  }

  // A job committed through the client API (tx::create_job): announced and queued.
  void job_created(const store::JobRecord& record);
  // The same with the task and model source the record's JSON was encoded from (the request
  // decoded them: nothing is decoded again).
  void job_created(const store::JobRecord& record, proto::Task task, proto::ModelSource source);
  // Cancels a job (client API): a queued one leaves the queue; a held one is marked cancelled.
  // Its holder is sent `cancel` when its hello announced the feature (issue 20: it stops the
  // work and answers `fail`, which frees its slot); else the holder's result is acknowledged
  // and dropped, as the reference studio does. The
  // answer is the job as stored after the commit, nullopt when there is none. Cancelling a
  // cancelled job is harmless; a finished one is returned unchanged (its status says so).
  void cancel_job(const std::string& id,
                  std::function<void(Result<std::optional<tx::JobView>>)> done);
  // The worker was deleted by the operator (see below, sessions.cpp).
  void worker_deleted(const std::string& worker_id) {
    revoke_worker(worker_id, "worker " + worker_id + " was deleted by the operator");
  }
  // A registration request was approved or rejected.
  void request_decided(const std::string& request_id) { wake_held_polls(request_id); }

  // ---- client uploads (issue 20; studio/uploads.h) ----
  // Where upload files live: <data_dir>/uploads (0700), one file per upload named by its id.
  std::filesystem::path uploads_dir() const { return config_.uploads_path(); }
  // Stores `bytes` as a new upload owned by `owner` (an API key id, or "admin"): hashed and
  // written (0600) on the blocking pool, then the row is committed. `done` runs on the loop with
  // the row, or the error (then no file is left behind); it is not called once the studio is gone.
  // An empty `content_type` is stored as application/octet-stream. Size limits are the caller's
  // (its route's body limit). Used by POST /api/v1/uploads, and by any route that holds an input
  // in memory already (an OpenAI-style multipart transcription request).
  void store_upload(std::string bytes, std::string content_type, std::string filename,
                    std::string owner, std::function<void(Result<store::UploadRecord>)> done);
  // Deletes an upload no job took, row then file (a route that stored an input for a job it then
  // could not create: a refused quota, a bad request). Failures are logged only.
  void discard_upload(const std::string& id);
  // The URL a job's input field names the upload by, and workers fetch it from:
  // `<config.public_url>/graphics/api/uploads/<id>`, or without public_url `http://` + the
  // request's Host header (only right when workers reach the studio at the address the client
  // used, without TLS in front).
  std::string upload_url(const net::HttpRequest& request, const std::string& id) const;
  // When an upload no job took stops being kept (its created_at + upload_retention).
  std::int64_t upload_expiry(const store::UploadRecord& upload) const {
    return upload.created_at + config_.upload_retention.count();
  }
  // Deletes, file first and then row, every upload whose job is over and every one no job took
  // within the retention; runs at start, every sweep_interval, and soon after a job that took
  // uploads ends. One at a time: a request while one runs makes it run again.
  void sweep_uploads();

  // ---- registration polls held open (ours: `?waitMs=`; the reference studio ignores it) ----
  // A poll of a pending request waits here until the request is decided or its wait ends.
  struct HeldPoll {
    explicit HeldPoll(const boost::asio::any_io_executor& loop) : timer(loop) {}
    boost::asio::steady_timer timer;
    bool decided = false;  // woken by a decision: poll again; else answer "pending"
  };
  std::shared_ptr<HeldPoll> hold_poll(const std::string& request_id);
  void end_held_poll(const std::string& request_id, const std::shared_ptr<HeldPoll>& held);
  bool poll_held(const std::string& request_id) const { return held_polls_.contains(request_id); }

  // ---- job watchers (issue 20: the OpenAI routes, POST /api/v1/jobs waiting for the end) ----
  // A route that waits on one job. `on_change` runs after every change of the job this process
  // publishes (with the record as committed) and after a change another studio process relayed
  // (null: read the row again); `on_progress` with each jobProgress frame of the job's holder
  // connected here (progress from a worker connected to another process is not relayed). Both
  // run on the loop and may call unwatch_job. A watcher lives until unwatch_job or shutdown.
  struct JobWatch {
    std::function<void(const store::JobRecord* committed)> on_change;
    std::function<void(const proto::JobProgress& progress)> on_progress;
  };
  std::uint64_t watch_job(const std::string& job_id, JobWatch watch);
  void unwatch_job(const std::string& job_id, std::uint64_t watch_id);
  // A job event relayed from another studio process (its SSE chunk): watchers of that job hear
  // of it.
  void relayed_job_event(std::string_view chunk);

  // ---- events (SSE /api/v1/events) ----
  // Every event carries `id: <epoch>.<n>` (epoch: this process's start, unix ms; n counts this
  // process's events). A client that reconnects with `Last-Event-ID` first gets the events it
  // missed from the last kRecentEvents; when they are gone (too old, or another process or a
  // restart wrote its id) it gets `event: gap` (data: {"lastEventId"}) and should list jobs again.
  // Quiet streams get a `: keep-alive` comment every 15 s (net/http_connection.h).
  static constexpr std::size_t kRecentEvents = 1024;
  // `bearer_hash`: the sha256 hex of the stream's bearer token; a stream whose bearer no longer
  // has scope client or admin (a key deleted or narrowed to inference, an admin token rotated) is
  // closed before the next event it would get (issue 20). Empty: never checked.
  void add_event_stream(std::shared_ptr<net::EventStream> stream,
                        std::optional<std::string> last_event_id = std::nullopt,
                        std::string bearer_hash = {});
  void publish_job(const store::JobRecord& job);
  void publish_worker(const std::string& worker_id, std::string_view state);

  // ---- completions through HTTP (worker routes: binary results) ----
  // Holds the job while a completion is stored (out of the queue, its timer stopped); returns
  // the phase to go back to (JobBook::resume) if storing fails.
  jobs::Phase hold_for_completion(const std::string& job_id);
  void resume_after_failed_completion(const std::string& job_id, jobs::Phase previous);
  // In a cluster (issue 18): a result from the worker that holds `job_id` in the database while
  // this process does not hold it (its claim belongs to a dead process not adopted yet, or to
  // another process) moves the claim here, as a heartbeat reporting the job does; the result was
  // answered "retry", and its next delivery is taken. Without a session of that worker here, or
  // outside a cluster, nothing happens (the claim waits for adoption).
  void take_over_for_result(const std::string& worker_id, const std::string& job_id);
  // Stores a completion by `worker_id` (the holder, or a former holder: then the current claim, if
  // any, is withdrawn) and retires the job; on failure the job goes back to where it was.
  // The caller first holds the job with hold_for_completion() and passes what it returned.
  void finish_complete(const std::string& job_id, const std::string& worker_id,
                       jobs::Phase previous, std::function<Result<bool>(store::StudioStore&)> write,
                       std::function<void(Result<bool>)> answer);
  // A late result took a job that was not active (it had failed: issue 18): the job is done.
  void settled_by_late_result(const store::JobRecord& job);
  // Lets go of a held job: requeue, or fail it at maxAttempts or when `terminal`. Cancelled jobs
  // just lose their holder. `ended` closes the holder's attempt in the job's history (a lapse
  // that fails the job reads `failed`); `count_attempt` is kept for the book's verdict.
  void release(const std::string& job_id, std::string error, store::AttemptEnd ended,
               bool count_attempt, bool terminal, std::function<void()> after_commit = {});

 private:
  friend class WorkerSession;
  // Several processes on PostgreSQL (studio/cluster/cluster.h): part of the studio itself, it
  // mirrors the queue into the book, gives up jobs settled elsewhere, adopts orphaned claims and
  // reloads the caches, carrying out the book's effects like the studio's own code.
  friend class cluster::Cluster;

  using ActiveJob = jobs::ActiveJob;

  Studio(boost::asio::any_io_executor loop, StudioConfig config, const Clock& clock);
  // `clustered`: on PostgreSQL (issue 18), where claimed rows are left to the cluster's adoption.
  Status load(store::StudioStore& store, bool clustered);
  static Result<ActiveJob> make_active_job(store::JobRecord record);
  // The same from the decoded task and model source the record's JSON was encoded from.
  static ActiveJob make_active_job(store::JobRecord record, proto::Task task,
                                   proto::ModelSource source);

  // ---- sessions (sessions.cpp) ----
  void on_session_open(const std::shared_ptr<WorkerSession>& session);
  void on_frame(const std::shared_ptr<WorkerSession>& session, std::string_view text);
  void on_session_closed(const std::shared_ptr<WorkerSession>& session);
  void handle_hello(const std::shared_ptr<WorkerSession>& session, proto::Hello hello);
  // Hello passed the cache and the re-read row: the session is authenticated.
  void welcome(const std::shared_ptr<WorkerSession>& session, proto::Hello hello);
  // The worker's row is gone (deleted through the admin API, or found gone by a re-check):
  // forgets its token, ends its sessions with `worker_deleted` (close 4004) and puts the jobs it
  // holds, including claims waiting out their grace, back in the queue without counting an
  // attempt. Every cached decision about a worker ends here (issue 16).
  void revoke_worker(const std::string& worker_id, const std::string& message);
  void handle_heartbeat(const std::shared_ptr<WorkerSession>& session, proto::Heartbeat beat);
  void handle_accept(const std::shared_ptr<WorkerSession>& session, const proto::Accept& accept);
  void handle_reject(const std::shared_ptr<WorkerSession>& session, const proto::Reject& reject);
  void handle_complete_json(const std::shared_ptr<WorkerSession>& session,
                            proto::CompleteJson complete);
  void handle_fail(const std::shared_ptr<WorkerSession>& session, const proto::Fail& failure);
  void handle_log_batch(const std::shared_ptr<WorkerSession>& session, proto::LogBatch batch);
  void handle_progress(const std::shared_ptr<WorkerSession>& session,
                       const proto::JobProgress& progress);
  void send(const std::shared_ptr<WorkerSession>& session, const proto::StudioFrame& frame);
  // Sends `error {code, message}` then closes with the code's close code; releases the job.
  // Sessions are taken by value: callers pass map entries that these functions erase.
  void end_session(std::shared_ptr<WorkerSession> session, proto::WorkerErrorCode code,
                   std::string message);
  // `keep_claim`: the held job is detached (kept for the claim grace) instead of released.
  // `count_attempt`: a released job's attempt counts (not when the operator removed the worker).
  void close_session(std::shared_ptr<WorkerSession> session, std::uint16_t close_code,
                     std::string reason, std::string release_reason, bool keep_claim,
                     bool count_attempt = true);
  void persist_heartbeat(const std::shared_ptr<WorkerSession>& session, bool force);
  // The holder is back and reports its detached job (reported_job_): the claim goes on over this
  // session. Returns whether it did.
  // Keeps the claim on `job_id` (one the worker's heartbeat named) when this worker held it
  // before a disconnect or a restart; false when it did not.
  bool reattach_reported_job(const std::shared_ptr<WorkerSession>& session,
                             const std::string& job_id);
  // The scheduler's count of the session's jobs, after jobs_ changed.
  void count_session_jobs(const std::shared_ptr<WorkerSession>& session);
  void sweep_silent_sessions();
  void schedule_sweep();

  // ---- jobs (studio.cpp) ----
  void enqueue(ActiveJob job) {
    if (job.needs_uploads) {
      jobs_with_uploads_.insert(job.record.id);
    }
    execute(book_.enqueue(std::move(job), steady_now()));
  }
  void request_dispatch();
  // A dispatch at `at` as well (an exclusion that ends then may free a job for a worker that
  // sends nothing meanwhile).
  void dispatch_at(SteadyTime at);
  void dispatch();
  // Claims in the database, after re-reading the worker's row (a deleted worker is refused and
  // revoked; the job goes back to the queue), then sends the offer.
  void claim(const std::string& job_id, const std::shared_ptr<WorkerSession>& session);
  enum class ClaimOutcome { Claimed, NotQueued, WorkerGone };
  // Carries out what the job book returned, in order: offers to sessions, the jobs' timers,
  // the scheduler's queue, events.
  void execute(jobs::Effects effects);
  // A job's deadline fired (the book says it is still the job's).
  void on_deadline(const std::string& job_id, const jobs::Deadline& deadline);
  // A job's holder connected here, told to stop the work (a `cancel` frame saying `why`) when it
  // welcomed "cancel": a client cancelled the job (through this process, or another one's
  // cancel learnt from the row), or another worker's result completed it (its claim withdrawn).
  // A worker without "cancel" runs on; its result is acknowledged and dropped.
  void stop_work(const std::shared_ptr<WorkerSession>& holder, const std::string& job_id,
                 std::string_view why);
  // The job `job` (its row as it now reads) is over: the workers whose runs of it passed the
  // run limit while they stayed connected (they may still be running it) are told to stop when
  // it is done (by another) or cancelled; a failed job still wants their late result.
  void end_runs_past_limit(const store::JobRecord& job);
  // The holder's session of a held job (its welcomed session with the book's key), or null.
  std::shared_ptr<WorkerSession> session_of(const ActiveJob& job) const;
  // Calls `then(true)` when `worker_id` holds or once held `job_id`, else `then(false)`. A frame
  // about a job this worker had that comes in out of turn (an accept that crossed the result
  // over another connection, a reject or fail after the claim lapsed) changes nothing.
  void once_held(const std::string& job_id, const std::string& worker_id,
                 std::function<void(bool)> then);
  // Stores a release decided by release(); one the database did not store (PostgreSQL restarting)
  // is tried again (retry_release) while the job waits in the book as Finishing.
  void write_release(const std::string& job_id, const std::string& holder, int attempts,
                     const std::string& error, bool exhausted, std::int64_t now,
                     store::AttemptEnd ended, std::function<void()> after_commit);
  void retry_release(const std::string& job_id, int attempts, const std::string& error,
                     bool exhausted, std::int64_t now, store::AttemptEnd ended,
                     std::function<void()> after_commit);
  void free_session_slot(const std::string& job_id, const std::shared_ptr<WorkerSession>& session);

  // The request was approved, rejected or superseded: its held polls answer now.
  void wake_held_polls(const std::string& request_id);

  // ---- events and metrics ----
  void publish(std::string_view event, const std::string& data);
  // Writes SSE chunks to this process's streams (published here, or relayed from another).
  void write_event_streams(const std::string& chunk);

  boost::asio::any_io_executor loop_;
  StudioConfig config_;
  const Clock& clock_;
  std::unique_ptr<DbWorker> db_;
  std::unique_ptr<boost::asio::thread_pool> blocking_;
  std::unique_ptr<net::HttpHandler> router_;
  Scheduler scheduler_;
  jobs::JobBook book_;  // the active jobs and their phases
  // One timer per job with a deadline, armed and cancelled as the book says.
  std::unordered_map<std::string, std::shared_ptr<boost::asio::steady_timer>> deadlines_;
  std::unordered_map<std::string, std::shared_ptr<WorkerSession>> sessions_;  // welcomed
  std::unordered_set<std::shared_ptr<WorkerSession>> open_sessions_;          // every open socket
  Registry registry_;
  RateLimiter register_limiter_;
  std::unordered_multimap<std::string, std::shared_ptr<HeldPoll>> held_polls_;  // by request id
  struct EventSubscriber {
    std::shared_ptr<net::EventStream> stream;
    std::string bearer_hash;
  };
  std::vector<EventSubscriber> event_streams_;
  std::deque<std::pair<std::uint64_t, std::string>> recent_events_;  // (n, chunk with its id)
  std::uint64_t last_event_n_ = 0;
  std::int64_t event_epoch_ = 0;  // set at start: the ids' first part
  // Job watchers by job id, then by watch id (issue 20).
  std::unordered_map<std::string, std::map<std::uint64_t, JobWatch>> job_watchers_;
  std::uint64_t next_watch_id_ = 0;
  Metrics metrics_;
  std::shared_ptr<UploadBudget> upload_budget_ = std::make_shared<UploadBudget>();
  std::shared_ptr<boost::asio::steady_timer> sweep_timer_;
  // On PostgreSQL: this process among others sharing the database; null on SQLite.
  std::shared_ptr<cluster::Cluster> cluster_;
  // Client uploads (upload_store.cpp): jobs known here to have taken uploads (an end sweeps at
  // once; the periodic sweep finds any other), and the sweep's timer and state.
  std::unordered_set<std::string> jobs_with_uploads_;
  std::shared_ptr<boost::asio::steady_timer> upload_sweep_timer_;
  std::set<std::shared_ptr<boost::asio::steady_timer>> dispatch_timers_;  // dispatch_at()
  // Job id → the sessions whose run of it passed the run limit while connected (end_runs_past_
  // limit). Entries go when the job ends here, or is over or claimed through another process.
  std::unordered_map<std::string, std::vector<std::weak_ptr<WorkerSession>>> runs_past_limit_;
  bool upload_sweep_running_ = false;
  bool upload_sweep_again_ = false;
  void schedule_upload_sweep(std::chrono::milliseconds after);
  void upload_sweep_finished(bool more);
  // A job ended (published as done, failed or cancelled): its uploads go now if it took any.
  void job_ended_for_uploads(const store::JobRecord& job);
  bool dispatch_pending_ = false;
  bool stopping_ = false;
  std::uint64_t next_session_order_ = 0;
};

}  // namespace sw::studio
