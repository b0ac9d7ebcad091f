#include <gtest/gtest.h>

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
  ASSERT_EQ(outputs->size(), 5u);
  for (const SampleOutput& out : *outputs) {
    ASSERT_TRUE(std::filesystem::exists(out.path)) << out.path;
    EXPECT_EQ(std::filesystem::file_size(out.path), out.bytes);
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
