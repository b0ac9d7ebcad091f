#pragma once
// A throwaway PostgreSQL 15 server for tests (Debian's `postgresql` package): initdb in a fresh
// temporary directory, the postmaster on a free 127.0.0.1 port with its Unix socket inside that
// directory, run as an unprivileged account when the tests run as root (PostgreSQL refuses root).
// Stopped and its directory removed on destruction; if the test process dies, the kernel sends
// the server SIGQUIT (PR_SET_PDEATHSIG). No shared or pre-existing server is assumed.
//
// Tests use PostgresTest below: one server per test process (started at the first test that needs
// it, ~1-4 s for initdb), one fresh database per test.

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

namespace sw::testing {

class PostgresServer {
 public:
  // The server binaries' folder: $SW_POSTGRES_BIN, else /usr/lib/postgresql/15/bin.
  static std::filesystem::path bin_dir();
  // Why no server can be started here (binaries missing), or empty when they are present.
  static std::string unavailable_reason();

  // initdb + start, waiting until the server accepts connections (bounded: 60 s).
  static Result<std::unique_ptr<PostgresServer>> start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // postgresql://sw@127.0.0.1:<port>/postgres (trust authentication, superuser `sw`).
  std::string uri(std::string_view database = "postgres") const;
  std::uint16_t port() const { return port_; }
  // The postmaster's process id (its backends are its children), -1 while it is stopped.
  pid_t pid() const { return pid_; }
  // CREATE DATABASE <name>; returns its URI.
  Result<std::string> create_database(std::string_view name);
  // The server's log so far (for failure messages).
  std::string log() const;

  // What a PostgreSQL restart looks like to its clients (issue 18): stop() is a fast shutdown
  // (SIGINT: every connection is cut, in-flight transactions roll back), start_again() runs the
  // server again on the same data and port and waits until it accepts connections (bounded:
  // 60 s). restart() is both.
  Status stop();
  Status start_again();
  Status restart();

 private:
  PostgresServer() = default;
  // Runs the postmaster on port_ and waits until it answers; Unavailable if it exits first.
  Status launch();
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  bool switch_user_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

// The server shared by every test of this process, started on first use; null with `why` set
// when it cannot be started.
PostgresServer* shared_postgres(std::string* why);

// What PostgresTest::SetUp does, for fixtures that cannot derive from it (typed tests): sets
// `*server` and `*uri` (a fresh database on the shared server), or skips (no server binaries,
// outside CI) or fails the current test. Call it from SetUp and return when the test is skipped
// or failed.
void open_test_database(PostgresServer** server, std::string* uri);

// Fixture: a fresh database on the shared server per test, its URI in uri_. Without the server
// binaries it prints one `SKIPPED: <why>` line and skips, except under CI=true where that fails.
class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override;
  PostgresServer* server_ = nullptr;
  std::string uri_;
};

}  // namespace sw::testing
