#pragma once
// Prometheus text exposition format 0.0.4, written by hand (prometheus-cpp is not packaged):
// `# HELP`/`# TYPE` once per family, then one `name{label="value",…} value` line per series, and
// fixed-bucket histograms as `_bucket{le=…}`, `_sum` and `_count`. Shared by the studio's and the
// worker's GET /metrics. Values: integers as written, doubles in their shortest form ("+Inf",
// "NaN" spelled as the format wants). The writer does not check for duplicate series: callers
// write each series once. Not thread-safe (one writer per render).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sw::prom {

// The media type of the text format, for a Content-Type header.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

using Labels = std::vector<std::pair<std::string_view, std::string>>;

// A label value as the format wants it: backslash, quote and newline escaped.
std::string label_value(std::string_view text);

class TextWriter {
 public:
  // `# HELP name help` and `# TYPE name type` (type: counter, gauge, histogram, summary, untyped).
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, std::uint64_t value);
  void sample(std::string_view name, const Labels& labels, std::int64_t value);
  void sample(std::string_view name, const Labels& labels, double value);
  // One histogram series: `counts[i]` observations in (bounds[i-1], bounds[i]] (not cumulative),
  // `counts[bounds.size()]` the ones above the last bound; `sum` of the observed values.
  void histogram(std::string_view name, const Labels& labels, std::span<const double> bounds,
                 std::span<const std::uint64_t> counts, double sum);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void series(std::string_view name, const Labels& labels, std::string_view extra_label,
              std::string_view extra_value);
  std::string out_;
};

// A double as the format writes it: "+Inf", "-Inf", "NaN", else its shortest form.
std::string number(double value);

}  // namespace sw::prom
