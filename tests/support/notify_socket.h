#pragma once
// A unix datagram socket of the test's own, standing in for systemd's NOTIFY_SOCKET: what a
// program under test sends with sd_notify(3) (READY=1, STATUS=…, WATCHDOG=1, STOPPING=1) arrives
// here, one datagram per message. Every wait is bounded. Not thread-safe: one test thread reads.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sw::testing {

class NotifySocket {
 public:
  // Binds a socket at `path` (a file that must not exist; at most 107 bytes).
  explicit NotifySocket(std::filesystem::path path);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The next datagram, or nullopt once `timeout` passed without one.
  std::optional<std::string> next(std::chrono::milliseconds timeout);
  // Reads datagrams until one holds the line `assignment` (e.g. "READY=1"); returns it, or
  // nullopt when `timeout` passed first. Every datagram read is kept in received().
  std::optional<std::string> await(std::string_view assignment, std::chrono::milliseconds timeout);
  // Reads until received() holds `count` datagrams with `assignment` (those read before count);
  // false when `timeout` passed first.
  bool await_count(std::string_view assignment, int count, std::chrono::milliseconds timeout);
  const std::vector<std::string>& received() const { return received_; }

  // Whether `datagram` holds the line `assignment` exactly.
  static bool holds(std::string_view datagram, std::string_view assignment);
  // The value of `key` in `datagram` ("STATUS" → what follows "STATUS="), or nullopt.
  static std::optional<std::string> value(std::string_view datagram, std::string_view key);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<std::string> received_;
};

}  // namespace sw::testing
