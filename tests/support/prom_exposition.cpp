#include "support/prom_exposition.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>

namespace sw::testing {
namespace {

bool name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool name_char(char c) {
  return name_start(c) || std::isdigit(static_cast<unsigned char>(c));
}

bool valid_name(const std::string& name) {
  return !name.empty() && name_start(name[0]) && std::all_of(name.begin(), name.end(), name_char);
}

bool parse_value(const std::string& text, double& out) {
  if (text == "+Inf" || text == "Inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "-Inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "NaN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// The family a sample belongs to: histograms' _bucket/_sum/_count belong to their base name.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.ends_with(s)) {
      const auto base = name.substr(0, name.size() - s.size());
      if (auto it = types.find(base);
          it != types.end() && (it->second == "histogram" || it->second == "summary")) {
        return base;
      }
    }
  }
  return name;
}

}  // namespace

double Exposition::value(const std::string& series) const {
  const auto it = samples.find(series);
  return it == samples.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

Exposition parse_exposition(const std::string& text) {
  Exposition out;
  std::set<std::string> families_with_samples;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  auto error = [&](const std::string& what) {
    out.errors.push_back("line " + std::to_string(number) + ": " + what + ": " + line);
  };
  if (!text.empty() && text.back() != '\n') {
    out.errors.push_back("the text does not end with a newline");
  }
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a comment
      if (!valid_name(name)) {
        error("bad metric name in " + keyword);
        continue;
      }
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (keyword == "TYPE") {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.contains(rest)) error("unknown type");
        if (out.types.contains(name)) error("second TYPE for " + name);
        if (families_with_samples.contains(name)) error("TYPE after samples of " + name);
        out.types[name] = rest;
      } else {
        if (out.helps.contains(name)) error("second HELP for " + name);
        out.helps[name] = rest;
      }
      continue;
    }
    // name{labels} value [timestamp]
    std::size_t at = 0;
    while (at < line.size() && name_char(line[at])) ++at;
    const std::string name = line.substr(0, at);
    if (!valid_name(name)) {
      error("bad metric name");
      continue;
    }
    std::map<std::string, std::string> labels;
    bool ok = true;
    if (at < line.size() && line[at] == '{') {
      ++at;
      while (ok && at < line.size() && line[at] != '}') {
        std::size_t start = at;
        while (at < line.size() && name_char(line[at])) ++at;
        const std::string label = line.substr(start, at - start);
        if (!valid_name(label) || label.starts_with("__") || at + 1 >= line.size() ||
            line[at] != '=' || line[at + 1] != '"') {
          error("bad label");
          ok = false;
          break;
        }
        at += 2;
        std::string value;
        bool closed = false;
        while (at < line.size()) {
          const char c = line[at++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (at >= line.size()) break;
            const char escaped = line[at++];
            if (escaped == 'n') {
              value.push_back('\n');
            } else if (escaped == '\\' || escaped == '"') {
              value.push_back(escaped);
            } else {
              error("bad escape in a label value");
              ok = false;
              break;
            }
          } else {
            value.push_back(c);
          }
        }
        if (!ok) break;
        if (!closed) {
          error("unterminated label value");
          ok = false;
          break;
        }
        if (labels.contains(label)) {
          error("label " + label + " twice");
          ok = false;
        }
        labels[label] = value;
        if (at < line.size() && line[at] == ',') ++at;
      }
      if (!ok) continue;
      if (at >= line.size() || line[at] != '}') {
        error("unterminated label set");
        continue;
      }
      ++at;
    }
    if (at >= line.size() || line[at] != ' ') {
      error("no space before the value");
      continue;
    }
    std::istringstream rest(line.substr(at + 1));
    std::string value_text, timestamp, extra;
    rest >> value_text >> timestamp >> extra;
    double value = 0;
    if (!parse_value(value_text, value) || !extra.empty()) {
      error("bad value");
      continue;
    }
    std::string series = name;
    if (!labels.empty()) {
      series += '{';
      bool first = true;
      for (const auto& [key, label_value] : labels) {
        if (!first) series += ',';
        first = false;
        series += key + "=\"" + label_value + "\"";
      }
      series += '}';
    }
    if (out.samples.contains(series)) error("duplicate series " + series);
    out.samples[series] = value;
    const std::string family = family_of(name, out.types);
    families_with_samples.insert(family);
    if (!out.types.contains(family)) error("sample of a family with no TYPE");
  }
  // Histograms: cumulative buckets, +Inf equal to _count.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::string, std::vector<std::pair<double, double>>> by_labels;  // rest → (le, n)
    for (const auto& [series, value] : out.samples) {
      const std::string prefix = family + "_bucket{";
      if (!series.starts_with(prefix)) continue;
      const auto le_at = series.find("le=\"");
      if (le_at == std::string::npos) {
        out.errors.push_back("bucket without le: " + series);
        continue;
      }
      const auto le_end = series.find('"', le_at + 4);
      double le = 0;
      parse_value(series.substr(le_at + 4, le_end - le_at - 4), le);
      std::string rest = series.substr(prefix.size());
      rest.erase(le_at - prefix.size(), le_end + 1 - le_at);
      by_labels[rest].emplace_back(le, value);
    }
    for (auto& [rest, buckets] : by_labels) {
      std::sort(buckets.begin(), buckets.end());
      for (std::size_t i = 1; i < buckets.size(); ++i) {
        if (buckets[i].second < buckets[i - 1].second) {
          out.errors.push_back(family + " buckets are not cumulative");
        }
      }
      if (buckets.empty() || !std::isinf(buckets.back().first)) {
        out.errors.push_back(family + " has no le=\"+Inf\" bucket");
      }
    }
    for (const auto& [series, value] : out.samples) {
      if (!series.starts_with(family + "_count")) continue;
      std::string labels = series.substr(family.size() + 6);  // "{…}" or ""
      std::string inf;
      if (labels.empty()) {
        inf = family + "_bucket{le=\"+Inf\"}";
      } else {
        // le sorts among the others: rebuild the series key with it.
        std::map<std::string, std::string> parsed;
        std::string body = labels.substr(1, labels.size() - 2);
        std::size_t pos = 0;
        while (pos < body.size()) {
          const auto eq = body.find('=', pos);
          const auto close = body.find('"', eq + 2);
          parsed[body.substr(pos, eq - pos)] = body.substr(eq + 2, close - eq - 2);
          pos = close + 2;
        }
        parsed["le"] = "+Inf";
        inf = family + "_bucket{";
        bool first = true;
        for (const auto& [key, label_value] : parsed) {
          if (!first) inf += ',';
          first = false;
          inf += key + "=\"" + label_value + "\"";
        }
        inf += '}';
      }
      if (out.value(inf) != value) out.errors.push_back(series + " differs from " + inf);
    }
  }
  return out;
}

}  // namespace sw::testing
