#pragma once
// What each engine can and cannot do, in one table: the models it can be given and the tasks it can
// run. The studio checks a model when it is registered and a job when it is created (so that a job
// no worker can run is refused at once instead of failing three times); a worker checks an offer
// before running it, so that a task that cannot succeed anywhere fails once, non-retryably.
//
// Errors are Code::InvalidArgument "<field>: <problem>", fields named as on the wire
// ("source.files[0].url", "task.width"); a rule taken from an engine's program names its source.
//
// stable-diffusion.cpp, read at the commit the worker pins
// (2d40a8b2adcdf8b5b0ca0535f3bb7801b6ba13e5, release master-669-2d40a8b, reference-worker.md §4.3):
//   src/stable-diffusion.cpp  GenerationRequest::align_image_size: a side that is not a multiple of
//                             vae_scale_factor × diffusion_model_down_factor is aligned UP (with a
//                             warning), and the image comes out larger than asked. The factors are
//                             VAE::get_scale_factor (src/vae.hpp: 8; 16 for the Flux2 VAE and
//                             Wan2.2 TI2V; 32 for LTXAV; 1 for pixel-space models) times
//                             get_diffusion_model_down_factor (8 for UNet models SD1.x/SD2/SDXL, 2
//                             for Wan, 1 for other DiT models). 64 is a multiple of every product,
//                             so a side that is a multiple of 64 is never changed, whatever the
//                             model; the studio cannot tell the model's version, so 64 is the rule.
//   examples/common/common.cpp SDGenerationParams::resolve(strict) (sd-server) clamps steps to
//                             1..100; ::validate refuses steps <= 0 and a strength (denoise)
//                             outside [0, 1]. src/stable-diffusion.cpp sample_method_to_str lists
//                             the sampler names str_to_sample_method knows.
//   examples/server/routes_sdapi.cpp reads the seed as int64.
// The largest side is ours: libwebp writes at most 16383 pixels a side (WEBP_MAX_DIMENSION), so
// 16320 (255 × 64) is the largest side a result can have.
//
// Thread-safety: pure functions.

#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "proto/types.h"

namespace sw::rules {

// Where a task is checked.
enum class Stage {
  // At our studio, when the job is created: every rule, including what would come back under
  // another label than asked (a video asked as mp4 is produced as animated WebP).
  Creation,
  // At a worker, before it runs a studio's offer: only what no run could satisfy. A reference
  // studio's video task says `ext: mp4` by default; it is still run (and comes back as webp).
  Offer,
};

// The container a video job created at our studio gets when it names none: what the engines
// produce (no video codec is linked; the synthetic engine writes animated WebP or GIF).
inline constexpr std::string_view kDefaultVideoExt = "webp";

// stable-diffusion.cpp image sides (see the header comment).
inline constexpr std::uint32_t kSdSideMultiple = 64;
inline constexpr std::uint32_t kSdMaxSide = 16320;
inline constexpr std::uint32_t kSdMaxSteps = 100;
// espeak-ng text per job (ours: the engine refuses more).
inline constexpr std::size_t kEspeakMaxTextBytes = 100'000;
// The synthetic engine's video limits (its placeholder renderer; ours).
inline constexpr std::uint32_t kSyntheticMaxFps = 60;
inline constexpr std::uint32_t kSyntheticDefaultFps = 8;
inline constexpr double kSyntheticMaxVideoSeconds = 60.0;

// The size, steps and cfg an sd-cpp job runs with (reference-worker.md §4.3): the task's value if
// > 0, else the model's cliDefaults if > 0, else 1024 (sides) / 8 (steps; a task's 20 is the wire
// default and counts as unset) / 1.0 (cfg).
struct SdResolved {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::uint32_t steps = 0;
  double cfg_scale = 0;
};
SdResolved sd_resolved(const proto::ImageParams& task, const proto::ModelCliDefaults& defaults);

// A model as registered: its engine is known and serves `kind`; its files are what the engine
// needs (llama-cpp a .gguf, sd-cpp a `diffusion-model` or `model` file, whisper-cpp a model file,
// onnx a `model` .onnx); every file has a known role, a plain unique file name and a URL a worker
// will download (transfer/url_policy.h: https, or plain http to a loopback host); sd-cpp
// cliDefaults sizes and steps obey the sd rules above.
Status check_model(proto::TaskKind kind, const proto::ModelSource& source);

// A task for a model of `source`: the engine's hard rules for that kind (see Stage). A source
// whose engine this build does not know has no rules here (the worker's routing refuses it).
Status check_task(const proto::ModelSource& source, const proto::Task& task, Stage stage);

}  // namespace sw::rules
