#pragma once
// The farm on loopback for end-to-end and chaos tests: the `studio-server` and `studio-worker`
// binaries as child processes, driven only through their public surfaces (the client API, the
// worker's local API, signals). Header-only: each test binary defines SW_STUDIO_WORKER_BIN and
// SW_STUDIO_SERVER_BIN.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/protocol_client.h"

namespace sw::testing::farm {

using namespace std::chrono_literals;
using nlohmann::json;

inline const std::string kAdmin = "e2e-admin-token";

// Polls `check` until it returns true or `timeout` passes (every wait here is bounded; the
// conditions are states of other processes, seen only through their APIs).
template <class Check>
bool eventually(Check check, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return check();
}

// Environment changes for one child: a value sets the variable, nullopt removes it.
using EnvChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;

// posix_spawn, not fork: a test process has threads (loopback servers, clients), and a forked
// child of a threaded process must not allocate or take locks before exec (under ASan that hung).
inline pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& log,
                   const EnvChanges& env = {}) {
  EnvChanges all = {{"STUDIO_SERVER_ADMIN_TOKEN", kAdmin}, {"STUDIO_WORKER_LOG", "info"}};
  all.insert(all.end(), env.begin(), env.end());
  std::map<std::string, std::optional<std::string>> changes(all.begin(), all.end());
  for (const auto& [name, value] : env) changes[name] = value;  // the caller's word is last
  std::vector<std::string> entries;
  for (char** entry = ::environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string text(*entry);
    if (changes.count(text.substr(0, text.find('='))) == 0) entries.push_back(text);
  }
  for (const auto& [name, value] : changes) {
    if (value) entries.push_back(name + "=" + *value);
  }
  std::vector<char*> envp;
  for (auto& entry : entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy = argv;
  std::vector<char*> args;
  for (auto& arg : args_copy) args.push_back(arg.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
  ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0] << ": " << std::strerror(rc);
  return rc == 0 ? pid : -1;
}

inline int stop_process(pid_t& pid, int signal) {
  if (pid <= 0) return -1;
  ::kill(pid, signal);
  int status = 0;
  ::waitpid(pid, &status, 0);
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs a command (e.g. `studio-server workers delete …`) to its end; `log` receives its output.
inline CommandResult run_command(const std::vector<std::string>& argv,
                                 const std::filesystem::path& log, const EnvChanges& env = {}) {
  std::filesystem::remove(log);
  pid_t pid = spawn(argv, log, env);
  CommandResult result;
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.output = read_file(log);
  return result;
}

class Studio {
 public:
  // `extra_args`: more `serve` options (e.g. a short claim grace).
  Studio(const std::filesystem::path& dir, std::uint16_t port = 0,
         std::vector<std::string> extra_args = {})
      : dir_(dir), data_dir_(dir / "data"), extra_args_(std::move(extra_args)) {
    std::filesystem::create_directories(dir);
    start(port);
  }
  ~Studio() { stop_process(pid_, SIGKILL); }
  void start(std::uint16_t port) {
    const auto log = dir_ / "server.log";
    const auto before = read_file(log).size();
    std::vector<std::string> argv = {SW_STUDIO_SERVER_BIN, "serve",
                                     "--listen",           "127.0.0.1:" + std::to_string(port),
                                     "--data-dir",         (dir_ / "data").string()};
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    pid_ = spawn(argv, log);
    ASSERT_TRUE(eventually([&] {
      const auto text = read_file(log).substr(before);
      const auto at = text.find("http://127.0.0.1:");
      if (at == std::string::npos) return false;
      port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + 17)));
      return true;
    })) << read_file(log);
  }
  int terminate() { return stop_process(pid_, SIGTERM); }
  void kill9() { stop_process(pid_, SIGKILL); }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  HttpReply api(const std::string& method, const std::string& target,
                const std::string& body = "") const {
    return http_request(port_, method, target, body, kAdmin);
  }
  void add_models() const {
    for (std::string kind : {"image", "llm", "audio_stt", "audio_tts", "video"}) {
      json body = {
          {"id", "synth-" + kind},
          {"kind", kind},
          {"vramGbEstimate", 1},
          {"source",
           {{"engine", "synthetic"},
            {"files", json::array()},
            {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
      ASSERT_EQ(api("POST", "/api/v1/models", body.dump()).status, 201);
    }
  }
  std::string submit(const std::string& kind, json task) const {
    task["kind"] = kind;
    const json body = {{"model", "synth-" + kind}, {"task", task}};
    const auto reply = api("POST", "/api/v1/jobs", body.dump());
    EXPECT_EQ(reply.status, 201) << reply.body;
    return json::parse(reply.body, nullptr, false).value("id", "");
  }
  json job(const std::string& id) const {
    return json::parse(api("GET", "/api/v1/jobs/" + id).body, nullptr, false);
  }
  bool wait_status(const std::string& id, const std::string& status,
                   std::chrono::milliseconds timeout = 30s) const {
    return eventually([&] { return job(id).value("status", "") == status; }, timeout);
  }
  // Approves the first pending request (the worker's); returns its worker id.
  std::string approve_next() const {
    std::string request_id;
    EXPECT_TRUE(eventually([&] {
      auto reply = json::parse(api("GET", "/api/v1/workers/pending").body, nullptr, false);
      if (!reply.is_object() || !reply["pending"].is_array() || reply["pending"].empty()) {
        return false;
      }
      const auto& pending = reply["pending"];
      request_id = pending[0].value("requestId", "");
      return true;
    }));
    const auto reply = api("POST", "/api/v1/workers/pending/" + request_id + "/approve", "{}");
    EXPECT_EQ(reply.status, 200) << reply.body;
    return json::parse(reply.body, nullptr, false).value("workerId", "");
  }

 private:
  std::filesystem::path dir_;
  std::filesystem::path data_dir_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

class Worker {
 public:
  // `extra_config`: TOML lines appended to config.toml before the daemon starts.
  Worker(const std::filesystem::path& dir, const Studio& studio, int synthetic_job_ms = 0,
         const std::string& extra_config = "")
      : Worker(dir, studio.url(), synthetic_job_ms, extra_config) {}
  // `run_args`: more `run` options (e.g. --time-scale); `env`: the daemon's environment changes
  // (e.g. no STUDIO_WORKER_LLAMA_SERVER for a worker that must not have llama-server).
  Worker(const std::filesystem::path& dir, const std::string& studio_url, int synthetic_job_ms,
         const std::string& extra_config, std::vector<std::string> run_args = {},
         EnvChanges env = {})
      : dir_(dir), config_(dir / "config.toml"), run_args_(std::move(run_args)),
        env_(std::move(env)) {
    std::filesystem::create_directories(dir);
    const std::string reg = std::string(SW_STUDIO_WORKER_BIN) + " --config " + config_.string() +
                            " register --api-base-url " + studio_url + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(reg.c_str()), 0);
    if (!extra_config.empty()) {
      // Each `key = value` line replaces that key's line (TOML forbids a key twice).
      std::istringstream extra(extra_config), current(read_file(config_));
      std::vector<std::string> keys;
      for (std::string line; std::getline(extra, line);)
        keys.push_back(line.substr(0, line.find(" =")));
      std::string kept;
      for (std::string line; std::getline(current, line);) {
        const std::string key = line.substr(0, line.find(" ="));
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) kept += line + "\n";
      }
      std::ofstream(config_, std::ios::trunc) << kept << extra_config;
    }
    start(synthetic_job_ms);
  }
  ~Worker() { stop_process(pid_, SIGKILL); }
  void start(int synthetic_job_ms = 0) {
    std::filesystem::remove(dir_ / "local-api.json");
    std::vector<std::string> argv = {
        SW_STUDIO_WORKER_BIN, "--config", config_.string(),     "run",
        "--local-api-port",   "0",        "--synthetic-job-ms", std::to_string(synthetic_job_ms)};
    // Quick approval polls unless the test chose its own pace.
    if (std::find(run_args_.begin(), run_args_.end(), "--registration-poll-ms") ==
        run_args_.end()) {
      argv.insert(argv.end(), {"--registration-poll-ms", "200"});
    }
    argv.insert(argv.end(), run_args_.begin(), run_args_.end());
    pid_ = spawn(argv, dir_ / "worker.log", env_);
    ASSERT_TRUE(eventually([&] {
      auto discovery = json::parse(read_file(dir_ / "local-api.json"), nullptr, false);
      if (!discovery.is_object()) return false;
      token_ = discovery.value("token", "");
      const std::string url = discovery.value("url", "");
      port_ = static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
      return true;
    })) << log();
  }
  void kill9() { stop_process(pid_, SIGKILL); }
  int terminate() { return stop_process(pid_, SIGTERM); }
  // Sends `signal` and returns at once (terminate() also waits for the exit).
  void signal(int signal) const { ::kill(pid_, signal); }
  // The daemon's exit code once it exits by itself within `timeout`; else it is killed and the
  // answer is nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    int status = 0;
    const bool exited =
        eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
    if (!exited) {
      stop_process(pid_, SIGKILL);
      return std::nullopt;
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  HttpReply api(const std::string& method, const std::string& target,
                const std::string& body = "") const {
    return http_request(port_, method, target, body, token_);
  }
  json status() const { return json::parse(api("GET", "/daemon/status").body, nullptr, false); }
  std::string session_state() const { return status()["session"].value("state", ""); }
  bool wait_session(const std::string& state, std::chrono::milliseconds timeout = 20s) const {
    return eventually([&] { return session_state() == state; }, timeout);
  }
  std::string log() const { return read_file(dir_ / "worker.log"); }
  const std::filesystem::path& config() const { return config_; }
  pid_t pid() const { return pid_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path config_;
  std::vector<std::string> run_args_;
  EnvChanges env_;
  pid_t pid_ = -1;
  std::string token_;
  std::uint16_t port_ = 0;
};

inline std::vector<std::uint8_t> bytes_of(const std::string& text) {
  return {text.begin(), text.end()};
}

}  // namespace sw::testing::farm
