#include "worker/courier.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <limits>

#include "proto/codec.h"
#include "worker/worker_metrics.h"

namespace sw::worker {

namespace asio = boost::asio;
using asio::awaitable;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBatch = 4;  // entries delivered per pass (they may be large)
}  // namespace

// One link's delivery: what was sent on it and still waits for the studio.
struct Courier::Round {
  Round(std::shared_ptr<CourierLink> l, const asio::any_io_executor& loop)
      : link(std::move(l)), timer(loop) {}
  bool live() const { return !ended && link->alive(); }

  std::shared_ptr<CourierLink> link;
  asio::steady_timer timer;  // the wait for the next due entry; cancelled by poke()
  bool ended = false;
  std::set<std::string> awaiting_ack;  // completeJson sent on this link, no completeAck yet
  // The last completeJson sent that the studio has not yet shown it read: (job id, heartbeats
  // queued when it was sent). If the link ends while this is set, the drop counts against it.
  std::optional<std::pair<std::string, std::uint64_t>> unread;
};

Courier::Courier(asio::any_io_executor loop, Outbox& outbox, LogHub& logs, const Clock& clock,
                 CourierTimings timings, WorkerMetrics* metrics)
    : loop_(std::move(loop)),
      outbox_(outbox),
      logs_(logs),
      clock_(clock),
      timings_(timings),
      metrics_(metrics) {}

Courier::~Courier() {
  if (round_) {
    round_->ended = true;
    round_->timer.cancel();
  }
}

std::int64_t Courier::backoff_ms(int attempt) const {
  return outbox_backoff_ms(attempt, timings_.backoff_base.count());
}

void Courier::poke() {
  if (round_) round_->timer.cancel();
}

void Courier::link_ended(bool counts) {
  if (!round_) return;
  auto round = std::move(round_);
  round->ended = true;
  round->timer.cancel();
  if (!counts || !round->unread) return;
  const std::string& job_id = round->unread->first;
  const int drops = ++drops_after_send_[job_id];
  logs_.ship(log::Level::Warn, "outbox",
             fmt::format("the session ended before the studio read the result of job {} ({} of {} "
                         "such ends)",
                         job_id, drops, kDropsBeforeUndeliverable),
             job_id);
  if (drops >= kDropsBeforeUndeliverable) {
    undeliverable_[job_id] = fmt::format(
        "the JSON result cannot be delivered: the session ended {} times in a row right after it "
        "was sent, before the studio read it (too large for the studio?)",
        drops);
  }
}

void Courier::complete_acked(const std::string& job_id) {
  drops_after_send_.erase(job_id);
  auto round = round_;
  if (round && round->unread && round->unread->first == job_id) round->unread.reset();
  if (round && round->awaiting_ack.erase(job_id) > 0) {
    asio::co_spawn(loop_, settle(job_id, true, "studio confirmed completion"), asio::detached);
    return;
  }
  logs_.ship(log::Level::Info, "ws", "studio confirmed completion of job " + job_id, job_id);
}

void Courier::heartbeat_acked(std::uint64_t acked) {
  if (!round_ || !round_->unread || acked <= round_->unread->second) return;
  // The studio read past that completeJson: a later drop is not its doing.
  drops_after_send_.erase(round_->unread->first);
  round_->unread.reset();
}

std::optional<std::string> Courier::disowned_by(std::string_view message) const {
  if (!round_) return std::nullopt;
  for (const auto& job_id : round_->awaiting_ack) {
    if (message.find(job_id) != std::string_view::npos) return job_id;
  }
  return std::nullopt;
}

awaitable<void> Courier::run(std::shared_ptr<CourierLink> link) {
  if (!link->alive()) co_return;  // it ended before this started: nothing to hold on to
  if (round_) round_->ended = true;
  auto round = std::make_shared<Round>(std::move(link), loop_);
  round_ = round;
  // A new link is a new chance: the first pass takes every entry, however far its backoff.
  std::int64_t horizon = std::numeric_limits<std::int64_t>::max();
  std::set<std::string> tried;  // this pass: each entry once
  while (round->live()) {
    auto due = co_await outbox_.load_due(horizon, kBatch + 64);
    if (!round->live()) co_return;
    std::size_t delivered = 0;
    if (!due) {
      logs_.ship(log::Level::Error, "outbox", "outbox cannot be read: " + due.error().message);
    } else {
      for (auto& entry : *due) {
        if (!round->live()) co_return;
        if (delivered == kBatch) break;
        if (!tried.insert(entry.job_id).second) continue;
        ++delivered;
        co_await deliver(round, std::move(entry));
      }
    }
    if (delivered > 0) continue;  // more may be due
    tried.clear();
    // Sleep until the next entry falls due, or a new result pokes us.
    const auto next = outbox_.next_due_ms();
    const auto wait =
        next ? std::clamp<std::int64_t>(*next - clock_.unix_millis() + 1, 0, 60'000) : 60'000;
    round->timer.expires_after(std::chrono::milliseconds(wait));
    co_await round->timer.async_wait(kUseTuple);
    if (!round->live()) co_return;  // the courier may be gone with its link
    horizon = clock_.unix_millis();
  }
}

awaitable<void> Courier::deliver(std::shared_ptr<Round> round, OutboxEntry entry) {
  if (entry.studio != round->link->studio_url() || entry.worker_id != round->link->worker_id()) {
    // Claimed under another studio or identity: kept for when that comes back, not sent here.
    std::string why = "belongs to worker " + entry.worker_id + " of " + entry.studio;
    co_await postpone(std::move(entry), 60'000, Deferral::OtherClaim, std::move(why));
    co_return;
  }
  if (entry.kind == OutboxEntry::Kind::Json) {
    co_await deliver_json(std::move(round), std::move(entry));
  } else {
    co_await deliver_binary(std::move(round), std::move(entry));
  }
}

awaitable<void> Courier::deliver_json(std::shared_ptr<Round> round, OutboxEntry entry) {
  const std::string job_id = entry.job_id;
  const int attempt = entry.attempts + 1;
  if (auto poisoned = undeliverable_.find(job_id); poisoned != undeliverable_.end()) {
    std::string reason = poisoned->second;
    co_await give_up(std::move(round), std::move(entry), std::move(reason));
    co_return;
  }
  auto parsed = proto::RawJson::parse(entry.body);
  if (!parsed) {
    std::string why = "stored result is not JSON: " + parsed.error().message;
    co_await settle(job_id, false, std::move(why));
    co_return;
  }
  const proto::WorkerFrame frame{proto::CompleteJson{job_id, std::move(*parsed), entry.prompt}};
  std::string text = proto::encode(frame);
  // A message over the studio's cap would end the session on every attempt: fail the job
  // instead, naming both sizes, and go on with the next results.
  const auto limits = round->link->limits();
  const std::uint64_t cap = limits ? limits->max_frame_bytes : kUnannouncedFrameLimit;
  if (text.size() > cap) {
    std::string reason = fmt::format(
        "the JSON result cannot be delivered: its completeJson message is {} bytes, over {} of "
        "{} bytes",
        text.size(),
        limits ? "the studio's message limit"
               : "the message limit assumed for a studio that announces none",
        cap);
    co_await give_up(std::move(round), std::move(entry), std::move(reason));
    co_return;
  }
  if (!round->live()) co_return;
  round->unread = std::make_pair(job_id, round->link->beats_queued());
  // Awaited from before the send: the studio's completeAck can be read before this coroutine
  // resumes from the write (an ack taken then was ignored and the result sent again).
  round->awaiting_ack.insert(job_id);
  const auto send_began = clock_.steady_now();
  auto sent = co_await round->link->send_text(std::move(text));
  if (sent && metrics_ != nullptr) {
    metrics_->observe_phase(JobPhase::Upload, clock_.steady_now() - send_began);
  }
  if (!sent) {
    round->awaiting_ack.erase(job_id);
    std::string why = "completeJson could not be sent: " + sent.error().message;
    co_await postpone(std::move(entry), backoff_ms(attempt), Deferral::Failed, std::move(why));
    co_return;
  }
  logs_.ship(log::Level::Info, "ws",
             fmt::format("json result sent for job {} (attempt {})", job_id, attempt), job_id);
  // Acknowledged already (settled by the reader): nothing to wait for.
  if (!round->awaiting_ack.contains(job_id)) co_return;
  // Until completeAck arrives (then the entry goes); without one it is sent again.
  const auto wait = std::max<std::int64_t>(timings_.ack_wait.count(), backoff_ms(attempt));
  co_await postpone(std::move(entry), wait, Deferral::AwaitingAck, {});
}

awaitable<void> Courier::deliver_binary(std::shared_ptr<Round> round, OutboxEntry entry) {
  const std::string job_id = entry.job_id;
  const int attempt = entry.attempts + 1;
  const auto limits = round->link->limits();
  if (limits && entry.body.size() + entry.prompt.size() > limits->max_upload_bytes) {
    // The multipart body is bigger still: the studio would answer 413 however often it is sent.
    std::string reason = fmt::format(
        "the result cannot be delivered: {} bytes of result and {} of prompt are over the "
        "studio's upload limit of {} bytes",
        entry.body.size(), entry.prompt.size(), limits->max_upload_bytes);
    co_await give_up(std::move(round), std::move(entry), std::move(reason));
    co_return;
  }
  auto upload = std::make_shared<ResultUpload>(
      ResultUpload{{}, {}, job_id, entry.prompt, entry.ext, std::move(entry.body)});
  logs_.local(log::Level::Info, "upload",
              fmt::format("uploading {} bytes for job {} (attempt {})", upload->bytes.size(),
                          job_id, attempt),
              job_id);
  const auto upload_began = clock_.steady_now();
  auto uploaded = co_await round->link->upload(upload);
  if (uploaded && metrics_ != nullptr) {
    metrics_->observe_phase(JobPhase::Upload, clock_.steady_now() - upload_began);
  }
  if (uploaded) {
    std::string note = fmt::format("binary upload ok ({} bytes)", upload->bytes.size());
    co_await settle(job_id, true, std::move(note));
    co_return;
  }
  const auto& failure = uploaded.error();
  if (failure.status == 409) {
    std::string note = "the studio answered 409: " + failure.error.message;
    co_await settle(job_id, false, std::move(note));
    co_return;
  }
  if (failure.local) {
    // This worker cannot upload at all: the bytes are dropped and the job handed back, retryable,
    // for a worker that can (kept, it would wait here until the studio's run limit).
    std::string reason = "this worker cannot upload results: " + failure.error.message;
    co_await hand_back(std::move(round), job_id, std::move(reason));
    co_return;
  }
  // Worth another try: transport errors, 5xx, and answers that may change (auth, throttling).
  if (failure.retryable() || failure.status == 401 || failure.status == 408 ||
      failure.status == 429) {
    std::string why = "upload failed: " + failure.error.message;
    co_await postpone(std::move(entry), backoff_ms(attempt), Deferral::Failed, std::move(why));
    co_return;
  }
  std::string reason = "result upload refused: " + failure.error.message;
  // Refusals that will repeat (too large, invalid): the job failed for good, never generated again.
  if (failure.status == 400 || failure.status == 413 || failure.status == 415 ||
      failure.status == 422) {
    co_await give_up(std::move(round), std::move(entry), std::move(reason));
    co_return;
  }
  // Other refusals (403, 404, …): drop the bytes; the job may still succeed elsewhere.
  co_await hand_back(std::move(round), job_id, std::move(reason));
}

awaitable<void> Courier::hand_back(std::shared_ptr<Round> round, std::string job_id,
                                   std::string reason) {
  co_await settle(job_id, false, reason);
  const std::string text = proto::encode(proto::WorkerFrame{proto::Fail{job_id, reason, true}});
  if (auto sent = co_await round->link->send_text(text); !sent) {
    logs_.ship(log::Level::Warn, "ws",
               fmt::format("fail for {} could not be sent: {}", job_id, sent.error().message),
               job_id);
  }
}

awaitable<void> Courier::give_up(std::shared_ptr<Round> round, OutboxEntry entry,
                                 std::string reason) {
  const std::string job_id = entry.job_id;
  logs_.ship(log::Level::Error, "job", fmt::format("job {} failed: {}", job_id, reason), job_id);
  Status sent = fail(Error::unavailable("the session ended"));
  if (round->live()) {
    const std::string text = proto::encode(proto::WorkerFrame{proto::Fail{job_id, reason, false}});
    sent = co_await round->link->send_text(text);
  }
  if (!sent) {
    // Kept: the next link tells the studio (the check that failed it will fail it again).
    std::string why = "fail could not be sent: " + sent.error().message;
    co_await postpone(std::move(entry), backoff_ms(entry.attempts + 1), Deferral::Failed,
                      std::move(why));
    co_return;
  }
  drops_after_send_.erase(job_id);
  undeliverable_.erase(job_id);
  co_await settle(job_id, false, std::move(reason));
}

awaitable<void> Courier::settle(std::string job_id, bool delivered, std::string note) {
  auto removed = co_await outbox_.drop(job_id, delivered);
  if (!removed) {
    logs_.ship(
        log::Level::Error, "outbox",
        fmt::format("entry of job {} could not be removed: {}", job_id, removed.error().message),
        job_id);
  }
  if (delivered) {
    logs_.ship(log::Level::Info, "outbox",
               fmt::format("result of job {} delivered: {}", job_id, note), job_id);
  } else {
    logs_.ship(log::Level::Warn, "outbox",
               fmt::format("result of job {} dropped: {}", job_id, note), job_id);
  }
}

awaitable<void> Courier::postpone(OutboxEntry entry, std::int64_t wait_ms, Deferral why,
                                  std::string detail) {
  const int attempts = entry.attempts + 1;
  const auto next = clock_.unix_millis() + wait_ms;
  // Named locals: GCC 12 double-destroys temporaries inside a co_await expression.
  std::string job_id = entry.job_id, stored = detail;
  auto written =
      co_await outbox_.retry_later(std::move(job_id), attempts, next, why, std::move(stored));
  if (!written) {
    logs_.ship(log::Level::Error, "outbox",
               fmt::format("entry of job {} could not be updated: {}", entry.job_id,
                           written.error().message),
               entry.job_id);
  }
  if (why != Deferral::AwaitingAck) {
    logs_.ship(log::Level::Warn, "outbox",
               fmt::format("delivery of job {} failed (attempt {}), next in {} ms: {}",
                           entry.job_id, attempts, wait_ms, detail),
               entry.job_id);
  }
}

}  // namespace sw::worker
