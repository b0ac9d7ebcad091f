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
// decided on the loop (paused, only-when-idle, busy, outbox full) and run on the pool. A finished
// result goes into the durable outbox first; the courier of each welcomed link delivers the
// outbox oldest first (binary results over the multipart route, JSON results over the socket,
// then `completeAck`), so a result outlives a dropped link or a crash. A result that can never
// be delivered (over the limits the studio announced in its welcome, or this worker's own when it
// announced none; refused with 400/413/415/422; or one after which the session ended 3 times in a
// row before the studio read it) fails its job with `fail {retryable:false}` naming why, and is
// dropped, so that it cannot block the results behind it (issue 16). Loop-thread only.

#include <boost/asio/awaitable.hpp>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "proto/frames.h"
#include "worker/exit_codes.h"
#include "worker/job_runner.h"
#include "worker/outbox.h"
#include "worker/runtime.h"
#include "worker/status.h"

namespace sw::worker {

class StudioSession {
 public:
  // `status`: the session's part of the live status (session and heartbeat) changes only here.
  // `runner`: the job path shared with the local API (gate, admission, dispatch).
  StudioSession(Runtime& runtime, StatusBoard& status, JobRunner& runner);
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
  static boost::asio::awaitable<void> run_job(StudioSession* self, std::shared_ptr<Link> link,
                                              proto::JobOfferClaim claim, SharedTicket ticket);
  // Delivers the outbox while `link` lives; wakes when poked or when an entry falls due.
  static boost::asio::awaitable<void> courier(StudioSession* self, std::shared_ptr<Link> link);
  static boost::asio::awaitable<void> deliver(StudioSession* self, std::shared_ptr<Link> link,
                                              OutboxEntry entry);
  // The studio has the result (`delivered`) or disowned the job: the entry goes.
  static boost::asio::awaitable<void> settle(StudioSession* self, std::string job_id,
                                             bool delivered, std::string note);
  // The entry waits `wait_ms` for its next attempt; a Deferral other than AwaitingAck is logged
  // as a failed delivery.
  static boost::asio::awaitable<void> postpone(StudioSession* self, OutboxEntry entry,
                                               std::int64_t wait_ms, Deferral why,
                                               std::string detail);
  // A result the studio can never take (over its limits, refused as too large or invalid, or
  // one that ends the session each time it is sent): `fail {retryable:false, error:reason}` on
  // `link`, then the entry goes and delivery goes on with the next. If the fail cannot be sent
  // the entry stays for the next link.
  static boost::asio::awaitable<void> give_up(StudioSession* self, std::shared_ptr<Link> link,
                                              OutboxEntry entry, std::string reason);
  // A link ended while `job_id`'s completeJson was the last one sent and not yet read.
  void count_drop_after_send(const std::string& job_id);
  void poke_courier();
  // The gate's slots changed: a capacity studio gets a heartbeat now. Loop thread.
  void slots_changed();

  Runtime& runtime_;
  StatusBoard& status_;
  JobRunner& runner_;
  // Lets the gate's change callback (any thread) reach this session while it lives.
  std::shared_ptr<StudioSession*> self_ref_ = std::make_shared<StudioSession*>(this);
  std::shared_ptr<Link> link_;  // the current link, if any
  struct Wake;
  std::unique_ptr<Wake> wake_;
  bool stopped_ = false;
  std::optional<ExitCode> exit_code_;
  std::mt19937_64 random_;
  // Per job: links that ended right after its completeJson went out, before the studio showed
  // it had read it; reset when the studio reads it. In memory: a restart starts counting again.
  std::map<std::string, int> drops_after_send_;
  std::map<std::string, std::string> undeliverable_;  // job id → why it can never be delivered
};

}  // namespace sw::worker
