#pragma once
// Talks to the service manager over systemd's notification protocol (sd_notify(3), through
// libsystemd): readiness, stopping, a one-line status and watchdog pings. A unit with Type=notify
// waits for `ready()` before it counts the service as started; with WatchdogSec= it restarts the
// service when the pings stop.
//
// Everything here is a no-op when the process was not started by a manager that listens
// (NOTIFY_SOCKET unset): the programs call it unconditionally, and tests or a shell see nothing.
// Notifier reads the environment once and is immutable afterwards: thread-safe (each message
// opens its own datagram socket). WatchdogPinger is loop-thread only.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace sw::service {

// What the service manager asked of this process. Default-constructed: disabled (every call is a
// no-op), which is what in-process daemons in tests get. Cheap to copy.
class Notifier {
 public:
  Notifier() = default;

  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the manager's contract, left in the
  // environment). The watchdog is on when WATCHDOG_USEC is a positive number and WATCHDOG_PID is
  // unset or this process's pid (a child that inherited them does not ping for its parent).
  // Never fails: a malformed value means no watchdog.
  static Notifier from_environment();

  // NOTIFY_SOCKET names a socket: messages are sent.
  bool enabled() const { return enabled_; }
  // The manager's watchdog timeout, when it asked for pings.
  std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_timeout_; }

  // "READY=1" plus "STATUS=<status>" (when not empty): startup is complete, e.g. the port listens.
  Status ready(std::string_view status) const;
  // "STOPPING=1" plus the status: shutdown has begun.
  Status stopping(std::string_view status) const;
  // "STATUS=<status>": what `systemctl status` shows on its Status: line.
  Status status(std::string_view status) const;
  // "WATCHDOG=1".
  Status watchdog() const;

  // The datagram for `assignments` (KEY=VALUE each, in order): a newline in a value would start
  // a new assignment, so it becomes a space. Exposed for tests.
  static std::string message(
      std::initializer_list<std::pair<std::string_view, std::string_view>> assignments);

 private:
  // Sends `message`. Ok when sent or when disabled; IoError with errno's text when the socket
  // refused it (the manager went away).
  Status send(const std::string& message) const;

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_timeout_;
};

// Pings "WATCHDOG=1" at half the manager's watchdog timeout from a timer on the loop that
// `executor` belongs to, so that a loop that stops turning (a blocked handler, a deadlock) stops
// the pings and the manager restarts the process. Inactive (no timer) when the manager asked for
// no watchdog. The first ping goes out half an interval after construction, once the loop runs.
// Loop-thread only: construct, stop and destroy it on the loop's thread or before the loop runs.
// It owns its timer; a tick that arrives after destruction does nothing.
class WatchdogPinger {
 public:
  WatchdogPinger(boost::asio::any_io_executor executor, Notifier notifier);
  ~WatchdogPinger();
  WatchdogPinger(const WatchdogPinger&) = delete;
  WatchdogPinger& operator=(const WatchdogPinger&) = delete;

  bool active() const { return state_ != nullptr; }
  // Cancels the timer; no ping after this returns. Idempotent.
  void stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sw::service
