#pragma once
// Memory admission (reference-worker.md §3.10): a model is admitted when the memory it needs fits
// in the free memory minus a reserve (1 GiB), counting models already resident.

#include <cstdint>
#include <map>
#include <mutex>
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

// Models loaded by resident runners and the memory each holds. Free memory as probed already
// excludes what they use; the ledger lets admission credit memory that an unload would free.
// Thread-safe.
class ResidencyLedger {
 public:
  void loaded(const std::string& model, double gib);
  void unloaded(const std::string& model);
  bool is_resident(const std::string& model) const;
  double resident_gib() const;
  std::map<std::string, double> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, double> resident_;
};

}  // namespace sw::models
