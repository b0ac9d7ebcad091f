#include <gtest/gtest.h>

#include <vector>

#include "transfer/stream_hasher.h"

namespace sw::transfer {
namespace {

std::vector<std::uint8_t> data(std::size_t size) {
  std::vector<std::uint8_t> out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::uint8_t>(i * 7 + i / 251);
  return out;
}

TEST(StreamHasher, MatchesOneShotHashForAnyChunking) {
  const auto bytes = data(11 * 1024 * 1024 + 3);  // more than the 8 MiB in flight
  for (std::size_t chunk : {std::size_t{1}, std::size_t{4093}, std::size_t{1 << 20},
                            std::size_t{3 << 20}, bytes.size()}) {
    StreamHasher hasher;
    const std::size_t step = chunk == 1 ? 1 : chunk;
    std::size_t limit = chunk == 1 ? 100000 : bytes.size();  // byte-at-a-time on a prefix only
    for (std::size_t off = 0; off < limit; off += step) {
      hasher.update(std::span(bytes).subspan(off, std::min(step, limit - off)));
    }
    EXPECT_EQ(hasher.finish(), sha256(std::span(bytes).first(limit))) << "chunk " << chunk;
  }
}

TEST(StreamHasher, ResetDiscardsQueuedBytesAndFinishStartsAfresh) {
  const auto bytes = data(5 * 1024 * 1024);
  StreamHasher hasher;
  hasher.update(bytes);
  hasher.reset();
  hasher.update(std::span(bytes).first(10));
  EXPECT_EQ(hasher.finish(), sha256(std::span(bytes).first(10)));
  EXPECT_EQ(hasher.finish(), sha256(std::span<const std::uint8_t>()));
}

}  // namespace
}  // namespace sw::transfer
