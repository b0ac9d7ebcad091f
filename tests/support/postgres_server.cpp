#include "support/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

#include "sql/pg/connection.h"

namespace sw::testing {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// The account the server runs as: ourselves, or when we are root (PostgreSQL refuses to run as
// root) Debian's `postgres` account from the postgresql package, else `nobody`.
struct Account {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<Account> server_account() {
  if (::geteuid() != 0) {
    return Account{};
  }
  for (const char* name : {"postgres", "nobody"}) {
    if (const passwd* pw = ::getpwnam(name); pw != nullptr && pw->pw_uid != 0) {
      return Account{true, pw->pw_uid, pw->pw_gid};
    }
  }
  return fail(
      Error::unavailable("running as root and no unprivileged account (postgres, nobody) "
                         "to run the PostgreSQL server as"));
}

// fork + (drop to the account) + exec, output appended to `log`. The child gets SIGQUIT
// (PostgreSQL's immediate shutdown) if this process dies first.
Result<pid_t> spawn(const Account& account, const std::vector<std::string>& argv,
                    const fs::path& log) {
  std::vector<char*> args;
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    return fail(Error::io("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
    }
    if (account.switch_user && (::setgroups(0, nullptr) != 0 || ::setgid(account.gid) != 0 ||
                                ::setuid(account.uid) != 0)) {
      ::_exit(126);
    }
    // After setuid: changing credentials clears the parent-death signal.
    ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The last lines of a log, for error messages.
std::string tail(const std::string& text, std::size_t lines = 8) {
  std::size_t at = text.size();
  for (std::size_t n = 0; n <= lines && at != std::string::npos && at > 0; ++n) {
    at = text.rfind('\n', at - 1);
  }
  return at == std::string::npos ? text : text.substr(at + 1);
}

// A port the kernel says is free now; the server binding it later may still lose a race, which
// start() answers by trying another.
Result<std::uint16_t> free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return fail(Error::io("socket: {}", std::strerror(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  auto* any = reinterpret_cast<sockaddr*>(&addr);
  const bool ok = ::bind(fd, any, sizeof addr) == 0 && ::getsockname(fd, any, &len) == 0;
  ::close(fd);
  if (!ok) {
    return fail(Error::io("cannot find a free port: {}", std::strerror(errno)));
  }
  return ntohs(addr.sin_port);
}

// Waits for a child to exit, at most `limit`; its exit status, or nullopt if it still runs.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno == ECHILD)) {
      return status;
    }
    if (Clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

fs::path PostgresServer::bin_dir() {
  const char* env = std::getenv("SW_POSTGRES_BIN");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path("/usr/lib/postgresql/15/bin");
}

std::string PostgresServer::unavailable_reason() {
  for (const char* program : {"initdb", "postgres"}) {
    if (::access((bin_dir() / program).c_str(), X_OK) != 0) {
      return (bin_dir() / program).string() +
             " not found (Debian's postgresql package; scripts/install-deps.sh installs it)";
    }
  }
  return {};
}

Result<std::unique_ptr<PostgresServer>> PostgresServer::start() {
  if (auto why = unavailable_reason(); !why.empty()) {
    return fail(Error::unavailable("{}", why));
  }
  auto account = server_account();
  if (!account) {
    return fail(std::move(account).error());
  }
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  std::string pattern = (fs::temp_directory_path() / "sw-pg-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return fail(Error::io("mkdtemp: {}", std::strerror(errno)));
  }
  server->dir_ = pattern;
  if (account->switch_user && ::chown(pattern.c_str(), account->uid, account->gid) != 0) {
    return fail(Error::io("chown {}: {}", pattern, std::strerror(errno)));
  }
  const auto log = server->dir_ / "server.log";
  const auto data = server->dir_ / "data";
  {
    // Created here so that the unprivileged server can append to it.
    std::ofstream touch(log);
  }
  if (account->switch_user && ::chown(log.c_str(), account->uid, account->gid) != 0) {
    return fail(Error::io("chown {}: {}", log.string(), std::strerror(errno)));
  }

  // --no-sync and fsync=off: a test cluster need not survive a power cut, and syncing is most of
  // initdb's time.
  auto initdb = spawn(*account,
                      {(bin_dir() / "initdb").string(), "-D", data.string(), "-U", "sw", "-A",
                       "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"},
                      log);
  if (!initdb) {
    return fail(std::move(initdb).error());
  }
  const auto initdb_status = wait_exit(*initdb, std::chrono::seconds(120));
  if (!initdb_status || !WIFEXITED(*initdb_status) || WEXITSTATUS(*initdb_status) != 0) {
    if (!initdb_status) {
      ::kill(*initdb, SIGKILL);
      wait_exit(*initdb, std::chrono::seconds(5));
    }
    return fail(Error::io("initdb failed: {}", tail(read_text(log))));
  }

  server->switch_user_ = account->switch_user;
  server->uid_ = account->uid;
  server->gid_ = account->gid;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = free_port();
    if (!port) {
      return fail(std::move(port).error());
    }
    server->port_ = *port;
    auto launched = server->launch();
    if (launched) {
      return server;
    }
    if (launched.error().code != Code::Unavailable) {
      return fail(std::move(launched).error());
    }
    // Exited (the port was taken meanwhile?): try another port.
  }
  return fail(Error::io("postgres did not start: {}", tail(read_text(log))));
}

Status PostgresServer::launch() {
  const auto log = dir_ / "server.log";
  const Account account{switch_user_, uid_, gid_};
  auto pid = spawn(account,
                   {(bin_dir() / "postgres").string(), "-D", (dir_ / "data").string(), "-p",
                    std::to_string(port_), "-k", dir_.string(), "-c", "listen_addresses=127.0.0.1",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=100"},
                   log);
  if (!pid) {
    return fail(std::move(pid).error());
  }
  pid_ = *pid;
  // Ready when it answers a connection attempt: poll it, bounded, while the process lives.
  const std::string ping =
      "host=127.0.0.1 port=" + std::to_string(port_) + " user=sw dbname=postgres connect_timeout=2";
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    if (PQping(ping.c_str()) == PQPING_OK) {
      return {};
    }
    if (wait_exit(*pid, std::chrono::milliseconds(10))) {
      pid_ = -1;
      return fail(Error::unavailable("postgres exited at start: {}", tail(read_text(log))));
    }
  }
  return fail(Error::make(Code::Timeout, "postgres did not accept connections in 60 s: {}",
                          tail(read_text(log))));
}

Status PostgresServer::stop() {
  if (pid_ <= 0) {
    return {};
  }
  ::kill(pid_, SIGINT);
  if (!wait_exit(pid_, std::chrono::seconds(20))) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
  return {};
}

Status PostgresServer::start_again() {
  if (pid_ > 0) {
    return {};
  }
  // The port was ours a moment ago; a fast shutdown leaves no TIME_WAIT on a listening socket.
  return launch();
}

Status PostgresServer::restart() {
  SW_TRY(stop());
  return start_again();
}

PostgresServer::~PostgresServer() {
  // SIGINT: fast shutdown (backends end, no checkpoint wait beyond a short one); then SIGKILL.
  (void)stop();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string PostgresServer::uri(std::string_view database) const {
  return "postgresql://sw@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
}

std::string PostgresServer::log() const {
  return read_text(dir_ / "server.log");
}

Result<std::string> PostgresServer::create_database(std::string_view name) {
  auto conn = sql::pg::Connection::open(uri());
  if (!conn) {
    return fail(std::move(conn).error());
  }
  char* quoted = PQescapeIdentifier(conn->raw(), name.data(), name.size());
  if (quoted == nullptr) {
    return fail(Error::invalid_argument("bad database name {}", name));
  }
  // FILE_COPY: copies the template's files (its checkpoint is cheap with fsync=off) instead of
  // PostgreSQL 15's default of WAL-logging every page; about 0.1 s less per test here.
  const std::string statement = std::string("CREATE DATABASE ") + quoted + " STRATEGY = FILE_COPY";
  PQfreemem(quoted);
  SW_TRY(conn->exec_script(statement));
  return uri(name);
}

PostgresServer* shared_postgres(std::string* why) {
  static std::mutex mu;
  static std::unique_ptr<PostgresServer> server;
  static std::string failure;
  std::lock_guard lock(mu);
  if (!server && failure.empty()) {
    const auto started_at = Clock::now();
    auto started = PostgresServer::start();
    if (started) {
      server = std::move(*started);
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at);
      std::cout << "postgres-server: started on port " << server->port() << " in " << ms.count()
                << " ms\n";
    } else {
      failure = started.error().describe();
    }
  }
  if (why != nullptr) {
    *why = failure;
  }
  return server.get();
}

void open_test_database(PostgresServer** server, std::string* uri) {
  const std::string absent = PostgresServer::unavailable_reason();
  const char* ci = std::getenv("CI");
  const bool in_ci = ci != nullptr && std::string_view(ci) == "true";
  if (!absent.empty()) {
    if (in_ci) {
      FAIL() << "CI=true and the PostgreSQL server is missing: " << absent;
    }
    std::cout << "SKIPPED: " << absent << "\n";
    GTEST_SKIP() << absent;
  }
  std::string why;
  *server = shared_postgres(&why);
  ASSERT_NE(*server, nullptr) << "cannot start PostgreSQL: " << why;
  // One database per test: lowercase letters, digits and underscores from the test's name, and
  // a counter so that names cut at PostgreSQL's identifier limit (63) stay distinct.
  static int databases = 0;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "t_";
  for (const char c : std::string(info->test_suite_name()) + "_" + info->name()) {
    name += std::isalnum(static_cast<unsigned char>(c)) != 0
                ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                : '_';
  }
  name = name.substr(0, 55) + "_" + std::to_string(++databases);
  auto created = (*server)->create_database(name);
  ASSERT_TRUE(created) << created.error().describe();
  *uri = *created;
}

void PostgresTest::SetUp() {
  open_test_database(&server_, &uri_);
}

}  // namespace sw::testing
