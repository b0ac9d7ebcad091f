#include "worker/job_progress.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.h"
#include "proto/codec.h"

namespace sw::worker {

namespace asio = boost::asio;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::ws::progress");
  return instance;
}

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

ProgressRelay::ProgressRelay(asio::any_io_executor loop, std::string job_id,
                             std::shared_ptr<ProgressLink> link)
    : loop_(loop),
      job_id_(std::move(job_id)),
      link_(std::move(link)),
      signal_(loop),
      gap_(loop),
      ended_(loop) {}

void ProgressRelay::download(std::uint64_t done, std::optional<std::uint64_t> total) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  // The last figure of a file always goes (the bar reaches its end); others at most 4 a second.
  const bool last = total && done >= *total;
  if (!last && last_download_ && now - *last_download_ < kDownloadGap) return;
  last_download_ = now;
  pending_.download = std::pair(done, total);
  wake_locked();
}

void ProgressRelay::loading() {
  std::lock_guard lock(mutex_);
  pending_.load = true;
  wake_locked();
}

void ProgressRelay::text(std::string_view content, std::string_view reasoning) {
  if (content.empty() && reasoning.empty()) return;
  std::lock_guard lock(mutex_);
  pending_.delta += content;
  pending_.reasoning_delta += reasoning;
  wake_locked();
}

void ProgressRelay::wake_locked() {
  if (wake_posted_) return;
  wake_posted_ = true;
  asio::post(loop_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->signal_.cancel();
  });
}

std::vector<proto::JobProgress> ProgressRelay::take_locked() {
  std::vector<proto::JobProgress> frames;
  wake_posted_ = false;
  auto frame_of = [this](const char* phase) {
    proto::JobProgress frame;
    frame.job_id = job_id_;
    frame.phase = phase;
    return frame;
  };
  if (pending_.download) {
    proto::JobProgress frame = frame_of("download");
    frame.done = pending_.download->first;
    frame.total = pending_.download->second;
    frames.push_back(std::move(frame));
  }
  if (pending_.load) frames.push_back(frame_of("load"));
  if (!pending_.delta.empty() || !pending_.reasoning_delta.empty()) {
    proto::JobProgress frame = frame_of("generate");
    if (!pending_.delta.empty()) frame.delta = std::move(pending_.delta);
    if (!pending_.reasoning_delta.empty()) {
      frame.reasoning_delta = std::move(pending_.reasoning_delta);
    }
    frames.push_back(std::move(frame));
  }
  pending_ = Pending{};
  return frames;
}

void ProgressRelay::start() {
  if (started_) return;
  started_ = true;
  asio::co_spawn(loop_, pump(shared_from_this()), asio::detached);
}

asio::awaitable<void> ProgressRelay::pump(std::shared_ptr<ProgressRelay> self) {
  while (true) {
    std::vector<proto::JobProgress> frames;
    {
      std::lock_guard lock(self->mutex_);
      frames = self->take_locked();
    }
    for (const auto& frame : frames) {
      const std::string text = proto::encode(proto::WorkerFrame{frame});
      auto sent = co_await self->link_->send_text(text);
      if (!sent) {
        // Loss-tolerant: the studio misses a step; the result still goes by the outbox.
        logger().debug(
            "progress.dropped",
            {{"job_id", self->job_id_}, {"phase", frame.phase}, {"error", sent.error().message}});
        break;
      }
      ++self->frames_sent_;
    }
    // Read after the writes: finish() may have come meanwhile. Nothing else runs on the loop
    // between here and the wait below, so a finish() or a wake after this point finds the wait.
    bool finishing = false;
    bool empty = false;
    {
      std::lock_guard lock(self->mutex_);
      finishing = self->finishing_;
      empty = self->pending_.empty();
    }
    if (finishing) {
      if (empty) break;
      continue;
    }
    if (!frames.empty()) {
      // The gap: what comes meanwhile merges into the next frame.
      self->gap_.expires_after(kFrameGap);
      co_await self->gap_.async_wait(kUseTuple);
      continue;
    }
    self->signal_.expires_at(asio::steady_timer::time_point::max());
    co_await self->signal_.async_wait(kUseTuple);
  }
  self->pump_ended_ = true;
  self->ended_.cancel();
}

asio::awaitable<void> ProgressRelay::finish() {
  {
    std::lock_guard lock(mutex_);
    finishing_ = true;
  }
  if (!started_) co_return;
  signal_.cancel();
  gap_.cancel();
  while (!pump_ended_) {
    ended_.expires_at(asio::steady_timer::time_point::max());
    co_await ended_.async_wait(kUseTuple);
  }
}

}  // namespace sw::worker
