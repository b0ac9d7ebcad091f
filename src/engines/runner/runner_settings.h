#pragma once
// Per-model runner settings an operator gives in the local catalogue (`<config dir>/models.json`,
// an entry's `"runner"` object; worker/local_catalog.h), applied to every job on that model,
// studio offers and local API alike (issue 19). They shape the runner's command line, so they
// are part of its residency key: a changed setting starts a new runner. llama-server honours
// all of them; the flags are llama.cpp's (tools/server, common/arg.cpp):
//
//   gpuLayers      --n-gpu-layers  an exact number, "auto" or "all"
//   threads        --threads       CPU threads during generation
//   contextSize    per request slot, in place of the model source's cliDefaults.contextSize
//   flashAttention --flash-attn    "on", "off" or "auto"
//   tensorSplit    --tensor-split  proportions per GPU, e.g. [3, 1]
//   extraArgs      appended as given, e.g. ["--mlock"]; never the flags the worker owns
//                  (kOwnedRunnerFlags): where it listens and what it loads are the worker's.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sw::engines {

struct RunnerSettings {
  std::optional<std::string> gpu_layers;  // digits, "auto" or "all" (checked when read)
  std::optional<std::uint32_t> threads;
  std::optional<std::uint32_t> context_size;
  std::optional<std::string> flash_attention;  // "on", "off", "auto"
  std::vector<double> tensor_split;
  std::vector<std::string> extra_args;

  bool empty() const {
    return !gpu_layers && !threads && !context_size && !flash_attention && tensor_split.empty() &&
           extra_args.empty();
  }
};

// The flags extraArgs may not carry (nor their `--flag=value` forms): where the runner listens,
// what it loads (a model from elsewhere, a Hugging Face repo, a URL), its slots, and what would
// stop the worker talking to it (an API key, TLS). From llama.cpp's common/arg.cpp.
inline constexpr std::array<std::string_view, 30> kOwnedRunnerFlags = {"--host",
                                                                       "--port",
                                                                       "-m",
                                                                       "--model",
                                                                       "-mu",
                                                                       "--model-url",
                                                                       "-hf",
                                                                       "-hfr",
                                                                       "--hf-repo",
                                                                       "-hff",
                                                                       "--hf-file",
                                                                       "-hft",
                                                                       "--hf-token",
                                                                       "-dr",
                                                                       "--docker-repo",
                                                                       "--ctx-size",
                                                                       "-c",
                                                                       "--parallel",
                                                                       "-np",
                                                                       "--api-key",
                                                                       "--api-key-file",
                                                                       "--ssl-key-file",
                                                                       "--ssl-cert-file",
                                                                       "--path",
                                                                       "--reuse-port",
                                                                       "--webui",
                                                                       "--mmproj",
                                                                       "-mm",
                                                                       "--mmproj-url",
                                                                       "-mmu"};

}  // namespace sw::engines
