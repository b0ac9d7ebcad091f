#include <gtest/gtest.h>

#include <vector>

#include "common/sha256.h"

namespace sw {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShotAndHasherIsReusable) {
  std::vector<std::uint8_t> data(1 << 20);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31 + 7);
  Sha256 hasher;
  for (std::size_t off = 0; off < data.size(); off += 4099) {
    std::size_t n = std::min<std::size_t>(4099, data.size() - off);
    hasher.update(std::span(data).subspan(off, n));
  }
  EXPECT_EQ(hasher.finish(), sha256(data));
  hasher.update(std::string_view("abc"));
  EXPECT_EQ(to_hex(hasher.finish()), sha256_hex("abc"));
}

}  // namespace
}  // namespace sw
