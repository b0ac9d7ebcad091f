#include "engines/sdcpp/sd_mapping.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <regex>

#include "common/base64.h"
#include "common/json_text.h"
#include "rules/engine_rules.h"

namespace sw::engines::sdcpp {
namespace {

std::string number(double value) { return fmt::format("{}", value); }

}  // namespace

SdSettings resolve_settings(const proto::ImageParams& task,
                            const proto::ModelCliDefaults& defaults) {
  // One precedence for the studio's checks and the run (rules/engine_rules.h).
  const rules::SdResolved resolved = rules::sd_resolved(task, defaults);
  SdSettings out;
  out.width = resolved.width;
  out.height = resolved.height;
  out.steps = resolved.steps;
  out.cfg_scale = resolved.cfg_scale;
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

namespace {
// The model-file flags, the same for sd-cli and sd-server (one option table upstream).
void add_model_files(std::vector<std::string>& args, const SdModelFiles& files) {
  auto add = [&](const char* flag, const std::filesystem::path& path) {
    args.emplace_back(flag);
    args.push_back(path.string());
  };
  if (files.diffusion_model) {
    add("--diffusion-model", *files.diffusion_model);
  } else if (files.full_model) {
    add("--model", *files.full_model);
  }
  if (files.vae) add("--vae", *files.vae);
  if (files.text_encoder) add("--llm", *files.text_encoder);
  if (files.text_encoder_vision) add("--llm_vision", *files.text_encoder_vision);
  if (!files.loras.empty()) add("--lora-model-dir", files.loras.front().parent_path());
}
}  // namespace

std::vector<std::string> cli_args(const proto::ImageParams& task,
                                  const proto::ModelCliDefaults& defaults,
                                  const SdModelFiles& files, const SdJobInputs& inputs,
                                  const std::filesystem::path& output) {
  std::vector<std::string> args;
  auto add = [&](std::string flag, std::string value) {
    args.push_back(std::move(flag));
    args.push_back(std::move(value));
  };
  add_model_files(args, files);
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

std::vector<std::string> server_args(const SdModelFiles& files,
                                     const proto::ModelCliDefaults& defaults) {
  std::vector<std::string> args = {"--listen-ip", "127.0.0.1", "--listen-port", "{port}"};
  auto add = [&](std::string flag, std::string value) {
    args.push_back(std::move(flag));
    args.push_back(std::move(value));
  };
  add_model_files(args, files);
  if (defaults.flow_shift) add("--flow-shift", number(*defaults.flow_shift));
  if (defaults.zero_cond_t.value_or(false)) args.emplace_back("--qwen-image-zero-cond-t");
  if (defaults.offload_to_cpu.value_or(false)) args.emplace_back("--offload-to-cpu");
  args.emplace_back("--diffusion-fa");
  return args;
}

Result<SdPromptLoras> split_lora_tags(const std::string& prompt,
                                      const std::vector<std::filesystem::path>& loras) {
  // sd.cpp's tag: <lora:NAME:WEIGHT>; NAME may carry a `|high_noise|` prefix, which image models
  // never use.
  static const std::regex kTag("<lora:([^:>]+):([^>]*)>");
  SdPromptLoras out;
  std::vector<std::optional<double>> weights(loras.size());
  std::size_t last = 0;
  for (auto it = std::sregex_iterator(prompt.begin(), prompt.end(), kTag);
       it != std::sregex_iterator(); ++it) {
    const auto& match = *it;
    out.prompt += prompt.substr(last, static_cast<std::size_t>(match.position()) - last);
    last = static_cast<std::size_t>(match.position() + match.length());
    const std::string name = match[1].str();
    const std::string weight_text = match[2].str();
    double weight = 0;
    const auto [end, ec] =
        std::from_chars(weight_text.data(), weight_text.data() + weight_text.size(), weight);
    if (ec != std::errc() || end != weight_text.data() + weight_text.size()) {
      return fail(Error::invalid_argument("LoRA tag `{}` has no numeric weight", match.str()));
    }
    bool known = false;
    for (std::size_t i = 0; i < loras.size(); ++i) {
      if (loras[i].stem().string() == name) {
        weights[i] =
            weights[i].value_or(0) + weight;  // repeated tags add up, as upstream's map does
        known = true;
      }
    }
    if (!known) {
      return fail(Error::invalid_argument(
          "the prompt names LoRA `{}`, which is not one of the model's files", name));
    }
  }
  out.prompt += prompt.substr(last);
  for (std::size_t i = 0; i < loras.size(); ++i) {
    out.loras.push_back({loras[i].filename().string(), weights[i].value_or(1.0)});
  }
  return out;
}

Result<SdapiRequest> sdapi_request(const proto::ImageParams& task,
                                   const proto::ModelCliDefaults& defaults,
                                   const std::vector<std::filesystem::path>& loras,
                                   const SdInputImages& images) {
  auto split = split_lora_tags(task.prompt, loras);
  if (!split) return fail(split.error());
  const SdSettings settings = resolve_settings(task, defaults);
  const std::uint64_t seed = task.seed.value_or(42);
  if (seed > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return fail(
        Error::invalid_argument("seed {} is above 2^63-1, the largest sd-server accepts", seed));
  }
  nlohmann::json body = {
      {"prompt", split->prompt},
      {"width", settings.width},
      {"height", settings.height},
      {"steps", settings.steps},
      {"cfg_scale", settings.cfg_scale},
      {"seed", static_cast<std::int64_t>(seed)},
      {"batch_size", 1},
  };
  if (task.negative_prompt && !task.negative_prompt->empty()) {
    body["negative_prompt"] = *task.negative_prompt;
  }
  if (settings.sampling_method) body["sampler_name"] = *settings.sampling_method;
  if (!split->loras.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const SdLora& lora : split->loras) {
      list.push_back({{"path", lora.path}, {"multiplier", lora.multiplier}});
    }
    body["lora"] = std::move(list);
  }
  SdapiRequest request;
  request.path = "/sdapi/v1/txt2img";
  if (images.ref_image) {
    request.path = "/sdapi/v1/img2img";
    body["extra_images"] = nlohmann::json::array({base64_encode(*images.ref_image)});
    if (images.mask) body["mask"] = base64_encode(*images.mask);
  } else if (images.init_image) {
    request.path = "/sdapi/v1/img2img";
    body["init_images"] = nlohmann::json::array({base64_encode(*images.init_image)});
    body["denoising_strength"] = task.denoise.value_or(0.75);
    if (images.mask) body["mask"] = base64_encode(*images.mask);
  }
  request.body = std::move(body);
  return request;
}

Result<media::Bytes> sdapi_image(std::string_view body) {
  // Base64 images make this answer large: the transfer's own cap (256 MiB) bounds it, and the
  // depth guard keeps a deep answer from overflowing the stack (issue 16).
  const auto parsed = parse_json(body, "sd-server's answer", JsonLimits{256u << 20, kJsonMaxDepth});
  if (!parsed) return fail(Error::internal("{}", parsed.error().message));
  const auto& json = *parsed;
  if (!json.is_object()) {
    return fail(Error::internal("sd-server answered something that is not a JSON object"));
  }
  const auto images = json.find("images");
  if (images == json.end() || !images->is_array() || images->empty() || !(*images)[0].is_string()) {
    return fail(Error::internal("sd-server's answer has no image"));
  }
  auto bytes = base64_decode((*images)[0].get_ref<const std::string&>());
  if (!bytes) return fail(Error::internal("sd-server's image: {}", bytes.error().message));
  return std::move(*bytes);
}

Error sdapi_error(long status, std::string_view body) {
  std::string words(body.substr(0, 300));
  const auto parsed = parse_json(body, "sd-server's error");
  const auto json = parsed ? *parsed : nlohmann::json();
  if (json.is_object()) {
    const auto error = json.find("error");
    const auto message = json.find("message");
    if (error != json.end() && error->is_string()) words = error->get<std::string>();
    if (message != json.end() && message->is_string()) {
      words += ": " + message->get<std::string>();
    }
  }
  if (status == 400) return Error::invalid_argument("sd-server refused the request: {}", words);
  return Error::unavailable("sd-server answered {}: {}", status, words);
}

std::optional<Error> terminal_failure(std::string_view output, const Error& failure) {
  for (std::string_view words : {std::string_view("init model loader from file failed"),
                                 std::string_view("get sd version from file failed")}) {
    if (output.find(words) != std::string_view::npos) {
      return Error::invalid_argument(
          "{} (stable-diffusion.cpp cannot load the model's files; every worker would fail the "
          "same)",
          failure.message);
    }
  }
  if (output.find("params buffer allocation failed") != std::string_view::npos) {
    return Error::unsupported("{} (the model does not fit this worker's memory)", failure.message);
  }
  return std::nullopt;
}

}  // namespace sw::engines::sdcpp
