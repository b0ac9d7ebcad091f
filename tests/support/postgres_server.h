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
  // CREATE DATABASE <name>; returns its URI.
  Result<std::string> create_database(std::string_view name);
  // The server's log so far (for failure messages).
  std::string log() const;

 private:
  PostgresServer() = default;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// The server shared by every test of this process, started on first use; null with `why` set
// when it cannot be started.
PostgresServer* shared_postgres(std::string* why);

// Fixture: a fresh database on the shared server per test, its URI in uri_. Without the server
// binaries it prints one `SKIPPED: <why>` line and skips, except under CI=true where that fails.
class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override;
  PostgresServer* server_ = nullptr;
  std::string uri_;
};

}  // namespace sw::testing
