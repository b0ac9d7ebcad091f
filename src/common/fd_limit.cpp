#include "common/fd_limit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

namespace sw {

namespace {

std::uint64_t as_count(rlim_t value) {
  return value == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max()
                                : static_cast<std::uint64_t>(value);
}

// The kernel's per-process ceiling for RLIMIT_NOFILE (setrlimit fails with EPERM above it).
rlim_t nr_open() {
  std::ifstream file("/proc/sys/fs/nr_open");
  unsigned long long value = 0;
  if (file >> value && value > 0) {
    return static_cast<rlim_t>(value);
  }
  return 1 << 20;  // the kernel's default for fs.nr_open
}

}  // namespace

Result<FdLimit> raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return fail(Error::internal("getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno)));
  }
  FdLimit out;
  out.before = as_count(limit.rlim_cur);
  out.hard = as_count(limit.rlim_max);
  rlim_t target = limit.rlim_max == RLIM_INFINITY ? nr_open() : limit.rlim_max;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
    limit.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return fail(Error::internal("setrlimit(RLIMIT_NOFILE, {}): {}",
                                  static_cast<unsigned long long>(target), std::strerror(errno)));
    }
  }
  out.after = current_fd_limit();
  return out;
}

std::uint64_t current_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return 0;
  }
  return as_count(limit.rlim_cur);
}

}  // namespace sw
