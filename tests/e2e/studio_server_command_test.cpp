// End to end: the `studio-server` binary as an operator runs it. `serve` prints where it listens
// and its admin token; `workers pending|approve|reject|list|delete` work on its data directory;
// SIGTERM closes worker sessions with 1000 and exits 0; bad arguments fail with a message.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <map>
#include <regex>
#include <sstream>

#include "common/sha256.h"
#include "proto/codec.h"
#include "studio/data_dir_lock.h"
#include "support/protocol_client.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using sw::testing::http_request;

struct Output {
  int exit_code = -1;
  std::string text;
};

// `prefix` goes before the binary on the shell line: environment changes (`env -u NAME`,
// `NAME=value`) or a bound on a command that must not run forever (`timeout 30`).
Output run_cli(const std::string& args, const std::string& prefix = "") {
  Output out;
  FILE* pipe = ::popen((prefix + " " + SW_STUDIO_SERVER_BIN + " " + args + " 2>&1").c_str(), "r");
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    out.text += buffer.data();
  }
  const int status = ::pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// `studio-server serve` as a child; stdout is read until the banner's first lines.
class ServerProcess {
 public:
  explicit ServerProcess(const std::filesystem::path& data_dir) {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    // posix_spawn: a forked child of this threaded test must not allocate before exec.
    std::vector<std::string> env_entries = {"STUDIO_WORKER_LOG=warn"};
    for (char** entry = ::environ; entry != nullptr && *entry != nullptr; ++entry) {
      if (std::string_view(*entry).rfind("STUDIO_WORKER_LOG=", 0) != 0) env_entries.emplace_back(*entry);
    }
    std::vector<char*> envp;
    for (auto& entry : env_entries) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = {SW_STUDIO_SERVER_BIN, "serve", "--listen", "127.0.0.1:0",
                                     "--data-dir=" + data_dir.string()};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    ::posix_spawn_file_actions_addclose(&actions, out[0]);
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    stdout_ = ::fdopen(out[0], "r");
    std::array<char, 1024> line{};
    // The banner ends with the approve hint.
    while (std::fgets(line.data(), line.size(), stdout_) != nullptr) {
      banner_ += line.data();
      if (banner_.find("then approve it") != std::string::npos) {
        break;
      }
    }
    const auto at = banner_.find("http://127.0.0.1:");
    if (at != std::string::npos) {
      port_ = static_cast<std::uint16_t>(std::stoi(banner_.substr(at + 17)));
    }
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
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& banner() const { return banner_; }
  std::string admin_token() const {
    const auto at = banner_.find("admin token: ");
    return at == std::string::npos ? ""
                                   : banner_.substr(at + 13, banner_.find(' ', at + 13) - at - 13);
  }
  // SIGTERM, then the exit code (or -1 if it did not exit cleanly).
  int terminate() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::string banner_;
  std::uint16_t port_ = 0;
};

std::string register_request(std::uint16_t port, const std::string& install,
                             const std::string& secret) {
  nlohmann::json body = {
      {"installId", install},
      {"registrationSecretHash", sw::sha256_hex(secret)},
      {"capabilities", nlohmann::json::parse(sw::proto::encode(sw::testing::test_capabilities()))},
      {"userAgent", "studio-worker/e2e"}};
  const auto reply =
      http_request(port, "POST", "/graphics/api/workers/register-request", body.dump());
  EXPECT_EQ(reply.status, 200) << reply.body;
  return nlohmann::json::parse(reply.body, nullptr, false).value("requestId", "");
}

TEST(StudioServerCommand, AnOperatorApprovesAWorkerFromTheCommandLine) {
  sw::testing::TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_NE(server.port(), 0) << server.banner();
  EXPECT_THAT(server.banner(),
              HasSubstr("studio-worker register --api-base-url http://127.0.0.1:"));
  const auto token = server.admin_token();
  ASSERT_EQ(token.size(), 52u) << "printed once at first start: " << server.banner();
  EXPECT_EQ(http_request(server.port(), "GET", "/api/v1/workers", "", token).status, 200);

  const auto approve_me = register_request(server.port(), "install-approve", "secret-1");
  const auto reject_me = register_request(server.port(), "install-reject", "secret-2");
  const std::string data = " --data-dir " + dir.path().string();
  auto pending = run_cli("workers pending" + data);
  EXPECT_EQ(pending.exit_code, 0) << pending.text;
  EXPECT_THAT(pending.text, HasSubstr(approve_me));
  EXPECT_THAT(pending.text, HasSubstr("install=install-reject"));

  // A change while the studio runs goes through its admin API, with the admin token.
  const std::string admin = "STUDIO_SERVER_ADMIN_TOKEN=" + token;
  auto approved = run_cli("workers approve " + approve_me + data, admin);
  ASSERT_EQ(approved.exit_code, 0) << approved.text;
  EXPECT_THAT(approved.text, HasSubstr("as worker w-"));
  auto rejected = run_cli("workers reject " + reject_me + " --reason 'not ours'" + data, admin);
  ASSERT_EQ(rejected.exit_code, 0) << rejected.text;
  auto twice = run_cli("workers approve " + approve_me + data, admin);
  EXPECT_NE(twice.exit_code, 0);
  EXPECT_THAT(twice.text, HasSubstr("already approved"));

  // The running server sees the decisions on the next poll.
  auto poll = http_request(server.port(), "GET",
                           "/graphics/api/workers/register-requests/" + approve_me, "", "secret-1");
  auto decoded = sw::proto::decode_registration_poll(poll.body);
  ASSERT_TRUE(decoded && std::holds_alternative<sw::proto::RegistrationApproved>(*decoded))
      << poll.body;
  const auto credentials = std::get<sw::proto::RegistrationApproved>(*decoded);
  poll = http_request(server.port(), "GET", "/graphics/api/workers/register-requests/" + reject_me,
                      "", "secret-2");
  EXPECT_EQ(poll.body, R"({"status":"rejected","reason":"not ours"})");

  auto list = run_cli("workers list" + data);
  EXPECT_THAT(list.text, HasSubstr(credentials.worker_id));

  // A connected worker is closed with 1000 on SIGTERM, and the server exits 0.
  auto client = sw::testing::ProtocolClient::connect(server.port(), credentials.worker_id,
                                                     {credentials.auth_token, true});
  ASSERT_TRUE(client.has_value()) << client.error().message;
  (*client)->send(sw::proto::Hello{credentials.auth_token, sw::testing::test_capabilities()});
  auto welcome = (*client)->next_frame();
  ASSERT_TRUE(welcome && std::holds_alternative<sw::proto::Welcome>(*welcome));
  std::thread stopper([&server] { EXPECT_EQ(server.terminate(), 0); });
  EXPECT_EQ((*client)->wait_closed(10s), 1000);
  stopper.join();

  // With no studio running, the command works on the database itself (no token needed).
  auto deleted =
      run_cli("workers delete " + credentials.worker_id + data, "env -u STUDIO_SERVER_ADMIN_TOKEN");
  EXPECT_EQ(deleted.exit_code, 0) << deleted.text;
  EXPECT_THAT(run_cli("workers list" + data).text, HasSubstr("no workers"));
}

TEST(StudioServerCommand, ASecondServeOnTheSameDataDirectoryIsRefused) {
  sw::testing::TempDir dir;
  ServerProcess first(dir.path());
  ASSERT_NE(first.port(), 0) << first.banner();
  // Bounded: before issue 16 the second studio started on the same database and ran on.
  auto second =
      run_cli("serve --listen 127.0.0.1:0 --data-dir " + dir.path().string(), "timeout 30");
  EXPECT_NE(second.exit_code, 0) << second.text;
  EXPECT_NE(second.exit_code, 124) << "the second studio served: " << second.text;
  EXPECT_THAT(second.text, HasSubstr(dir.path().string()));
  EXPECT_THAT(second.text, HasSubstr("pid " + std::to_string(first.pid())));
  EXPECT_THAT(second.text, HasSubstr("http://127.0.0.1:" + std::to_string(first.port())));
  EXPECT_EQ(http_request(first.port(), "GET", "/healthz").status, 200) << "the first still serves";
  // Once the first has stopped, the directory is free again.
  EXPECT_EQ(first.terminate(), 0);
  ServerProcess third(dir.path());
  EXPECT_NE(third.port(), 0) << third.banner();
}

TEST(StudioServerCommand, AServeStartingWhileACommandWritesTheDataDirectoryIsRefused) {
  sw::testing::TempDir dir;
  // This test process stands in for a `workers delete` writing the database: it holds the lock
  // the way that command does.
  auto held = sw::studio::DataDirLock::try_acquire(dir.path(), "workers delete");
  ASSERT_TRUE(held) << held.error().message;
  auto serve =
      run_cli("serve --listen 127.0.0.1:0 --data-dir " + dir.path().string(), "timeout 30");
  EXPECT_NE(serve.exit_code, 0) << serve.text;
  EXPECT_NE(serve.exit_code, 124) << "the studio served: " << serve.text;
  EXPECT_THAT(serve.text, HasSubstr(dir.path().string()));
  EXPECT_THAT(serve.text,
              HasSubstr("studio-server workers delete (pid " + std::to_string(::getpid()) + ")"));
  EXPECT_THAT(serve.text, HasSubstr("run serve again once that command has finished"));
}

TEST(StudioServerCommand, AChangeWhileAStudioRunsIsRefusedWithoutTheAdminTokenAndSaysHow) {
  sw::testing::TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_NE(server.port(), 0) << server.banner();
  const auto request = register_request(server.port(), "install-refused", "secret-r");
  const std::string data = " --data-dir " + dir.path().string();
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());

  auto refused = run_cli("workers approve " + request + data, "env -u STUDIO_SERVER_ADMIN_TOKEN");
  EXPECT_NE(refused.exit_code, 0) << refused.text;
  EXPECT_THAT(refused.text, HasSubstr("pid " + std::to_string(server.pid())));
  EXPECT_THAT(refused.text, HasSubstr("STUDIO_SERVER_ADMIN_TOKEN"));
  EXPECT_THAT(refused.text, HasSubstr("curl -X POST -H 'Authorization: Bearer <admin token>' " +
                                      url + "/api/v1/workers/pending/" + request + "/approve"));
  // Nothing changed behind the studio's back.
  EXPECT_THAT(run_cli("workers pending" + data).text, HasSubstr(request));

  auto wrong = run_cli("workers approve " + request + data, "STUDIO_SERVER_ADMIN_TOKEN=adm-wrong");
  EXPECT_NE(wrong.exit_code, 0) << wrong.text;
  EXPECT_THAT(wrong.text, HasSubstr("refused the admin token"));
  EXPECT_THAT(wrong.text, HasSubstr("STUDIO_SERVER_ADMIN_TOKEN"));
  EXPECT_THAT(run_cli("workers pending" + data).text, HasSubstr(request));

  auto approved = run_cli("workers approve " + request + data,
                          "STUDIO_SERVER_ADMIN_TOKEN=" + server.admin_token());
  ASSERT_EQ(approved.exit_code, 0) << approved.text;
  EXPECT_THAT(approved.text, HasSubstr("as worker w-"));
  // The running studio decided it itself: the worker's poll gets its token at once.
  auto poll = http_request(server.port(), "GET",
                           "/graphics/api/workers/register-requests/" + request, "", "secret-r");
  auto decoded = sw::proto::decode_registration_poll(poll.body);
  EXPECT_TRUE(decoded && std::holds_alternative<sw::proto::RegistrationApproved>(*decoded))
      << poll.body;
}

TEST(StudioServerCommand, BadArgumentsFailWithAMessage) {
  auto out = run_cli("serve --listen nonsense");
  EXPECT_NE(out.exit_code, 0);
  EXPECT_THAT(out.text, HasSubstr("--listen"));
  out = run_cli("serve --listen 127.0.0.1:99999");
  EXPECT_NE(out.exit_code, 0);
  EXPECT_THAT(out.text, HasSubstr("bad port"));
  out = run_cli("serve --kind-run-limit sculpture=5");
  EXPECT_NE(out.exit_code, 0);
  EXPECT_THAT(out.text, HasSubstr("--kind-run-limit \"sculpture=5\""));
  out = run_cli("workers approve");
  EXPECT_NE(out.exit_code, 0);
  EXPECT_THAT(out.text, HasSubstr("request-id"));
  sw::testing::TempDir dir;
  out = run_cli("workers approve rr-nope --data-dir " + dir.path().string());
  EXPECT_NE(out.exit_code, 0);
  EXPECT_THAT(out.text, HasSubstr("no registration request rr-nope"));
}

// Issue 16: a JSON limit the studio could not honour (an offer carrying such a task could not
// reach any worker, which reads messages of at most 64 MiB) is refused at start, not half honoured.
TEST(StudioServerCommand, AJsonLimitNoWorkerCouldReceiveIsRefusedAtStart) {
  sw::testing::TempDir dir;
  // `timeout`: a studio that wrongly starts serving must not hang the test.
  auto out = run_cli("serve --listen 127.0.0.1:0 --max-json-mib 100 --data-dir " +
                         dir.path().string(),
                     "timeout 20");
  EXPECT_EQ(out.exit_code, 2) << out.text;
  EXPECT_THAT(out.text, HasSubstr("--max-json-mib 100: expected 0.01 to 48"));
  EXPECT_THAT(out.text, HasSubstr("64 MiB"));
  // The caps are shown where an operator looks.
  out = run_cli("serve --help");
  EXPECT_THAT(out.text, HasSubstr("max(16, 2 x this + 1) MiB"));
}

// Issue 17: two registration requests from one host (two installs on one machine) are told apart
// in `workers pending`: install id, the machine and user the worker named, the address and source
// port each request came from, and when it was first seen.
TEST(StudioServerCommand, WorkersPendingTellsTwoRequestsFromOneHostApart) {
  sw::testing::TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_NE(server.port(), 0) << server.banner();
  const auto first = register_request(server.port(), "install-first", "secret-1");
  const auto second = register_request(server.port(), "install-second", "secret-2");
  auto pending = run_cli("workers pending --data-dir " + dir.path().string());
  ASSERT_EQ(pending.exit_code, 0) << pending.text;
  std::map<std::string, std::string> line_of;
  std::istringstream lines(pending.text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("rr-", 0) == 0) line_of[line.substr(0, line.find(' '))] = line;
  }
  ASSERT_EQ(line_of.size(), 2u) << pending.text;
  const std::regex shape(
      R"(^rr-\S+  install=install-\w+  from=127\.0\.0\.1:(\d+)  host=test-host  user=tester  )"
      R"(agent=studio-worker/e2e  first_seen=\d{4}-\d\d-\d\dT\S+Z$)");
  std::smatch first_match, second_match;
  ASSERT_TRUE(std::regex_match(line_of[first], first_match, shape)) << line_of[first];
  ASSERT_TRUE(std::regex_match(line_of[second], second_match, shape)) << line_of[second];
  EXPECT_THAT(line_of[first], HasSubstr("install=install-first"));
  EXPECT_THAT(line_of[second], HasSubstr("install=install-second"));
  EXPECT_NE(first_match[1].str(), second_match[1].str()) << "each request's own source port";
}

}  // namespace
