#pragma once
// `studio-worker engines doctor`: one real request through each engine this machine has, driven
// through the same engines the daemon assembles (build_engines), with the operator's local model
// files. Per engine it reports the timing, or the engine's own error words.
//
// Local files reach the engines the way an operator-placed model does: a scratch models root
// holds a link to each file at its top level, which the model cache reuses without downloading
// (models/model_cache.h, step 2); the ModelSource's URL is never fetched. The scratch root is
// removed afterwards; the files themselves are never written.
//
// The checks: llama-cpp (a few tokens; needs a GGUF), whisper-cpp (a short spoken WAV, made by
// espeak-ng when it is there; needs a whisper ggml model), sd-cpp (a 64×64 image; needs a model
// file), espeak-ng (a short utterance), synthetic (a 64×64 image). A resident runner is asked
// twice so that the first reply (program start and model load included) and a resident reply are
// both measured. An engine not found is reported but is not a failure; an engine that needs a
// model the operator did not give is skipped, saying so.
// Blocking (minutes at worst: the runners' own start and request timeouts apply).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engines/engine_inventory.h"

namespace sw::engines {

struct DoctorOptions {
  InventoryOptions programs;                           // where the runner programs are
  std::optional<std::filesystem::path> llm_model;      // GGUF for llama-cpp
  std::optional<std::filesystem::path> whisper_model;  // ggml model for whisper-cpp
  std::optional<std::filesystem::path> sd_model;       // full model file for sd-cpp
  // Free memory for runner admission (GPU, else system), as the daemon measures it; unset: the
  // system's MemAvailable.
  std::function<std::optional<double>()> free_memory_gib;
};

enum class CheckOutcome { Ok, Failed, Skipped, Missing, Disabled };
std::string_view to_string(CheckOutcome outcome);  // "ok", "failed", "skipped", …

struct DoctorCheck {
  std::string engine;
  CheckOutcome outcome = CheckOutcome::Skipped;
  // Ok: what ran and how long it took; Failed: the engine's error message; otherwise why not.
  std::string detail;
  // Figures behind `detail` for scripts, e.g. {"first_reply_ms", 480}, {"tokens", 8}.
  std::vector<std::pair<std::string, std::int64_t>> figures;
};

struct DoctorReport {
  std::vector<DoctorCheck> checks;
  // No engine that was found failed its check.
  bool ok() const;
};

// Runs the checks for every engine of `inventory` (take_inventory's list, same options).
DoctorReport run_doctor(const DoctorOptions& options, const std::vector<EngineReport>& inventory);

// One line per engine: `<engine>  <outcome>  <detail>`.
std::string format_doctor(const DoctorReport& report);
// `{"ok":bool,"checks":[{"engine","outcome","detail","figures":{name:int}}]}`.
std::string doctor_json(const DoctorReport& report);

}  // namespace sw::engines
