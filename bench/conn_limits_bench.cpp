// /healthz latency while a flood of idle TCP connections sits on studio-server (issue 16): the
// studio is a studio-server child started with a lowered soft open-file limit (1024 by default,
// the common distribution default), N idle connections (1,100 by default) come from four loopback
// addresses, and /healthz is asked 10 times, each on a fresh connection from 127.0.0.2 with a 3 s
// deadline. Before the studio raised its limit, accept failed with EMFILE and every /healthz
// timed out.
//
// Prints `<name>: <value> <unit>`:
//   studio_healthz_idle_flood_p50, _max (ms; over the requests that were answered),
//   studio_healthz_idle_flood_timeouts (requests not answered within 3 s),
//   studio_idle_flood_connected (idle connections the client could open).
//   build/ci/bench/conn_limits_bench [--server=PATH] [--idle=N] [--soft-limit=N]

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;

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

// One GET /healthz; the milliseconds until the status line arrived, or -1 past `deadline_ms`.
double healthz_ms(std::uint16_t port, int deadline_ms) {
  const auto start = Clock::now();
  const int fd = connect_from("127.0.0.2", port);
  if (fd < 0) return -1;
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: studio\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  std::string reply;
  std::array<char, 1024> buffer{};
  while (reply.find("\r\n") == std::string::npos) {
    const auto left =
        deadline_ms -
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    reply.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (reply.rfind("HTTP/1.1 200", 0) != 0) return -1;
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = SW_STUDIO_SERVER_BIN;
  int idle = 1100;
  rlim_t soft_limit = 1024;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--server=", 0) == 0) {
      server = arg.substr(9);
    } else if (arg.rfind("--idle=", 0) == 0) {
      idle = std::atoi(arg.c_str() + 7);
    } else if (arg.rfind("--soft-limit=", 0) == 0) {
      soft_limit = static_cast<rlim_t>(std::atoll(arg.c_str() + 13));
    } else {
      std::fprintf(stderr,
                   "usage: conn_limits_bench [--server=PATH] [--idle=N] [--soft-limit=N]\n");
      return 2;
    }
  }
  rlimit own{};
  ::getrlimit(RLIMIT_NOFILE, &own);
  own.rlim_cur = own.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &own);
  if (own.rlim_cur < static_cast<rlim_t>(idle) + 100 || own.rlim_max < soft_limit) {
    std::printf("SKIPPED: conn_limits_bench: the fd limit %llu is too low\n",
                static_cast<unsigned long long>(own.rlim_cur));
    return 0;
  }
  sw::testing::TempDir dir;
  int out[2];
  if (::pipe(out) != 0) return 1;
  const std::string data = "--data-dir=" + dir.path().string();
  std::vector<std::string> args = {server, "serve", "--listen", "127.0.0.1:0", data};
  std::vector<char*> argv_child;
  for (auto& a : args) argv_child.push_back(a.data());
  argv_child.push_back(nullptr);
  std::string log_env = "STUDIO_WORKER_LOG=error";
  std::vector<char*> envp;
  envp.push_back(log_env.data());
  for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "STUDIO_WORKER_LOG=", 18) != 0) envp.push_back(*e);
  }
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  ::posix_spawn_file_actions_addclose(&actions, out[0]);
  rlimit lowered = own;
  lowered.rlim_cur = soft_limit;
  ::setrlimit(RLIMIT_NOFILE, &lowered);  // inherited by the child
  pid_t pid = -1;
  const int spawned =
      ::posix_spawn(&pid, server.c_str(), &actions, nullptr, argv_child.data(), envp.data());
  ::setrlimit(RLIMIT_NOFILE, &own);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (spawned != 0) {
    std::fprintf(stderr, "conn_limits_bench: cannot start %s\n", server.c_str());
    return 1;
  }
  std::string banner;
  char c = 0;
  while (::read(out[0], &c, 1) == 1 && c != '\n') banner.push_back(c);
  const auto colon = banner.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(banner.c_str() + colon + 1);
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "conn_limits_bench: no banner: `%s`\n", banner.c_str());
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  }
  const std::array<const char*, 4> sources = {"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"};
  std::vector<int> held;
  for (int i = 0; i < idle; ++i) {
    const int fd = connect_from(sources[static_cast<std::size_t>(i) % sources.size()],
                                static_cast<std::uint16_t>(port));
    if (fd >= 0) held.push_back(fd);
  }
  std::vector<double> answered;
  int timeouts = 0;
  for (int i = 0; i < 10; ++i) {
    const double ms = healthz_ms(static_cast<std::uint16_t>(port), 3000);
    if (ms < 0) {
      ++timeouts;
    } else {
      answered.push_back(ms);
    }
  }
  for (const int fd : held) ::close(fd);
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  ::close(out[0]);
  std::sort(answered.begin(), answered.end());
  std::printf("studio_idle_flood_connected: %zu connections\n", held.size());
  if (!answered.empty()) {
    std::printf("studio_healthz_idle_flood_p50: %.2f ms\n", answered[answered.size() / 2]);
    std::printf("studio_healthz_idle_flood_max: %.2f ms\n", answered.back());
  }
  std::printf("studio_healthz_idle_flood_timeouts: %d requests_of_10\n", timeouts);
  return 0;
}
