// The GGUF header reader on the real tiny test models (facts from their SOURCES.md),
// and on damaged copies of them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "models/gguf.h"
#include "support/temp_dir.h"
#include "support/test_models.h"

namespace sw::models {
namespace {

using ::testing::HasSubstr;

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::filesystem::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

TEST(Gguf, Stories260K) {
  SW_REQUIRE_TEST_MODELS(models);
  auto info = read_gguf(models / "stories260K.gguf");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->architecture, "llama");
  EXPECT_EQ(info->block_count, 5u);
  EXPECT_EQ(info->embedding_length, 64u);
  EXPECT_EQ(info->head_count, 8u);
  EXPECT_EQ(info->head_count_kv, 4u);
  EXPECT_EQ(info->context_length, 2048u);
  EXPECT_EQ(info->vocab_size, 512u);
  EXPECT_FALSE(info->chat_template);
  ASSERT_EQ(info->bytes_per_type.size(), 1u);
  EXPECT_EQ(info->bytes_per_type.begin()->first, "F32");
  // ~293 K F32 parameters; the weights and the header fill the file.
  EXPECT_NEAR(static_cast<double>(info->tensor_bytes) / 4, 293e3, 15e3);
  EXPECT_LE(info->data_offset + info->tensor_bytes, info->file_bytes);
  EXPECT_GT(info->data_offset + info->tensor_bytes, info->file_bytes - 4096);
}

TEST(Gguf, ChatTemplateIsRead) {
  SW_REQUIRE_TEST_MODELS(models);
  auto info = read_gguf(models / "stories260K-chat.gguf");
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_TRUE(info->chat_template);
  EXPECT_EQ(*info->chat_template, slurp(models / "stories260K-chat.jinja"));
}

TEST(Gguf, F16ModelWithLlamaVocabulary) {
  SW_REQUIRE_TEST_MODELS(models);
  auto info = read_gguf(models / "llama-2-tiny-random.gguf");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->block_count, 1u);
  EXPECT_EQ(info->embedding_length, 8u);
  EXPECT_EQ(info->vocab_size, 32000u);
  EXPECT_TRUE(info->bytes_per_type.contains("F16"));
}

TEST(Gguf, ContextIsCappedByTrainingContext) {
  SW_REQUIRE_TEST_MODELS(models);
  auto info = read_gguf(models / "stories260K.gguf");
  ASSERT_TRUE(info);
  EXPECT_EQ(pick_context(*info, std::nullopt), 2048u);  // default 8192, capped
  EXPECT_EQ(pick_context(*info, 512u), 512u);
  EXPECT_EQ(pick_context(*info, 100000u), 2048u);
  // Weights + f16 KV cache (2 × 5 layers × ctx × 32 wide × 2 bytes) + 10 % + 64 MiB.
  std::uint64_t kv = 2ull * 5 * 2048 * 32 * 2;
  std::uint64_t base = info->tensor_bytes + kv;
  EXPECT_EQ(estimate_memory_bytes(*info, 2048), base + base / 10 + 64ull * 1024 * 1024);
  EXPECT_GT(estimate_memory_bytes(*info, 2048), estimate_memory_bytes(*info, 512));
}

TEST(Gguf, DamagedFilesAreRefusedWithAReason) {
  SW_REQUIRE_TEST_MODELS(models);
  const std::string good = slurp(models / "stories260K-chat.gguf");
  testing::TempDir dir;
  const auto path = dir.path() / "bad.gguf";

  spit(path, "GGML" + good.substr(4));
  auto magic = read_gguf(path);
  ASSERT_FALSE(magic);
  EXPECT_THAT(magic.error().message, HasSubstr("not a GGUF file"));

  // Every truncation point inside the header and tensor table, and one inside the weights.
  std::size_t refused = 0, checked = 0;
  for (std::size_t length :
       {std::size_t{3}, std::size_t{10}, std::size_t{24}, std::size_t{100}, std::size_t{2000},
        std::size_t{9000}, std::size_t{20000}, good.size() / 2, good.size() - 1}) {
    spit(path, good.substr(0, length));
    ++checked;
    auto info = read_gguf(path);
    if (!info) ++refused;
  }
  EXPECT_EQ(refused, checked);

  std::string huge_count = good;
  huge_count[8] = '\xff';   // tensor_count low byte: now 255+ tensors that are not there
  huge_count[15] = '\x7f';  // and an absurd high byte
  spit(path, huge_count);
  auto absurd = read_gguf(path);
  ASSERT_FALSE(absurd);
  EXPECT_THAT(absurd.error().message, HasSubstr("implausible"));

  std::string version = good;
  version[4] = '\x09';
  spit(path, version);
  auto unsupported = read_gguf(path);
  ASSERT_FALSE(unsupported);
  EXPECT_THAT(unsupported.error().message, HasSubstr("version 9"));

  EXPECT_FALSE(read_gguf(dir.path() / "missing.gguf"));
}

// Corrupt one to four bytes of the header and tensor table at pseudo-random places, many times:
// the reader either reads something or refuses with a message; it never crashes or hangs.
TEST(Gguf, RandomHeaderCorruptionNeverCrashes) {
  SW_REQUIRE_TEST_MODELS(models);
  const std::string good = slurp(models / "stories260K-chat.gguf");
  auto info = read_gguf(models / "stories260K-chat.gguf");
  ASSERT_TRUE(info);
  const std::size_t header = static_cast<std::size_t>(info->data_offset);
  testing::TempDir dir;
  const auto path = dir.path() / "fuzzed.gguf";
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  int refused = 0;
  for (int round = 0; round < 300; ++round) {
    std::string copy = good;
    for (std::uint64_t n = 1 + next() % 4; n > 0; --n) {
      copy[next() % header] = static_cast<char>(next());
    }
    spit(path, copy);
    auto result = read_gguf(path);
    if (!result) {
      ++refused;
      EXPECT_THAT(result.error().message, HasSubstr("gguf:"));
    }
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace sw::models
