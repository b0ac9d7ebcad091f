#include "worker/local_catalog.h"

#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "common/json_text.h"
#include "proto/codec.h"

namespace sw::worker {
namespace {

// `"runner"` of one entry; the error names the field and what it must be.
Result<engines::RunnerSettings> parse_runner_settings(const nlohmann::json& runner) {
  engines::RunnerSettings out;
  if (!runner.is_object()) return fail(Error::invalid_argument("`runner` must be an object"));
  auto whole = [](const nlohmann::json& value, std::uint64_t low,
                  std::uint64_t high) -> std::optional<std::uint32_t> {
    if (!value.is_number_unsigned()) return std::nullopt;
    const auto n = value.get<std::uint64_t>();
    if (n < low || n > high) return std::nullopt;
    return static_cast<std::uint32_t>(n);
  };
  for (const auto& [field, value] : runner.items()) {
    if (field == "gpuLayers") {
      if (value.is_string() && (value == "auto" || value == "all")) {
        out.gpu_layers = value.get<std::string>();
      } else if (auto n = whole(value, 0, 100000)) {
        out.gpu_layers = std::to_string(*n);
      } else {
        return fail(
            Error::invalid_argument("runner.gpuLayers: a number of layers, \"auto\" or \"all\""));
      }
    } else if (field == "threads") {
      out.threads = whole(value, 1, 1024);
      if (!out.threads) return fail(Error::invalid_argument("runner.threads: 1 to 1024"));
    } else if (field == "contextSize") {
      out.context_size = whole(value, 64, 1u << 24);
      if (!out.context_size) {
        return fail(Error::invalid_argument("runner.contextSize: 64 to 16777216 tokens"));
      }
    } else if (field == "flashAttention") {
      if (!value.is_string() || (value != "on" && value != "off" && value != "auto")) {
        return fail(Error::invalid_argument("runner.flashAttention: \"on\", \"off\" or \"auto\""));
      }
      out.flash_attention = value.get<std::string>();
    } else if (field == "tensorSplit") {
      if (!value.is_array() || value.empty() || value.size() > 16) {
        return fail(
            Error::invalid_argument("runner.tensorSplit: 1 to 16 proportions, e.g. [3, 1]"));
      }
      for (const auto& part : value) {
        if (!part.is_number() || part.get<double>() < 0 || part.get<double>() > 1e6) {
          return fail(Error::invalid_argument("runner.tensorSplit: proportions are numbers ≥ 0"));
        }
        out.tensor_split.push_back(part.get<double>());
      }
    } else if (field == "extraArgs") {
      if (!value.is_array() || value.size() > 64) {
        return fail(Error::invalid_argument("runner.extraArgs: at most 64 strings"));
      }
      for (const auto& arg : value) {
        if (!arg.is_string() || arg.get<std::string>().empty() ||
            arg.get<std::string>().size() > 4096) {
          return fail(
              Error::invalid_argument("runner.extraArgs: non-empty strings of at most 4096 bytes"));
        }
        const auto text = arg.get<std::string>();
        const auto flag = std::string_view(text).substr(0, text.find('='));
        for (std::string_view owned : engines::kOwnedRunnerFlags) {
          if (flag == owned) {
            return fail(
                Error::invalid_argument("runner.extraArgs: {} is set by the worker (where the "
                                        "runner listens and what it loads)",
                                        owned));
          }
        }
        out.extra_args.push_back(text);
      }
    } else {
      return fail(Error::invalid_argument(
          "runner.{}: unknown (gpuLayers, threads, contextSize, flashAttention, tensorSplit, "
          "extraArgs)",
          field));
    }
  }
  return out;
}

}  // namespace

Result<std::vector<CatalogModel>> parse_local_catalog(std::string_view json_text,
                                                      std::string_view source_name) {
  auto parsed = parse_json(json_text, source_name);
  if (!parsed) return fail(std::move(parsed).error());
  auto& root = *parsed;
  if (!root.is_object() || !root.contains("models") || !root["models"].is_array()) {
    return fail(Error::invalid_argument("{}: expected {{\"models\":[…]}}", source_name));
  }
  std::vector<CatalogModel> out;
  std::size_t index = 0;
  for (const auto& entry : root["models"]) {
    auto bad = [&](std::string_view what) {
      return Error::invalid_argument("{}: models[{}]: {}", source_name, index, what);
    };
    if (!entry.is_object()) return fail(bad("not an object"));
    CatalogModel model;
    if (!entry.contains("id") || !entry["id"].is_string() || entry["id"].get<std::string>().empty()) {
      return fail(bad("`id` must be a non-empty string"));
    }
    model.id = entry["id"].get<std::string>();
    if (!entry.contains("kind") || !entry["kind"].is_string()) return fail(bad("`kind` missing"));
    auto kind = proto::parse_task_kind(entry["kind"].get<std::string>());
    if (!kind) return fail(bad("`kind` is not image, llm, audio_stt, audio_tts or video"));
    model.kind = *kind;
    if (!entry.contains("source")) return fail(bad("`source` missing"));
    // Written as the studio's API takes it: files and cliDefaults may be left out.
    auto source = proto::decode_authored_model_source(entry["source"].dump());
    if (!source) return fail(bad(source.error().message));
    model.source = std::move(*source);
    if (entry.contains("vramGbEstimate")) {
      if (!entry["vramGbEstimate"].is_number()) return fail(bad("`vramGbEstimate` must be a number"));
      model.vram_gb_estimate = entry["vramGbEstimate"].get<double>();
    }
    if (entry.contains("runner")) {
      auto runner = parse_runner_settings(entry["runner"]);
      if (!runner) return fail(bad(runner.error().message));
      model.runner = std::move(*runner);
    }
    if (entry.contains("enabled")) {
      if (!entry["enabled"].is_boolean()) return fail(bad("`enabled` must be true or false"));
      model.enabled = entry["enabled"].get<bool>();
    }
    out.push_back(std::move(model));
    ++index;
  }
  return out;
}

Result<std::vector<CatalogModel>> load_local_catalog(const std::filesystem::path& path) {
  auto text = read_file(path, 16ull << 20);
  if (!text) {
    if (text.error().code == Code::NotFound) return std::vector<CatalogModel>{};
    return fail(text.error());
  }
  return parse_local_catalog(*text, path.string());
}

const CatalogModel* find_catalog_model(const std::vector<CatalogModel>& catalog,
                                       std::string_view id, proto::TaskKind kind) {
  for (const CatalogModel& model : catalog) {
    if (!model.enabled || model.kind != kind) continue;
    if (id.empty() || model.id == id) return &model;
  }
  return nullptr;
}

}  // namespace sw::worker
