#pragma once
// Delivery of finished results from the durable outbox to the studio (reference-worker.md §1.3,
// §3.3; issues 7, 16, 19). One owner for every delivery rule:
//
//   - oldest first, at most 4 entries in flight per pass; a new link's first pass takes every
//     entry however far its backoff, later passes only what is due;
//   - JSON results go as `completeJson` over the socket and stay until `completeAck` (sent again
//     after the ack wait); binary results go over the multipart route (2xx: delivered; 409: the
//     job is not ours, dropped; 401/408/429/5xx/transport: retried with backoff; 400/413/415/422:
//     the job fails for good; other 4xx: dropped with a retryable `fail`);
//   - a result that can never be delivered (over the limits the studio announced, or this
//     worker's own when it announced none; or one after which the link ended 3 times in a row
//     before the studio showed it read it) fails its job with `fail {retryable:false}` naming why
//     and is dropped, so it cannot block the results behind it (issue 16);
//   - backoff: `outbox_backoff_ms` (1 s doubling to 60 s), kept on disk by the outbox.
//
// The link is a seam (CourierLink): the session adapts its WebSocket and the studio's HTTP route
// to it; unit tests pass a fake. Time comes from a Clock (due times are Unix milliseconds).
// Loop-thread only: every member is called on the event loop the Courier was built with.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"
#include "proto/frames.h"
#include "worker/log_hub.h"
#include "worker/outbox.h"
#include "worker/studio_api.h"

namespace sw::worker {

class WorkerMetrics;

// What delivery needs of one welcomed link to the studio. Loop-thread only.
class CourierLink {
 public:
  virtual ~CourierLink() = default;
  // False once the link ended: nothing more is sent on it.
  virtual bool alive() const = 0;
  // The studio URL and worker id the link was opened with. An entry claimed under others waits.
  virtual std::string studio_url() const = 0;
  virtual std::string worker_id() const = 0;
  // The studio's limits from its welcome (feature "limits"); nullopt: a studio that sent none.
  virtual std::optional<proto::StudioLimits> limits() const = 0;
  // Heartbeats queued on this link so far. The studio answers each in order, so an ack for a
  // heartbeat queued after a completeJson proves it read that completeJson.
  virtual std::uint64_t beats_queued() const = 0;
  // Writes one text message; resolves when written (or failed).
  virtual boost::asio::awaitable<Status> send_text(std::string text) = 0;
  // Posts a binary result over the studio's multipart route, filling in this link's worker id
  // and token (the courier leaves them empty). Blocks a pool thread, never the loop.
  virtual boost::asio::awaitable<tl::expected<void, UploadFailure>> upload(
      std::shared_ptr<ResultUpload> upload) = 0;
};

struct CourierTimings {
  std::chrono::milliseconds backoff_base{1000};  // first retry of a failed delivery
  std::chrono::milliseconds ack_wait{10'000};    // completeJson sent again without completeAck
};

class Courier {
 public:
  // The largest completeJson sent to a studio that announced no limits: studio-server before
  // issue 16 read messages of at most 16 MiB. A studio with a smaller cap that announces nothing
  // is caught by the drop count instead.
  static constexpr std::uint64_t kUnannouncedFrameLimit = 16ull << 20;
  // Links that may end, one after another, between a completeJson going out and the studio
  // showing it read it, before that result is declared undeliverable (a studio that cannot take
  // it drops every link it is sent on: without this it would block the outbox for ever).
  static constexpr int kDropsBeforeUndeliverable = 3;

  // `metrics` may be null. Everything passed must outlive the Courier.
  Courier(boost::asio::any_io_executor loop, Outbox& outbox, LogHub& logs, const Clock& clock,
          CourierTimings timings, WorkerMetrics* metrics);
  ~Courier();
  Courier(const Courier&) = delete;
  Courier& operator=(const Courier&) = delete;

  // Delivers the outbox over `link` until it ends or link_ended() is called. Spawn once per
  // welcomed link, one link at a time (a new run supersedes the last).
  boost::asio::awaitable<void> run(std::shared_ptr<CourierLink> link);
  // A new result is in the outbox (or time moved): look now instead of at the next due time.
  void poke();
  // The link ended. `counts` (a drop, not a stop): a completeJson the studio had not shown it
  // read counts against its job (kDropsBeforeUndeliverable).
  void link_ended(bool counts);

  // ---- what the session's reader saw on the current link

  // `completeAck {jobId}`: the entry goes (settled in the background).
  void complete_acked(const std::string& job_id);
  // `heartbeatAck`: the studio has read every frame queued before heartbeat number `acked`.
  void heartbeat_acked(std::uint64_t acked);
  // An `error protocol_violation` whose message names a job whose completeJson awaits its ack
  // on this link: that job's id (the studio disowned the result; settle it, then end the link).
  std::optional<std::string> disowned_by(std::string_view message) const;

  // The studio has the result (`delivered`) or disowned the job: the entry goes, logged.
  boost::asio::awaitable<void> settle(std::string job_id, bool delivered, std::string note);

 private:
  struct Round;
  boost::asio::awaitable<void> deliver(std::shared_ptr<Round> round, OutboxEntry entry);
  boost::asio::awaitable<void> deliver_json(std::shared_ptr<Round> round, OutboxEntry entry);
  boost::asio::awaitable<void> deliver_binary(std::shared_ptr<Round> round, OutboxEntry entry);
  boost::asio::awaitable<void> postpone(OutboxEntry entry, std::int64_t wait_ms, Deferral why,
                                        std::string detail);
  // The job failed for good: `fail` with retryable false, then the entry goes.
  boost::asio::awaitable<void> give_up(std::shared_ptr<Round> round, OutboxEntry entry,
                                       std::string reason);
  // The result is dropped and the job handed back: `fail` with retryable true (another worker
  // may still run and deliver it).
  boost::asio::awaitable<void> hand_back(std::shared_ptr<Round> round, std::string job_id,
                                         std::string reason);
  std::int64_t backoff_ms(int attempt) const;

  boost::asio::any_io_executor loop_;
  Outbox& outbox_;
  LogHub& logs_;
  const Clock& clock_;
  CourierTimings timings_;
  WorkerMetrics* metrics_;
  std::shared_ptr<Round> round_;  // the current link's delivery, if any
  // Per job: links that ended right after its completeJson went out, before the studio showed
  // it had read it; reset when the studio reads it. In memory: a restart starts counting again.
  std::map<std::string, int> drops_after_send_;
  std::map<std::string, std::string> undeliverable_;  // job id → why it can never be delivered
};

}  // namespace sw::worker
