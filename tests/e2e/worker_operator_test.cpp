// End to end (issue 17): the worker as an operator supervises it. Real `studio-worker` processes
// (and a real `studio-server` where a studio's answer is the subject), observed through what an
// operator sees: exit codes, stderr, the files in the config directory, the studio's lists.
//
// * config.toml is the operator's, state.toml the daemon's: a config that does not parse stops
//   `run` with its file, line and column and touches nothing; a reference-style config.toml with
//   the identity in it is migrated once and the worker keeps its id and token.
// * No default studio: `run` without a URL exits with the `register --api-base-url` hint.
// * Permanent conditions exit with their own codes (src/worker/exit_codes.h): 10 rejected,
//   11 auth_failed, 12 worker_deleted (revocation_test), 13 duplicate_worker, 14 a second daemon
//   (worker_farm_test), 78 the config.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/farm.h"
#include "support/http_test_server.h"
#include "support/temp_dir.h"

namespace sw::testing::farm {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Runs `studio-worker --config <config> <args…>`; its exit code once it exits within `timeout`,
// else it is killed and the answer is nullopt. Output (stdout and stderr) goes to `log`.
std::optional<int> run_worker(const fs::path& config, std::vector<std::string> args,
                              const fs::path& log, std::chrono::milliseconds timeout = 20s) {
  std::vector<std::string> argv = {SW_STUDIO_WORKER_BIN, "--config", config.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  fs::remove(log);
  pid_t pid = spawn(argv, log);
  int status = 0;
  if (!eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout)) {
    stop_process(pid, SIGKILL);
    return std::nullopt;
  }
  return WIFEXITED(status) ? std::optional<int>(WEXITSTATUS(status)) : std::nullopt;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// The value of `key = '…'` in a TOML file written by the worker.
std::string toml_value(const fs::path& path, const std::string& key) {
  const auto text = read_file(path);
  const auto at = text.find(key + " = '");
  if (at == std::string::npos) return "";
  const auto begin = at + key.size() + 4;
  return text.substr(begin, text.find('\'', begin) - begin);
}

// A daemon started directly (not through `register`, which would write config.toml first); its
// local API is found through local-api.json.
class Daemon {
 public:
  explicit Daemon(const fs::path& dir) : dir_(dir) {
    fs::remove(dir / "local-api.json");
    fs::remove(dir / "worker.log");
    pid_ = spawn({SW_STUDIO_WORKER_BIN, "--config", (dir / "config.toml").string(), "run",
                  "--registration-poll-ms", "200", "--local-api-port", "0"},
                 dir / "worker.log");
  }
  ~Daemon() { stop_process(pid_, SIGKILL); }
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    int status = 0;
    if (!eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout)) {
      return std::nullopt;
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  int terminate() { return stop_process(pid_, SIGTERM); }
  json status() const {
    auto discovery = json::parse(read_file(dir_ / "local-api.json"), nullptr, false);
    if (!discovery.is_object()) return json();
    const std::string url = discovery.value("url", "");
    const auto port = static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
    return json::parse(
        http_request(port, "GET", "/daemon/status", "", discovery.value("token", "")).body, nullptr,
        false);
  }
  bool wait_session(const std::string& state) const {
    return eventually([&] {
      const auto now = status();
      return now.is_object() && now["session"].value("state", "") == state;
    });
  }
  std::string log() const { return read_file(dir_ / "worker.log"); }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
};

// One duplicate key appended to config.toml: `run` names the file, line and column, exits 78,
// and touches nothing: the file is byte for byte the same, nothing appears beside it (no
// quarantined copy, no state, no lock), and the studio it names never hears from it. (It used to
// move the file aside, start from defaults and send a registration request to the hosted
// default studio.)
TEST(WorkerOperator, AConfigThatDoesNotParseStopsRunAndTouchesNothing) {
  sw::testing::TempDir dir;
  sw::testing::HttpTestServer studio;
  const auto config = dir.path() / "w" / "config.toml";
  const std::string text =
      "api_base_url = '" + studio.url("/") + "'\nvram_threshold_gb = 8\nvram_threshold_gb = 6\n";
  write(config, text);
  const auto log = dir.path() / "run.log";
  const auto code = run_worker(config, {"run", "--local-api-port", "0"}, log);
  ASSERT_TRUE(code) << "run kept going on a config that does not parse\n" << read_file(log);
  EXPECT_EQ(*code, 78) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr(config.string() + ":3:"));
  EXPECT_THAT(read_file(log), HasSubstr("vram_threshold_gb"));
  EXPECT_EQ(read_file(config), text);
  EXPECT_EQ(names_in(config.parent_path()), std::vector<std::string>{"config.toml"});
  EXPECT_TRUE(studio.requests().empty()) << "the daemon contacted a studio";
  // `status` and `config` refuse the same file the same way.
  for (const char* command : {"status", "config"}) {
    const auto refused = run_worker(config, {command}, log);
    EXPECT_TRUE(refused && *refused != 0) << command;
    EXPECT_THAT(read_file(log), HasSubstr(config.string() + ":3:")) << command;
  }
}

// No studio is contacted that the operator did not name: without a config, or with one that
// names no studio, `run` exits 78 with the `register --api-base-url` hint and writes nothing.
TEST(WorkerOperator, RunWithoutAStudioUrlExitsWithTheRegisterHint) {
  sw::testing::TempDir dir;
  const auto missing = dir.path() / "fresh" / "config.toml";
  const auto log = dir.path() / "run.log";
  const auto code = run_worker(missing, {"run", "--local-api-port", "0"}, log);
  ASSERT_TRUE(code) << "run started without a studio URL\n" << read_file(log);
  EXPECT_EQ(*code, 78) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("studio-worker register --api-base-url URL"));
  EXPECT_FALSE(fs::exists(missing.parent_path())) << "run created files for a config it lacks";

  const auto no_url = dir.path() / "set" / "config.toml";
  write(no_url, "vram_threshold_gb = 4\n");
  const auto again = run_worker(no_url, {"run", "--local-api-port", "0"}, log);
  ASSERT_TRUE(again) << read_file(log);
  EXPECT_EQ(*again, 78) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("studio-worker register --api-base-url URL"));
  EXPECT_EQ(read_file(no_url), "vram_threshold_gb = 4\n");
  // `register --api-base-url` fixes it; `status` shows the studio, and no default one before.
  EXPECT_EQ(run_worker(no_url, {"status"}, log), 0);
  EXPECT_THAT(read_file(log), HasSubstr("api_base_url: (none; run `studio-worker register"));
  EXPECT_EQ(run_worker(no_url, {"register", "--api-base-url", "http://127.0.0.1:9"}, log), 0);
  EXPECT_THAT(read_file(no_url), HasSubstr("api_base_url = 'http://127.0.0.1:9'"));
  EXPECT_THAT(read_file(no_url), HasSubstr("vram_threshold_gb = 4"));
}

// The reference's auto-update settings are accepted whatever their value (nothing reads them, so
// none stops `run`: an interval under 60 s and a feed that is not a URL used to exit 78), and
// reported inert by `status` (from the file and from the live daemon alike), `config` and the
// daemon's start log.
TEST(WorkerOperator, SettingsForFeaturesThatDoNotExistAreReportedInert) {
  sw::testing::TempDir dir;
  const auto config = dir.path() / "w" / "config.toml";
  write(config,
        "api_base_url = 'http://127.0.0.1:9'\nauto_update_enabled = true\n"
        "auto_update_interval_secs = 30\nauto_update_feed = 'not a url'\nstream_port = 99999\n");
  const auto log = dir.path() / "out.log";
  ASSERT_EQ(run_worker(config, {"status"}, log), 0) << read_file(log);
  EXPECT_THAT(read_file(log),
              HasSubstr("auto_update: true (inert: this build has no auto-updater)"));
  EXPECT_THAT(read_file(log), HasSubstr("update_interval: 30s (inert"));
  ASSERT_EQ(run_worker(config, {"config"}, log), 0) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("auto_update_feed = 'not a url'  # inert"));
  EXPECT_THAT(read_file(log), HasSubstr("stream_port = 99999  # inert"));
  Daemon daemon(dir.path() / "w");
  ASSERT_TRUE(eventually([&] { return daemon.log().find("daemon.started") != std::string::npos; }))
      << daemon.log();
  EXPECT_THAT(daemon.log(), HasSubstr("config.inert_setting key=auto_update_feed"));
  ASSERT_EQ(run_worker(config, {"status"}, log), 0) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("daemon: running"));
  EXPECT_THAT(read_file(log),
              HasSubstr("auto_update: true (inert: this build has no auto-updater)"));
  EXPECT_THAT(read_file(log), HasSubstr("update_interval: 30s (inert"));
  EXPECT_THAT(read_file(log), HasSubstr("auto_start: true (inert"));
  EXPECT_EQ(daemon.terminate(), 0);
}

// A state.toml that does not parse (a duplicate key) stops every command, `register` included,
// and is left as it is; `register --reset` (no daemon) recovers: it moves the file aside to
// state.toml.broken-<ts> (0600, bytes kept), says so, and writes a fresh state the worker runs
// with. (It used to exit with the parse error, leaving the operator to hand-edit the file.)
TEST(WorkerOperator, RegisterResetMovesAStateFileThatDoesNotParseAside) {
  sw::testing::TempDir dir;
  const auto wdir = dir.path() / "w";
  const auto config = wdir / "config.toml";
  write(config, "api_base_url = 'http://127.0.0.1:9'\n");
  const std::string broken = "worker_id = 'w-1'\nauth_token = 't'\nworker_id = 'w-2'\n";
  write(wdir / "state.toml", broken);
  const auto log = dir.path() / "out.log";
  EXPECT_EQ(run_worker(config, {"register"}, log), 78) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr((wdir / "state.toml").string() + ":3:"));
  EXPECT_EQ(read_file(wdir / "state.toml"), broken);
  EXPECT_EQ(names_in(wdir), (std::vector<std::string>{"config.toml", "state.toml"}));

  ASSERT_EQ(run_worker(config, {"register", "--reset"}, log), 0) << read_file(log);
  EXPECT_THAT(read_file(log),
              HasSubstr("moved aside to " + (wdir / "state.toml.broken-").string()));
  const auto names = names_in(wdir);
  ASSERT_EQ(names.size(), 3u) << ::testing::PrintToString(names);
  EXPECT_EQ(names[0], "config.toml");
  EXPECT_EQ(names[1], "state.toml");
  ASSERT_THAT(names[2], ::testing::StartsWith("state.toml.broken-"));
  EXPECT_EQ(read_file(wdir / names[2]), broken);
  EXPECT_EQ(fs::status(wdir / names[2]).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_EQ(run_worker(config, {"status"}, log), 0) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("registration: not registered"));
  EXPECT_EQ(read_file(config), "api_base_url = 'http://127.0.0.1:9'\n");
}

// A reference-style config.toml holds the worker's identity. The daemon reads it, writes
// state.toml once (0600) and says so naming the keys (never the values), keeps its id and token
// (the studio sees no new registration request), and leaves config.toml byte for byte as the
// operator wrote it. The next start reads state.toml and says the keys in config.toml are ignored.
TEST(WorkerOperator, AReferenceConfigIsMigratedOnceAndTheWorkerKeepsItsIdentity) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  std::string worker_id, token;
  {
    Worker first(dir.path() / "w1", studio);
    worker_id = studio.approve_next();
    ASSERT_TRUE(first.wait_session("connected")) << first.log();
    token = toml_value(dir.path() / "w1" / "state.toml", "auth_token");
    ASSERT_EQ(token.size(), 64u);
    ASSERT_EQ(first.terminate(), 0);
  }
  const auto wdir = dir.path() / "w2";
  const std::string text = "# written by the reference worker\napi_base_url = '" + studio.url() +
                           "'\nworker_id = '" + worker_id + "'\nauth_token = '" + token +
                           "'\nvram_threshold_gb = 12.0\nauto_start = true\n";
  write(wdir / "config.toml", text);
  {
    Daemon daemon(wdir);
    ASSERT_TRUE(daemon.wait_session("connected")) << daemon.log();
    EXPECT_EQ(daemon.status().value("workerId", ""), worker_id);
    EXPECT_THAT(daemon.log(), HasSubstr("state.migrated"));
    EXPECT_THAT(daemon.log(), HasSubstr("keys=auth_token,worker_id"));
    EXPECT_EQ(daemon.log().find(token), std::string::npos) << "the token was logged";
    EXPECT_EQ(daemon.terminate(), 0);
  }
  const auto pending = json::parse(studio.api("GET", "/api/v1/workers/pending").body);
  EXPECT_TRUE(pending["pending"].empty()) << "the migrated worker registered again: " << pending;
  EXPECT_EQ(read_file(wdir / "config.toml"), text);
  EXPECT_EQ(toml_value(wdir / "state.toml", "worker_id"), worker_id);
  EXPECT_EQ(toml_value(wdir / "state.toml", "auth_token"), token);
  EXPECT_EQ(fs::status(wdir / "state.toml").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  Daemon again(wdir);
  ASSERT_TRUE(again.wait_session("connected")) << again.log();
  EXPECT_EQ(again.log().find("state.migrated"), std::string::npos) << "migrated twice";
  EXPECT_THAT(again.log(), HasSubstr("config.state_keys_ignored"));
  EXPECT_EQ(again.terminate(), 0);
  EXPECT_EQ(read_file(wdir / "config.toml"), text);
}

// The studio operator rejects the request: the daemon exits 10 with the reset guidance. A
// restart before `register --reset` exits 10 again at once and asks the studio nothing; after the
// reset it asks again.
TEST(WorkerOperator, ARejectedWorkerExits10UntilTheOperatorResetsIt) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker worker(dir.path() / "w", studio);
  std::string request_id;
  ASSERT_TRUE(eventually([&] {
    auto reply = json::parse(studio.api("GET", "/api/v1/workers/pending").body, nullptr, false);
    if (!reply.is_object() || !reply["pending"].is_array() || reply["pending"].empty()) {
      return false;
    }
    request_id = reply["pending"][0].value("requestId", "");
    return true;
  })) << worker.log();
  const auto rejected = studio.api("POST", "/api/v1/workers/pending/" + request_id + "/reject",
                                   R"({"reason":"not on this farm"})");
  ASSERT_EQ(rejected.status, 200) << rejected.body;
  const auto code = worker.wait_exit(20s);
  ASSERT_TRUE(code) << "the rejected daemon kept running\n" << worker.log();
  EXPECT_EQ(*code, 10) << worker.log();
  EXPECT_THAT(worker.log(), HasSubstr("registration rejected by the studio operator: not on "
                                      "this farm"));
  EXPECT_THAT(worker.log(), HasSubstr("studio-worker register --reset"));

  const auto log = dir.path() / "restart.log";
  const auto restarted = run_worker(worker.config(), {"run", "--local-api-port", "0"}, log);
  EXPECT_EQ(restarted, 10) << read_file(log);
  EXPECT_THAT(read_file(log), HasSubstr("not on this farm"));
  const auto none = json::parse(studio.api("GET", "/api/v1/workers/pending").body);
  EXPECT_TRUE(none["pending"].empty()) << "a restart asked again without a reset: " << none;
  ASSERT_EQ(run_worker(worker.config(), {"status"}, log), 0);
  EXPECT_THAT(read_file(log), HasSubstr("registration: rejected by the studio operator"));

  ASSERT_EQ(run_worker(worker.config(), {"register", "--reset"}, log), 0) << read_file(log);
  worker.start();
  EXPECT_TRUE(eventually([&] {
    auto reply = json::parse(studio.api("GET", "/api/v1/workers/pending").body, nullptr, false);
    return reply.is_object() && reply["pending"].is_array() && !reply["pending"].empty();
  })) << worker.log();
}

// Credentials the studio does not accept (here: a reference config whose worker the studio never
// approved): 401 on the upgrade, exit 11, one attempt.
TEST(WorkerOperator, CredentialsTheStudioRefusesExit11) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  const auto wdir = dir.path() / "w";
  write(wdir / "config.toml", "api_base_url = '" + studio.url() +
                                  "'\nworker_id = 'w-unknown'\nauth_token = '" +
                                  std::string(64, 'f') + "'\n");
  Daemon daemon(wdir);
  const auto code = daemon.wait_exit(20s);
  ASSERT_TRUE(code) << "the daemon kept running after the studio refused its token\n"
                    << daemon.log();
  EXPECT_EQ(*code, 11) << daemon.log();
  EXPECT_THAT(daemon.log(), HasSubstr("401"));
}

// Two machines with one identity (a copied state.toml): when the second connects, the studio
// ends the first one's session with duplicate_worker, and the first daemon exits 13 instead of
// reconnecting and taking the identity back in a loop. The second stays connected.
TEST(WorkerOperator, AWorkerReplacedByACopyOfItselfExits13) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker original(dir.path() / "w1", studio);
  const auto worker_id = studio.approve_next();
  ASSERT_TRUE(original.wait_session("connected")) << original.log();

  const auto copy_dir = dir.path() / "w2";
  write(copy_dir / "config.toml", "api_base_url = '" + studio.url() + "'\n");
  fs::copy_file(dir.path() / "w1" / "state.toml", copy_dir / "state.toml");
  Daemon copy(copy_dir);
  ASSERT_TRUE(copy.wait_session("connected")) << copy.log();
  const auto code = original.wait_exit(20s);
  ASSERT_TRUE(code) << "the replaced daemon kept running\n" << original.log();
  EXPECT_EQ(*code, 13) << original.log();
  EXPECT_THAT(original.log(), HasSubstr("duplicate_worker"));
  EXPECT_EQ(copy.status().value("workerId", ""), worker_id);
  EXPECT_EQ(copy.status()["session"].value("state", ""), "connected");
  EXPECT_EQ(copy.terminate(), 0);
}

}  // namespace
}  // namespace sw::testing::farm
