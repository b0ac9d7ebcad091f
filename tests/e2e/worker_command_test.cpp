// End to end: the config-only commands of `studio-worker` (reference-worker.md §5.3) and their
// errors, as an operator types them.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <vector>

#include "support/temp_dir.h"

namespace {

using ::testing::HasSubstr;

struct Output {
  int exit_code = -1;
  std::string text;
};

Output run_worker(const std::string& args) {
  Output out;
  FILE* pipe = ::popen((std::string(SW_STUDIO_WORKER_BIN) + " " + args + " 2>&1").c_str(), "r");
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) out.text += buffer.data();
  const int status = ::pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(WorkerCommand, RegisterStatusThresholdAndConfigWorkOnTheConfigFile) {
  sw::testing::TempDir dir;
  const std::string config = "--config " + (dir.path() / "c" / "config.toml").string();
  auto status = run_worker(config + " status");
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_THAT(status.text, HasSubstr("registration: not registered (will auto-register"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "c" / "config.toml")) << "status writes nothing";

  auto reg = run_worker(config + " register --api-base-url http://127.0.0.1:9790");
  EXPECT_EQ(reg.exit_code, 0) << reg.text;
  EXPECT_THAT(run_worker(config + " status").text, HasSubstr("api_base_url: http://127.0.0.1:9790"));

  EXPECT_EQ(run_worker(config + " set-threshold 6.5").exit_code, 0);
  EXPECT_THAT(run_worker(config + " status").text, HasSubstr("vram_threshold_gb: 6.5"));
  auto set = run_worker(config + " config set models_root /srv/models");
  EXPECT_EQ(set.exit_code, 0) << set.text;
  EXPECT_THAT(run_worker(config + " status").text, HasSubstr("models_root: /srv/models"));
  auto unknown = run_worker(config + " config set vram_treshold_gb 3");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.text, HasSubstr("vram_treshold_gb: not a setting that can be changed here"));
  auto negative = run_worker(config + " set-threshold -1");
  EXPECT_EQ(negative.exit_code, 2);
  EXPECT_THAT(negative.text, HasSubstr("threshold must be >= 0"));

  // Secrets are redacted in `config`.
  std::ofstream(dir.path() / "c" / "config.toml", std::ios::app)
      << "worker_id = 'w-1'\nauth_token = 'sekrit-token'\n";
  auto printed = run_worker(config + " config");
  EXPECT_EQ(printed.exit_code, 0);
  EXPECT_THAT(printed.text, HasSubstr("auth_token = '<redacted>'"));
  EXPECT_EQ(printed.text.find("sekrit-token"), std::string::npos);
  EXPECT_THAT(run_worker(config + " status").text, HasSubstr("registration: approved as w-1"));

  // The reset clears the state (state.toml); the keys appended to config.toml by hand are the
  // operator's to remove, and are no longer read once state.toml exists.
  auto reset = run_worker(config + " register --reset");
  EXPECT_EQ(reset.exit_code, 0);
  EXPECT_EQ(read_file(dir.path() / "c" / "state.toml").find("auth_token"), std::string::npos);
  EXPECT_THAT(run_worker(config + " status").text,
              HasSubstr("registration: not registered (will auto-register"));
}

TEST(WorkerCommand, BadInputIsRefusedWithAMessageAndTheFileIsKept) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  const std::string config = "--config " + path.string();
  auto bad_url = run_worker(config + " register --api-base-url ftp://x");
  EXPECT_NE(bad_url.exit_code, 0);
  EXPECT_THAT(bad_url.text, HasSubstr("--api-base-url"));

  std::ofstream(path) << "api_base_url = 'http://x'\nvram_treshold_gb = 3\n";
  auto typo = run_worker(config + " status");
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_THAT(typo.text, HasSubstr("vram_treshold_gb: unknown key"));
  auto run = run_worker(config + " run --local-api-port 0");
  EXPECT_EQ(run.exit_code, 78) << run.text;  // EX_CONFIG
  EXPECT_THAT(run.text, HasSubstr("vram_treshold_gb"));
  EXPECT_THAT(read_file(path), HasSubstr("vram_treshold_gb = 3")) << "an invalid file is kept";

  EXPECT_EQ(run_worker("frobnicate").exit_code, 2);
  EXPECT_EQ(run_worker(config + " run --no-such-option").exit_code, 2);
  EXPECT_THAT(run_worker("--version").text, HasSubstr("studio-worker "));
}

// Every command exits as `run` does for a config or state file it cannot use: 78 (EX_CONFIG),
// whether the file does not parse or holds an unknown key; 2 stays for a bad value typed on the
// command line. (They used to exit 1 for a parse error and 2 for an unknown key.)
TEST(WorkerCommand, EveryCommandExits78ForAFileItCannotUseAnd2ForABadArgument) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  const std::string config = "--config " + path.string();
  const std::vector<std::string> commands = {"status",
                                             "config",
                                             "set-threshold 4",
                                             "config set vram_threshold_gb 4",
                                             "register --api-base-url http://127.0.0.1:9",
                                             "register --reset",
                                             "engines"};
  const std::string broken[] = {
      "api_base_url = 'http://x'\nvram_threshold_gb = 1\nvram_threshold_gb = 2\n",  // not TOML
      "api_base_url = 'http://x'\nvram_treshold_gb = 3\n",                          // unknown key
      "api_base_url = 'http://x'\nvram_threshold_gb = -1\n",                        // bad value
  };
  for (const auto& text : broken) {
    std::ofstream(path, std::ios::trunc) << text;
    for (const auto& command : commands) {
      auto out = run_worker(config + " " + command);
      EXPECT_EQ(out.exit_code, 78) << command << " on:\n" << text << out.text;
      EXPECT_THAT(out.text, HasSubstr(path.string())) << command;
    }
    EXPECT_EQ(read_file(path), text) << "a file that cannot be used was edited";
  }
  std::ofstream(path, std::ios::trunc) << "api_base_url = 'http://x'\n";
  // state.toml that does not parse: the same, for every command but `register --reset`
  // (worker_operator_test).
  std::ofstream(dir.path() / "state.toml") << "worker_id = 'a'\nworker_id = 'b'\n";
  for (const auto& command : {"status", "config", "set-threshold 4"}) {
    EXPECT_EQ(run_worker(config + " " + command).exit_code, 78) << command;
  }
  std::filesystem::remove(dir.path() / "state.toml");
  EXPECT_EQ(run_worker(config + " set-threshold -1").exit_code, 2);
  EXPECT_EQ(run_worker(config + " config set vram_threshold_gb lots").exit_code, 2);
  EXPECT_EQ(run_worker(config + " config set no_such_key 1").exit_code, 2);
  EXPECT_EQ(run_worker(config + " register --api-base-url ftp://x").exit_code, 2);
  EXPECT_EQ(read_file(path), "api_base_url = 'http://x'\n");
  // A command without its group is named in full.
  const auto doctor = run_worker(config + " doctor");
  EXPECT_EQ(doctor.exit_code, 2);
  EXPECT_THAT(doctor.text, HasSubstr("Did you mean `studio-worker engines doctor`?"));
}

// `only_when_idle = true` cannot be honoured (no presence probe): `run` refuses to start, names
// the setting and says why, and leaves the file as the operator wrote it.
TEST(WorkerCommand, RunRefusesOnlyWhenIdleAndSaysWhy) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  const std::string text = "api_base_url = 'http://127.0.0.1:9'\nonly_when_idle = true\n";
  std::ofstream(path) << text;
  auto run = run_worker("--config " + path.string() + " run");
  EXPECT_EQ(run.exit_code, 78) << run.text;
  EXPECT_THAT(run.text, HasSubstr("only_when_idle"));
  EXPECT_THAT(run.text, HasSubstr("no probe of the user's presence"));
  EXPECT_EQ(read_file(path), text);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "daemon.lock")) << "it never started";
}

// A daemon holds the config directory's lock but its local API does not answer (hung, or its
// local-api.json is stale): a change fails and says so, and the file is not edited behind the
// daemon's back (it would overwrite the edit).
TEST(WorkerCommand, AChangeWhileADaemonHoldsTheLockButDoesNotAnswerFailsAndEditsNothing) {
  sw::testing::TempDir dir;
  const auto path = dir.path() / "config.toml";
  const std::string text = "api_base_url = 'http://127.0.0.1:9'\n";
  std::ofstream(path) << text;
  const int lock = ::open((dir.path() / "daemon.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX | LOCK_NB), 0);
  std::ofstream(dir.path() / "local-api.json") << R"({"url":"http://127.0.0.1:1","token":"t"})";
  const std::string config = "--config " + path.string();

  auto set = run_worker(config + " set-threshold 3");
  EXPECT_EQ(set.exit_code, 1) << set.text;
  EXPECT_THAT(set.text, HasSubstr("holds the lock of this config directory, but its local API at "
                                  "http://127.0.0.1:1 does not answer"));
  auto reset = run_worker(config + " register --reset");
  EXPECT_EQ(reset.exit_code, 1) << reset.text;
  EXPECT_THAT(reset.text, HasSubstr("does not answer"));
  EXPECT_EQ(read_file(path), text);

  std::filesystem::remove(dir.path() / "local-api.json");
  auto status = run_worker(config + " status");
  EXPECT_EQ(status.exit_code, 1) << status.text;
  EXPECT_THAT(status.text, HasSubstr("its local API cannot be found"));
  ::close(lock);
  EXPECT_THAT(run_worker(config + " status").text, HasSubstr("daemon: not running"));
}

}  // namespace
