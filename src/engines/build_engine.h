#pragma once
// Assembles the composite engine from what this build and this machine provide: espeak-ng always
// (linked), llama-cpp / sd-cpp / whisper-cpp when their runner program is found (config path,
// then environment, then PATH; sd-cpp runs resident on sd-server when it is found, else sd-cli
// per job), synthetic last unless the config switches it off (`[engines] synthetic = false`, for a
// box that should only do real work). An engine whose program is missing is not advertised, and an
// offer routed to it is rejected before accept saying what to install.

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "engines/composite_engine.h"
#include "engines/runner/runner_pool.h"
#include "engines/runner/runner_settings.h"

namespace sw::engines {

struct EngineOptions {
  std::chrono::milliseconds synthetic_job_duration{0};  // see SyntheticEngine
  std::filesystem::path synthetic_hold_file;            // tests only: see SyntheticEngine
  // Where model files are cached; empty = no engine that needs files (synthetic and espeak only).
  std::filesystem::path models_root;
  std::uint64_t models_cache_max_bytes = 0;
  std::optional<std::string> llama_server_path;  // config; else $STUDIO_WORKER_LLAMA_SERVER
  std::optional<std::string> sd_cli_path;        // else $STUDIO_WORKER_SD_CLI
  std::optional<std::string> sd_server_path;     // else $STUDIO_WORKER_SD_SERVER (resident mode)
  std::optional<std::string> whisper_server_path;  // else $STUDIO_WORKER_WHISPER_SERVER
  std::chrono::milliseconds runner_idle_unload{std::chrono::minutes(10)};
  // Progress deadlines for runners (RunnerPoolOptions::load_stall / inference_stall).
  std::chrono::milliseconds runner_load_stall{std::chrono::minutes(2)};
  std::chrono::milliseconds runner_inference_stall{std::chrono::minutes(5)};
  // Free memory for admission (GPU, else system). Unset: the system's MemAvailable.
  std::function<std::optional<double>()> free_memory_gib;
  // Runner starts and deaths, for the worker's metrics (RunnerPoolOptions::on_runner_event).
  std::function<void(std::string_view program, RunnerEvent event)> on_runner_event;
  // The GPUs runners are pinned to (RunnerPoolOptions::gpu_devices); unset: no pinning.
  std::function<std::vector<GpuDevice>()> gpu_devices;
  // Learned runner footprints (runner/footprint_book.h), kept in this file across restarts;
  // empty: nothing is learned (estimates only).
  std::filesystem::path footprints_file;
  // How a runner process is measured (RunnerPoolOptions::process_memory_gib); unset: its peak
  // resident set.
  std::function<std::optional<double>(int pid)> process_memory_gib;
  // Request slots of one resident llama-server (LlamaEngine's max_slots): the worker's
  // max_concurrent_jobs.
  std::uint32_t llama_max_slots = 1;
  // The operator's per-model runner settings by model id (the local catalogue's `runner`).
  std::map<std::string, RunnerSettings> runner_settings;
  bool espeak = true;
  bool synthetic = true;  // config `[engines] synthetic`
};

// The engine, the runner pool behind it (for status and shutdown) and the model cache its
// engines share; the pool and the cache are null without a models root.
struct BuiltEngine {
  std::unique_ptr<CompositeEngine> engine;
  std::shared_ptr<RunnerPool> runners;
  std::shared_ptr<models::ModelCache> cache;

  // What the worker advertises per kind (§1.5): the engines' own names plus the ids of the
  // models the cache holds, for the kinds their engine serves. Blocking (reads the cache's
  // manifests): call it off the I/O thread. Thread-safe.
  Capabilities advertised() const;
};
BuiltEngine build_engines(const EngineOptions& options);

// The synthetic-only engine (tests, samples).
std::unique_ptr<CompositeEngine> build_engine(const EngineOptions& options = {});

}  // namespace sw::engines
