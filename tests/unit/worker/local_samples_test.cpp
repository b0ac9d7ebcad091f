#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <variant>

#include "common/file_io.h"
#include "engines/build_engine.h"
#include "support/media_decoders.h"
#include "support/temp_dir.h"
#include "worker/local_samples.h"

namespace sw::worker {
namespace {

TEST(LocalSamples, OneResultPerKindWrittenWhole) {
  testing::TempDir dir;
  auto engine = engines::build_engine();
  auto outputs = run_samples(*engine, dir.path() / "out", "a test prompt");
  ASSERT_TRUE(outputs) << outputs.error().message;
  const auto requests = sample_requests("a test prompt");
  ASSERT_EQ(outputs->size(), 5u);
  ASSERT_EQ(requests.size(), outputs->size());
  // Each file holds exactly what the engine produces for its request, asked again here (the
  // synthetic engine is deterministic; a chat completion's elapsed_ms is a measurement).
  auto without_timing = [](const std::string& text) {
    auto parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_object()) parsed.erase("elapsed_ms");
    return parsed.dump();
  };
  for (std::size_t i = 0; i < outputs->size(); ++i) {
    const SampleOutput& out = (*outputs)[i];
    SCOPED_TRACE(out.path.string());
    ASSERT_EQ(out.kind, requests[i].task.kind());
    ASSERT_TRUE(std::filesystem::exists(out.path));
    const auto bytes = testing::read_file_bytes(out.path);
    const std::string written(bytes.begin(), bytes.end());
    auto again = engine->dispatch(requests[i]);
    ASSERT_TRUE(again) << again.error().message;
    std::visit(
        [&](const auto& value) {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, engines::LlmResult> ||
                        std::is_same_v<T, engines::AudioSttResult>) {
            EXPECT_EQ(without_timing(written), without_timing(value.json.text()));
          } else {
            EXPECT_TRUE(written == std::string(value.bytes.begin(), value.bytes.end()))
                << "the file differs from the engine's output (" << written.size() << " vs "
                << value.bytes.size() << " bytes)";
          }
        },
        *again);
    EXPECT_EQ(out.bytes, written.size()) << "the reported size is not the file's";
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "out")) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << "temp file left behind";
  }
}

TEST(LocalSamples, UnwritableFolderIsAnErrorNamingIt) {
  testing::TempDir dir;
  std::filesystem::path blocker = dir.path() / "file";
  ASSERT_TRUE(sw::write_file_atomically(blocker, "x"));
  auto engine = engines::build_engine();
  auto outputs = run_samples(*engine, blocker / "sub", "p");
  ASSERT_FALSE(outputs);
  EXPECT_NE(outputs.error().message.find(blocker.string()), std::string::npos)
      << outputs.error().message;
}

}  // namespace
}  // namespace sw::worker
