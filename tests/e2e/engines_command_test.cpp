// End to end: `studio-worker engines` and `studio-worker engines doctor` as an operator runs them,
// with real processes: the worker binary, the fake runner playing llama-server (its `--version`
// answers as llama.cpp's does), libespeak-ng linked in. The environment is cleared of runner
// variables and PATH points at an empty folder, so what the machine has is exactly what a test
// puts there. A real llama-server is used where STUDIO_WORKER_LLAMA_SERVER names one (CI).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"
#include "support/test_models.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

struct Output {
  int exit_code = -1;
  std::string out;  // stdout: the report
  std::string err;  // stderr: logs and errors
  std::string all() const { return out + err; }
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A worker command with a clean environment: no runner variables, PATH = an empty folder (plus
// whatever the test links there), a config file of the test's own.
class EnginesCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(bin_dir());
    config_ = dir_.path() / "config.toml";
  }
  fs::path bin_dir() const { return dir_.path() / "bin"; }
  void link_on_path(const std::string& name) {
    fs::create_symlink(SW_FAKE_RUNNER_BIN, bin_dir() / name);
  }
  void write_config(const std::string& toml) {
    std::ofstream(config_) << "api_base_url = 'http://127.0.0.1:9790'\n" << toml;
  }

  Output run(const std::string& env, const std::string& args) {
    const fs::path err_file = dir_.path() / "stderr.txt";
    const std::string command =
        "/usr/bin/env -u STUDIO_WORKER_LLAMA_SERVER -u STUDIO_WORKER_WHISPER_SERVER "
        "-u STUDIO_WORKER_SD_CLI -u STUDIO_WORKER_SD_SERVER -u STUDIO_WORKER_LOG "
        "-u FAKE_RUNNER_FAIL_START -u FAKE_RUNNER_VERSION PATH=" +
        bin_dir().string() + " " + env + " " + SW_STUDIO_WORKER_BIN + " --config " +
        config_.string() + " " + args + " 2>" + err_file.string();
    Output output;
    FILE* pipe = ::popen(command.c_str(), "r");
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) output.out += buffer.data();
    const int status = ::pclose(pipe);
    output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    output.err = read_text(err_file);
    return output;
  }

  static std::string fake_as_llama() {
    return std::string("STUDIO_WORKER_LLAMA_SERVER=") + SW_FAKE_RUNNER_BIN;
  }

  // The line of the report that starts with `engine`.
  static std::string line_of(const std::string& report, const std::string& engine) {
    std::size_t at = 0;
    while (at < report.size()) {
      const std::size_t end = report.find('\n', at);
      std::string line = report.substr(at, end == std::string::npos ? end : end - at);
      if (line.rfind(engine + " ", 0) == 0) return line;
      if (end == std::string::npos) break;
      at = end + 1;
    }
    return {};
  }

  sw::testing::TempDir dir_;
  fs::path config_;
};

TEST_F(EnginesCommand, ListsMissingRunnersWithWhatToInstallAndTheLinkedEspeak) {
  auto listed = run("", "engines");
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  EXPECT_THAT(line_of(listed.out, "llama-cpp"), HasSubstr("missing"));
  EXPECT_THAT(line_of(listed.out, "llama-cpp"), HasSubstr("llama-server not found"));
  EXPECT_THAT(listed.out, HasSubstr("to install: install llama.cpp's llama-server and put it on "
                                    "PATH, or set llama_server_path in config.toml or "
                                    "STUDIO_WORKER_LLAMA_SERVER"));
  EXPECT_THAT(line_of(listed.out, "whisper-cpp"), HasSubstr("missing"));
  EXPECT_THAT(line_of(listed.out, "sd-cpp"), HasSubstr("missing"));
  EXPECT_THAT(line_of(listed.out, "espeak-ng"), HasSubstr("found"));
  EXPECT_THAT(line_of(listed.out, "espeak-ng"), HasSubstr("libespeak-ng 1."));
  EXPECT_THAT(line_of(listed.out, "synthetic"), HasSubstr("built in, enabled"));
}

TEST_F(EnginesCommand, FindsLlamaServerThroughTheEnvironmentWithItsVersion) {
  auto listed = run(fake_as_llama(), "engines");
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  const std::string line = line_of(listed.out, "llama-cpp");
  EXPECT_THAT(line, HasSubstr("found"));
  EXPECT_THAT(line, HasSubstr(std::string("llama-server ") + SW_FAKE_RUNNER_BIN +
                              " (from $STUDIO_WORKER_LLAMA_SERVER)"));
  // The version line, not the backend chatter printed before it.
  EXPECT_THAT(listed.out, HasSubstr("  version: 0.0.1 (fake-runner)\n"));
  EXPECT_THAT(listed.out, Not(HasSubstr("load_backend")));
  EXPECT_THAT(listed.out, Not(HasSubstr("install llama.cpp's llama-server")));
}

TEST_F(EnginesCommand, ConfigPathWinsOverTheEnvironmentAndPathIsSearchedLast) {
  write_config(std::string("llama_server_path = '") + SW_FAKE_RUNNER_BIN + "'\n");
  link_on_path("whisper-server");
  auto listed = run("STUDIO_WORKER_LLAMA_SERVER=/nonexistent/llama-server", "engines");
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  EXPECT_THAT(line_of(listed.out, "llama-cpp"), HasSubstr("(from config llama_server_path)"));
  EXPECT_THAT(
      line_of(listed.out, "whisper-cpp"),
      HasSubstr("whisper-server " + (bin_dir() / "whisper-server").string() + " (from PATH)"));
  // A program without --version is reported by its complaint, not by a line of its usage text.
  EXPECT_THAT(listed.out, HasSubstr("version unknown: --version gave no version (exit code 0): "
                                    "error: unknown argument: --version\n"));

  // A configured path that is not a program is reported, not silently replaced by PATH.
  link_on_path("llama-server");
  write_config("llama_server_path = '/nonexistent/llama-server'\n");
  auto broken = run("", "engines");
  EXPECT_THAT(line_of(broken.out, "llama-cpp"), HasSubstr("missing"));
  EXPECT_THAT(line_of(broken.out, "llama-cpp"),
              HasSubstr("llama-server is configured as /nonexistent/llama-server but that is not "
                        "an executable file"));
  // The doctor counts a named-but-broken program as a failure (a typo leaves the fleet member
  // without the engine), not as an engine this machine simply lacks.
  auto doctor = run("", "engines doctor");
  EXPECT_EQ(doctor.exit_code, 1) << doctor.all();
  EXPECT_THAT(doctor.out, HasSubstr("/nonexistent/llama-server"));
}

TEST_F(EnginesCommand, SyntheticSwitchedOffInConfigIsListedAndNotRunByTheDoctor) {
  write_config("[engines]\nsynthetic = false\n");
  auto listed = run("", "engines");
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  EXPECT_THAT(line_of(listed.out, "synthetic"),
              HasSubstr("disabled built in, switched off in config ([engines] synthetic = false)"));
  auto doctor = run("", "engines doctor");
  ASSERT_EQ(doctor.exit_code, 0) << doctor.all();
  EXPECT_THAT(line_of(doctor.out, "synthetic"), HasSubstr("disabled switched off in config"));
  EXPECT_THAT(line_of(doctor.out, "espeak-ng"), HasSubstr(" ok "));
}

TEST_F(EnginesCommand, JsonOutputParsesAndSaysWhereEachProgramWasFound) {
  auto listed = run(fake_as_llama(), "engines --json");
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  const auto json = nlohmann::json::parse(listed.out);  // throws (fails the test) if not JSON
  std::map<std::string, nlohmann::json> by_engine;
  for (const auto& engine : json.at("engines")) by_engine[engine.at("engine")] = engine;
  ASSERT_EQ(by_engine.size(), 5u) << listed.out;

  const auto& llama = by_engine.at("llama-cpp");
  EXPECT_EQ(llama.at("found"), true);
  EXPECT_TRUE(llama.at("hint").is_null());
  const auto& server = llama.at("programs").at(0);
  EXPECT_EQ(server.at("program"), "llama-server");
  EXPECT_EQ(server.at("path"), SW_FAKE_RUNNER_BIN);
  EXPECT_EQ(server.at("foundVia"), "environment");
  EXPECT_EQ(server.at("envVar"), "STUDIO_WORKER_LLAMA_SERVER");
  EXPECT_EQ(server.at("version"), "version: 0.0.1 (fake-runner)");

  const auto& whisper = by_engine.at("whisper-cpp");
  EXPECT_EQ(whisper.at("found"), false);
  EXPECT_THAT(whisper.at("hint").get<std::string>(), HasSubstr("whisper-server"));
  EXPECT_TRUE(whisper.at("programs").at(0).at("path").is_null());

  const auto& espeak = by_engine.at("espeak-ng");
  EXPECT_EQ(espeak.at("found"), true);
  EXPECT_EQ(espeak.at("library").at("name"), "libespeak-ng");
  EXPECT_FALSE(espeak.at("library").at("version").get<std::string>().empty());

  EXPECT_EQ(by_engine.at("synthetic").at("builtIn"), true);
  EXPECT_EQ(by_engine.at("synthetic").at("enabled"), true);
}

TEST_F(EnginesCommand, AProgramThatHangsOnVersionDoesNotHangTheCommand) {
  auto listed = run(fake_as_llama() + " FAKE_RUNNER_VERSION=hang", "engines");
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  EXPECT_THAT(line_of(listed.out, "llama-cpp"), HasSubstr("found"));
  EXPECT_THAT(listed.out, HasSubstr("version unknown: did not answer --version within"));
}

TEST_F(EnginesCommand, DoctorRunsEspeakAndSyntheticForRealWithoutAnyRunner) {
  auto doctor = run("", "engines doctor");
  ASSERT_EQ(doctor.exit_code, 0) << doctor.all();
  EXPECT_THAT(line_of(doctor.out, "espeak-ng"), HasSubstr(" ok "));
  EXPECT_THAT(line_of(doctor.out, "espeak-ng"), HasSubstr("s of speech in"));
  EXPECT_THAT(line_of(doctor.out, "synthetic"), HasSubstr(" ok "));
  EXPECT_THAT(line_of(doctor.out, "synthetic"), HasSubstr("64x64 webp image in"));
  EXPECT_THAT(line_of(doctor.out, "llama-cpp"), HasSubstr("missing"));
  EXPECT_THAT(doctor.out, HasSubstr("every engine found passed its check"));
}

TEST_F(EnginesCommand, DoctorSkipsAnEngineThatNeedsAModelSayingWhich) {
  link_on_path("whisper-server");
  auto doctor = run(fake_as_llama(), "engines doctor");
  ASSERT_EQ(doctor.exit_code, 0) << doctor.all();
  EXPECT_THAT(line_of(doctor.out, "llama-cpp"), HasSubstr("skipped  needs --model FILE"));
  EXPECT_THAT(line_of(doctor.out, "whisper-cpp"), HasSubstr("skipped  needs --whisper-model FILE"));
}

TEST_F(EnginesCommand, DoctorRunsAFewTokensThroughTheRunnerPlayingLlamaServer) {
  SW_REQUIRE_TEST_MODELS(models);
  auto doctor = run(fake_as_llama(),
                    "engines doctor --json --model " + (models / "stories260K.gguf").string());
  ASSERT_EQ(doctor.exit_code, 0) << doctor.all();
  const auto json = nlohmann::json::parse(doctor.out);
  EXPECT_EQ(json.at("ok"), true);
  nlohmann::json llama;
  for (const auto& check : json.at("checks")) {
    if (check.at("engine") == "llama-cpp") llama = check;
  }
  ASSERT_FALSE(llama.is_null()) << doctor.out;
  EXPECT_EQ(llama.at("outcome"), "ok") << llama.dump();
  // The fake runner's chat completion reports 4 completion tokens.
  EXPECT_EQ(llama.at("figures").at("tokens"), 4);
  EXPECT_THAT(llama.at("detail").get<std::string>(),
              HasSubstr("fake-runner started, stories260K.gguf loaded"));
  // The user's model file is only linked from a scratch root, never written or left behind.
  EXPECT_TRUE(fs::exists(models / "stories260K.gguf"));
  EXPECT_FALSE(fs::exists(models / "stories260K.gguf.lock"));
}

TEST_F(EnginesCommand, DoctorGeneratesWithARealLlamaServer) {
  SW_REQUIRE_TEST_MODELS(models);
  const char* real = std::getenv("STUDIO_WORKER_LLAMA_SERVER");
  if (real == nullptr || *real == '\0') {
    GTEST_SKIP() << "SKIPPED: no real llama-server (set STUDIO_WORKER_LLAMA_SERVER)";
  }
  auto doctor = run(std::string("STUDIO_WORKER_LLAMA_SERVER=") + real,
                    "engines doctor --model " + (models / "stories260K.gguf").string());
  ASSERT_EQ(doctor.exit_code, 0) << doctor.all();
  EXPECT_THAT(line_of(doctor.out, "llama-cpp"), HasSubstr(" ok "));
  EXPECT_THAT(line_of(doctor.out, "llama-cpp"), HasSubstr(" tokens in "));
}

TEST_F(EnginesCommand, DoctorTranscribesEspeakSpeechThroughTheRunnerPlayingWhisperServer) {
  SW_REQUIRE_TEST_MODELS(models);
  link_on_path("whisper-server");
  auto doctor = run("", "engines doctor --whisper-model " +
                            (models / "whisper" / "for-tests-ggml-tiny.bin").string());
  ASSERT_EQ(doctor.exit_code, 0) << doctor.all();
  const std::string line = line_of(doctor.out, "whisper-cpp");
  EXPECT_THAT(line, HasSubstr(" ok "));
  EXPECT_THAT(line, HasSubstr("whisper-server started, for-tests-ggml-tiny.bin loaded"));
  // espeak-ng's speech reached the runner as whisper needs it: 16 kHz mono.
  EXPECT_THAT(line, HasSubstr("fake transcript of "));
  EXPECT_THAT(line, HasSubstr(" at 16000 Hz, 1 channel(s)"));
}

TEST_F(EnginesCommand, AFailingRunnerFailsTheDoctorWithTheRunnersOwnWords) {
  SW_REQUIRE_TEST_MODELS(models);
  auto doctor = run(fake_as_llama() + " FAKE_RUNNER_FAIL_START=1",
                    "engines doctor --model " + (models / "stories260K.gguf").string());
  EXPECT_EQ(doctor.exit_code, 1) << doctor.all();
  const std::string line = line_of(doctor.out, "llama-cpp");
  EXPECT_THAT(line, HasSubstr("FAILED"));
  EXPECT_THAT(line, HasSubstr("fake-runner: refusing to start (as asked)"));
  EXPECT_THAT(line_of(doctor.out, "espeak-ng"), HasSubstr(" ok "));
  EXPECT_THAT(doctor.out, HasSubstr("1 engine(s) failed"));
}

}  // namespace
