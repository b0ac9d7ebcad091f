#include "common/base64.h"

#include <openssl/evp.h>

#include <algorithm>

namespace sw {

Result<std::vector<std::uint8_t>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return fail(Error::invalid_argument("base64 text length {} is not a multiple of 4",
                                        text.size()));
  }
  if (text.size() > static_cast<std::size_t>(INT32_MAX)) {
    return fail(Error::invalid_argument("base64 text is too long"));
  }
  std::vector<std::uint8_t> out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return fail(Error::invalid_argument("not valid base64"));
  // EVP_DecodeBlock counts padding as zero bytes: take them off again.
  std::size_t size = static_cast<std::size_t>(n);
  if (!text.empty() && text.back() == '=') --size;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

std::string base64_encode(std::span<const std::uint8_t> bytes) {
  std::string out;
  // EVP_EncodeBlock takes an int length: encode in chunks of whole 3-byte groups.
  constexpr std::size_t kChunk = 3 * (1 << 20);
  for (std::size_t at = 0; at < bytes.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, bytes.size() - at);
    const std::size_t start = out.size();
    out.resize(start + (n + 2) / 3 * 4 + 1);  // + the NUL it writes
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + start),
                                        bytes.data() + at, static_cast<int>(n));
    out.resize(start + static_cast<std::size_t>(written));
  }
  return out;
}

}  // namespace sw
