// End to end: the real `studio-server` and `studio-worker` binaries under a stand-in for systemd.
// NOTIFY_SOCKET names a unix datagram socket of the test's and WATCHDOG_USEC asks for pings, as a
// Type=notify unit with WatchdogSec= does: each program says READY=1 once it listens (and the
// address it names answers), pings WATCHDOG=1 from its loop, and says STOPPING=1 at SIGTERM, then
// exits 0. JOURNAL_STREAM naming the program's stderr gives journald's line form.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/notify_socket.h"
#include "support/protocol_client.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using sw::testing::NotifySocket;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// One program under test: spawned with the environment the test gives (the service manager's
// variables), stdout and stderr into files. Killed if the test leaves it running.
class Child {
 public:
  Child(std::vector<std::string> args, const std::vector<std::string>& extra_env,
        const std::filesystem::path& out_file, const std::filesystem::path& err_file) {
    // The manager's variables come from the test only, never from whatever runs the test.
    const std::vector<std::string> dropped = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
                                              "JOURNAL_STREAM=", "STUDIO_WORKER_LOG="};
    std::vector<std::string> env = extra_env;
    for (char** entry = ::environ; entry != nullptr && *entry != nullptr; ++entry) {
      const std::string_view text(*entry);
      bool drop = false;
      for (const auto& name : dropped) drop = drop || text.starts_with(name);
      for (const auto& given : extra_env) {
        drop = drop || text.starts_with(given.substr(0, given.find('=') + 1));
      }
      if (!drop) env.emplace_back(text);
    }
    std::vector<char*> envp;
    for (auto& entry : env) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    // The files are opened here, not by the child: the test knows the inode stderr will have.
    const int out = ::open(out_file.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    const int err = ::open(err_file.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
    // posix_spawn: a forked child of this threaded test must not allocate before exec.
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out);
    ::close(err);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void terminate() const { ::kill(pid_, SIGTERM); }
  // The exit code once it exited (-1 when a signal ended it).
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "<device>:<inode>" of a file, as systemd puts it in JOURNAL_STREAM.
std::string journal_stream_of(const std::filesystem::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// The port of "http://127.0.0.1:<port>" at the end of `text`, or 0.
std::uint16_t port_in(const std::string& text) {
  std::smatch match;
  if (!std::regex_search(text, match, std::regex(R"(http://127\.0\.0\.1:(\d+))"))) return 0;
  return static_cast<std::uint16_t>(std::stoi(match[1]));
}

std::vector<std::string> manager_env(const NotifySocket& socket) {
  // 200 ms: a ping every 100 ms, so a handful arrive within a short test.
  return {"NOTIFY_SOCKET=" + socket.path().string(), "WATCHDOG_USEC=200000"};
}

TEST(ServiceManager, StudioServerIsReadyOnceItListensPingsAndSaysStopping) {
  sw::testing::TempDir dir;
  NotifySocket manager(dir.path() / "notify");
  // stderr is created first, so that JOURNAL_STREAM can name it: journald's line form.
  const auto err = dir.path() / "stderr";
  std::ofstream(err).close();
  auto env = manager_env(manager);
  env.push_back("JOURNAL_STREAM=" + journal_stream_of(err));
  env.push_back("STUDIO_WORKER_LOG=info");
  Child server({SW_STUDIO_SERVER_BIN, "serve", "--listen", "127.0.0.1:0",
                "--data-dir=" + (dir.path() / "data").string()},
               env, dir.path() / "stdout", err);

  const auto ready = manager.await("READY=1", 30s);
  ASSERT_TRUE(ready) << "no READY=1; stderr:\n" << read_text(err);
  const auto status = NotifySocket::value(*ready, "STATUS");
  ASSERT_TRUE(status) << *ready;
  EXPECT_THAT(*status, StartsWith("listening on http://127.0.0.1:"));
  // Ready means ready: the address it names answers.
  const auto port = port_in(*status);
  ASSERT_NE(port, 0) << *status;
  EXPECT_EQ(sw::testing::http_request(port, "GET", "/healthz").status, 200);

  EXPECT_TRUE(manager.await_count("WATCHDOG=1", 2, 30s))
      << manager.received().size() << " datagrams";
  server.terminate();
  const auto stopping = manager.await("STOPPING=1", 30s);
  ASSERT_TRUE(stopping);
  EXPECT_EQ(server.wait(), 0);

  // journald's form: each line starts with its priority, and no timestamp of ours follows.
  const auto lines = read_text(err);
  ASSERT_THAT(lines, HasSubstr("<6>info  studio_worker::studio::main: shutdown signal=15"))
      << lines;
  std::istringstream stream(lines);
  for (std::string line; std::getline(stream, line);) {
    EXPECT_TRUE(
        std::regex_match(line, std::regex(R"(<[3467]>(error|warn |info |debug|trace) \S+: .*)")))
        << line;
  }
}

// Why a program could not start is what it writes to stderr itself; on the journal that line is
// an error (`journalctl -p err` shows it), not info (a newcomer's packaged run found it unmarked).
TEST(ServiceManager, AStartThatFailsSaysWhyAtErrorPriorityOnTheJournal) {
  sw::testing::TempDir dir;
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor taken(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto err = dir.path() / "stderr";
  std::ofstream(err).close();
  Child server({SW_STUDIO_SERVER_BIN, "serve", "--listen",
                "127.0.0.1:" + std::to_string(taken.local_endpoint().port()),
                "--data-dir=" + (dir.path() / "data").string()},
               {"JOURNAL_STREAM=" + journal_stream_of(err)}, dir.path() / "stdout", err);
  EXPECT_EQ(server.wait(), 2);
  const auto lines = read_text(err);
  std::istringstream stream(lines);
  bool said_why = false;
  for (std::string line; std::getline(stream, line);) {
    EXPECT_TRUE(std::regex_match(line, std::regex(R"(<[3467]>.*)"))) << "no priority: " << line;
    said_why = said_why || (line.starts_with("<3>") && line.find("cannot listen") != line.npos);
  }
  EXPECT_TRUE(said_why) << lines;
}

TEST(ServiceManager, StudioServerWithoutAJournalKeepsItsTimestamps) {
  sw::testing::TempDir dir;
  NotifySocket manager(dir.path() / "notify");
  const auto err = dir.path() / "stderr";
  auto env = manager_env(manager);
  // A JOURNAL_STREAM that names some other file (inherited from a parent whose stderr was the
  // journal) is not this stderr.
  env.push_back("JOURNAL_STREAM=" + journal_stream_of(dir.path()));
  env.push_back("STUDIO_WORKER_LOG=info");
  Child server({SW_STUDIO_SERVER_BIN, "serve", "--listen", "127.0.0.1:0",
                "--data-dir=" + (dir.path() / "data").string()},
               env, dir.path() / "stdout", err);
  ASSERT_TRUE(manager.await("READY=1", 30s)) << read_text(err);
  server.terminate();
  ASSERT_TRUE(manager.await("STOPPING=1", 30s));
  EXPECT_EQ(server.wait(), 0);
  const auto lines = read_text(err);
  std::istringstream stream(lines);
  int count = 0;
  for (std::string line; std::getline(stream, line); ++count) {
    EXPECT_TRUE(std::regex_match(
        line, std::regex(R"(\d{4}-\d\d-\d\dT[0-9:.]+Z (error|warn |info ) \S+: .*)")))
        << line;
  }
  EXPECT_GT(count, 0);
}

TEST(ServiceManager, StudioWorkerIsReadyOnceItsLocalApiListensAndReportsItsRegistration) {
  sw::testing::TempDir dir;
  // A real studio for the worker to ask to join (its own stand-in manager says where it is).
  NotifySocket studio_manager(dir.path() / "studio-notify");
  Child studio({SW_STUDIO_SERVER_BIN, "serve", "--listen", "127.0.0.1:0",
                "--data-dir=" + (dir.path() / "studio").string()},
               {"NOTIFY_SOCKET=" + studio_manager.path().string(), "STUDIO_WORKER_LOG=warn"},
               dir.path() / "studio.out", dir.path() / "studio.err");
  const auto studio_ready = studio_manager.await("READY=1", 30s);
  ASSERT_TRUE(studio_ready) << read_text(dir.path() / "studio.err");
  const auto studio_port = port_in(*studio_ready);
  ASSERT_NE(studio_port, 0);

  const auto config_dir = dir.path() / "worker";
  std::filesystem::create_directories(config_dir);
  std::ofstream(config_dir / "config.toml")
      << "api_base_url = \"http://127.0.0.1:" << studio_port << "\"\n";
  NotifySocket manager(dir.path() / "notify");
  auto env = manager_env(manager);
  env.push_back("HOME=" + dir.path().string());  // the model cache (~/models) stays in the test
  const auto err = dir.path() / "worker.err";
  Child worker({SW_STUDIO_WORKER_BIN, "--config", (config_dir / "config.toml").string(), "run",
                "--local-api-port", "0"},
               env, dir.path() / "worker.out", err);

  const auto ready = manager.await("READY=1", 30s);
  ASSERT_TRUE(ready) << "no READY=1; stderr:\n" << read_text(err);
  const auto status = NotifySocket::value(*ready, "STATUS");
  ASSERT_TRUE(status) << *ready;
  EXPECT_THAT(*status, HasSubstr("local API http://127.0.0.1:"));
  const auto api_port = port_in(*status);
  ASSERT_NE(api_port, 0) << *status;
  EXPECT_EQ(sw::testing::http_request(api_port, "GET", "/healthz").status, 200);

  // The registration as it goes: the studio holds the request until an operator decides.
  bool pending = false;
  for (const auto& datagram : manager.received()) {
    pending = pending || datagram.find("registration pending") != std::string::npos;
  }
  while (!pending) {
    const auto next = manager.next(30s);
    ASSERT_TRUE(next) << "no STATUS= with the pending registration; stderr:\n" << read_text(err);
    pending = next->find("STATUS=registration pending") != std::string::npos;
  }

  EXPECT_TRUE(manager.await_count("WATCHDOG=1", 2, 30s))
      << manager.received().size() << " datagrams";
  worker.terminate();
  const auto stopping = manager.await("STOPPING=1", 30s);
  ASSERT_TRUE(stopping) << read_text(err);
  EXPECT_EQ(worker.wait(), 0) << read_text(err);
  studio.terminate();
  EXPECT_EQ(studio.wait(), 0);
}

}  // namespace
