// End to end: the `studio-server` binary under hostile input (issue 16, kinds 2 and 7a). Real
// sockets on 127.0.0.1 (and 127.0.0.2, another source address on Linux loopback):
// - started with a soft open-file limit of 1024, it raises the limit, and 1,100 idle connections
//   do not stop /healthz from answering;
// - a register-request body trickled byte by byte is cut with a 408, an announced 900 KB one is
//   refused with a 413 at once;
// - the per-address cap on unauthenticated connections refuses the next one from that address
//   with a 503 while another address still gets in;
// - a malformed chunked body gets a 400 that names the problem.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// `studio-server serve` as a child, optionally started with a lowered soft RLIMIT_NOFILE (set on
// this process around posix_spawn, which the child inherits); its log goes to a file.
class ServerProcess {
 public:
  ServerProcess(const std::filesystem::path& data_dir, std::vector<std::string> extra_args,
                rlim_t soft_fd_limit = 0)
      : log_path_(data_dir / "server.log") {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    std::vector<std::string> env_entries = {"STUDIO_WORKER_LOG=info"};
    for (char** entry = ::environ; entry != nullptr && *entry != nullptr; ++entry) {
      if (std::string_view(*entry).rfind("STUDIO_WORKER_LOG=", 0) != 0) {
        env_entries.emplace_back(*entry);
      }
    }
    std::vector<char*> envp;
    for (auto& entry : env_entries) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = {SW_STUDIO_SERVER_BIN, "serve", "--listen", "127.0.0.1:0",
                                     "--data-dir=" + data_dir.string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    ::posix_spawn_file_actions_addclose(&actions, out[0]);
    ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path_.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
    rlimit saved{};
    ::getrlimit(RLIMIT_NOFILE, &saved);
    if (soft_fd_limit != 0) {
      rlimit lowered = saved;
      lowered.rlim_cur = soft_fd_limit;
      EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
    }
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
    if (soft_fd_limit != 0) {
      ::setrlimit(RLIMIT_NOFILE, &saved);
    }
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    stdout_ = ::fdopen(out[0], "r");
    std::array<char, 1024> line{};
    std::string banner;
    while (std::fgets(line.data(), line.size(), stdout_) != nullptr) {
      banner += line.data();
      if (banner.find("then approve it") != std::string::npos) {
        break;
      }
    }
    const auto at = banner.find("http://127.0.0.1:");
    if (at != std::string::npos) {
      port_ = static_cast<std::uint16_t>(std::stoi(banner.substr(at + 17)));
    }
    EXPECT_NE(port_, 0) << "no banner; log:\n" << log();
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ != nullptr) {
      ::fclose(stdout_);
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const {
    std::ifstream file(log_path_);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

 private:
  std::filesystem::path log_path_;
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::uint16_t port_ = 0;
};

// A client socket from `source` (a loopback address) to 127.0.0.1:port; -1 on failure.
int connect_from(const char* source, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Reads until the peer closes or `timeout` passes; what arrived.
std::string read_until_close(int fd, std::chrono::milliseconds timeout) {
  std::string text;
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  std::array<char, 4096> buffer{};
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  return text;
}

// One request on a fresh connection from `source`; the whole answer (the server closes).
std::string exchange(const char* source, std::uint16_t port, const std::string& request,
                     std::chrono::milliseconds timeout = 20s) {
  const int fd = connect_from(source, port);
  if (fd < 0) return "connect failed";
  send_all(fd, request);
  std::string reply = read_until_close(fd, timeout);
  ::close(fd);
  return reply;
}

std::string healthz_request() {
  return "GET /healthz HTTP/1.1\r\nHost: studio\r\nConnection: close\r\n\r\n";
}

std::string status_line(const std::string& reply) {
  return reply.substr(0, reply.find("\r\n"));
}

// The soft "Max open files" of a process, from /proc.
std::string soft_fd_limit_of(pid_t pid) {
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream fields(line.substr(std::string("Max open files").size()));
      std::string soft;
      fields >> soft;
      return soft;
    }
  }
  return "";
}

class StudioLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    // This process holds the client ends of the idle connections.
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < 4096) {
      GTEST_SKIP() << "hard open-file limit " << limit.rlim_max << " is below what the test needs";
    }
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  sw::testing::TempDir dir_;
};

TEST_F(StudioLimits, RaisesTheSoftFdLimitAtStartAndLogsBothValues) {
  ServerProcess server(dir_.path(), {}, 1024);
  ASSERT_NE(server.port(), 0);
  const auto soft = soft_fd_limit_of(server.pid());
  EXPECT_NE(soft, "1024") << "the studio still runs with the soft limit it was started with";
  const auto log = server.log();
  EXPECT_THAT(log, HasSubstr("fd_limit"));
  EXPECT_THAT(log, HasSubstr("before=1024"));
  EXPECT_THAT(log, HasSubstr("after=" + soft));
}

TEST_F(StudioLimits, ElevenHundredIdleConnectionsDoNotStopHealthzUnderA1024SoftLimit) {
  ServerProcess server(dir_.path(), {}, 1024);
  ASSERT_NE(server.port(), 0);
  // Four source addresses, so that the per-address cap (512 by default) is not what is tested.
  const std::array<const char*, 4> sources = {"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"};
  std::vector<int> idle;
  for (int i = 0; i < 1100; ++i) {
    const int fd =
        connect_from(sources[static_cast<std::size_t>(i) % sources.size()], server.port());
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    idle.push_back(fd);
  }
  const auto reply = exchange("127.0.0.1", server.port(), healthz_request());
  EXPECT_EQ(status_line(reply), "HTTP/1.1 200 OK") << reply;
  for (const int fd : idle) ::close(fd);
}

TEST_F(StudioLimits, ATricklingRegisterRequestIsCutWith408) {
  ServerProcess server(dir_.path(), {});
  ASSERT_NE(server.port(), 0);
  const int fd = connect_from("127.0.0.1", server.port());
  ASSERT_GE(fd, 0);
  send_all(fd,
           "POST /graphics/api/workers/register-request HTTP/1.1\r\nHost: studio\r\n"
           "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{");
  // One byte a second until the studio answers (its default deadline for routes that need no
  // token is 10 s; main's was 600 s). The wait is a generous bound, not a timing assertion.
  std::string reply;
  const auto give_up = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < give_up) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) > 0) {
      reply = read_until_close(fd, 10s);
      break;
    }
    send_all(fd, " ");
  }
  ::close(fd);
  EXPECT_EQ(status_line(reply), "HTTP/1.1 408 Request Timeout") << reply;
  EXPECT_THAT(reply, HasSubstr("request body not complete"));
}

TEST_F(StudioLimits, ARegisterRequestAnnouncingALargeBodyIsRefusedBeforeItIsSent) {
  ServerProcess server(dir_.path(), {});
  ASSERT_NE(server.port(), 0);
  const auto reply =
      exchange("127.0.0.1", server.port(),
               "POST /graphics/api/workers/register-request HTTP/1.1\r\nHost: studio\r\n"
               "Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n{");
  EXPECT_EQ(status_line(reply), "HTTP/1.1 413 Payload Too Large") << reply;
}

TEST_F(StudioLimits, PerAddressCapRefusesTheNextConnectionWhileAnotherAddressGetsIn) {
  ServerProcess server(dir_.path(), {"--max-unauthenticated-per-address", "8"});
  ASSERT_NE(server.port(), 0);
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) {
    const int fd = connect_from("127.0.0.1", server.port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // Accepted in order: the ninth from the same address is over the cap.
  const int ninth = connect_from("127.0.0.1", server.port());
  ASSERT_GE(ninth, 0);
  const auto refused = read_until_close(ninth, 20s);
  ::close(ninth);
  EXPECT_EQ(status_line(refused), "HTTP/1.1 503 Service Unavailable") << refused;
  EXPECT_THAT(refused, HasSubstr("Retry-After:"));
  EXPECT_THAT(refused, HasSubstr("from this address"));

  const auto other = exchange("127.0.0.2", server.port(), healthz_request());
  EXPECT_EQ(status_line(other), "HTTP/1.1 200 OK") << other;
  for (const int fd : idle) ::close(fd);
}

TEST_F(StudioLimits, AMalformedChunkedBodyGetsA400NamingTheProblem) {
  ServerProcess server(dir_.path(), {});
  ASSERT_NE(server.port(), 0);
  const auto reply =
      exchange("127.0.0.1", server.port(),
               "POST /graphics/api/workers/register-request HTTP/1.1\r\nHost: studio\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               "zz\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(status_line(reply), "HTTP/1.1 400 Bad Request") << reply;
  EXPECT_THAT(reply, HasSubstr("malformed request body: bad chunk"));
}

}  // namespace
