#pragma once
// Time as a seam (Envoy's TimeSource): a Clock gives steady time, for deadlines and durations, and
// wall time as Unix milliseconds, for what is stored and shown. Production code takes a Clock&
// and gets SystemClock; unit tests pass a ManualClock and move time by hand. Plus wall-clock
// helpers in the protocol's formats.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace sw {

using SteadyTime = std::chrono::steady_clock::time_point;

// Milliseconds since the Unix epoch (the system clock). Thread-safe.
std::int64_t unix_millis_now();
// RFC 3339 UTC with millisecond precision and a `Z` suffix, e.g. 2026-05-25T12:00:00.123Z.
std::string format_rfc3339_millis(std::int64_t unix_millis);

// The source of time. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: deadlines, timeouts, durations.
  virtual SteadyTime steady_now() const = 0;
  // Milliseconds since the Unix epoch: timestamps that are stored or shown. May jump.
  virtual std::int64_t unix_millis() const = 0;
};

// The machine's clocks (std::chrono::steady_clock and system_clock). Stateless.
class SystemClock final : public Clock {
 public:
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  std::int64_t unix_millis() const override { return unix_millis_now(); }
  // One shared instance for callers that take a Clock& and have no other.
  static const SystemClock& instance();
};

// Time that moves only when told to (tests). Starts at the given points; thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SteadyTime steady = SteadyTime(std::chrono::hours(1)),
                       std::int64_t unix_millis = 1'767'225'600'000)  // 2026-01-01T00:00:00Z
      : steady_(steady.time_since_epoch().count()), unix_millis_(unix_millis) {}

  SteadyTime steady_now() const override {
    return SteadyTime(SteadyTime::duration(steady_.load(std::memory_order_relaxed)));
  }
  std::int64_t unix_millis() const override { return unix_millis_.load(std::memory_order_relaxed); }
  // Moves both clocks forward by `by` (never backward: steady time is monotonic).
  void advance(std::chrono::milliseconds by) {
    steady_.fetch_add(std::chrono::duration_cast<SteadyTime::duration>(by).count(),
                      std::memory_order_relaxed);
    unix_millis_.fetch_add(by.count(), std::memory_order_relaxed);
  }
  // Sets wall time alone (a jump of the system clock); steady time is unaffected.
  void set_unix_millis(std::int64_t unix_millis) {
    unix_millis_.store(unix_millis, std::memory_order_relaxed);
  }

 private:
  std::atomic<SteadyTime::rep> steady_;
  std::atomic<std::int64_t> unix_millis_;
};

}  // namespace sw
