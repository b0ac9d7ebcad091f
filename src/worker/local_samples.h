#pragma once
// One job of every task kind run locally through an engine, results written to a folder: the
// quickest proof that a machine can run the worker. Used by `studio-worker samples`.

#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"
#include "engines/engine.h"

namespace sw::worker {

struct SampleOutput {
  proto::TaskKind kind;
  std::string model;
  std::filesystem::path path;
  std::size_t bytes = 0;
  std::string description;  // what was produced, for the operator ("webp 512x512", ...)
};

// The tasks the sample run submits, one per kind, all with the given prompt.
std::vector<engines::DispatchRequest> sample_requests(const std::string& prompt);

// Runs every sample request through `engine` and writes `<kind>.<ext>` (JSON results as
// `<kind>.json`) into `out_dir`, creating it. Files are written whole (temp file + rename).
// Stops at the first failure, naming the kind.
Result<std::vector<SampleOutput>> run_samples(engines::Engine& engine,
                                              const std::filesystem::path& out_dir,
                                              const std::string& prompt);

}  // namespace sw::worker
