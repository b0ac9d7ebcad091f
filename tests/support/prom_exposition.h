#pragma once
// An independent reader of the Prometheus text exposition format 0.0.4, for tests: it checks what
// a scraper needs (every sample line `name{label="value",…} value` with a valid metric name, label
// names and escapes; `# TYPE` at most once per family and before its samples; every sample of a
// typed family; no series twice; histogram buckets cumulative and ending in le="+Inf" equal to
// _count) and returns the samples by series.

#include <map>
#include <string>
#include <vector>

namespace sw::testing {

struct Exposition {
  // `name{k="v",…}` with the labels sorted by name (as written when there are none: `name`).
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family → counter, gauge, histogram, …
  std::map<std::string, std::string> helps;
  std::vector<std::string> errors;  // empty when the text is valid

  // The value of `series` (same spelling as the keys), or NaN when absent.
  double value(const std::string& series) const;
};

Exposition parse_exposition(const std::string& text);

}  // namespace sw::testing
