#include "engines/build_engine.h"

#include "common/log.h"
#include "engines/espeak/espeak_engine.h"
#include "engines/llama/llama_engine.h"
#include "engines/runner/child_process.h"
#include "engines/runner/runner_pool.h"
#include "engines/sdcpp/sd_engine.h"
#include "engines/synthetic/synthetic_engine.h"
#include "engines/whisper/whisper_engine.h"
#include "models/admission.h"

namespace sw::engines {
namespace {
const log::Logger kLog("studio_worker::engine::build");
}  // namespace

BuiltEngine build_engines(const EngineOptions& options) {
  BuiltEngine built;
  std::vector<EnginePtr> members;
  if (!options.models_root.empty()) {
    models::CacheConfig cache_config;
    cache_config.root = options.models_root;
    cache_config.max_bytes = options.models_cache_max_bytes;
    auto cache = std::make_shared<models::ModelCache>(cache_config);
    built.cache = cache;
    RunnerPoolOptions pool_options;
    pool_options.idle_unload = options.runner_idle_unload;
    pool_options.load_stall = options.runner_load_stall;
    pool_options.inference_stall = options.runner_inference_stall;
    pool_options.free_memory_gib = options.free_memory_gib
                                       ? options.free_memory_gib
                                       : std::function(models::available_system_memory_gib);
    pool_options.on_runner_event = options.on_runner_event;
    if (!options.footprints_file.empty()) {
      pool_options.footprints = std::make_shared<FootprintBook>(options.footprints_file);
    }
    pool_options.process_memory_gib = options.process_memory_gib;
    pool_options.gpu_devices = options.gpu_devices;
    built.runners = std::make_shared<RunnerPool>(pool_options);

    auto found = [](const char* program, const Result<std::filesystem::path>& path) {
      if (path) {
        kLog.info("engine.runner_found", {{"program", program}, {"path", path->string()}});
      } else if (path.error().code == Code::InvalidArgument) {
        // Named in config or the environment but not there: a typo or a removed install, which
        // silently leaves this worker without the engine unless it is said loudly.
        kLog.warn("engine.runner_misconfigured",
                  {{"program", program}, {"detail", path.error().message}});
      } else {
        kLog.info("engine.runner_missing",
                  {{"program", program}, {"detail", path.error().message}});
      }
      return path.has_value();
    };
    auto llama =
        locate_program(options.llama_server_path, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
    if (found("llama-server", llama)) {
      members.push_back(std::make_unique<LlamaEngine>(
          *llama, cache, built.runners, options.llama_max_slots, options.runner_settings));
    }
    auto whisper = locate_program(options.whisper_server_path, "STUDIO_WORKER_WHISPER_SERVER",
                                  "whisper-server");
    if (found("whisper-server", whisper)) {
      members.push_back(std::make_unique<WhisperEngine>(*whisper, cache, built.runners));
    }
    // sd-cpp: resident on sd-server when it is found, else one sd-cli run per job.
    SdCppPrograms sd;
    if (auto cli = locate_program(options.sd_cli_path, "STUDIO_WORKER_SD_CLI", "sd-cli");
        found("sd-cli", cli)) {
      sd.cli = *cli;
    }
    if (auto server =
            locate_program(options.sd_server_path, "STUDIO_WORKER_SD_SERVER", "sd-server");
        found("sd-server", server)) {
      sd.server = *server;
    }
    // One sd-cli run loads and generates: the longer of the two silences is allowed.
    sd.cli_stall = std::max(options.runner_load_stall, options.runner_inference_stall);
    if (sd.cli || sd.server) {
      members.push_back(std::make_unique<SdCppEngine>(
          sd, cache, built.runners,
          std::filesystem::temp_directory_path() / "studio-worker-sdcpp"));
    }
  }
  if (options.espeak) {
    if (auto espeak = EspeakEngine::create()) {
      members.push_back(std::move(*espeak));
    } else {
      kLog.warn("engine.espeak_unavailable", {{"error", espeak.error().message}});
    }
  }
  if (options.synthetic) {
    members.push_back(std::make_unique<SyntheticEngine>(options.synthetic_job_duration,
                                                        options.synthetic_hold_file));
  } else {
    kLog.info("engine.synthetic_off", {{"reason", "config [engines] synthetic = false"}});
  }
  if (members.empty()) {
    kLog.warn("engine.none", {{"detail",
                               "no engine is available: this worker serves no task kind "
                               "(install a runner program or turn the synthetic "
                               "engine back on)"}});
  }
  built.engine = std::make_unique<CompositeEngine>(std::move(members));
  return built;
}

Capabilities BuiltEngine::advertised() const {
  if (!engine) return {};
  if (!cache) return engine->capabilities();
  return engine->with_held_models(cache->held_models());
}

std::unique_ptr<CompositeEngine> build_engine(const EngineOptions& options) {
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<SyntheticEngine>(options.synthetic_job_duration,
                                                      options.synthetic_hold_file));
  return std::make_unique<CompositeEngine>(std::move(members));
}

}  // namespace sw::engines
