#pragma once
// The worker's operator breadcrumbs (reference-worker.md §3.7): each one goes to the process log,
// to the local ring served by GET /daemon/logs (1,000 entries, monotonically increasing sequence)
// and, when it is meant for the studio, to the ship queue drained into `logBatch` frames every
// second. The ship queue holds 5,000 entries; on overflow the oldest are dropped and the next
// batch starts with a `warn` entry of category `logs` saying how many. A batch that could not be
// sent goes back to the front. Thread-safe.

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "proto/types.h"

namespace sw::worker {

class LogHub {
 public:
  static constexpr std::size_t kRingCapacity = 1000;
  static constexpr std::size_t kShipQueueCap = 5000;

  explicit LogHub(std::size_t ring_capacity = kRingCapacity,
                  std::size_t ship_queue_cap = kShipQueueCap);

  // A breadcrumb for the operator and the studio. `level` is Info, Warn or Error.
  void ship(log::Level level, std::string category, std::string message,
            std::optional<std::string> job_id = std::nullopt);
  // For the local ring (and the process log) only.
  void local(log::Level level, std::string category, std::string message,
             std::optional<std::string> job_id = std::nullopt);

  struct Page {
    std::vector<proto::LogEntry> entries;
    std::uint64_t seq = 0;  // of the newest entry
  };
  // Entries with a sequence above `after`; `after` beyond the newest gives the whole ring (the
  // daemon restarted and the client's cursor is from an earlier run).
  Page after(std::uint64_t after) const;

  // Up to `max` queued entries, oldest first, with the overflow marker in front when entries were
  // dropped since the last batch.
  std::vector<proto::LogEntry> take_batch(std::size_t max = 500);
  // Puts a batch that could not be sent back in front of the queue.
  void requeue_front(std::vector<proto::LogEntry> batch);
  std::size_t queued() const;

 private:
  void add(log::Level level, std::string category, std::string message,
           std::optional<std::string> job_id, bool to_studio);

  const std::size_t ring_capacity_;
  const std::size_t ship_queue_cap_;
  mutable std::mutex mu_;
  std::deque<std::pair<std::uint64_t, proto::LogEntry>> ring_;  // guarded by mu_
  std::deque<proto::LogEntry> ship_queue_;                      // guarded by mu_
  std::uint64_t seq_ = 0;                                       // guarded by mu_
  std::uint64_t dropped_ = 0;                                   // guarded by mu_
};

}  // namespace sw::worker
