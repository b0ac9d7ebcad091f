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
  // EVP_EncodeBlock takes an int length: encode in 3-byte-aligned pieces.
  constexpr std::size_t kPiece = 3u << 20;
  out.reserve((bytes.size() + 2) / 3 * 4 + 1);
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, bytes.size() - at);
    const std::size_t start = out.size();
    out.resize(start + (n + 2) / 3 * 4 + 1);
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + start),
                                        bytes.data() + at, static_cast<int>(n));
    out.resize(start + static_cast<std::size_t>(written));
  }
  return out;
}

}  // namespace sw
