#include "common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace sw {

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(Error::io("write failed: {}", std::strerror(errno)));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                             Durability durability, unsigned mode) {
  // Unique per process and per call: two threads may write the same file at once.
  static std::atomic<unsigned> counter{0};
  std::filesystem::path temp = path;
  temp += fmt::format(".tmp-{}-{}", ::getpid(), counter.fetch_add(1));
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     static_cast<mode_t>(mode)));
  if (!fd.valid()) {
    return fail(Error::io("cannot create {}: {}", temp.string(), std::strerror(errno)));
  }
  auto fail_and_unlink = [&temp](std::string what) {
    ::unlink(temp.c_str());
    return fail(Error::io("{} {}", what, temp.string()));
  };
  if (auto written = write_all(fd.get(), bytes); !written) {
    return fail_and_unlink(written.error().message + ":");
  }
  // The umask may have narrowed the mode; a wider one (0600 asked) is never granted by it.
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
    return fail_and_unlink(std::string("cannot set the mode of"));
  }
  // Root changing a service user's file (`studio-worker --config /var/lib/studio-worker/… register`
  // run as root, issue 22) keeps it that user's: the file it replaces keeps its owner, a new file
  // gets its directory's. Otherwise the service could no longer read its own 0600 file.
  if (::geteuid() == 0) {
    struct stat owner {};
    if (::stat(path.c_str(), &owner) == 0 || ::stat(path.parent_path().c_str(), &owner) == 0) {
      if (owner.st_uid != 0 || owner.st_gid != 0) {
        if (::fchown(fd.get(), owner.st_uid, owner.st_gid) != 0) {
          return fail_and_unlink(std::string("cannot give its owner back to"));
        }
      }
    }
  }
  if (durability == Durability::Fsync && ::fsync(fd.get()) != 0) {
    return fail_and_unlink(std::string("cannot flush"));
  }
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return fail(
        Error::io("cannot rename {} to {}: {}", temp.string(), path.string(), std::strerror(err)));
  }
  return {};
}

Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return fail(Error::make(errno == ENOENT ? Code::NotFound : Code::IoError, "cannot open {}: {}",
                            path.string(), std::strerror(errno)));
  }
  std::string out;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Error::io("cannot read {}: {}", path.string(), std::strerror(errno)));
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      return fail(Error::invalid_argument("{} is larger than {} bytes", path.string(), max_bytes));
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

Result<std::optional<unsigned>> make_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) {
      return fail(Error::io("cannot create {}: {}", dir.parent_path().string(), ec.message()));
    }
  }
  if (::mkdir(dir.c_str(), kPrivateDirMode) == 0) {
    // The umask only narrows; chmod makes it exactly 0700 even under an odd umask like 0277.
    if (::chmod(dir.c_str(), kPrivateDirMode) != 0) {
      return fail(Error::io("cannot set the mode of {}: {}", dir.string(), std::strerror(errno)));
    }
    return std::optional<unsigned>{};
  }
  if (errno != EEXIST) {
    return fail(Error::io("cannot create {}: {}", dir.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return fail(Error::io("cannot stat {}: {}", dir.string(), std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(Error::io("{} exists and is not a directory", dir.string()));
  }
  const unsigned mode = st.st_mode & 07777;
  if ((mode & 077) == 0 || (mode & S_ISVTX) != 0 || st.st_uid != ::geteuid()) {
    return std::optional<unsigned>{};
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    if (std::filesystem::equivalent(dir, home, ec)) {
      return std::optional<unsigned>{};
    }
  }
  if (::chmod(dir.c_str(), kPrivateDirMode) != 0) {
    return fail(Error::io("cannot narrow the mode of {}: {}", dir.string(), std::strerror(errno)));
  }
  return std::optional<unsigned>{mode};
}

Result<UniqueFd> open_private_file(const std::filesystem::path& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(kPrivateFileMode)));
  if (!fd.valid()) {
    return fail(Error::make(errno == ENOENT ? Code::NotFound : Code::IoError, "cannot open {}: {}",
                            path.string(), std::strerror(errno)));
  }
  if ((flags & O_CREAT) != 0 && ::fchmod(fd.get(), kPrivateFileMode) != 0) {
    return fail(Error::io("cannot set the mode of {}: {}", path.string(), std::strerror(errno)));
  }
  return fd;
}

Result<std::optional<unsigned>> tighten_private_file(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return std::optional<unsigned>{};
    }
    return fail(Error::io("cannot stat {}: {}", path.string(), std::strerror(errno)));
  }
  const unsigned mode = st.st_mode & 07777;
  if ((mode & 077) == 0 || st.st_uid != ::geteuid()) {
    return std::optional<unsigned>{};
  }
  const unsigned narrowed = S_ISDIR(st.st_mode) ? kPrivateDirMode : (mode & 0700);
  if (::chmod(path.c_str(), static_cast<mode_t>(narrowed)) != 0) {
    return fail(Error::io("cannot narrow the mode of {}: {}", path.string(), std::strerror(errno)));
  }
  return std::optional<unsigned>{mode};
}

}  // namespace sw
