// The service manager's contract as the programs read it: the datagram's form, and when the
// watchdog is asked for (WATCHDOG_USEC, WATCHDOG_PID). No socket here: without NOTIFY_SOCKET
// every call is a no-op (tests/integration/service_notify_test.cpp sends for real).

#include "service/service_notify.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace sw::service {
namespace {

// Sets (or, with nullptr, unsets) the manager's variables for one test, and restores them.
class ManagerEnvironment {
 public:
  ManagerEnvironment(const char* socket, const char* usec, const char* pid) {
    for (const char* name : kNames) {
      const char* old = std::getenv(name);
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    }
    set("NOTIFY_SOCKET", socket);
    set("WATCHDOG_USEC", usec);
    set("WATCHDOG_PID", pid);
  }
  ~ManagerEnvironment() {
    for (const auto& [name, value] : saved_) set(name, value ? value->c_str() : nullptr);
  }

 private:
  static constexpr const char* kNames[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};
  static void set(const char* name, const char* value) {
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

TEST(ServiceNotify, MessagesAreKeyValueLinesAndAValueCannotStartALine) {
  EXPECT_EQ(Notifier::message({{"READY", "1"}, {"STATUS", "listening on http://127.0.0.1:9790"}}),
            "READY=1\nSTATUS=listening on http://127.0.0.1:9790");
  // A newline in a status would smuggle in an assignment of its own (READY=1, WATCHDOG=trigger).
  EXPECT_EQ(Notifier::message({{"STATUS", "bad\nWATCHDOG=trigger\r"}}),
            "STATUS=bad WATCHDOG=trigger ");
}

TEST(ServiceNotify, WithoutNotifySocketEverythingIsANoOp) {
  ManagerEnvironment env(nullptr, "200000", nullptr);
  const auto notifier = Notifier::from_environment();
  EXPECT_FALSE(notifier.enabled());
  EXPECT_TRUE(notifier.ready("listening"));
  EXPECT_TRUE(notifier.status("x"));
  EXPECT_TRUE(notifier.watchdog());
  EXPECT_TRUE(notifier.stopping(""));
  // And the default one (in-process daemons in tests) is the same.
  EXPECT_FALSE(Notifier().enabled());
  EXPECT_TRUE(Notifier().ready("x"));
}

TEST(ServiceNotify, TheWatchdogIsOnForThisProcessOnly) {
  {
    ManagerEnvironment env("/run/test-notify", "200000", nullptr);
    const auto notifier = Notifier::from_environment();
    EXPECT_TRUE(notifier.enabled());
    ASSERT_TRUE(notifier.watchdog_timeout());
    EXPECT_EQ(*notifier.watchdog_timeout(), std::chrono::microseconds(200000));
  }
  {
    const std::string self = std::to_string(::getpid());
    ManagerEnvironment env("/run/test-notify", "200000", self.c_str());
    EXPECT_TRUE(Notifier::from_environment().watchdog_timeout());
  }
  {
    // Inherited from a parent the manager watches: not ours to ping.
    const std::string parent = std::to_string(::getppid());
    ManagerEnvironment env("/run/test-notify", "200000", parent.c_str());
    EXPECT_FALSE(Notifier::from_environment().watchdog_timeout());
  }
  {
    ManagerEnvironment env("/run/test-notify", "soon", nullptr);
    EXPECT_FALSE(Notifier::from_environment().watchdog_timeout());
  }
  {
    ManagerEnvironment env("/run/test-notify", nullptr, nullptr);
    EXPECT_FALSE(Notifier::from_environment().watchdog_timeout());
  }
}

}  // namespace
}  // namespace sw::service
