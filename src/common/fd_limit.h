#pragma once
// The process's open-file limit (RLIMIT_NOFILE). Every socket, database handle and result file is
// one descriptor; the common default soft limit of 1024 is far below what a studio serving 10,000
// worker sessions needs, and the kernel lets any process raise its soft limit up to its hard limit
// without privilege (getrlimit(2)). Both servers raise it once at start, before anything is opened.
// Thread-safety: call from main before other threads start.

#include <cstdint>

#include "common/error.h"

namespace sw {

struct FdLimit {
  std::uint64_t before = 0;  // soft limit found at start
  std::uint64_t after = 0;   // soft limit now
  std::uint64_t hard = 0;    // the ceiling (RLIM_INFINITY reads as UINT64_MAX)
};

// Raises the soft limit to the hard limit (capped at /proc/sys/fs/nr_open when the hard limit is
// unlimited, which setrlimit would refuse). Errors: internal when getrlimit/setrlimit fail.
Result<FdLimit> raise_fd_limit();

// The soft limit now; 0 when it cannot be read.
std::uint64_t current_fd_limit();

// Descriptors a studio needs to hold 10,000 worker sessions: one each, plus room for clients,
// connections still in their handshake, the database, result files and the accept reserve.
inline constexpr std::uint64_t kFdsForTenThousandWorkers = 12'000;

}  // namespace sw
