#pragma once
// Assembles the composite engine from what this build and this machine provide: espeak-ng always
// (linked), llama-cpp / sd-cpp / whisper-cpp when their runner program is found (config path,
// then environment, then PATH), synthetic always and last. An engine whose program is missing is
// not advertised, and an offer routed to it fails non-retryably saying what to install.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engines/composite_engine.h"

namespace sw::engines {

class RunnerPool;

struct EngineOptions {
  std::chrono::milliseconds synthetic_job_duration{0};  // see SyntheticEngine
  std::filesystem::path synthetic_hold_file;            // tests only: see SyntheticEngine
  // Where model files are cached; empty = no engine that needs files (synthetic and espeak only).
  std::filesystem::path models_root;
  std::uint64_t models_cache_max_bytes = 0;
  std::optional<std::string> llama_server_path;  // config; else $STUDIO_WORKER_LLAMA_SERVER
  std::optional<std::string> sd_cli_path;        // else $STUDIO_WORKER_SD_CLI
  std::optional<std::string> whisper_server_path;  // else $STUDIO_WORKER_WHISPER_SERVER
  std::chrono::milliseconds runner_idle_unload{std::chrono::minutes(10)};
  // Free memory for admission (GPU, else system). Unset: the system's MemAvailable.
  std::function<std::optional<double>()> free_memory_gib;
  bool espeak = true;
};

// The engine and the runner pool behind it (for status and shutdown); the pool may be null.
struct BuiltEngine {
  std::unique_ptr<CompositeEngine> engine;
  std::shared_ptr<RunnerPool> runners;
};
BuiltEngine build_engines(const EngineOptions& options);

// The synthetic-only engine (tests, samples).
std::unique_ptr<CompositeEngine> build_engine(const EngineOptions& options = {});

}  // namespace sw::engines
