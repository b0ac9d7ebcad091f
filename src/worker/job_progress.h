#pragma once
// A studio job's progress on its way to the studio (issue 20, feature "progress"): the engine's
// JobObserver calls (any pool thread) are gathered here and sent as `jobProgress` frames by one
// pump on the loop, one frame in flight at a time.
//
//   engine thread ──download/loading/text──► pending (merged) ──pump, ≥ 50 ms apart──► link
//                                                                  finish(): the rest, then stop
//
// Loss-tolerant by design, results are not: pending text merges into one delta while a frame is
// being written, so a slow socket never builds a queue here (one frame in flight and one merged
// pending update per job); download progress is kept to at most 4 updates a second and to the
// latest figure. finish() sends what is pending and returns once the pump has written its last
// frame, so the caller's `completeJson` or `fail`, queued after it, follows every delta. A frame
// that cannot be sent (the link is gone) is dropped.
//
// Threading: the JobObserver members are thread-safe and never block (a lock and a post);
// start() and finish() are loop-thread only.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "engines/engine.h"
#include "proto/frames.h"

namespace sw::worker {

// Where a job's progress frames go: the link its offer came on.
class ProgressLink {
 public:
  virtual ~ProgressLink() = default;
  // Queues `text` on the link and waits until it is written; an error when the link is gone.
  virtual boost::asio::awaitable<Status> send_text(std::string text) = 0;
};

class ProgressRelay final : public engines::JobObserver,
                            public std::enable_shared_from_this<ProgressRelay> {
 public:
  // The shortest gap between two frames of one job: deltas arriving meanwhile merge.
  static constexpr std::chrono::milliseconds kFrameGap{50};
  // The shortest gap between two download figures of one job (at most 4 a second).
  static constexpr std::chrono::milliseconds kDownloadGap{250};

  ProgressRelay(boost::asio::any_io_executor loop, std::string job_id,
                std::shared_ptr<ProgressLink> link);

  // engines::JobObserver: any thread.
  void download(std::uint64_t done, std::optional<std::uint64_t> total) override;
  void loading() override;
  void text(std::string_view content, std::string_view reasoning) override;

  // Starts the pump (loop thread, once).
  void start();
  // Sends what is pending and waits for the pump's last write (loop thread, once).
  boost::asio::awaitable<void> finish();
  // Frames written so far (tests, logs).
  std::uint64_t frames_sent() const { return frames_sent_; }

 private:
  struct Pending {
    std::optional<std::pair<std::uint64_t, std::optional<std::uint64_t>>> download;
    bool load = false;
    std::string delta;
    std::string reasoning_delta;
    bool empty() const { return !download && !load && delta.empty() && reasoning_delta.empty(); }
  };
  // Under mutex_: what is pending as frames, in the order the job went (download, load, text).
  std::vector<proto::JobProgress> take_locked();
  // Wakes the pump (any thread; at most one wake posted at a time).
  void wake_locked();
  static boost::asio::awaitable<void> pump(std::shared_ptr<ProgressRelay> self);

  boost::asio::any_io_executor loop_;
  std::string job_id_;
  std::shared_ptr<ProgressLink> link_;
  std::mutex mutex_;
  Pending pending_;
  bool wake_posted_ = false;
  bool finishing_ = false;  // loop thread: finish() called; the pump sends what is left and ends
  std::optional<std::chrono::steady_clock::time_point> last_download_;
  // Loop thread:
  boost::asio::steady_timer signal_;  // the pump waits on it for something pending
  boost::asio::steady_timer gap_;     // the gap after a frame; finish() cuts it short
  boost::asio::steady_timer ended_;   // finish() waits on it for the pump's end
  bool started_ = false;
  bool pump_ended_ = false;
  std::uint64_t frames_sent_ = 0;
};

}  // namespace sw::worker
