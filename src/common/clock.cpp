#include "common/clock.h"

#include <fmt/chrono.h>

#include <chrono>

namespace sw {

std::int64_t unix_millis_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

std::string format_rfc3339_millis(std::int64_t unix_millis) {
  const std::chrono::sys_time<std::chrono::milliseconds> time{
      std::chrono::milliseconds(unix_millis)};
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  const auto millis = (time - seconds).count();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", seconds, millis);
}

}  // namespace sw
