#pragma once
// The worker's WebSocket session with its studio (reference-worker.md §1.9–§1.10, §3.2–§3.3).
//
//   waiting_for_approval ──credentials──► connecting ──101──► hello ──welcome──► connected
//        ▲                                   │  ▲                                  │
//        │                     401 / error   │  └──── reconnecting(n) ◄── drop ────┘
//        │                  auth_failed ◄────┘        (backoff with jitter; counter reset
//        │                  fatal (any other error frame, reconnect cap)       after a welcome)
//
// Pumps (heartbeat 5 s, log shipping 1 s) start only after `welcome`; every pump belongs to one
// link and ends with it. A read that sees no frame for 20 s declares the link dead. Offers are
// decided on the loop (paused, only-when-idle, busy, outbox full) and run by the JobRunner. A
// studio that welcomed "progress" gets `jobProgress` frames while its jobs run (job_progress.h);
// a `cancel` stops a held job's engine work and is answered with `fail` (retryable false). A
// finished result goes into the durable outbox first; the Courier (worker/courier.h) delivers it
// over each welcomed link, so a result outlives a dropped link or a crash. The session is the
// link: connect, hello/welcome, the reader, the pumps, reconnect. Loop-thread only.

#include <boost/asio/awaitable.hpp>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "net/ws_client.h"
#include "proto/frames.h"
#include "worker/courier.h"
#include "worker/exit_codes.h"
#include "worker/job_runner.h"
#include "worker/outbox.h"
#include "worker/runtime.h"
#include "worker/status.h"

namespace sw::worker {

class StudioSession {
 public:
  // Opens the WebSocket to the studio: net::WsClient::connect, or a fake link in unit tests
  // (the seam for the link; time is the runtime's timings and the runner's Clock).
  using Connector =
      std::function<boost::asio::awaitable<net::WsClient::ConnectResult>(net::WsClientOptions)>;

  // `status`: the session's part of the live status (session and heartbeat) changes only here.
  // `runner`: the job path shared with the local API (gate, admission, dispatch).
  // `connect`: empty for the real one.
  StudioSession(Runtime& runtime, StatusBoard& status, JobRunner& runner, Connector connect = {});
  ~StudioSession();

  // Runs until stop(), an authentication failure, a fatal error frame or the reconnect cap
  // (exit_code() says which; the daemon then exits with it). Spawn once.
  boost::asio::awaitable<void> run();
  // Why run() ended, when it ended by itself: AuthFailed (401 on the upgrade, close 4001, error
  // auth_failed), WorkerDeleted, DuplicateWorker, else Failure (internal_error, a protocol
  // violation not about a job, the reconnect cap). nullopt while it runs or after stop().
  std::optional<ExitCode> exit_code() const { return exit_code_; }
  // Ends the session: the current link closes with 1000 "session ended"; run() returns.
  void stop();
  // Wakes the credential wait at once (registration finished, config changed). A link opened
  // with other credentials or another studio URL than the config's now is closed with 1000, so
  // that the session reconnects with the new ones (or waits for approval after a reset).
  void credentials_changed();
  // Shutdown: tells the studio that each of `job_ids` will not be finished here, with the
  // reference's `fail {jobId, error:"worker stopping", retryable:true}` (§1.3), so that it
  // requeues the job at once instead of after its claim grace. Waits up to the close timeout for
  // the studio's failAck of each; the outbox entry of an acknowledged job is dropped (the studio
  // gave the job to another worker). Returns the ids the studio acknowledged. Nothing is sent
  // without a welcomed link (the studio then finds the job after its claim grace).
  boost::asio::awaitable<std::set<std::string>> hand_back(std::vector<std::string> job_ids);

  struct Link;

 private:
  enum class Outcome { Disconnected, AuthFailed, Fatal, Stopped };
  struct Ending {
    Outcome outcome = Outcome::Disconnected;
    std::string cause;  // empty: a plain disconnect
    bool welcomed = false;
    ExitCode exit = ExitCode::Failure;  // for Outcome::Fatal
  };

  boost::asio::awaitable<bool> wait_for_credentials();
  boost::asio::awaitable<Ending> run_link(std::shared_ptr<Link> link);
  Ending react_to_error(const proto::ErrorFrame& error);
  void handle_offer(const std::shared_ptr<Link>& link, proto::JobOfferClaim claim);
  void log_advertised(const proto::WorkerCapabilities& caps);

  static boost::asio::awaitable<void> heartbeat_pump(StudioSession* self,
                                                     std::shared_ptr<Link> link);
  static boost::asio::awaitable<void> log_pump(StudioSession* self, std::shared_ptr<Link> link);
  static boost::asio::awaitable<void> send_and_forget(std::shared_ptr<Link> link,
                                                      std::string text, std::string what,
                                                      Runtime* runtime);
  // A studio job this worker holds, from its reserved slot until its fail or its result is in
  // the outbox: what a `cancel` (issue 20) reaches.
  struct HeldJob;
  static boost::asio::awaitable<void> run_job(StudioSession* self, std::shared_ptr<Link> link,
                                              proto::JobOfferClaim claim, SharedTicket ticket,
                                              std::shared_ptr<HeldJob> held);
  // The studio's `cancel`: stops the job's engine work if this worker holds the job; run_job then
  // answers `fail` (retryable false). Loop thread.
  void cancel_job(const proto::CancelJob& cancel);
  // The gate's slots or the studio jobs held changed: a capacity studio gets a heartbeat now.
  // Loop thread.
  void slots_changed();
  // A heartbeat now on a welcomed link, whatever the studio announced (a cancelled job's slot
  // is free again: `currentJobId` and capacity changed). Loop thread.
  void beat_now();

  Runtime& runtime_;
  StatusBoard& status_;
  JobRunner& runner_;
  Connector connect_;
  Courier courier_;  // delivers the outbox over each welcomed link
  // Lets the gate's change callback (any thread) reach this session while it lives.
  std::shared_ptr<StudioSession*> self_ref_ = std::make_shared<StudioSession*>(this);
  std::shared_ptr<Link> link_;  // the current link, if any
  std::map<std::string, std::shared_ptr<HeldJob>> held_;  // by job id
  struct Wake;
  std::unique_ptr<Wake> wake_;
  bool stopped_ = false;
  std::optional<ExitCode> exit_code_;
  std::mt19937_64 random_;
};

}  // namespace sw::worker
