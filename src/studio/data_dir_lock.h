#pragma once
// One process at a time changes a studio's data directory (issue 16, "revocation that waits"):
// `studio-server serve` holds an exclusive flock on <data_dir>/studio.lock for its lifetime, and a
// CLI command that changes state holds it while it writes. Whoever cannot take it reads who holds
// it from the file: a second `serve` is refused with the holder's pid and address, and a CLI
// command goes through the running studio's admin API instead of writing behind its back (the
// studio keeps tokens and claims in memory; a row changed underneath would not be seen).
//
// The file (0600) holds `key=value` lines: pid, command (e.g. "serve", "workers delete") and,
// once a studio listens, url (where its API answers on this machine). It is left in place when
// the lock is released: removing a flock file lets two processes lock two different files.
//
// Linux flock semantics: the lock belongs to the open file description, so two DataDirLocks in
// one process exclude each other too, and the kernel releases it when the process dies (no stale
// lock after a crash). Not thread-safe; move-only.

#include <filesystem>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/file_io.h"

namespace sw::studio {

// What the lock file says about its holder. Fields the holder has not written yet are empty.
struct LockHolder {
  long pid = 0;
  std::string command;  // "serve", "workers approve", …
  std::string url;      // a serving studio's base URL, e.g. http://127.0.0.1:9790
};

class DataDirLock {
 public:
  static constexpr const char* kFileName = "studio.lock";

  // Takes the lock without waiting and records this process (pid, `command`). A missing directory
  // is created 0700 (as open_data_dir would). Conflict when another process holds it: the message
  // names the directory and what the file says about the holder (pid, command, url); `holder`
  // (when given) receives it. IoError when the directory cannot be made or the file cannot be
  // opened or locked.
  static Result<DataDirLock> try_acquire(const std::filesystem::path& data_dir,
                                         const std::string& command, LockHolder* holder = nullptr);
  // What <data_dir>/studio.lock says, without taking the lock (nullopt: no file, or no pid in it).
  // Only meaningful after try_acquire failed with Conflict.
  static std::optional<LockHolder> read_holder(const std::filesystem::path& data_dir);

  DataDirLock(DataDirLock&&) noexcept = default;
  DataDirLock& operator=(DataDirLock&&) noexcept = default;
  // Releases the lock (closes the file) and leaves the file.
  ~DataDirLock() = default;

  // Records where this studio's API answers, for CLI commands run meanwhile.
  Status publish_url(const std::string& url);

 private:
  DataDirLock(UniqueFd fd, std::filesystem::path path, std::string command)
      : fd_(std::move(fd)), path_(std::move(path)), command_(std::move(command)) {}
  Status write_record(const std::string& url);

  UniqueFd fd_;
  std::filesystem::path path_;
  std::string command_;
};

// "studio-server serve (pid 123, http://127.0.0.1:9790)": how messages name a holder.
std::string describe(const LockHolder& holder);

}  // namespace sw::studio
