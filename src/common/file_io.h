#pragma once
// POSIX file helpers: an owning file descriptor and whole-file writes that readers never see
// half done. Thread-safe (no shared state).

#include <filesystem>
#include <string_view>
#include <utility>

#include "common/error.h"

namespace sw {

// Owns one file descriptor; closing it also releases any flock held through it. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset();  // closes now

 private:
  int fd_ = -1;
};

// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
Status write_all(int fd, std::string_view bytes);

// Fsync: the bytes reach the disk before the rename (survives power loss). RenameOnly: readers
// still never see a partial file, and a process crash loses nothing the kernel has.
enum class Durability { Fsync, RenameOnly };

// Writes `bytes` to a unique temporary sibling with permissions `mode` and renames it over `path`
// (so a secret-bearing file is never readable by others, not even for a moment).
Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                             Durability durability = Durability::Fsync, unsigned mode = 0644);

// The whole file, refused (InvalidArgument) when it is larger than `max_bytes`.
Result<std::string> read_file(const std::filesystem::path& path,
                              std::uint64_t max_bytes = 1ull << 30);

}  // namespace sw
