#include "worker/local_catalog.h"

#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "common/json_text.h"
#include "proto/codec.h"

namespace sw::worker {

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
    auto source = proto::decode_model_source(entry["source"].dump());
    if (!source) return fail(bad(source.error().message));
    model.source = std::move(*source);
    if (entry.contains("vramGbEstimate")) {
      if (!entry["vramGbEstimate"].is_number()) return fail(bad("`vramGbEstimate` must be a number"));
      model.vram_gb_estimate = entry["vramGbEstimate"].get<double>();
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
