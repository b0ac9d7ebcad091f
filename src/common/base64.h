#pragma once
// Standard base64 (RFC 4648 §4) encoding and decoding through OpenSSL's EVP codec. Thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace sw {

// Decodes `text` (whitespace not allowed, padding required). InvalidArgument when it is not base64.
Result<std::vector<std::uint8_t>> base64_decode(std::string_view text);

// Encodes `bytes` with padding, no line breaks.
std::string base64_encode(std::span<const std::uint8_t> bytes);

}  // namespace sw
