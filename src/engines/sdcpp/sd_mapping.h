#pragma once
// Pure mapping of an image task onto stable-diffusion.cpp's sd-cli argv (reference-worker.md
// §4.3): role → flag, the precedence of task values over the model's cliDefaults, and the order of
// the arguments. No I/O.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

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

}  // namespace sw::engines::sdcpp
