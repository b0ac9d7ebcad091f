#pragma once
// The local catalogue (reference-worker.md §6.3, the subset the local API routes by):
// `<config dir>/models.json` = `{"models":[{id, kind, source: ModelSource, vramGbEstimate?,
// enabled?, runner?}, …]}`. It gives a local request's `model` its files and engine, the way an
// offer's modelSource does; `runner` (engines/runner/runner_settings.h) gives the model's runner
// its settings for every job on it, studio offers included. A missing file is an empty catalogue; a
// bad one is refused with a message naming the entry and left untouched. Plain values;
// thread-compatible.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "engines/runner/runner_settings.h"
#include "proto/types.h"

namespace sw::worker {

struct CatalogModel {
  std::string id;
  proto::TaskKind kind = proto::TaskKind::Llm;
  proto::ModelSource source;
  double vram_gb_estimate = 0;
  bool enabled = true;
  engines::RunnerSettings runner;  // `"runner"`: engines/runner/runner_settings.h
};

Result<std::vector<CatalogModel>> parse_local_catalog(std::string_view json_text,
                                                      std::string_view source_name);
Result<std::vector<CatalogModel>> load_local_catalog(const std::filesystem::path& path);

// What a daemon took from its models.json: the entries, or why it ignored the file (a file that
// does not validate is reported, in the log and in GET /daemon/status, and ignored: never fatal).
struct LocalCatalog {
  std::filesystem::path path;
  std::vector<CatalogModel> models;
  std::optional<std::string> error;  // the validation error; nullopt when loaded or absent
};

// The enabled entry `id` of `kind`; with an empty id, the first enabled entry of `kind`.
const CatalogModel* find_catalog_model(const std::vector<CatalogModel>& catalog,
                                       std::string_view id, proto::TaskKind kind);

}  // namespace sw::worker
