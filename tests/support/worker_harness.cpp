#include "support/worker_harness.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fstream>

namespace sw::testing {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

template <class Check>
bool eventually(Check check, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return check();
}

}  // namespace

worker::RuntimeTimings fast_timings() {
  worker::RuntimeTimings t;
  t.heartbeat_interval = 100ms;
  t.log_flush_interval = 50ms;
  t.connect_timeout = 2s;
  t.read_idle_timeout = 600ms;
  t.close_timeout = 500ms;
  t.credential_poll = 50ms;
  t.registration_poll = 100ms;
  t.backoff_base = 50ms;
  t.backoff_cap = 200ms;
  t.outbox_backoff_base = 50ms;
  t.completion_ack_wait = 1s;
  t.shutdown_grace = 2s;
  t.http_timeout = 5s;
  return t;
}

WorkerHarness::WorkerHarness(const std::filesystem::path& dir, worker::WorkerConfig config,
                             worker::RuntimeTimings timings, engines::EngineOptions engine)
    : config_path_(dir / "config.toml") {
  std::filesystem::create_directories(dir);
  config.local_api_token = "local-api-test-token";
  config.models_root = (dir / "models").string();
  EXPECT_TRUE(worker::save_config(config_path_, config));
  EXPECT_TRUE(worker::save_state(worker::state_path_for(config_path_), config.state()));
  worker::DaemonOptions options;
  options.config_path = config_path_;
  options.timings = timings;
  options.engine = engine;
  options.local_api_port = 0;
  options.handle_signals = false;
  std::mutex mu;
  std::condition_variable ready;
  std::string url;
  options.on_ready = [&](const std::string& local_url) {
    std::lock_guard lock(mu);
    url = local_url;
    ready.notify_all();
  };
  auto daemon = worker::Daemon::create(std::move(options));
  if (!daemon) {
    ADD_FAILURE() << daemon.error().message;
    return;
  }
  daemon_ = std::move(*daemon);
  thread_ = std::thread([this] {
    const int code = worker::to_int(daemon_->run());
    std::lock_guard lock(exit_mu_);
    exit_code_ = code;
    exit_reason_ = daemon_->exit_reason();
    exited_ = true;
    exit_cv_.notify_all();
  });
  std::unique_lock lock(mu);
  if (!ready.wait_for(lock, 10s, [&] { return !url.empty(); })) {
    ADD_FAILURE() << "the daemon did not start its local API";
    return;
  }
  port_ = static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
  token_ = "local-api-test-token";
}

WorkerHarness::~WorkerHarness() { stop(); }

int WorkerHarness::stop() {
  if (thread_.joinable()) {
    daemon_->request_shutdown();
    thread_.join();
  }
  std::lock_guard lock(exit_mu_);
  return exit_code_;
}

std::optional<int> WorkerHarness::wait_exit(std::chrono::milliseconds timeout) {
  std::unique_lock lock(exit_mu_);
  if (!exit_cv_.wait_for(lock, timeout, [this] { return exited_; })) return std::nullopt;
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  return exit_code_;
}

std::string WorkerHarness::exit_reason() const {
  std::lock_guard lock(exit_mu_);
  return exit_reason_;
}

HttpReply WorkerHarness::api(const std::string& method, const std::string& target,
                             const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers) const {
  return http_request(port_, method, target, body, token_, "application/json", 10s, headers);
}

json WorkerHarness::status() const {
  return json::parse(api("GET", "/daemon/status").body, nullptr, false);
}

std::string WorkerHarness::session_state() const {
  auto s = status();
  return s.is_object() ? s["session"].value("state", "") : "";
}

bool WorkerHarness::wait_session(const std::string& state,
                                 std::chrono::milliseconds timeout) const {
  return eventually([&] { return session_state() == state; }, timeout);
}

std::string WorkerHarness::logs() const {
  auto page = json::parse(api("GET", "/daemon/logs").body, nullptr, false);
  std::string out;
  if (!page.is_object()) return out;
  for (const auto& entry : page["entries"]) out += entry.value("message", "") + "\n";
  return out;
}

// ---- ScriptedStudio ----

struct ScriptedStudio::State : net::HttpHandler {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<net::HttpServer> server;
  std::thread thread;

  mutable std::mutex mu;
  std::condition_variable changed;
  int refuse_status = 0;
  int upload_status = 0;
  int upload_count = 0;
  bool ack = true;
  int upgrades = 0;
  int accepted = 0;
  std::vector<net::Header> last_headers;
  std::deque<Frame> frames;
  std::shared_ptr<net::WebSocket> newest;  // loop thread

  struct Handler : net::WebSocketHandler {
    Handler(State* s, int n) : state(s), connection(n) {}
    void on_open(std::shared_ptr<net::WebSocket> socket) override { state->newest = socket; }
    void on_text(std::string text) override {
      auto frame = json::parse(text, nullptr, false);
      bool ack = false;
      {
        std::lock_guard lock(state->mu);
        ack = state->ack && frame.is_object() && frame.value("type", "") == "heartbeat";
        state->frames.push_back(Frame{connection, std::move(text)});
      }
      state->changed.notify_all();
      if (ack && state->newest) state->newest->send_text(R"({"type":"heartbeatAck"})");
    }
    void on_binary(std::size_t) override {}
    void on_closed() override {}
    State* state;
    int connection;
  };

  std::variant<net::Admission, net::HttpResponse> admit(const net::HttpRequest&) override {
    return net::Admission{};
  }
  void handle(net::HttpRequest request, net::Responder responder) override {
    const std::string_view suffix = "/complete";
    const bool upload =
        request.method == "POST" && request.path.size() > suffix.size() &&
        request.path.compare(request.path.size() - suffix.size(), suffix.size(), suffix) == 0;
    int status = 0;
    {
      std::lock_guard lock(mu);
      if (upload) ++upload_count;
      status = upload ? upload_status : 0;
    }
    changed.notify_all();
    if (status != 0) {
      responder.send(net::HttpResponse::error(status, "scripted", "scripted upload answer"));
      return;
    }
    responder.send(net::HttpResponse::error(404, "not_found", "scripted studio"));
  }
  std::variant<net::UpgradeAccepted, net::HttpResponse> upgrade(
      const net::HttpRequest& head) override {
    std::lock_guard lock(mu);
    ++upgrades;
    last_headers = head.headers;
    changed.notify_all();
    if (refuse_status != 0) {
      return net::HttpResponse::error(refuse_status, "refused", "scripted refusal");
    }
    net::UpgradeAccepted accepted_upgrade;
    accepted_upgrade.handler = std::make_shared<Handler>(this, ++accepted);
    accepted_upgrade.subprotocol = "studio-worker-v1";
    return accepted_upgrade;
  }
};

ScriptedStudio::ScriptedStudio() : state_(std::make_shared<State>()) {
  auto server = net::HttpServer::start(state_->io.get_executor(), {}, *state_);
  if (!server) {
    ADD_FAILURE() << server.error().message;
    return;
  }
  state_->server = std::move(*server);
  port_ = state_->server->port();
  state_->thread = std::thread([state = state_.get()] { state->io.run(); });
}

ScriptedStudio::~ScriptedStudio() {
  asio::post(state_->io, [state = state_.get()] {
    if (state->newest) state->newest->close(1001, "test over");
    state->newest.reset();
    state->server->stop();
    state->guard.reset();
    state->io.stop();
  });
  if (state_->thread.joinable()) state_->thread.join();
}

void ScriptedStudio::refuse_upgrades_with(int status) {
  std::lock_guard lock(state_->mu);
  state_->refuse_status = status;
}

void ScriptedStudio::answer_uploads_with(int status) {
  std::lock_guard lock(state_->mu);
  state_->upload_status = status;
}

int ScriptedStudio::uploads() const {
  std::lock_guard lock(state_->mu);
  return state_->upload_count;
}

void ScriptedStudio::ack_heartbeats(bool on) {
  std::lock_guard lock(state_->mu);
  state_->ack = on;
}

std::optional<ScriptedStudio::Frame> ScriptedStudio::next_frame(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  if (!state_->changed.wait_for(lock, timeout, [&] { return !state_->frames.empty(); })) {
    return std::nullopt;
  }
  Frame frame = std::move(state_->frames.front());
  state_->frames.pop_front();
  return frame;
}

std::optional<json> ScriptedStudio::next_of_type(const std::string& type,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto frame = next_frame(left);
    if (!frame) return std::nullopt;
    auto parsed = json::parse(frame->text, nullptr, false);
    if (parsed.is_object() && parsed.value("type", "") == type) return parsed;
  }
}

int ScriptedStudio::upgrades() const {
  std::lock_guard lock(state_->mu);
  return state_->upgrades;
}

bool ScriptedStudio::wait_upgrades(int count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mu);
  return state_->changed.wait_for(lock, timeout, [&] { return state_->upgrades >= count; });
}

std::string ScriptedStudio::last_header(const std::string& name) const {
  std::lock_guard lock(state_->mu);
  for (const auto& header : state_->last_headers) {
    if (header.name == name) return header.value;
  }
  return "";
}

void ScriptedStudio::send_text(const std::string& text) {
  asio::post(state_->io, [state = state_.get(), text] {
    if (state->newest) state->newest->send_text(text);
  });
}

void ScriptedStudio::send_binary(const std::string& bytes) {
  asio::post(state_->io, [state = state_.get(), bytes] {
    if (state->newest) state->newest->send_binary(bytes);
  });
}

void ScriptedStudio::close(std::uint16_t code, const std::string& reason) {
  asio::post(state_->io, [state = state_.get(), code, reason] {
    if (state->newest) state->newest->close(code, reason);
  });
}

}  // namespace sw::testing
