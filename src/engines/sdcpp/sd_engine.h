#pragma once
// The sd-cpp engine (`modelSource.engine == "sd-cpp"`, advertises `image: ["sd-cpp:*"]`), on
// stable-diffusion.cpp's own programs, in one of two modes:
//
//  * resident: when `sd-server` was found, one sd-server per model (same files, same per-model
//    switches) kept by the RunnerPool like llama-server: admitted against free memory, started on a
//    loopback port, reused by the next job on the same model (no reload of a multi-GB model),
//    restarted when it died, unloaded when idle. Jobs go to its /sdapi/v1/txt2img|img2img routes
//    (sd_mapping.h says why those and cites the upstream source).
//  * per job: otherwise, one `sd-cli` run per job (reference-worker.md §4.3) in a scratch directory
//    that is always removed.
// There is no per-model switch between the two (ModelCliDefaults is the reference's wire shape and
// has no such key). Resident costs memory between jobs: sd-server keeps the weights and the VAE
// encoder loaded (upstream: to_sd_ctx_params_t(false, false, …)) where sd-cli frees them; a box
// that cannot afford it leaves sd-server out, and idle runners are unloaded after
// runner_idle_unload_secs.
//
// Both map the same task fields (prompt, negative prompt, size, steps, cfg, sampler, seed, LoRAs,
// init / mask / reference images) and end the same way: the PNG is decoded, its size checked
// against the asked size, and re-encoded in the requested ext (webp or png). Nothing falls back
// from one mode to the other within a job: what sd-server cannot take (a seed above 2^63−1, a
// sampler it does not list, a LoRA tag naming no file of the model) is refused by name
// (InvalidArgument). Errors: a failed sd-cli run or sd-server answer is Unavailable (retryable)
// with the program's own last words. Thread-safe; dispatch() blocks (worker threads only).

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "engines/engine.h"
#include "engines/runner/runner_pool.h"
#include "models/model_cache.h"

namespace sw::engines {

struct SdCppPrograms {
  std::optional<std::filesystem::path> cli;     // sd-cli: per-job runs
  std::optional<std::filesystem::path> server;  // sd-server: resident runners (needs `runners`)
  // An sd-cli run with no sign of life (output: its step progress; storage reads: loading) for
  // this long is stopped and the job fails (Timeout, retryable); there is no total limit.
  std::chrono::milliseconds cli_stall{std::chrono::minutes(5)};
};

class SdCppEngine final : public Engine {
 public:
  // At least one program must be set; `runners` must be set when `programs.server` is.
  SdCppEngine(SdCppPrograms programs, std::shared_ptr<models::ModelCache> cache,
              std::shared_ptr<RunnerPool> runners, std::filesystem::path scratch_root);

  std::string_view name() const override { return "sd-cpp"; }
  Capabilities capabilities() const override;
  // The program this engine runs jobs with (sd-server when resident, else sd-cli) is gone.
  std::optional<std::string> unavailable() const override {
    return program_unavailable(resident() ? *programs_.server : *programs_.cli);
  }
  Result<TaskResult> dispatch(const DispatchRequest& request) override;
  // Resident mode only: the pool's refusal for this model's runner (its files' size on disk when
  // cached, else the offer's estimate). Per-job mode has no memory admission (as the reference).
  std::optional<std::string> admission_refusal(const DispatchRequest& request,
                                               double estimate_gib) override;
  // The weights' size on disk when cached, else `estimate_gib`; 0 while the runner is resident.
  double memory_need_gib(const DispatchRequest& request, double estimate_gib) override;

  // Whether jobs run on a resident sd-server (else one sd-cli per job).
  bool resident() const { return programs_.server.has_value() && runners_ != nullptr; }

 private:
  Result<TaskResult> run_resident(const DispatchRequest& request, const proto::ImageParams& task,
                                  const proto::ModelSource& source);
  Result<TaskResult> run_cli(const DispatchRequest& request, const proto::ImageParams& task,
                             const proto::ModelSource& source);

  SdCppPrograms programs_;
  std::shared_ptr<models::ModelCache> cache_;
  std::shared_ptr<RunnerPool> runners_;
  std::filesystem::path scratch_root_;
  // Launches of resident runners by key: a job for a model already loaded skips the cache check.
  std::mutex mutex_;
  std::map<std::string, RunnerLaunch> launches_;
};

}  // namespace sw::engines
