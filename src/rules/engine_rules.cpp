#include "rules/engine_rules.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <set>

#include "transfer/url_policy.h"

namespace sw::rules {
namespace {

using proto::ModelEngine;
using proto::TaskKind;

constexpr std::string_view kSdSource =
    "stable-diffusion.cpp src/stable-diffusion.cpp GenerationRequest::align_image_size";

// sample_method_to_str at the pinned commit (src/stable-diffusion.cpp).
constexpr std::array<std::string_view, 18> kSdSamplers = {
    "euler",         "euler_a", "heun",    "dpm2",         "dpm++2s_a",      "dpm++2m",
    "dpm++2mv2",     "ipndm",   "ipndm_v", "lcm",          "ddim_trailing",  "tcd",
    "res_multistep", "res_2s",  "er_sde",  "euler_cfg_pp", "euler_a_cfg_pp", "euler_ge"};

// The formats the worker's encoders write per kind and engine.
constexpr std::array<std::string_view, 2> kImageExts = {"webp", "png"};
constexpr std::array<std::string_view, 5> kAudioExts = {"wav", "flac", "ogg", "opus", "mp3"};
constexpr std::array<std::string_view, 2> kVideoExts = {"webp", "gif"};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

template <std::size_t N>
std::string joined(const std::array<std::string_view, N>& list) {
  std::string out;
  for (std::string_view item : list) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

Status refuse(std::string message) {
  return fail(Error::make(Code::InvalidArgument, "{}", message));
}

bool plain_filename(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

// A side of an sd-cpp image: `field` for messages, `resolved` the size that would be run.
Status check_sd_side(std::string_view field, std::uint32_t resolved, const SdResolved& size) {
  if (resolved < kSdSideMultiple || resolved > kSdMaxSide) {
    return refuse(
        fmt::format("{}: {} is outside {}..{}, the sides stable-diffusion.cpp can make "
                    "here (multiples of {}, at most {}: the largest WebP side)",
                    field, resolved, kSdSideMultiple, kSdMaxSide, kSdSideMultiple, kSdMaxSide));
  }
  if (resolved % kSdSideMultiple != 0) {
    const auto up = [](std::uint32_t side) {
      return (side + kSdSideMultiple - 1) / kSdSideMultiple * kSdSideMultiple;
    };
    return refuse(fmt::format(
        "{}: {} is not a multiple of {}; stable-diffusion.cpp aligns a side up to its model's "
        "multiple (up to {}; {}), so the image would come out {}x{}, not the {}x{} asked",
        field, resolved, kSdSideMultiple, kSdSideMultiple, kSdSource, up(size.width),
        up(size.height), size.width, size.height));
  }
  return {};
}

Status check_input_url(std::string_view field, const std::optional<std::string>& url) {
  if (!url) return {};
  if (url->empty()) return refuse(fmt::format("{}: must not be empty", field));
  // The worker's words (engines/runner/input_fetch.cpp): inline data only on its local API.
  if (url->starts_with("data:")) {
    return refuse(fmt::format(
        "{}: data: URLs are accepted by a worker's local API only; a studio job must use https",
        field));
  }
  if (auto allowed = transfer::check_download_url(*url); !allowed) {
    return refuse(fmt::format("{}: {} (a worker fetches it)", field, allowed.error().message));
  }
  return {};
}

Status check_sd_image(const proto::ModelSource& source, const proto::ImageParams& task,
                      Stage stage) {
  if (task.prompt.empty()) {
    return refuse("task.prompt: stable-diffusion.cpp needs a prompt");
  }
  if (!one_of(kImageExts, task.ext)) {
    return refuse(fmt::format("task.ext: sd-cpp images come as {}, not \"{}\"", joined(kImageExts),
                              task.ext));
  }
  const SdResolved size = sd_resolved(task, source.cli_defaults);
  SW_TRY(check_sd_side("task.width", size.width, size));
  SW_TRY(check_sd_side("task.height", size.height, size));
  if (size.steps > kSdMaxSteps) {
    return refuse(fmt::format(
        "task.steps: {} is above {}; sd-server runs at most {} steps (stable-diffusion.cpp "
        "examples/common/common.cpp SDGenerationParams::resolve clamps steps to 1..{})",
        size.steps, kSdMaxSteps, kSdMaxSteps, kSdMaxSteps));
  }
  if (task.denoise && (!std::isfinite(*task.denoise) || *task.denoise < 0 || *task.denoise > 1)) {
    return refuse(fmt::format(
        "task.denoise: {} is outside 0..1 (stable-diffusion.cpp examples/common/common.cpp "
        "SDGenerationParams::validate: \"can only work with strength in [0.0, 1.0]\")",
        *task.denoise));
  }
  if (task.seed &&
      *task.seed > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return refuse(fmt::format(
        "task.seed: {} is above 2^63-1, the largest seed stable-diffusion.cpp reads (int64)",
        *task.seed));
  }
  // Creation only: a worker's own sd-cli may be newer than the pinned release and know more.
  const auto sampler =
      task.sampling_method ? task.sampling_method : source.cli_defaults.sampling_method;
  if (stage == Stage::Creation && sampler && !one_of(kSdSamplers, *sampler)) {
    return refuse(
        fmt::format("task.samplingMethod: \"{}\" is not a sampler stable-diffusion.cpp knows ({}; "
                    "src/stable-diffusion.cpp sample_method_to_str)",
                    *sampler, joined(kSdSamplers)));
  }
  SW_TRY(check_input_url("task.initImageUrl", task.init_image_url));
  SW_TRY(check_input_url("task.maskUrl", task.mask_url));
  SW_TRY(check_input_url("task.refImageUrl", task.ref_image_url));
  return {};
}

Status check_image(ModelEngine engine, const proto::ModelSource& source,
                   const proto::ImageParams& task, Stage stage) {
  switch (engine) {
    case ModelEngine::SdCpp: return check_sd_image(source, task, stage);
    case ModelEngine::Onnx:
      // reference-worker.md §4.6: the LaMa pipeline edits an image under a mask.
      if (!task.init_image_url || !task.mask_url) {
        return refuse(
            fmt::format("task.{}: the onnx engine (LaMa object removal) needs both "
                        "initImageUrl and maskUrl",
                        task.init_image_url ? "maskUrl" : "initImageUrl"));
      }
      break;
    default: break;
  }
  if (!one_of(kImageExts, task.ext)) {
    return refuse(
        fmt::format("task.ext: images come as {}, not \"{}\"", joined(kImageExts), task.ext));
  }
  SW_TRY(check_input_url("task.initImageUrl", task.init_image_url));
  SW_TRY(check_input_url("task.maskUrl", task.mask_url));
  SW_TRY(check_input_url("task.refImageUrl", task.ref_image_url));
  return {};
}

Status check_llm(const proto::LlmParams& task) {
  if (task.messages.empty()) {
    return refuse("task.messages: at least one message is required");
  }
  return {};
}

Status check_stt(const proto::ModelSource& source, const proto::AudioSttParams& task,
                 ModelEngine engine) {
  if (task.input_url.empty()) return refuse("task.inputUrl: missing required field");
  SW_TRY(check_input_url("task.inputUrl", task.input_url));
  if (engine == ModelEngine::WhisperCpp && task.vad.value_or(false)) {
    const bool has_vad = std::any_of(source.files.begin(), source.files.end(),
                                     [](const proto::ModelFile& f) { return f.role == "vad"; });
    if (!has_vad) {
      return refuse(
          "task.vad: the model lists no file of role `vad` (a Silero VAD model), which "
          "whisper.cpp needs for --vad");
    }
  }
  return {};
}

Status check_tts(ModelEngine engine, const proto::AudioTtsParams& task) {
  if (task.text.empty()) return refuse("task.text: must not be empty");
  if (engine == ModelEngine::Synthetic) {
    if (task.ext != "wav") {
      return refuse(
          fmt::format("task.ext: the synthetic engine writes wav audio, not \"{}\"", task.ext));
    }
    return {};
  }
  if (engine == ModelEngine::EspeakNg) {
    if (task.text.size() > kEspeakMaxTextBytes) {
      return refuse(fmt::format("task.text: {} bytes; espeak-ng takes at most {} per job",
                                task.text.size(), kEspeakMaxTextBytes));
    }
    if (!one_of(kAudioExts, task.ext)) {
      return refuse(fmt::format("task.ext: espeak-ng audio comes as {}, not \"{}\"",
                                joined(kAudioExts), task.ext));
    }
  }
  return {};
}

Status check_video(const proto::VideoParams& task, Stage stage) {
  if (task.prompt.empty()) return refuse("task.prompt: missing required field");
  // Only the synthetic engine serves video (proto::engine_serves); its limits.
  const std::uint32_t fps = task.fps.value_or(kSyntheticDefaultFps);
  if (fps == 0 || fps > kSyntheticMaxFps) {
    return refuse(fmt::format("task.fps: {} is outside 1..{}", fps, kSyntheticMaxFps));
  }
  if (!std::isfinite(task.seconds) || task.seconds <= 0 ||
      task.seconds > kSyntheticMaxVideoSeconds) {
    return refuse(fmt::format("task.seconds: {} is outside (0, {}]", task.seconds,
                              kSyntheticMaxVideoSeconds));
  }
  if (stage == Stage::Creation && !one_of(kVideoExts, task.ext)) {
    return refuse(fmt::format(
        "task.ext: \"{}\" cannot be produced: no engine here links a video codec, so video comes "
        "as animated {} (or gif); leave ext out or ask for {}",
        task.ext, kDefaultVideoExt, joined(kVideoExts)));
  }
  return {};
}

}  // namespace

SdResolved sd_resolved(const proto::ImageParams& task, const proto::ModelCliDefaults& defaults) {
  auto size = [](std::uint32_t asked, std::uint32_t fallback) {
    return asked > 0 ? asked : fallback > 0 ? fallback : 1024u;
  };
  SdResolved out;
  out.width = size(task.width, defaults.width);
  out.height = size(task.height, defaults.height);
  // The wire default of 20 cannot be told from an explicit 20: the reference treats it as unset.
  out.steps = task.steps != 0 && task.steps != 20 ? task.steps
              : defaults.steps > 0                ? defaults.steps
                                                  : 8u;
  out.cfg_scale = task.cfg_scale && *task.cfg_scale > 0 ? *task.cfg_scale
                  : defaults.cfg_scale > 0              ? defaults.cfg_scale
                                                        : 1.0;
  return out;
}

Status check_model(TaskKind kind, const proto::ModelSource& source) {
  const auto engine = proto::parse_model_engine(source.engine);
  if (!engine) {
    return refuse(fmt::format(
        "source.engine: unknown engine \"{}\" (sd-cpp, llama-cpp, whisper-cpp, espeak-ng, onnx, "
        "synthetic)",
        source.engine));
  }
  if (!proto::engine_serves(*engine, kind)) {
    return refuse(fmt::format("source.engine: {} does not serve {} tasks", source.engine,
                              proto::to_string(kind)));
  }
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < source.files.size(); ++i) {
    const proto::ModelFile& file = source.files[i];
    if (!proto::parse_model_file_role(file.role)) {
      return refuse(
          fmt::format("source.files[{}].role: unknown role \"{}\" (diffusion-model, text-encoder, "
                      "text-encoder-vision, vae, lora, model, vad)",
                      i, file.role));
    }
    if (!plain_filename(file.filename) || file.filename == ".model.json") {
      return refuse(fmt::format(
          "source.files[{}].filename: \"{}\" is not a plain file name (no '/', '\\', '.' or '..'; "
          "\".model.json\" is the worker cache's own)",
          i, file.filename));
    }
    if (!names.insert(file.filename).second) {
      return refuse(
          fmt::format("source.files[{}].filename: \"{}\" is listed twice", i, file.filename));
    }
    if (auto allowed = transfer::check_download_url(file.url); !allowed) {
      return refuse(
          fmt::format("source.files[{}].url: {} (what every worker's downloader "
                      "refuses)",
                      i, allowed.error().message));
    }
  }
  const auto has = [&source](auto&& predicate) {
    return std::any_of(source.files.begin(), source.files.end(), predicate);
  };
  switch (*engine) {
    case ModelEngine::LlamaCpp:
      if (!has([](const proto::ModelFile& f) { return f.filename.ends_with(".gguf"); })) {
        return refuse("source.files: llama-cpp needs a .gguf file (role `model`); none is listed");
      }
      break;
    case ModelEngine::SdCpp: {
      if (!has([](const proto::ModelFile& f) {
            return f.role == "diffusion-model" || f.role == "model";
          })) {
        return refuse(
            "source.files: sd-cpp needs a file of role `diffusion-model` or `model`; "
            "none is listed");
      }
      const auto& defaults = source.cli_defaults;
      for (const auto& [name, side] :
           {std::pair("width", defaults.width), std::pair("height", defaults.height)}) {
        if (side != 0 && (side % kSdSideMultiple != 0 || side > kSdMaxSide)) {
          return refuse(fmt::format(
              "source.cliDefaults.{}: {} is not a multiple of {} within {}..{} ({}; 0 = unset)",
              name, side, kSdSideMultiple, kSdSideMultiple, kSdMaxSide, kSdSource));
        }
      }
      if (defaults.steps > kSdMaxSteps) {
        return refuse(fmt::format(
            "source.cliDefaults.steps: {} is above {} (stable-diffusion.cpp "
            "examples/common/common.cpp SDGenerationParams::resolve clamps steps to 1..{})",
            defaults.steps, kSdMaxSteps, kSdMaxSteps));
      }
      if (defaults.sampling_method && !one_of(kSdSamplers, *defaults.sampling_method)) {
        return refuse(fmt::format(
            "source.cliDefaults.samplingMethod: \"{}\" is not a sampler stable-diffusion.cpp "
            "knows ({})",
            *defaults.sampling_method, joined(kSdSamplers)));
      }
      break;
    }
    case ModelEngine::WhisperCpp:
      if (!has([](const proto::ModelFile& f) { return f.role != "vad"; })) {
        return refuse(
            "source.files: whisper-cpp needs a model file (role `model`); none is "
            "listed");
      }
      break;
    case ModelEngine::Onnx:
      if (!has([](const proto::ModelFile& f) {
            return f.role == "model" && f.filename.ends_with(".onnx");
          })) {
        return refuse("source.files: onnx needs a `model` file ending in .onnx; none is listed");
      }
      break;
    case ModelEngine::EspeakNg:
    case ModelEngine::Synthetic:
    case ModelEngine::Parakeet: break;  // no files needed (parakeet never serves a job)
  }
  return {};
}

Status check_task(const proto::ModelSource& source, const proto::Task& task, Stage stage) {
  const auto engine = proto::parse_model_engine(source.engine);
  if (!engine) return {};
  return std::visit(
      [&](const auto& params) -> Status {
        using P = std::decay_t<decltype(params)>;
        if constexpr (std::is_same_v<P, proto::ImageParams>) {
          return check_image(*engine, source, params, stage);
        } else if constexpr (std::is_same_v<P, proto::LlmParams>) {
          return check_llm(params);
        } else if constexpr (std::is_same_v<P, proto::AudioSttParams>) {
          return check_stt(source, params, *engine);
        } else if constexpr (std::is_same_v<P, proto::AudioTtsParams>) {
          return check_tts(*engine, params);
        } else {
          return check_video(params, stage);
        }
      },
      task.params);
}

}  // namespace sw::rules
