#include "common/prom_text.h"

#include <fmt/format.h>

#include <cmath>

namespace sw::prom {

std::string label_value(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

void TextWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  // HELP text escapes backslash and newline (not quotes).
  std::string escaped;
  for (const char c : help) {
    if (c == '\\') {
      escaped.append("\\\\");
    } else if (c == '\n') {
      escaped.append("\\n");
    } else {
      escaped.push_back(c);
    }
  }
  out_.append(fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escaped, name, type));
}

void TextWriter::series(std::string_view name, const Labels& labels, std::string_view extra_label,
                        std::string_view extra_value) {
  out_.append(name);
  if (labels.empty() && extra_label.empty()) {
    out_.push_back(' ');
    return;
  }
  out_.push_back('{');
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out_.push_back(',');
    first = false;
    out_.append(fmt::format("{}=\"{}\"", key, label_value(value)));
  }
  if (!extra_label.empty()) {
    if (!first) out_.push_back(',');
    out_.append(fmt::format("{}=\"{}\"", extra_label, extra_value));
  }
  out_.append("} ");
}

void TextWriter::sample(std::string_view name, const Labels& labels, std::uint64_t value) {
  series(name, labels, {}, {});
  out_.append(fmt::format("{}\n", value));
}

void TextWriter::sample(std::string_view name, const Labels& labels, std::int64_t value) {
  series(name, labels, {}, {});
  out_.append(fmt::format("{}\n", value));
}

void TextWriter::sample(std::string_view name, const Labels& labels, double value) {
  series(name, labels, {}, {});
  out_.append(number(value));
  out_.push_back('\n');
}

void TextWriter::histogram(std::string_view name, const Labels& labels,
                           std::span<const double> bounds, std::span<const std::uint64_t> counts,
                           double sum) {
  const std::string bucket = fmt::format("{}_bucket", name);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    series(bucket, labels, "le", number(bounds[i]));
    out_.append(fmt::format("{}\n", cumulative));
  }
  if (counts.size() > bounds.size()) cumulative += counts[bounds.size()];
  series(bucket, labels, "le", "+Inf");
  out_.append(fmt::format("{}\n", cumulative));
  series(fmt::format("{}_sum", name), labels, {}, {});
  out_.append(number(sum));
  out_.push_back('\n');
  series(fmt::format("{}_count", name), labels, {}, {});
  out_.append(fmt::format("{}\n", cumulative));
}

}  // namespace sw::prom
