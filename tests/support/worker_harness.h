#pragma once
// An in-process studio-worker daemon (worker::Daemon) on a background thread, with its config
// (config.toml and state.toml) in a directory of the test's and its local API on
// 127.0.0.1:<ephemeral>; plus a scripted WebSocket peer that plays a studio for the cases a real
// one cannot produce on demand.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "net/http_server.h"
#include "support/protocol_client.h"
#include "worker/config.h"
#include "worker/daemon.h"

namespace sw::testing {

// Timings scaled down so that reconnects and idle limits show within a test.
worker::RuntimeTimings fast_timings();

class WorkerHarness {
 public:
  WorkerHarness(const std::filesystem::path& dir, worker::WorkerConfig config,
                worker::RuntimeTimings timings = fast_timings(),
                engines::EngineOptions engine = {});
  ~WorkerHarness();
  WorkerHarness(const WorkerHarness&) = delete;
  WorkerHarness& operator=(const WorkerHarness&) = delete;

  std::uint16_t api_port() const { return port_; }
  const std::string& token() const { return token_; }
  HttpReply api(const std::string& method, const std::string& target, const std::string& body = "",
                const std::vector<std::pair<std::string, std::string>>& headers = {}) const;
  nlohmann::json status() const;
  std::string session_state() const;
  // Polls GET /daemon/status until the session is in `state` (bounded).
  bool wait_session(const std::string& state, std::chrono::milliseconds timeout = 10s) const;
  // The local log ring's messages, joined by newlines.
  std::string logs() const;
  // Shuts the daemon down and returns run()'s exit code.
  int stop();
  // run()'s exit code once the daemon ended by itself (a permanent condition) within `timeout`;
  // nullopt while it still runs.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = 10s);
  // Daemon::exit_reason() once it ended.
  std::string exit_reason() const;
  const std::filesystem::path& config_path() const { return config_path_; }

 private:
  std::filesystem::path config_path_;
  std::unique_ptr<worker::Daemon> daemon_;
  std::thread thread_;
  mutable std::mutex exit_mu_;
  std::condition_variable exit_cv_;
  bool exited_ = false;
  int exit_code_ = -1;
  std::string exit_reason_;
  std::uint16_t port_ = 0;
  std::string token_;
};

// A WebSocket server at /graphics/api/workers/<id>/connect that records what the worker sends
// and does what the test tells it. Thread-safe; its io_context runs on its own thread.
class ScriptedStudio {
 public:
  ScriptedStudio();
  ~ScriptedStudio();
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Answer upgrades with this status instead of 101 (0: accept).
  void refuse_upgrades_with(int status);
  // Reply `heartbeatAck` to every heartbeat (on by default; off makes the link silent).
  void ack_heartbeats(bool on);
  // Answer `POST .../jobs/:jobId/complete` (the multipart result upload) with this status and a
  // JSON error body (0, the default: 404 like every other HTTP route here).
  void answer_uploads_with(int status);
  // Result uploads received so far.
  int uploads() const;

  struct Frame {
    int connection = 0;  // 1-based, in accept order
    std::string text;
  };
  // The next text frame from the worker, or nullopt after `timeout`.
  std::optional<Frame> next_frame(std::chrono::milliseconds timeout = 5s);
  // The next frame whose `type` is `type`, skipping others (heartbeats, log batches).
  std::optional<nlohmann::json> next_of_type(const std::string& type,
                                             std::chrono::milliseconds timeout = 5s);
  // Upgrade attempts seen so far (accepted or refused).
  int upgrades() const;
  bool wait_upgrades(int count, std::chrono::milliseconds timeout = 10s) const;
  // Headers of the last upgrade request (lowercase names).
  std::string last_header(const std::string& name) const;
  // Sends on the newest accepted connection.
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  void close(std::uint16_t code, const std::string& reason = "");

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::uint16_t port_ = 0;
};

}  // namespace sw::testing
