#pragma once
// Operator commands on model files: fetch a ModelSource into the cache (with a progress bar on
// a terminal) and inspect a GGUF file. Used by `studio-worker models fetch|inspect`.

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "common/error.h"

namespace sw::worker {

struct FetchOptions {
  std::string model_id;
  std::filesystem::path source_json;  // a ModelSource document (reference §1.8)
  std::filesystem::path models_root;
  std::uint64_t cache_max_bytes = 0;
  bool progress_bar = false;  // draw a bar on `progress_out` (a terminal)
};

// Prints one line per file: role, path, bytes, downloaded or reused.
Status fetch_model(const FetchOptions& options, std::ostream& out, std::ostream& progress_out);

// Prints the GGUF metadata and the memory estimate at the context it would run with.
Status inspect_gguf(const std::filesystem::path& path, std::optional<std::uint32_t> context,
                    std::ostream& out);

// "~/models" resolved against $HOME (the reference default), else $TMPDIR/studio-worker-models.
std::filesystem::path default_models_root();

}  // namespace sw::worker
