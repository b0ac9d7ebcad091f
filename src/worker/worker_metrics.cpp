#include "worker/worker_metrics.h"

#include <algorithm>

#include "common/prom_text.h"

namespace sw::worker {

namespace {

constexpr JobOutcome kAllOutcomes[] = {JobOutcome::Ok, JobOutcome::Failed, JobOutcome::Deadline};

std::size_t index_of(proto::TaskKind kind) {
  return static_cast<std::size_t>(kind);
}

}  // namespace

std::string_view to_string(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::Ok: return "ok";
    case JobOutcome::Failed: return "failed";
    case JobOutcome::Deadline: return "deadline";
  }
  return "unknown";
}

void WorkerMetrics::count_job(proto::TaskKind kind, JobOutcome outcome) {
  jobs_[index_of(kind) * kOutcomes + static_cast<std::size_t>(outcome)].fetch_add(
      1, std::memory_order_relaxed);
}

void WorkerMetrics::count_result_bytes(proto::TaskKind kind, std::uint64_t bytes) {
  result_bytes_[index_of(kind)].fetch_add(bytes, std::memory_order_relaxed);
}

void WorkerMetrics::observe_phase(JobPhase phase, std::chrono::nanoseconds elapsed) {
  const auto ns = std::max<std::int64_t>(0, elapsed.count());
  const double seconds = static_cast<double>(ns) / 1e9;
  std::size_t bucket = 0;
  while (bucket < kPhaseBuckets.size() && seconds > kPhaseBuckets[bucket]) ++bucket;
  auto& histogram = phases_[static_cast<std::size_t>(phase)];
  histogram.counts[bucket].fetch_add(1, std::memory_order_relaxed);
  histogram.sum_ns.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

void WorkerMetrics::count_reconnect() {
  reconnects_.fetch_add(1, std::memory_order_relaxed);
}

void WorkerMetrics::count_runner_start(std::string_view program) {
  std::lock_guard lock(runners_mutex_);
  auto it = runners_.find(program);
  if (it == runners_.end()) it = runners_.emplace(std::string(program), std::pair{0, 0}).first;
  ++it->second.first;
}

void WorkerMetrics::count_runner_death(std::string_view program) {
  std::lock_guard lock(runners_mutex_);
  auto it = runners_.find(program);
  if (it == runners_.end()) it = runners_.emplace(std::string(program), std::pair{0, 0}).first;
  ++it->second.second;
}

std::uint64_t WorkerMetrics::jobs(proto::TaskKind kind, JobOutcome outcome) const {
  return jobs_[index_of(kind) * kOutcomes + static_cast<std::size_t>(outcome)].load(
      std::memory_order_relaxed);
}

std::uint64_t WorkerMetrics::phase_count(JobPhase phase) const {
  std::uint64_t total = 0;
  for (const auto& count : phases_[static_cast<std::size_t>(phase)].counts) {
    total += count.load(std::memory_order_relaxed);
  }
  return total;
}

std::uint64_t WorkerMetrics::runner_starts(std::string_view program) const {
  std::lock_guard lock(runners_mutex_);
  const auto it = runners_.find(program);
  return it == runners_.end() ? 0 : it->second.first;
}

std::uint64_t WorkerMetrics::runner_deaths(std::string_view program) const {
  std::lock_guard lock(runners_mutex_);
  const auto it = runners_.find(program);
  return it == runners_.end() ? 0 : it->second.second;
}

std::string WorkerMetrics::render(const MetricGauges& gauges) const {
  prom::TextWriter out;
  auto gauge = [&out](std::string_view name, std::string_view help, auto value) {
    out.family(name, "gauge", help);
    out.sample(name, {}, value);
  };
  gauge("studio_worker_up", "1 while the worker's daemon serves.", std::uint64_t{1});
  gauge("studio_worker_connected", "1 while the studio session is connected (welcomed).",
        std::uint64_t{gauges.connected ? 1u : 0u});
  gauge("studio_worker_paused", "1 while the worker refuses studio offers (pause).",
        std::uint64_t{gauges.paused ? 1u : 0u});
  gauge("studio_worker_runners_unloaded",
        "1 while paused with --unload: idle runners are stopped to free GPU memory.",
        std::uint64_t{gauges.runners_unloaded ? 1u : 0u});
  gauge("studio_worker_jobs_running", "Jobs on the engines now (studio and local).",
        std::int64_t{running_.load(std::memory_order_relaxed)});

  out.family("studio_worker_jobs_total", "counter",
             "Jobs run, by task kind and outcome (ok; failed: the engine's error; deadline: the "
             "caller stopped waiting first).");
  for (const auto kind : proto::kAllTaskKinds) {
    for (const auto outcome : kAllOutcomes) {
      out.sample("studio_worker_jobs_total",
                 {{"kind", std::string(proto::to_string(kind))},
                  {"outcome", std::string(to_string(outcome))}},
                 jobs(kind, outcome));
    }
  }
  out.family("studio_worker_result_bytes_total", "counter",
             "Bytes of successful results (JSON text or the encoded file), by task kind.");
  for (const auto kind : proto::kAllTaskKinds) {
    out.sample("studio_worker_result_bytes_total", {{"kind", std::string(proto::to_string(kind))}},
               result_bytes_[index_of(kind)].load(std::memory_order_relaxed));
  }
  out.family("studio_worker_job_phase_seconds", "histogram",
             "Time a job spent per phase: fetch (model files found, verified or downloaded), load "
             "(a runner started until healthy), infer (the rest of the engine's work), encode "
             "(the result's file written), upload (the result delivered to the studio).");
  for (const auto phase : kAllJobPhases) {
    const auto& histogram = phases_[static_cast<std::size_t>(phase)];
    std::array<std::uint64_t, kPhaseBuckets.size() + 1> counts{};
    for (std::size_t i = 0; i < counts.size(); ++i) {
      counts[i] = histogram.counts[i].load(std::memory_order_relaxed);
    }
    out.histogram("studio_worker_job_phase_seconds", {{"phase", std::string(to_string(phase))}},
                  kPhaseBuckets, counts,
                  static_cast<double>(histogram.sum_ns.load(std::memory_order_relaxed)) / 1e9);
  }
  out.family("studio_worker_reconnects_total", "counter",
             "Studio sessions started again after the connection was lost.");
  out.sample("studio_worker_reconnects_total", {}, reconnects());

  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>, std::less<>> runners;
  {
    std::lock_guard lock(runners_mutex_);
    runners = runners_;
  }
  out.family("studio_worker_runner_starts_total", "counter",
             "Runners (llama-server, whisper-server, sd-server: one program per engine) started "
             "until healthy, by program.");
  for (const auto& [program, counts] : runners) {
    out.sample("studio_worker_runner_starts_total", {{"program", program}}, counts.first);
  }
  out.family("studio_worker_runner_deaths_total", "counter",
             "Runners found dead that the worker had not stopped, by program.");
  for (const auto& [program, counts] : runners) {
    out.sample("studio_worker_runner_deaths_total", {{"program", program}}, counts.second);
  }

  gauge("studio_worker_outbox_entries",
        "Finished results waiting for the studio to acknowledge them (the outbox backlog).",
        gauges.outbox_entries);
  gauge("studio_worker_outbox_bytes", "Bytes of the results in the outbox.", gauges.outbox_bytes);
  out.family("studio_worker_device_memory_total_bytes", "gauge", "GPU memory, per device.");
  for (const auto& device : gauges.devices) {
    out.sample("studio_worker_device_memory_total_bytes", {{"device", device.device}},
               device.total_bytes);
  }
  out.family("studio_worker_device_memory_free_bytes", "gauge",
             "Free GPU memory, per device (devices whose driver does not say are left out).");
  for (const auto& device : gauges.devices) {
    if (device.free_bytes) {
      out.sample("studio_worker_device_memory_free_bytes", {{"device", device.device}},
                 *device.free_bytes);
    }
  }
  if (gauges.system_memory_available_bytes) {
    gauge("studio_worker_system_memory_available_bytes",
          "System memory available (MemAvailable): what runners use without a GPU.",
          *gauges.system_memory_available_bytes);
  }
  return out.take();
}

}  // namespace sw::worker
