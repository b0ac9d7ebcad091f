#include "engines/sdcpp/sd_mapping.h"

#include <fmt/format.h>

namespace sw::engines::sdcpp {
namespace {

std::string number(double value) { return fmt::format("{}", value); }

}  // namespace

SdSettings resolve_settings(const proto::ImageParams& task,
                            const proto::ModelCliDefaults& defaults) {
  SdSettings out;
  auto size = [](std::uint32_t asked, std::uint32_t fallback) {
    return asked > 0 ? asked : fallback > 0 ? fallback : 1024u;
  };
  out.width = size(task.width, defaults.width);
  out.height = size(task.height, defaults.height);
  // The wire default of 20 cannot be told from an explicit 20: the reference treats it as unset.
  out.steps = task.steps != 0 && task.steps != 20 ? task.steps
              : defaults.steps > 0                ? defaults.steps
                                                  : 8u;
  out.cfg_scale = task.cfg_scale && *task.cfg_scale > 0 ? *task.cfg_scale
                  : defaults.cfg_scale > 0              ? defaults.cfg_scale
                                                        : 1.0;
  out.sampling_method = task.sampling_method ? task.sampling_method : defaults.sampling_method;
  return out;
}

std::string prompt_with_loras(const std::string& prompt,
                              const std::vector<std::filesystem::path>& loras) {
  std::string out = prompt;
  for (const auto& lora : loras) {
    const std::string tag = "<lora:" + lora.stem().string() + ":";
    if (out.find(tag) == std::string::npos) out += " " + tag + "1>";
  }
  return out;
}

std::vector<std::string> cli_args(const proto::ImageParams& task,
                                  const proto::ModelCliDefaults& defaults,
                                  const SdModelFiles& files, const SdJobInputs& inputs,
                                  const std::filesystem::path& output) {
  std::vector<std::string> args;
  auto add = [&](std::string flag, std::string value) {
    args.push_back(std::move(flag));
    args.push_back(std::move(value));
  };
  if (files.diffusion_model) {
    add("--diffusion-model", files.diffusion_model->string());
  } else if (files.full_model) {
    add("--model", files.full_model->string());
  }
  if (files.vae) add("--vae", files.vae->string());
  if (files.text_encoder) add("--llm", files.text_encoder->string());
  if (files.text_encoder_vision) add("--llm_vision", files.text_encoder_vision->string());
  if (!files.loras.empty()) add("--lora-model-dir", files.loras.front().parent_path().string());
  add("-p", prompt_with_loras(task.prompt, files.loras));
  if (task.negative_prompt && !task.negative_prompt->empty()) {
    add("--negative-prompt", *task.negative_prompt);
  }
  if (inputs.ref_image) {
    add("-r", inputs.ref_image->string());
    if (inputs.mask) add("--mask", inputs.mask->string());
  } else if (inputs.init_image) {
    add("--init-img", inputs.init_image->string());
    add("--strength", number(task.denoise.value_or(0.75)));
    if (inputs.mask) add("--mask", inputs.mask->string());
  }
  const SdSettings settings = resolve_settings(task, defaults);
  add("--cfg-scale", number(settings.cfg_scale));
  add("--steps", std::to_string(settings.steps));
  add("-W", std::to_string(settings.width));
  add("-H", std::to_string(settings.height));
  add("-o", output.string());
  if (task.seed) add("--seed", std::to_string(*task.seed));
  if (settings.sampling_method) add("--sampling-method", *settings.sampling_method);
  if (defaults.flow_shift) add("--flow-shift", number(*defaults.flow_shift));
  if (defaults.zero_cond_t.value_or(false)) args.emplace_back("--qwen-image-zero-cond-t");
  if (defaults.offload_to_cpu.value_or(false)) args.emplace_back("--offload-to-cpu");
  args.emplace_back("--diffusion-fa");
  return args;
}

}  // namespace sw::engines::sdcpp
