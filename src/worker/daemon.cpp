#include "worker/daemon.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "common/file_io.h"
#include "common/log.h"
#include "common/secrets.h"
#include "models/admission.h"
#include "net/http_server.h"
#include "worker/local_api.h"
#include "worker/outbox.h"
#include "worker/registrar.h"
#include "worker/session.h"
#include "worker/vram_probe.h"

namespace sw::worker {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::daemon");
  return instance;
}

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::optional<std::uint16_t> port_from_env() {
  const char* value = std::getenv("STUDIO_WORKER_LOCAL_API_PORT");
  if (value == nullptr || *value == '\0') return std::nullopt;
  char* end = nullptr;
  const long port = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || port < 0 || port > 65535) {
    logger().warn("local_api.bad_port_env", {{"value", value}});
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(port);
}

// What `systemctl status` shows on its Status: line: the registration, the session and where
// the local API serves.
std::string service_status(const LiveStatus& live) {
  if (live.stopping) return "stopping";
  std::string text = fmt::format("registration {}; session {}", to_string(live.registration.phase),
                                 to_string(live.session.phase));
  if (live.session.attempt > 0) text += fmt::format(" (attempt {})", live.session.attempt);
  if (!live.session.reason.empty()) text += ": " + live.session.reason;
  if (!live.local_api_url.empty()) text += "; local API " + live.local_api_url;
  return text;
}

// Tells the service manager; a failure is logged, never fatal (the manager may have gone).
void tell_manager(const Status& sent) {
  if (!sent) logger().warn("service.notify_failed", {{"error", sent.error().message}});
}

}  // namespace

std::filesystem::path discovery_file_for(const std::filesystem::path& config_path) {
  return config_path.parent_path() / "local-api.json";
}

struct Daemon::Impl {
  DaemonOptions options;
  LoadedConfig loaded;
  UniqueFd lock;
  double vram_total_gb = 0;
  asio::io_context io{1};

  // Alive while run() runs (loop thread only).
  Runtime* runtime = nullptr;
  StatusBoard* status = nullptr;
  StudioSession* session = nullptr;
  Registrar* registrar = nullptr;
  net::HttpServer* server = nullptr;
  std::optional<asio::steady_timer> job_signal;
  std::optional<asio::steady_timer> session_signal;
  bool session_done = false;
  bool shutting_down = false;
  ExitCode exit_code = ExitCode::Ok;
  std::string exit_reason;

  // A permanent condition ends the daemon with its code (the first one wins).
  static void exit_with(Impl* self, ExitCode code, std::string reason) {
    if (self->shutting_down) return;
    self->exit_code = code;
    self->exit_reason = std::move(reason);
    logger().error("daemon.exiting", {{"exit_code", to_int(code)}, {"reason", self->exit_reason}});
    asio::co_spawn(self->io, shut_down(self), asio::detached);
  }

  static awaitable<void> run_session(Impl* self) {
    co_await self->session->run();
    self->session_done = true;
    if (self->session_signal) self->session_signal->cancel();
    if (auto code = self->session->exit_code()) {
      exit_with(self, *code, self->status->view().session.reason);
    }
  }

  static awaitable<void> run_registrar(Impl* self) {
    co_await self->registrar->run();
    if (const auto& registration = self->status->view().registration;
        registration.phase == RegistrationPhase::Rejected) {
      exit_with(self, ExitCode::RegistrationRejected, rejection_guidance(registration.reason));
    }
  }

  static awaitable<void> shut_down(Impl* self) {
    if (self->shutting_down) co_return;
    self->shutting_down = true;
    Runtime& runtime = *self->runtime;
    tell_manager(
        self->options.notifier.stopping("stopping: finishing jobs in flight, closing the session"));
    self->status->begin_stopping();
    runtime.logs().local(log::Level::Info, "daemon", "shutting down");
    self->registrar->stop();
    // A job in flight gets the grace period to finish and deliver its result.
    const auto grace_end = std::chrono::steady_clock::now() + runtime.timings().shutdown_grace;
    // A job counts until its result is delivered, not only while the engine runs: a job leaves
    // the active list when its result is in the outbox, and is done when the outbox lets it go.
    std::vector<std::string> in_flight;
    for (const auto& job : runtime.active_jobs()) in_flight.push_back(job.job_id);
    const auto pending = [&runtime, &in_flight] {
      if (runtime.gate().busy() || !runtime.active_jobs().empty()) return true;
      return std::any_of(in_flight.begin(), in_flight.end(), [&runtime](const std::string& id) {
        return runtime.outbox().contains(id);
      });
    };
    while (pending() && std::chrono::steady_clock::now() < grace_end) {
      // A finished job cancels the signal; a delivery does not, so look again every 50 ms.
      self->job_signal->expires_at(
          std::min(grace_end, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
      co_await self->job_signal->async_wait(kUseTuple);
    }
    if (pending()) {
      // What could not finish and be delivered within the grace goes back to the studio now
      // (fail, retryable), rather than waiting out the studio's claim grace.
      std::vector<std::string> unfinished;
      for (const auto& job : runtime.active_jobs()) {
        if (job.source == "studio") unfinished.push_back(job.job_id);
      }
      for (const auto& id : in_flight) {
        if (runtime.outbox().contains(id) &&
            std::find(unfinished.begin(), unfinished.end(), id) == unfinished.end()) {
          unfinished.push_back(id);
        }
      }
      const auto handed_back = co_await self->session->hand_back(unfinished);
      for (const auto& id : unfinished) {
        if (handed_back.contains(id)) {
          logger().info("daemon.job_handed_back", {{"job_id", id}});
        } else {
          logger().warn("daemon.job_abandoned_at_shutdown", {{"job_id", id}});
        }
      }
    }
    self->session->stop();
    const auto close_end = std::chrono::steady_clock::now() + runtime.timings().close_timeout;
    while (!self->session_done && std::chrono::steady_clock::now() < close_end) {
      self->session_signal->expires_at(close_end);
      co_await self->session_signal->async_wait(kUseTuple);
    }
    if (self->server) self->server->stop();
    std::error_code ec;
    std::filesystem::remove(discovery_file_for(self->loaded.path), ec);
    // Nothing waits for a studio answer any more: calls still on the pool end now, so that the
    // pool's join after the loop does not hold the process.
    runtime.studio_calls_cancelled->store(true);
    logger().info("daemon.stopped");
    self->io.stop();
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;

ExitCode exit_code_for_start_error(const Error& error) {
  switch (error.code) {
    case Code::InvalidArgument:
    case Code::Protocol: return ExitCode::Config;
    case Code::AlreadyExists: return ExitCode::AlreadyRunning;
    default: return ExitCode::Failure;
  }
}

Result<std::unique_ptr<Daemon>> Daemon::create(DaemonOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->vram_total_gb = memoised_vram_total_gib();
  // Read only: a config that cannot run leaves every file as it was and contacts nothing.
  auto loaded = load_config(options.config_path, LoadMode::ReadOnly, impl->vram_total_gb);
  if (!loaded) return fail(loaded.error());
  if (auto runnable = check_runnable(loaded->config); !runnable) {
    return fail(
        Error::invalid_argument("{}: {}", options.config_path.string(), runnable.error().message));
  }
  // Before the lock, the outbox and the discovery file are opened: they are created 0600 in a
  // 0700 directory, and an older install's looser modes are narrowed.
  SW_TRY(make_state_private(loaded->path));
  const auto lock_path = options.config_path.parent_path() / "daemon.lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.valid()) {
    return fail(Error::io("cannot open {}: {}", lock_path.string(), std::strerror(errno)));
  }
  // A CLI command probes the lock with a shared flock it lets go at once (find_running_daemon):
  // a start that meets such a probe tries again a few times before calling itself the second.
  bool locked = ::flock(lock.get(), LOCK_EX | LOCK_NB) == 0;
  for (int retry = 0; !locked && errno == EWOULDBLOCK && retry < 10; ++retry) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // before the event loop runs
    locked = ::flock(lock.get(), LOCK_EX | LOCK_NB) == 0;
  }
  if (!locked) {
    return fail(Error::make(Code::AlreadyExists,
                            "another studio-worker daemon runs for {} (lock {})",
                            options.config_path.string(), lock_path.string()));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  (void)::ftruncate(lock.get(), 0);
  (void)write_all(lock.get(), pid);
  // Under the lock: the reference's state keys move into state.toml once.
  SW_TRY(migrate_state(*loaded));
  if (!loaded->migrated && loaded->state_file && !loaded->state_keys_in_config.empty()) {
    std::string keys;
    for (const auto& key : loaded->state_keys_in_config) keys += (keys.empty() ? "" : ",") + key;
    logger().info("config.state_keys_ignored",
                  {{"config", loaded->path.string()},
                   {"keys", keys},
                   {"note", "state.toml wins; these keys in config.toml are not read"}});
  }
  for (const auto& key : loaded->inert_keys) {
    logger().warn("config.inert_setting",
                  {{"key", key},
                   {"note", fmt::format("accepted for compatibility, no effect: {}",
                                        inert_reason(key).value_or(""))}});
  }
  impl->lock = std::move(lock);
  impl->loaded = std::move(*loaded);
  impl->options = std::move(options);
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

const std::string& Daemon::exit_reason() const {
  return impl_->exit_reason;
}

void Daemon::request_shutdown() {
  Impl* impl = impl_.get();
  asio::post(impl->io, [impl] {
    if (impl->runtime != nullptr) {
      asio::co_spawn(impl->io, Impl::shut_down(impl), asio::detached);
    } else {
      impl->io.stop();
    }
  });
}

ExitCode Daemon::run() {
  Impl& impl = *impl_;
  auto& io = impl.io;
  WorkerConfig config = impl.loaded.config;
  if (config.registration_rejected) {
    // Rejected before: asking again needs the operator's `register --reset`.
    impl.exit_code = ExitCode::RegistrationRejected;
    impl.exit_reason = rejection_guidance(*config.registration_rejected);
    logger().error("daemon.exiting",
                   {{"exit_code", to_int(impl.exit_code)}, {"reason", impl.exit_reason}});
    return impl.exit_code;
  }
  // STUDIO_WORKER_JOIN_TOKEN reaches `run` too (issue 22: /etc/default/studio-worker, a cloud-init
  // environment), taken as `register --join-token` takes it, by a worker that has not asked yet. A
  // refused token ends as a rejection above at the next start, so a restart does not retry it.
  if (const char* env = std::getenv("STUDIO_WORKER_JOIN_TOKEN");
      env != nullptr && *env != '\0' && !config.registered() && !config.registration_request_id &&
      !config.join_token) {
    if (auto set = config.set_join_token(env); !set) {
      impl.exit_code = ExitCode::Config;
      impl.exit_reason = "STUDIO_WORKER_JOIN_TOKEN: " + set.error().message;
      logger().error("daemon.exiting",
                     {{"exit_code", to_int(impl.exit_code)}, {"reason", impl.exit_reason}});
      return impl.exit_code;
    }
    if (auto saved = save_state(impl.loaded.state_path, config.state()); !saved) {
      impl.exit_code = ExitCode::Failure;
      impl.exit_reason = saved.error().message;
      return impl.exit_code;
    }
    impl.loaded.config = config;
    logger().info("registration.join_token_taken", {{"from", "STUDIO_WORKER_JOIN_TOKEN"}});
  }
  // Each running job holds a pool thread for its whole run: the pool has one per job slot on
  // top of the threads admission, uploads and scans use, so that they go on while jobs run.
  // (max_concurrent_jobs is read at start only.)
  asio::thread_pool pool(impl.options.pool_threads + config.max_concurrent_jobs);
  // The engines this machine can run: runner programs from config, environment or PATH; memory
  // admission against the GPU's free memory, else the system's.
  engines::EngineOptions engine_options = impl.options.engine;
  engine_options.models_root = config.resolved_models_root();
  engine_options.llama_server_path = config.llama_server_path;
  engine_options.sd_cli_path = config.sd_cli_path;
  engine_options.sd_server_path = config.sd_server_path;
  engine_options.whisper_server_path = config.whisper_server_path;
  engine_options.runner_idle_unload = std::chrono::seconds(config.runner_idle_unload_secs);
  engine_options.runner_load_stall = std::chrono::seconds(config.runner_load_stall_secs);
  engine_options.runner_inference_stall = std::chrono::seconds(config.runner_inference_stall_secs);
  engine_options.synthetic = engine_options.synthetic && config.engines.synthetic;
  engine_options.llama_max_slots = static_cast<std::uint32_t>(config.max_concurrent_jobs);
  if (!engine_options.free_memory_gib) {
    engine_options.free_memory_gib = [gpu = impl.vram_total_gb > 0]() -> std::optional<double> {
      if (gpu) return probe_vram_free_gib(system_vram_sources());
      return models::available_system_memory_gib();
    };
  }
  // Learned runner footprints, beside the config (engines/runner/footprint_book.h): measured as
  // GPU memory where a GPU is used (admission reads the GPU then), else as peak resident set.
  if (engine_options.footprints_file.empty()) {
    engine_options.footprints_file = impl.loaded.path.parent_path() / "footprints.json";
  }
  // Runners pinned to a GPU each (the one with the most free memory that admits them), unless the
  // operator already narrowed the GPUs this worker sees (then their numbering is not nvidia-smi's).
  if (!engine_options.gpu_devices && impl.vram_total_gb > 0 &&
      std::getenv("CUDA_VISIBLE_DEVICES") == nullptr &&
      std::getenv("HIP_VISIBLE_DEVICES") == nullptr) {
    engine_options.gpu_devices = [] {
      std::vector<engines::GpuDevice> devices;
      for (const auto& device : probe_device_memory(system_vram_sources())) {
        if (!device.free_bytes) continue;  // admission needs a reading
        devices.push_back(
            {device.device, *device.free_bytes / (1024.0 * 1024 * 1024), device.visible_env});
      }
      return devices;
    };
  }
  if (!engine_options.process_memory_gib && impl.vram_total_gb > 0) {
    engine_options.process_memory_gib = [](int pid) {
      return probe_process_vram_gib(system_vram_sources(), pid);
    };
  }
  // The counters of GET /metrics: jobs, phases, reconnects, runner starts and deaths.
  std::shared_ptr<WorkerMetrics> metrics =
      impl.options.metrics ? impl.options.metrics : std::make_shared<WorkerMetrics>();
  if (!engine_options.on_runner_event) {
    engine_options.on_runner_event = [metrics](std::string_view program,
                                               engines::RunnerEvent event) {
      if (event == engines::RunnerEvent::Started) {
        metrics->count_runner_start(program);
      } else {
        metrics->count_runner_death(program);
      }
    };
  }
  // The local catalogue: a broken models.json is reported and ignored, never fatal. Its
  // per-model runner settings reach the engines for studio and local jobs alike.
  const auto catalog_path = impl.loaded.path.parent_path() / "models.json";
  LocalCatalog catalog{catalog_path, {}, std::nullopt};
  if (auto loaded = load_local_catalog(catalog_path); !loaded) {
    catalog.error = loaded.error().message;
    logger().error("catalog.invalid", {{"path", catalog_path.string()}, {"error", *catalog.error}});
  } else {
    catalog.models = std::move(*loaded);
    for (const auto& model : catalog.models) {
      if (model.enabled && !model.runner.empty()) {
        engine_options.runner_settings[model.id] = model.runner;
      }
    }
  }
  engines::BuiltEngine built = engines::build_engines(engine_options);
  auto& engine = built.engine;

  if (!config.local_api_token) {
    WorkerConfig before = config;
    config.local_api_token = random_hex(32);
    if (auto saved = save_changes(impl.loaded.path, before, config); !saved) {
      logger().error("state.not_saved", {{"error", saved.error().message}});
      return ExitCode::Failure;
    }
  }
  // Finished results wait here until the studio has them, across reconnects and restarts.
  const auto outbox_path = impl.loaded.path.parent_path() / "outbox.db";
  auto outbox = Outbox::open(outbox_path,
                             OutboxLimits{config.outbox_max_entries, config.outbox_max_mb << 20});
  if (!outbox) {
    logger().error("outbox.unavailable",
                   {{"path", outbox_path.string()}, {"error", outbox.error().message}});
    return ExitCode::Failure;
  }
  // The live status: the session, the registrar and the daemon change their parts of it.
  StatusBoard status;
  Runtime runtime(io.get_executor(), pool.get_executor(), impl.loaded.path, config, *engine,
                  impl.options.timings, impl.vram_total_gb);
  runtime.attach_outbox(**outbox);
  // Advertise the engines and the models the cache holds (refreshed with every heartbeat).
  runtime.set_advertised_scan([built = &built] { return built->advertised(); });
  const auto discovery = discovery_file_for(impl.loaded.path);
  // The one job path of studio offers and local generation.
  // Jobs beside a running one are admitted against the memory the engines' admission reads.
  // With several GPUs, the one with the most free memory (where its runner would be pinned).
  JobRunner::MemoryProbe memory =
      [free = engine_options.free_memory_gib, gpus = engine_options.gpu_devices,
       where = std::string(impl.vram_total_gb > 0 ? "GPU 0"
                                                  : "RAM")]() -> std::optional<JobGate::Memory> {
    if (gpus) {
      std::optional<JobGate::Memory> best;
      for (const auto& device : gpus()) {
        if (!best || device.free_gib > best->free_gib) {
          best = JobGate::Memory{device.free_gib, "GPU " + device.id};
        }
      }
      if (best) return best;
    }
    auto gib = free();
    if (!gib) return std::nullopt;
    return JobGate::Memory{*gib, where};
  };
  JobRunner runner(*engine, runtime.gate(), pool.get_executor(), SystemClock::instance(),
                   std::move(memory), metrics.get());
  LocalApi api(runtime, status, runner, *config.local_api_token, discovery, std::move(catalog),
               metrics.get(), built.runners);

  // The local API first (it works unregistered): env port, else config, else 4787; a busy port
  // falls back to an ephemeral one.
  net::ServerOptions server_options;
  server_options.product = "studio-worker/" SW_VERSION;
  server_options.host = "127.0.0.1";
  server_options.port = impl.options.local_api_port
                            ? *impl.options.local_api_port
                            : port_from_env().value_or(
                                  config.local_api_port.value_or(kDefaultLocalApiPort));
  auto server = net::HttpServer::start(io.get_executor(), server_options, api);
  if (!server && server_options.port != 0) {
    logger().warn("local_api.port_busy", {{"port", server_options.port},
                                          {"error", server.error().message}});
    server_options.port = 0;
    server = net::HttpServer::start(io.get_executor(), server_options, api);
  }
  if (!server) {
    logger().error("local_api.start_failed", {{"error", server.error().message}});
    return ExitCode::Failure;
  }
  const std::string local_api_url = fmt::format("http://127.0.0.1:{}", (*server)->port());
  status.local_api_serving(local_api_url);
  const nlohmann::json discovery_json = {{"url", local_api_url},
                                         {"token", *config.local_api_token}};
  if (auto written = write_file_atomically(discovery, discovery_json.dump(), Durability::Fsync,
                                           0600);
      !written) {
    logger().error("local_api.discovery_not_written", {{"error", written.error().message}});
    return ExitCode::Failure;
  }

  Registrar registrar(runtime, status);
  StudioSession session(runtime, status, runner);
  impl.runtime = &runtime;
  impl.status = &status;
  impl.session = &session;
  impl.registrar = &registrar;
  impl.server = server->get();
  impl.job_signal.emplace(io);
  impl.session_signal.emplace(io);
  runtime.on_credentials_changed = [&session] { session.credentials_changed(); };
  runtime.on_job_finished = [&impl] { impl.job_signal->cancel(); };
  Impl* self = &impl;
  // A reset after approval finds the registrar finished: run it again, with the rejection exit.
  runtime.on_registration_reset = [self] {
    if (!self->registrar->restart()) {
      asio::co_spawn(self->io, Impl::run_registrar(self), asio::detached);
    }
  };
  runtime.on_shutdown_requested = [self] {
    asio::co_spawn(self->io, Impl::shut_down(self), asio::detached);
  };

  asio::signal_set signals(io);
  if (impl.options.handle_signals) {
    signals.add(SIGINT);
    signals.add(SIGTERM);
    signals.async_wait([self](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      logger().info("daemon.signal", {{"signal", signal}});
      asio::co_spawn(self->io, Impl::shut_down(self), asio::detached);
    });
  }

  logger().info("daemon.started", {{"version", SW_VERSION},
                                   {"config", impl.loaded.path.string()},
                                   {"state", impl.loaded.state_path.string()},
                                   {"studio", config.api_base_url},
                                   {"local_api", local_api_url},
                                   {"worker_id", config.worker_id.value_or("")},
                                   {"vram_total_gib", impl.vram_total_gb}});
  // The service manager: ready now that the local API serves (registration and the session go
  // on in the background, and STATUS= follows them); watchdog pings from this loop.
  const service::Notifier& notifier = impl.options.notifier;
  std::string told_status;
  status.set_observer([&notifier, &told_status](const LiveStatus& live) {
    auto text = service_status(live);
    if (text == told_status || live.stopping) return;  // STOPPING=1 says it
    told_status = std::move(text);
    tell_manager(notifier.status(told_status));
  });
  service::WatchdogPinger watchdog(io.get_executor(), notifier);
  told_status = service_status(status.view());
  tell_manager(notifier.ready(told_status));

  asio::co_spawn(io, Impl::run_registrar(self), asio::detached);
  asio::co_spawn(io, Impl::run_session(self), asio::detached);
  if (impl.options.on_ready) {
    asio::post(io, [self, url = local_api_url] { self->options.on_ready(url); });
  }

  io.run();
  watchdog.stop();
  status.set_observer({});

  // The loop is done and never runs again: coroutines still waiting on it are destroyed with it,
  // never resumed. Jobs still on the pool finish before the engine they use goes away (their
  // results are dropped: the session is gone).
  pool.stop();
  pool.join();
  impl.runtime = nullptr;
  impl.status = nullptr;
  impl.session = nullptr;
  impl.registrar = nullptr;
  impl.server = nullptr;
  return impl.exit_code;
}

}  // namespace sw::worker
