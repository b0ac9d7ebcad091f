#include "common/json_text.h"

#include <nlohmann/json.hpp>

namespace sw {

Status check_json_text(std::string_view text, std::string_view what, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return fail(Error::invalid_argument("{} exceeds {} bytes (it has {})", what, limits.max_bytes,
                                        text.size()));
  }
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limits.max_depth) {
        return fail(Error::invalid_argument("{} nests deeper than {} levels at byte {}", what,
                                            limits.max_depth, i));
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      // Unbalanced closers are the parser's to refuse; the count only needs an upper bound.
      --depth;
    }
  }
  return {};
}

Result<nlohmann::json> parse_json(std::string_view text, std::string_view what,
                                  const JsonLimits& limits) {
  SW_TRY(check_json_text(text, what, limits));
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the position and reason.
    std::string_view words = e.what();
    if (auto close = words.find("] "); close != std::string_view::npos) {
      words.remove_prefix(close + 2);
    }
    // The parser quotes the offending token whole (a 500,000-digit number): an error must name
    // the problem, not echo the input back.
    constexpr std::size_t kMaxWords = 300;
    const bool cut = words.size() > kMaxWords;
    if (cut) {
      words = words.substr(0, kMaxWords);
    }
    return fail(Error::invalid_argument("{} is not JSON: {}{}", what, words, cut ? "…" : ""));
  }
}

}  // namespace sw
