// sd_notify over a real unix datagram socket of the test's (what systemd's NOTIFY_SOCKET is):
// the messages arrive as the service manager reads them, and the watchdog pinger ticks from the
// loop it is given.

#include "service/service_notify.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <thread>

#include "support/notify_socket.h"
#include "support/temp_dir.h"

namespace sw::service {
namespace {

using namespace std::chrono_literals;
using sw::testing::NotifySocket;

// NOTIFY_SOCKET and WATCHDOG_USEC for one test; WATCHDOG_PID unset.
class ManagerEnvironment {
 public:
  ManagerEnvironment(const std::filesystem::path& socket, const char* usec) {
    ::setenv("NOTIFY_SOCKET", socket.c_str(), 1);
    if (usec) {
      ::setenv("WATCHDOG_USEC", usec, 1);
    } else {
      ::unsetenv("WATCHDOG_USEC");
    }
    ::unsetenv("WATCHDOG_PID");
  }
  ~ManagerEnvironment() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
  }
};

TEST(ServiceNotifyOverSocket, ReadyStatusAndStoppingArriveAsTheManagerReadsThem) {
  sw::testing::TempDir dir;
  NotifySocket manager(dir.path() / "notify");
  ManagerEnvironment env(manager.path(), nullptr);
  const auto notifier = Notifier::from_environment();
  ASSERT_TRUE(notifier.enabled());
  EXPECT_FALSE(notifier.watchdog_timeout());

  ASSERT_TRUE(notifier.ready("listening on http://127.0.0.1:9790"));
  EXPECT_EQ(manager.next(10s), "READY=1\nSTATUS=listening on http://127.0.0.1:9790");
  ASSERT_TRUE(notifier.status("registration pending"));
  EXPECT_EQ(manager.next(10s), "STATUS=registration pending");
  ASSERT_TRUE(notifier.stopping(""));
  EXPECT_EQ(manager.next(10s), "STOPPING=1");
}

TEST(ServiceNotifyOverSocket, AManagerThatWentAwayIsAnErrorValue) {
  sw::testing::TempDir dir;
  const auto gone = dir.path() / "gone";
  ManagerEnvironment env(gone, nullptr);
  const auto notifier = Notifier::from_environment();
  const auto sent = notifier.ready("x");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code, Code::IoError);
  EXPECT_NE(sent.error().message.find("READY=1"), std::string::npos) << sent.error().message;
}

TEST(ServiceNotifyOverSocket, TheWatchdogPingsFromTheLoopUntilStopped) {
  sw::testing::TempDir dir;
  NotifySocket manager(dir.path() / "notify");
  ManagerEnvironment env(manager.path(), "200000");  // 200 ms: a ping every 100 ms
  boost::asio::io_context loop;
  auto pinger = std::make_unique<WatchdogPinger>(loop.get_executor(), Notifier::from_environment());
  ASSERT_TRUE(pinger->active());
  std::thread runner([&loop] { loop.run(); });

  EXPECT_TRUE(manager.await_count("WATCHDOG=1", 2, 10s)) << manager.received().size();
  // Stopped on its loop, the pinger leaves the loop with nothing to do: run() returns.
  boost::asio::post(loop, [&pinger] { pinger->stop(); });
  runner.join();
  for (const auto& datagram : manager.received()) EXPECT_EQ(datagram, "WATCHDOG=1");
}

TEST(ServiceNotifyOverSocket, NoWatchdogAskedNoTimer) {
  sw::testing::TempDir dir;
  NotifySocket manager(dir.path() / "notify");
  ManagerEnvironment env(manager.path(), nullptr);
  boost::asio::io_context loop;
  WatchdogPinger pinger(loop.get_executor(), Notifier::from_environment());
  EXPECT_FALSE(pinger.active());
  // Nothing scheduled: the loop has no work and returns at once.
  EXPECT_EQ(loop.run(), 0u);
}

}  // namespace
}  // namespace sw::service
