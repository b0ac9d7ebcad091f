// Base64 against the RFC 4648 §10 test vectors, both ways.

#include "common/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace sw {
namespace {

std::vector<std::uint8_t> bytes_of(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

TEST(Base64, Rfc4648VectorsBothWays) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(bytes_of(plain)), encoded) << plain;
    auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, bytes_of(plain)) << encoded;
  }
}

TEST(Base64, LongInputRoundTripsAcrossEncodePieces) {
  std::vector<std::uint8_t> big((3u << 20) + 7);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 31 + 7);
  const std::string text = base64_encode(big);
  EXPECT_EQ(text.size(), (big.size() + 2) / 3 * 4);
  auto back = base64_decode(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, big);
}

}  // namespace
}  // namespace sw
