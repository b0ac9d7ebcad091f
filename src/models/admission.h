#pragma once
// Memory admission (reference-worker.md §3.10): a model is admitted when the memory it needs fits
// in the free memory minus a reserve (1 GiB). The runner pool (engines/runner/runner_pool.cpp)
// keeps the residency account: it credits the memory of idle runners it would unload.

#include <cstdint>
#include <optional>
#include <string>

#include "common/error.h"

namespace sw::models {

inline constexpr double kAdmissionMarginGib = 1.0;

struct AdmissionDecision {
  bool admitted = false;
  double needed_gib = 0;
  double free_gib = 0;
  double margin_gib = kAdmissionMarginGib;
  std::string reason;  // the refusal, in the reference's words; empty when admitted
};

// needed ≤ free − margin. Unknown free memory admits nothing (the reference's rule).
AdmissionDecision admit(double needed_gib, std::optional<double> free_gib,
                        double margin_gib = kAdmissionMarginGib);

// MemAvailable from /proc/meminfo, in GiB (the free memory of a CPU-only machine).
std::optional<double> available_system_memory_gib();

}  // namespace sw::models
