#include "models/admission.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace sw::models {

AdmissionDecision admit(double needed_gib, std::optional<double> free_gib, double margin_gib) {
  AdmissionDecision decision;
  decision.needed_gib = needed_gib;
  decision.margin_gib = margin_gib;
  if (!free_gib) {
    decision.reason =
        fmt::format("insufficient memory: needs {:.2f} GiB, free memory is unknown", needed_gib);
    return decision;
  }
  decision.free_gib = *free_gib;
  decision.admitted = needed_gib <= *free_gib - margin_gib;
  if (!decision.admitted) {
    decision.reason = fmt::format(
        "insufficient memory: needs {:.2f} GiB, {:.2f} GiB free ({:.2f} GiB kept in reserve)",
        needed_gib, *free_gib, margin_gib);
  }
  return decision;
}

std::optional<double> available_system_memory_gib() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      double kib = 0;
      if (fields >> kib) return kib / (1024.0 * 1024.0);
    }
  }
  return std::nullopt;
}

}  // namespace sw::models
