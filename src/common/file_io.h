#pragma once
// POSIX file helpers: an owning file descriptor and whole-file writes that readers never see
// half done. Thread-safe (no shared state).

#include <filesystem>
#include <optional>
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
// (so a secret-bearing file is never readable by others, not even for a moment). Run as root, the
// file keeps the owner of the file it replaces, or gets its directory's when new (a service
// user's files stay readable by that service).
Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                             Durability durability = Durability::Fsync, unsigned mode = 0644);

// The whole file, refused (InvalidArgument) when it is larger than `max_bytes`.
Result<std::string> read_file(const std::filesystem::path& path,
                              std::uint64_t max_bytes = 1ull << 30);

// ---- Private data (issue 16, kind 6) ----
// Prompts, results, tokens and databases are readable by their owner only: directories 0700 and
// files 0600 whatever the umask. An install made by an older version had 0755/0644; these helpers
// also narrow such modes, so an operator who upgrades gets the fix without manual work.

inline constexpr unsigned kPrivateDirMode = 0700;
inline constexpr unsigned kPrivateFileMode = 0600;

// Creates `dir` with mode 0700 (missing parents get the usual umask-governed mode, as `mkdir -p`
// gives them), or narrows an existing one to 0700. Returns the mode it had when it was narrowed;
// nullopt when it was created or already private. A world-shared directory (sticky bit, like
// /tmp), the user's $HOME and a directory owned by someone else are left as they are (not ours to
// narrow); nullopt then too. Fails (IoError) when it cannot be created or is not a directory.
Result<std::optional<unsigned>> make_private_dir(const std::filesystem::path& dir);

// open(2) of `path` with `flags` (O_CLOEXEC is added); with O_CREAT the file is created 0600 and,
// created or not, set to exactly 0600 (the umask may not widen it, a looser old mode is narrowed).
// For temp files that later get renamed into place: the mode holds from the first byte on.
Result<UniqueFd> open_private_file(const std::filesystem::path& path, int flags);

// Narrows an existing file (or directory, to 0700) so that group and others have no access.
// Returns the mode it had when it was narrowed; nullopt when it is absent or already private.
Result<std::optional<unsigned>> tighten_private_file(const std::filesystem::path& path);

}  // namespace sw
