#pragma once
// Pure mappings of an image task onto stable-diffusion.cpp's two programs. No I/O.
//
// sd-cli, one run per job (reference-worker.md §4.3): role → flag, the precedence of task values
// over the model's cliDefaults, and the order of the arguments.
//
// sd-server, resident per model. Read from leejet/stable-diffusion.cpp at commit
// 2d40a8b2adcdf8b5b0ca0535f3bb7801b6ba13e5 (release master-669-2d40a8b, the build §4.3 pins):
//   examples/server/main.cpp        argv = the server's own table (--listen-ip, --listen-port) plus
//                                   the CLI's context and generation tables; the model is loaded
//                                   (new_sd_ctx) BEFORE the port is bound, so the first answer on
//                                   the port means ready; there is no /health route.
//   examples/server/runtime.cpp     SDSvrParams::get_options; the LoRA list is rescanned from
//                                   --lora-model-dir only by GET /sdapi/v1/loras (and
//                                   capabilities).
//   examples/server/routes_sdapi.cpp POST /sdapi/v1/txt2img and /sdapi/v1/img2img read prompt,
//                                   negative_prompt, width, height, steps, cfg_scale, seed (-1 =
//                                   random), sampler_name, lora [{path, multiplier}], extra_images
//                                   (reference images), and on img2img init_images[0], mask,
//                                   denoising_strength; they answer {"images":[<base64 PNG>],
//                                   "parameters":…, "info":…}, or 400/500 {"error":"…"} (an
//                                   exception: {"error":"server_error","message":"…"}). Prompt
//                                   <lora:…> tags are deliberately NOT parsed by the server.
//   examples/server/routes_openai.cpp /v1/images/generations takes only prompt, n, size and output
//                                   options (the rest through an <sd_cpp_extra_args> JSON blob
//                                   inside the prompt): that is why the worker speaks the sdapi
//                                   routes, which carry every field the CLI path maps as plain
//                                   JSON.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "media/image.h"
#include "proto/types.h"

namespace sw::engines::sdcpp {

// Local paths of the model's files, by role.
struct SdModelFiles {
  std::optional<std::filesystem::path> diffusion_model;  // `diffusion-model` → --diffusion-model
  std::optional<std::filesystem::path> full_model;       // `model` → --model (when no diffusion)
  std::optional<std::filesystem::path> vae;              // `vae` → --vae
  std::optional<std::filesystem::path> text_encoder;     // `text-encoder` → --llm
  std::optional<std::filesystem::path> text_encoder_vision;  // → --llm_vision
  std::vector<std::filesystem::path> loras;  // `lora` → --lora-model-dir + <lora:stem:1> in prompt
};

// The scratch inputs of this job (already fetched, named by their sniffed type).
struct SdJobInputs {
  std::optional<std::filesystem::path> init_image;
  std::optional<std::filesystem::path> mask;
  std::optional<std::filesystem::path> ref_image;
};

struct SdSettings {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::uint32_t steps = 0;
  double cfg_scale = 0;
  std::optional<std::string> sampling_method;
};

// task value if > 0, else cliDefaults if > 0, else 1024 (size) / 8 (steps; a task's 20 counts as
// unset) / 1.0 (cfg); sampler: task, else cliDefaults.
SdSettings resolve_settings(const proto::ImageParams& task, const proto::ModelCliDefaults& defaults);

// The prompt with `<lora:stem:1>` appended for every LoRA file it does not mention already.
std::string prompt_with_loras(const std::string& prompt,
                              const std::vector<std::filesystem::path>& loras);

// The whole argv (without the program). `output` is the PNG sd-cli writes.
std::vector<std::string> cli_args(const proto::ImageParams& task,
                                  const proto::ModelCliDefaults& defaults,
                                  const SdModelFiles& files, const SdJobInputs& inputs,
                                  const std::filesystem::path& output);

// --- sd-server -----------------------------------------------------------------------------------

// The image inputs of a job as bytes (already fetched and sniffed as images).
struct SdInputImages {
  std::optional<media::Bytes> init_image;
  std::optional<media::Bytes> mask;
  std::optional<media::Bytes> ref_image;
};

// sd-server's argv (without the program): loopback listen address with a "{port}" placeholder, the
// model files by role as for sd-cli, and the per-model switches from cliDefaults (flow shift,
// zero-cond-t, offload, flash attention) that the sdapi request cannot carry.
std::vector<std::string> server_args(const SdModelFiles& files,
                                     const proto::ModelCliDefaults& defaults);

// One LoRA of the request: its path relative to --lora-model-dir and its weight.
struct SdLora {
  std::string path;
  double multiplier = 1.0;
};

// What the CLI does with `<lora:name:weight>` tags, done for the server (which ignores them): every
// tag is cut from the prompt; a tag naming one of the model's LoRA files (by stem) sets its weight;
// a LoRA file no tag names gets weight 1 (as prompt_with_loras appends it). A tag naming a LoRA the
// model does not list is refused (InvalidArgument): the server could not load it.
struct SdPromptLoras {
  std::string prompt;
  std::vector<SdLora> loras;
};
Result<SdPromptLoras> split_lora_tags(const std::string& prompt,
                                      const std::vector<std::filesystem::path>& loras);

// One sdapi call: the route and its JSON body.
struct SdapiRequest {
  std::string path;  // "/sdapi/v1/txt2img" or "/sdapi/v1/img2img"
  nlohmann::json body;
};

// The request for a task: txt2img without images; img2img with the init image (plus
// denoising_strength, 0.75 when unset, and the mask) or with the reference image as
// extra_images[0] (plus the mask, no strength) — the same modes as cli_args. Size, steps and cfg
// are the resolved settings; the sampler is sent when one is set; the seed is the task's, else 42
// (sd-cli's default, so a task gives the same image on either path). InvalidArgument for a seed
// above 2^63−1 (the server reads it as int64) and for LoRA tags per split_lora_tags.
Result<SdapiRequest> sdapi_request(const proto::ImageParams& task,
                                   const proto::ModelCliDefaults& defaults,
                                   const std::vector<std::filesystem::path>& loras,
                                   const SdInputImages& images);

// The first image of a 200 answer, as PNG bytes. Internal when the answer is not the sdapi shape.
Result<media::Bytes> sdapi_image(std::string_view body);

// The error of a non-2xx answer: 400 → InvalidArgument (the server refused the request, e.g.
// "prompt required"), anything else → Unavailable (retryable, as a failed sd-cli run is), both
// with the server's own words.
Error sdapi_error(long status, std::string_view body);

// --- failures --------------------------------------------------------------------------------

// A failed sd-cli run or sd-server start whose output says a rerun cannot help, as a terminal
// (non-retryable) error; nullopt for any other failure (retryable: it may be this machine's
// moment). Upstream's words (src/stable-diffusion.cpp at the pinned commit, new_sd_ctx):
//   "init model loader from file failed: '<path>'", "get sd version from file failed: '<path>'"
//     the model's files are not a model it can load: every worker fails the same
//     (InvalidArgument);
//   "<part> params buffer allocation failed" the model's weights do not fit this machine's memory
//     (Unsupported: this worker cannot run the model; it fails once rather than three times).
// `output` is the program's last lines (or a message that quotes them); `failure` the error as it
// would otherwise be reported, whose words are kept.
std::optional<Error> terminal_failure(std::string_view output, const Error& failure);

}  // namespace sw::engines::sdcpp
