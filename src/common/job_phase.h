#pragma once
// The phases of a job that the worker times for its /metrics (issue 19): fetch (model files and
// inputs downloaded), load (a runner started until healthy), infer, encode (the result's bytes
// written: PNG, WebP, WAV, …) and upload (the result delivered to the studio).
//
// Engines report the phases of the dispatch running on their thread with report_phase(); whoever
// runs the dispatch (worker::JobRunner) installs a PhaseSink on that thread for its duration with
// a PhaseScope. Without a sink report_phase() does nothing, so engines and the runner pool need no
// knowledge of metrics. The sink is per thread and per dispatch (not a global registry): the
// engines' work for one job runs on the one pool thread that called Engine::dispatch.

#include <chrono>
#include <cstddef>
#include <string_view>

namespace sw {

enum class JobPhase { Fetch, Load, Infer, Encode, Upload };
inline constexpr std::size_t kJobPhaseCount = 5;
inline constexpr JobPhase kAllJobPhases[] = {JobPhase::Fetch, JobPhase::Load, JobPhase::Infer,
                                             JobPhase::Encode, JobPhase::Upload};

constexpr std::string_view to_string(JobPhase phase) {
  switch (phase) {
    case JobPhase::Fetch: return "fetch";
    case JobPhase::Load: return "load";
    case JobPhase::Infer: return "infer";
    case JobPhase::Encode: return "encode";
    case JobPhase::Upload: return "upload";
  }
  return "unknown";
}

class PhaseSink {
 public:
  virtual ~PhaseSink() = default;
  // Called on the dispatching thread, once per timed stretch (a phase may be reported twice).
  virtual void phase_done(JobPhase phase, std::chrono::nanoseconds elapsed) = 0;
  // Called on the dispatching thread when a stretch of `phase` begins, for those who report it
  // as it happens (the studio's `jobProgress`, issue 20). Only Load is reported so far.
  virtual void phase_began(JobPhase phase) { (void)phase; }
};

namespace detail {
inline thread_local PhaseSink* current_phase_sink = nullptr;
}

// Installs `sink` for this thread until destroyed (then the previous one is back).
class PhaseScope {
 public:
  explicit PhaseScope(PhaseSink* sink) : previous_(detail::current_phase_sink) {
    detail::current_phase_sink = sink;
  }
  ~PhaseScope() { detail::current_phase_sink = previous_; }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseSink* previous_;
};

// Reports `elapsed` in `phase` to this thread's sink, if any.
inline void report_phase(JobPhase phase, std::chrono::nanoseconds elapsed) {
  if (auto* sink = detail::current_phase_sink) sink->phase_done(phase, elapsed);
}

// Tells this thread's sink, if any, that a stretch of `phase` begins.
inline void report_phase_began(JobPhase phase) {
  if (auto* sink = detail::current_phase_sink) sink->phase_began(phase);
}

// Times a stretch of `phase` from construction to stop() or destruction (once).
class PhaseTimer {
 public:
  explicit PhaseTimer(JobPhase phase) : phase_(phase), started_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() { stop(); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    report_phase(phase_, std::chrono::steady_clock::now() - started_);
  }

 private:
  JobPhase phase_;
  std::chrono::steady_clock::time_point started_;
  bool stopped_ = false;
};

}  // namespace sw
