#pragma once
// Wall-clock helpers in the protocol's formats. Thread-safe.

#include <cstdint>
#include <string>

namespace sw {

// Milliseconds since the Unix epoch.
std::int64_t unix_millis_now();
// RFC 3339 UTC with millisecond precision and a `Z` suffix, e.g. 2026-05-25T12:00:00.123Z.
std::string format_rfc3339_millis(std::int64_t unix_millis);

}  // namespace sw
