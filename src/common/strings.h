#pragma once
// Small string helpers shared across modules.

#include <algorithm>
#include <string>

namespace sw {

// ASCII lowercase (hex digests, URL schemes and hosts, header names); other bytes unchanged.
inline std::string ascii_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
  });
  return text;
}

}  // namespace sw
