#pragma once
// The `studio-worker run` daemon: one io_context thread for sockets, timers and signals, a small
// pool for engine dispatch and blocking HTTP, and on them the local API, the registrar and the
// studio session (reference-worker.md §3.2). One daemon per config directory (daemon.lock).
//
// Shutdown (SIGINT, SIGTERM, POST /daemon/shutdown or request_shutdown()): registration stops,
// offers are rejected (busy), a job in flight gets the grace period to finish and deliver; one
// that did not is handed back to the studio (`fail`, retryable, "worker stopping") so that another
// worker gets it at once; then the session closes with 1000, the local API stops and
// local-api.json is removed. create() is called on any thread; run() blocks
// the calling thread; request_shutdown() is thread-safe.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "engines/build_engine.h"
#include "service/service_notify.h"
#include "worker/exit_codes.h"
#include "worker/runtime.h"
#include "worker/worker_metrics.h"

namespace sw::worker {

struct DaemonOptions {
  std::filesystem::path config_path;
  RuntimeTimings timings;
  engines::EngineOptions engine;
  // Overrides config and environment (tests bind port 0).
  std::optional<std::uint16_t> local_api_port;
  bool handle_signals = true;
  std::size_t pool_threads = 2;
  // The counters behind GET /metrics; null: the daemon makes its own. Tests pass one to read it.
  std::shared_ptr<WorkerMetrics> metrics;
  // Called on the loop once the local API serves: its URL and the discovery file path.
  std::function<void(const std::string& url)> on_ready;
  // The service manager (studio-worker run: from the environment; default: none). READY=1 once
  // the local API serves, STATUS= with the registration and session state as they change,
  // STOPPING=1 when shutdown begins, and WATCHDOG=1 pings from the loop when it asked for them.
  service::Notifier notifier;
};

class Daemon {
 public:
  // Loads config.toml and state.toml without writing anything, checks that the config can run (a
  // studio URL, no setting this build cannot honour), then takes the daemon lock and migrates the
  // reference's state keys out of config.toml into state.toml when there is no state file yet.
  // Nothing is repaired: a file that does not parse is an error naming its line and column.
  // Errors (exit_code_for_start_error): InvalidArgument or Protocol, the config or state file
  // (ExitCode::Config); AlreadyExists, another daemon holds the lock for this config directory
  // (ExitCode::AlreadyRunning); IoError (ExitCode::Failure).
  static Result<std::unique_ptr<Daemon>> create(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Serves until shut down, or until a permanent condition ends it (exit_codes.h): a registration
  // rejected now or before (RegistrationRejected, without contacting the studio again), the
  // studio refusing the credentials (AuthFailed), deleting the worker (WorkerDeleted) or
  // replacing its session (DuplicateWorker). A job in flight gets the shutdown grace either way.
  // Transient failures (the studio unreachable) are retried and never end it, unless
  // `ws_reconnect_attempts` caps them (Failure). Ok after a clean shutdown.
  ExitCode run();
  // Why run() returned what it did, for the log and tests ("" after a clean shutdown). Valid
  // after run() returned.
  const std::string& exit_reason() const;
  void request_shutdown();

  struct Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The exit code for an error of Daemon::create.
ExitCode exit_code_for_start_error(const Error& error);

// <config dir>/local-api.json: {"url":"http://127.0.0.1:<port>","token":"…"}, mode 0600.
std::filesystem::path discovery_file_for(const std::filesystem::path& config_path);

}  // namespace sw::worker
