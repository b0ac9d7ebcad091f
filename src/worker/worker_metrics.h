#pragma once
// The worker's counters for GET /metrics on the local API (issue 19), rendered as Prometheus text
// (common/prom_text.h). One WorkerMetrics is made by the daemon (or a test) and handed to those
// that count: the job runner (jobs by kind and outcome, phases, result bytes, jobs running), the
// session (reconnects, upload phase), the runner pool's event hook (runner starts and deaths, by
// runner program). Gauges that belong to someone else (connected, paused, outbox backlog, device
// memory) are read by the local API when it renders and passed in as MetricGauges.
//
// Series (all prefixed studio_worker_):
//   jobs_total{kind,outcome}             counter  outcome: ok | failed | deadline (the caller
//                                                 stopped waiting before the engine was done)
//   jobs_running                         gauge
//   job_phase_seconds{phase}             histogram phase: fetch | load | infer | encode | upload
//   result_bytes_total{kind}             counter  bytes of successful results
//   reconnects_total                     counter  studio sessions started again after a loss
//   runner_starts_total{program}         counter  runners that became healthy
//   runner_deaths_total{program}         counter  runners found dead that the worker did not stop
//   up, connected, paused, runners_unloaded, outbox_entries, outbox_bytes,
//   device_memory_total_bytes{device}, device_memory_free_bytes{device},
//   system_memory_available_bytes        gauges (MetricGauges)
//
// Thread-safety: every count_* / observe_* is thread-safe and lock-free except the runner
// counters (a mutex; runners start and die rarely). render() may run on any thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/job_phase.h"
#include "proto/types.h"
#include "worker/vram_probe.h"

namespace sw::worker {

enum class JobOutcome { Ok, Failed, Deadline };
std::string_view to_string(JobOutcome outcome);

// What the renderer reads from others at scrape time.
struct MetricGauges {
  bool connected = false;  // the studio session is welcomed
  bool paused = false;
  bool runners_unloaded = false;  // paused with --unload
  std::uint64_t outbox_entries = 0;
  std::uint64_t outbox_bytes = 0;
  std::vector<DeviceMemory> devices;
  std::optional<double> system_memory_available_bytes;
};

class WorkerMetrics {
 public:
  // Bounds of job_phase_seconds, in seconds: a WebP encode takes milliseconds, a model load
  // or a download minutes.
  static constexpr std::array<double, 16> kPhaseBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

  void count_job(proto::TaskKind kind, JobOutcome outcome);
  void count_result_bytes(proto::TaskKind kind, std::uint64_t bytes);
  void observe_phase(JobPhase phase, std::chrono::nanoseconds elapsed);
  void count_reconnect();
  void count_runner_start(std::string_view program);
  void count_runner_death(std::string_view program);
  void job_began() { running_.fetch_add(1, std::memory_order_relaxed); }
  void job_ended() { running_.fetch_sub(1, std::memory_order_relaxed); }

  // Reads, for tests and render.
  std::uint64_t jobs(proto::TaskKind kind, JobOutcome outcome) const;
  std::uint64_t phase_count(JobPhase phase) const;
  std::uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }
  std::uint64_t runner_starts(std::string_view program) const;
  std::uint64_t runner_deaths(std::string_view program) const;

  std::string render(const MetricGauges& gauges) const;

 private:
  static constexpr std::size_t kKinds = std::size(proto::kAllTaskKinds);
  static constexpr std::size_t kOutcomes = 3;
  struct Histogram {
    std::array<std::atomic<std::uint64_t>, kPhaseBuckets.size() + 1> counts{};
    std::atomic<std::uint64_t> sum_ns{0};
  };
  std::array<std::atomic<std::uint64_t>, kKinds * kOutcomes> jobs_{};
  std::array<std::atomic<std::uint64_t>, kKinds> result_bytes_{};
  std::array<Histogram, kJobPhaseCount> phases_{};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::int64_t> running_{0};
  mutable std::mutex runners_mutex_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>, std::less<>>
      runners_;  // program → (starts, deaths)
};

}  // namespace sw::worker
