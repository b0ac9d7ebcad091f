#pragma once
// Standard base64 (RFC 4648 §4) decoding through OpenSSL's EVP codec. Thread-safe.

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace sw {

// Decodes `text` (whitespace not allowed, padding required). InvalidArgument when it is not base64.
Result<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace sw
