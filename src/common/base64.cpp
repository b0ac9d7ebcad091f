#include "common/base64.h"

#include <openssl/evp.h>

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

}  // namespace sw
