#pragma once
// The studio: worker registry and sessions, the job queue and its state machine, results, and the
// HTTP routes of both the worker protocol (reference §2, §8) and the client API (/api/v1).
//
//   A job's phases, and every verdict on a job (who stands how towards it, what a completion, a
//   late result or a repeat does, how a released job goes on) are in studio/jobs/job_book.h;
//   `attempts` counts runs started (accepted offers), nothing else (issue 17). The studio holds
//   the active jobs, their timers and sessions, and carries out what the verdicts say.
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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "net/http_server.h"
#include "proto/frames.h"
#include "store/studio_store.h"
#include "studio/config.h"
#include "studio/jobs/job_book.h"
#include "studio/metrics.h"
#include "studio/rate_limiter.h"
#include "studio/result_upload.h"
#include "studio/scheduler.h"

namespace boost::asio {
class thread_pool;
}  // namespace boost::asio

namespace sw::studio {

class DbWorker;
class Studio;
namespace api {
class WorkerRoutes;
class ClientRoutes;
class AdminRoutes;
}  // namespace api

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
  friend class api::AdminRoutes;  // lists a connected worker's capabilities and job
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
  SteadyTime last_frame_{};
  std::optional<std::string> job_id_;        // the job this session holds (offered or running)
  std::optional<std::string> reported_job_;  // currentJobId of the last heartbeat
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

 private:
  friend class WorkerSession;
  // The HTTP routes (router.cpp dispatches to studio/api/*): to be narrowed to the job book's
  // and the registry's interfaces (issue 18).
  friend class Router;
  friend class api::WorkerRoutes;
  friend class api::ClientRoutes;
  friend class api::AdminRoutes;

  struct ActiveJob {
    using Phase = jobs::Phase;
    store::JobRecord record;
    std::string offer_frame;  // the encoded offer, built once
    Phase phase = Phase::Queued;
    std::string holder;  // worker id unless queued
    std::shared_ptr<WorkerSession> session;
    bool cancelled = false;
    std::shared_ptr<boost::asio::steady_timer> deadline;  // offer timeout, run limit or grace
    SteadyTime deadline_at{};                             // when `deadline` fires
    std::string deadline_reason;                          // the error it records
    std::optional<SteadyTime> run_until;                  // the run limit, kept through a detach
    SteadyTime enqueued_at{};
    std::string engine;  // the model source's engine, decoded once (routing, issue 14)
    // The claim was refused (its worker's row was gone) after a release had started: that
    // release finds the row still queued and puts the job back in the queue instead of dropping it.
    bool claim_refused = false;

    jobs::ActiveView view() const {
      return jobs::ActiveView{
          .phase = phase, .holder = holder, .cancelled = cancelled, .record = &record};
    }
    QueuedJob queued() const {
      return QueuedJob{.id = record.id,
                       .seq = record.seq,
                       .priority = record.priority,
                       .kind = record.kind,
                       .vram_gb_estimate = record.vram_gb_estimate,
                       .model = record.model,
                       .engine = engine};
    }
  };
  struct CachedWorker {
    std::string token_hash;
  };
  struct CachedModel {
    store::ModelRecord record;
    proto::ModelSource source;
  };

  Studio(boost::asio::any_io_executor loop, StudioConfig config, const Clock& clock);
  SteadyTime steady_now() const { return clock_.steady_now(); }
  std::int64_t unix_millis() const { return clock_.unix_millis(); }
  Status load(store::StudioStore& store);
  static Result<ActiveJob> make_active_job(store::JobRecord record);

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
  void sweep_silent_sessions();
  void schedule_sweep();

  // ---- jobs (studio.cpp) ----
  void enqueue(ActiveJob job);
  void request_dispatch();
  void dispatch();
  // Claims in the database, after re-reading the worker's row (a deleted worker is refused and
  // revoked; the job goes back to the queue), then sends the offer.
  void claim(const std::string& job_id, const std::shared_ptr<WorkerSession>& session);
  enum class ClaimOutcome { Claimed, NotQueued, WorkerGone };
  void start_deadline(ActiveJob& job, std::chrono::milliseconds after, std::string reason);
  // Starts the run limit (from `run_until` when the job already had one).
  void start_run_limit(ActiveJob& job);
  // The holder's session is gone: keep the claim for `claim_grace`, then requeue.
  void detach(ActiveJob& job, const std::string& why);
  // The holder came back and reports the job as its current one.
  void reattach(ActiveJob& job, const std::shared_ptr<WorkerSession>& session);
  // How `worker_id` stands towards `job_id` (jobs::standing; Unknown when it is not active).
  jobs::Standing standing(const std::string& job_id, const std::string& worker_id) const;
  // The verdict on a result from `worker_id` for `job_id` while it is active (AskStore when not).
  jobs::ActiveCompletion judge_active(const std::string& job_id,
                                      const std::string& worker_id) const;
  // A late result took a job that was not active (it had failed: issue 18): the job is done.
  void settled_by_late_result(const store::JobRecord& job);
  // Calls `then(true)` when `worker_id` holds or once held `job_id`, else `then(false)`. A frame
  // about a job this worker had that comes in out of turn (an accept that crossed the result
  // over another connection, a reject or fail after the claim lapsed) changes nothing.
  void once_held(const std::string& job_id, const std::string& worker_id,
                 std::function<void(bool)> then);
  // Lets go of a held job: requeue (attempts+1 when `count_attempt`), or fail it at
  // maxAttempts or when `terminal`. Cancelled jobs just lose their holder. `ended` closes the
  // holder's attempt in the job's history (a lapse that fails the job reads `failed`).
  void release(const std::string& job_id, std::string error, store::AttemptEnd ended,
               bool count_attempt, bool terminal, std::function<void()> after_commit = {});
  void finish_locally(ActiveJob& job);
  // Takes the job out of the queue and its timers while a completion is stored; returns the phase
  // to go back to if storing fails.
  ActiveJob::Phase hold_for_completion(ActiveJob& job);
  void resume_after_failed_completion(ActiveJob& job, ActiveJob::Phase previous);
  void free_session_slot(const std::string& job_id, const std::shared_ptr<WorkerSession>& session);
  // Stores a completion by `worker_id` (the holder, or a former holder: then the current claim, if
  // any, is withdrawn) and retires the job; on failure the job goes back to where it was.
  // The caller first holds the job with hold_for_completion() and passes what it returned.
  void finish_complete(const std::string& job_id, const std::string& worker_id,
                       ActiveJob::Phase previous,
                       std::function<Result<bool>(store::StudioStore&)> write,
                       std::function<void(Result<bool>)> answer);

  // ---- registration polls held open (ours: `?waitMs=`; the reference studio ignores it) ----
  // A poll of a pending request waits here until the request is decided or its wait ends.
  struct HeldPoll {
    explicit HeldPoll(const boost::asio::any_io_executor& loop) : timer(loop) {}
    boost::asio::steady_timer timer;
    bool decided = false;  // woken by a decision: poll again; else answer "pending"
  };
  // The request was approved, rejected or superseded: its held polls answer now.
  void wake_held_polls(const std::string& request_id);

  // ---- events and metrics ----
  void publish_job(const store::JobRecord& job);
  void publish_worker(const std::string& worker_id, std::string_view state);
  void publish(std::string_view event, const std::string& data);

  boost::asio::any_io_executor loop_;
  StudioConfig config_;
  const Clock& clock_;
  std::unique_ptr<DbWorker> db_;
  std::unique_ptr<boost::asio::thread_pool> blocking_;
  std::unique_ptr<net::HttpHandler> router_;
  Scheduler scheduler_;
  std::unordered_map<std::string, ActiveJob> jobs_;
  std::unordered_map<std::string, std::shared_ptr<WorkerSession>> sessions_;  // welcomed
  std::unordered_set<std::shared_ptr<WorkerSession>> open_sessions_;          // every open socket
  std::unordered_map<std::string, CachedWorker> workers_;
  std::unordered_map<std::string, CachedModel> models_;
  std::unordered_map<std::string, std::string> api_keys_;  // key hash → key id
  std::string admin_token_hash_;  // empty until one exists: no bearer matches it
  RateLimiter register_limiter_;
  std::unordered_multimap<std::string, std::shared_ptr<HeldPoll>> held_polls_;  // by request id
  std::vector<std::shared_ptr<net::EventStream>> event_streams_;
  Metrics metrics_;
  std::shared_ptr<UploadBudget> upload_budget_ = std::make_shared<UploadBudget>();
  std::shared_ptr<boost::asio::steady_timer> sweep_timer_;
  bool dispatch_pending_ = false;
  bool stopping_ = false;
  std::uint64_t next_session_order_ = 0;
};

}  // namespace sw::studio
