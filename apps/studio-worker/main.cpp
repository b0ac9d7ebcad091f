// studio-worker: command-line wiring only (house style C.2 §14).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "common/fd_limit.h"
#include "common/log.h"
#include "engines/build_engine.h"
#include "engines/doctor.h"
#include "engines/engine_inventory.h"
#include "models/admission.h"
#include "worker/cli_commands.h"
#include "worker/config.h"
#include "worker/daemon.h"
#include "worker/local_samples.h"
#include "worker/model_commands.h"
#include "worker/vram_probe.h"

#include <unistd.h>

namespace {

int run_samples_command(const std::string& out_dir, const std::string& prompt) {
  auto engine = sw::engines::build_engine();
  auto outputs = sw::worker::run_samples(*engine, out_dir, prompt);
  if (!outputs) {
    std::cerr << "studio-worker samples: " << outputs.error().message << "\n";
    return 1;
  }
  std::cout << "wrote " << outputs->size() << " results to " << out_dir << ":\n";
  for (const auto& output : *outputs) {
    std::cout << "  " << sw::proto::to_string(output.kind) << " (" << output.model
              << "): " << output.path.string() << "  [" << output.description << ", "
              << output.bytes << " bytes]\n";
  }
  return 0;
}

int run_daemon(const std::filesystem::path& config_path, std::int64_t registration_poll_ms,
               std::int64_t synthetic_job_ms, const std::string& synthetic_hold_file,
               std::optional<std::uint16_t> local_api_port, double time_scale) {
  // The daemon holds sockets too (studio session, local API, runners, downloads): raise the soft
  // descriptor limit to the hard one before anything is opened.
  if (auto limit = sw::raise_fd_limit(); limit) {
    sw::log::Logger("studio_worker::worker::main")
        .info("fd_limit",
              {{"before", limit->before}, {"after", limit->after}, {"hard", limit->hard}});
  } else {
    sw::log::Logger("studio_worker::worker::main")
        .warn("fd_limit.raise_failed", {{"error", limit.error().message}});
  }
  sw::worker::DaemonOptions options;
  options.config_path = config_path;
  if (time_scale != 1.0) {
    options.timings = sw::worker::scaled(options.timings, time_scale);
  }
  if (registration_poll_ms > 0) {
    options.timings.registration_poll = std::chrono::milliseconds(registration_poll_ms);
  }
  options.engine.synthetic_job_duration = std::chrono::milliseconds(synthetic_job_ms);
  options.engine.synthetic_hold_file = synthetic_hold_file;
  options.local_api_port = local_api_port;
  // Under systemd (Type=notify): readiness, status, stopping and watchdog pings; else nothing.
  options.notifier = sw::service::Notifier::from_environment();
  auto daemon = sw::worker::Daemon::create(std::move(options));
  if (!daemon) {
    // Exit codes: src/worker/exit_codes.h (a supervisor tells permanent from transient by them).
    std::cerr << "studio-worker run: " << daemon.error().message << "\n";
    return sw::worker::to_int(sw::worker::exit_code_for_start_error(daemon.error()));
  }
  const auto code = (*daemon)->run();
  if (code != sw::worker::ExitCode::Ok && !(*daemon)->exit_reason().empty()) {
    std::cerr << "studio-worker run: " << (*daemon)->exit_reason() << " (exit "
              << sw::worker::to_int(code) << ")\n";
  }
  return sw::worker::to_int(code);
}

struct EnginesArgs {
  bool json = false;
  std::optional<std::string> llm_model;
  std::optional<std::string> whisper_model;
  std::optional<std::string> sd_model;
};

// `engines` and `engines doctor`: the runner programs come from the same config file `run` reads.
int run_engines_command(const std::filesystem::path& config_path, bool doctor,
                        const EnginesArgs& args) {
  const std::string_view command = doctor ? "engines doctor" : "engines";
  auto loaded = sw::worker::load_config(config_path, sw::worker::LoadMode::ReadOnly);
  if (!loaded) {
    std::cerr << "studio-worker " << command << ": " << loaded.error().message << "\n";
    return sw::worker::to_int(sw::worker::exit_code_for_start_error(loaded.error()));
  }
  const sw::worker::WorkerConfig& config = loaded->config;
  sw::engines::InventoryOptions programs;
  programs.llama_server_path = config.llama_server_path;
  programs.whisper_server_path = config.whisper_server_path;
  programs.sd_cli_path = config.sd_cli_path;
  programs.sd_server_path = config.sd_server_path;
  programs.synthetic = config.engines.synthetic;
  if (!doctor) {
    const auto inventory = sw::engines::take_inventory(programs);
    std::cout << (args.json ? sw::engines::inventory_json(inventory)
                            : sw::engines::format_inventory(inventory));
    return 0;
  }
  programs.probe_versions = false;
  sw::engines::DoctorOptions options;
  options.programs = programs;
  if (args.llm_model) options.llm_model = *args.llm_model;
  if (args.whisper_model) options.whisper_model = *args.whisper_model;
  if (args.sd_model) options.sd_model = *args.sd_model;
  // Memory admission as the daemon measures it: the GPU's free memory, else the system's.
  const bool gpu = sw::worker::memoised_vram_total_gib() > 0;
  options.free_memory_gib = [gpu]() -> std::optional<double> {
    if (gpu) return sw::worker::probe_vram_free_gib(sw::worker::system_vram_sources());
    return sw::models::available_system_memory_gib();
  };
  const auto report = sw::engines::run_doctor(options, sw::engines::take_inventory(programs));
  std::cout << (args.json ? sw::engines::doctor_json(report) : sw::engines::format_doctor(report));
  return report.ok() ? 0 : 1;
}

// Exit codes as `run`'s (exit_codes.h): 78 a config or state file that cannot be used, 2 a bad
// value on the command line, 1 anything else (sw::worker::CommandError).
int report(const sw::worker::CommandStatus& status, std::string_view command) {
  if (status) return 0;
  std::cerr << "studio-worker " << command << ": " << status.error().error.message << "\n";
  return sw::worker::to_int(status.error().exit);
}

}  // namespace

int main(int argc, char** argv) {
  sw::log::init_from_env();
  CLI::App app{"studio-worker: pull-based generative-AI worker"};
  // Name and version only: which engines and accelerator a machine has is probed at run time and
  // advertised in the worker's capabilities, not baked into the version line.
  app.set_version_flag("--version", std::string("studio-worker ") + SW_VERSION);
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "Log output on stderr")
      ->check(CLI::IsMember({"text", "json"}));
  std::string config_path = sw::worker::default_config_path().string();
  app.add_option("--config", config_path, "config.toml to use (sibling files live next to it)");
  app.require_subcommand(0, 1);

  auto* run = app.add_subcommand("run", "Run the daemon: local API, registration, studio session");
  std::int64_t registration_poll_ms = 0;
  std::int64_t synthetic_job_ms = 0;
  std::optional<std::uint16_t> local_api_port;
  run->add_option("--registration-poll-ms", registration_poll_ms,
                  "Least time between approval polls (default 1000)")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{3600000}))
      ->group("Rehearsal");
  run->add_option("--synthetic-job-ms", synthetic_job_ms,
                  "Simulated work time of each synthetic job (default 0)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}))
      ->group("Rehearsal");
  // Tests only, hidden from --help: each synthetic job waits until this file exists (a latch the
  // test releases; see SyntheticEngine).
  std::string synthetic_hold_file;
  run->add_option("--synthetic-hold-file", synthetic_hold_file,
                  "Tests only: synthetic jobs wait until this file exists")
      ->group("");
  double time_scale = 1.0;
  run->add_option("--time-scale", time_scale,
                  "Multiply every session timing (heartbeat, timeouts, backoff) by this")
      ->check(CLI::Range(0.01, 1.0))
      ->group("Rehearsal");
  run->add_option("--local-api-port", local_api_port,
                  "Local API port (0: any free port); overrides config and environment");

  auto* register_cmd = app.add_subcommand(
      "register",
      "Set the studio URL or a join token, or clear the registration (no network; run starts it)");
  std::optional<std::string> api_base_url;
  bool reset = false;
  register_cmd->add_option("--api-base-url", api_base_url, "Studio URL, e.g. http://host:9790");
  register_cmd->add_flag("--reset", reset,
                         "Forget the worker id, token, pending request and install id");
  std::optional<std::string> join_token;
  register_cmd
      ->add_option("--join-token", join_token,
                   "Join with a token from `studio-server join-token create`: approved at once, "
                   "no operator needed (kept in state.toml, 0600, until approved). `-` reads it "
                   "from standard input (out of the process list)")
      ->envname("STUDIO_WORKER_JOIN_TOKEN");

  auto* status_cmd = app.add_subcommand("status", "Print the registration and key settings");
  auto* threshold_cmd =
      app.add_subcommand("set-threshold", "Set the largest job (GB of VRAM) this worker takes");
  double threshold = 0;
  threshold_cmd->add_option("gb", threshold, "Gigabytes")->required();
  auto* pause_cmd =
      app.add_subcommand("pause", "Stop taking studio offers (the running daemon; until resume)");
  bool unload = false;
  pause_cmd->add_flag(
      "--unload", unload,
      "Also stop idle runners now to free GPU memory (a busy one when it finishes)");
  auto* resume_cmd = app.add_subcommand("resume", "Take studio offers again (and keep runners)");
  auto* config_cmd = app.add_subcommand("config", "Print config.toml (secrets redacted)");
  auto* config_set = config_cmd->add_subcommand(
      "set", "Change one setting (through the running daemon when there is one)");
  std::string config_key, config_value;
  config_set->add_option("key", config_key, "e.g. vram_threshold_gb")->required();
  config_set->add_option("value", config_value, "The new value")->required();

  auto* samples = app.add_subcommand(
      "samples", "Run one job of every task kind locally (synthetic engine) and write the results");
  std::string out_dir;
  std::string prompt = "a lighthouse on a cliff at dawn";
  samples->add_option("--out", out_dir, "Folder to write the results into")->required();
  samples->add_option("--prompt", prompt, "Prompt or text used for every sample job");

  auto* models = app.add_subcommand("models", "Model files: fetch into the cache, inspect GGUF");
  models->require_subcommand(1);
  sw::worker::FetchOptions fetch;
  double cache_max_gb = 0;
  auto* fetch_cmd = models->add_subcommand("fetch", "Download a model's files into the cache");
  fetch_cmd->add_option("--model", fetch.model_id, "Model id (names the cache folder)")->required();
  fetch_cmd->add_option("--source", fetch.source_json, "ModelSource JSON file")
      ->required()
      ->check(CLI::ExistingFile);
  fetch.models_root = sw::worker::default_models_root();
  fetch_cmd->add_option("--models-root", fetch.models_root, "Cache root (default ~/models)");
  fetch_cmd->add_option("--cache-max-gb", cache_max_gb, "Cache budget in GB (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  std::string gguf_path;
  std::optional<std::uint32_t> context;
  auto* inspect_cmd =
      models->add_subcommand("inspect", "Print a GGUF file's metadata and memory estimate");
  inspect_cmd->add_option("file", gguf_path, "GGUF file")->required()->check(CLI::ExistingFile);
  inspect_cmd->add_option("--context", context,
                          "Context size to estimate for (default 8192, capped)");

  auto* engines = app.add_subcommand(
      "engines",
      "List the engines this machine has: program, version, where found, what to install");
  EnginesArgs engines_args;
  engines->add_flag("--json", engines_args.json, "Print JSON (for scripts)");
  auto* doctor = engines->add_subcommand(
      "doctor", "Run one real request through each engine found and report its timing or error");
  doctor->add_flag("--json", engines_args.json, "Print JSON (for scripts)");
  doctor->add_option("--model", engines_args.llm_model, "GGUF model file for llama-cpp")
      ->check(CLI::ExistingFile);
  doctor
      ->add_option("--whisper-model", engines_args.whisper_model,
                   "whisper.cpp ggml model file for whisper-cpp")
      ->check(CLI::ExistingFile);
  doctor
      ->add_option("--sd-model", engines_args.sd_model,
                   "stable-diffusion model file for sd-cpp (makes a 64x64 image)")
      ->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2 (CLI11's own codes are 100+).
    const int code = app.exit(e);
    // A command given without its group (`studio-worker doctor`): name the full command.
    const auto extras = app.remaining();
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr && !extras.empty()) {
      for (const auto* group : app.get_subcommands({})) {
        for (const auto* command : group->get_subcommands({})) {
          if (extras.front() == command->get_name()) {
            std::cerr << "Did you mean `studio-worker " << group->get_name() << " "
                      << command->get_name() << "`?\n";
          }
        }
      }
    }
    return code == 0 ? 0 : sw::worker::to_int(sw::worker::ExitCode::Usage);
  }
  if (log_format == "json") sw::log::set_format(sw::log::Format::Json);
  if (engines->parsed() && std::getenv("STUDIO_WORKER_LOG") == nullptr) {
    // A report on stdout: only warnings and errors on stderr unless asked for more.
    if (auto quiet = sw::log::Filter::parse("warn")) sw::log::set_filter(std::move(*quiet));
  }

  int rc = 0;
  if (run->parsed()) {
    rc = run_daemon(config_path, registration_poll_ms, synthetic_job_ms, synthetic_hold_file,
                    local_api_port, time_scale);
  } else if (register_cmd->parsed()) {
    if (join_token && *join_token == "-") {
      std::getline(std::cin, *join_token);
      while (!join_token->empty() && (join_token->back() == '\r' || join_token->back() == '\n')) {
        join_token->pop_back();
      }
    }
    rc = report(
        sw::worker::register_command(config_path, api_base_url, reset, join_token, std::cout),
        "register");
  } else if (status_cmd->parsed()) {
    rc = report(sw::worker::print_status(config_path, std::cout), "status");
  } else if (threshold_cmd->parsed()) {
    rc = report(sw::worker::set_threshold(config_path, threshold, std::cout), "set-threshold");
  } else if (pause_cmd->parsed()) {
    rc = report(sw::worker::pause_command(config_path, true, unload, std::cout), "pause");
  } else if (resume_cmd->parsed()) {
    rc = report(sw::worker::pause_command(config_path, false, false, std::cout), "resume");
  } else if (config_set->parsed()) {
    rc = report(sw::worker::set_config_value(config_path, config_key, config_value, std::cout),
                "config set");
  } else if (config_cmd->parsed()) {
    rc = report(sw::worker::print_config(config_path, std::cout), "config");
  } else if (samples->parsed()) {
    rc = run_samples_command(out_dir, prompt);
  } else if (fetch_cmd->parsed()) {
    fetch.cache_max_bytes = static_cast<std::uint64_t>(cache_max_gb * 1e9);
    fetch.progress_bar = ::isatty(STDERR_FILENO) != 0;
    auto status = sw::worker::fetch_model(fetch, std::cout, std::cerr);
    if (!status) std::cerr << "studio-worker models fetch: " << status.error().message << "\n";
    rc = status ? 0 : 1;
  } else if (engines->parsed()) {
    rc = run_engines_command(config_path, doctor->parsed(), engines_args);
  } else if (inspect_cmd->parsed()) {
    auto status = sw::worker::inspect_gguf(gguf_path, context, std::cout);
    if (!status) std::cerr << "studio-worker models inspect: " << status.error().message << "\n";
    rc = status ? 0 : 1;
  } else {
    std::cerr << "studio-worker: a command is required (run, register, status, pause, resume, "
                 "set-threshold, config, samples, models, engines); run with --help for more\n";
    rc = 2;
  }
  sw::log::shutdown();
  return rc;
}
