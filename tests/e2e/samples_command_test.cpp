// End to end: the built studio-worker binary, run as a user would, and its files decoded.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "support/media_decoders.h"
#include "support/temp_dir.h"

namespace {

struct CommandRun {
  int exit_code = -1;
  std::string output;
};

CommandRun run_command(const std::string& args) {
  std::string command = std::string(SW_STUDIO_WORKER_BIN) + " " + args + " 2>&1";
  CommandRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) run.output += buffer.data();
  int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST(SamplesCommand, WritesOneDecodableResultOfEveryKind) {
  sw::testing::TempDir dir;
  CommandRun run = run_command("samples --out " + dir.path().string() + " --prompt 'end to end'");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("wrote 5 results"), std::string::npos) << run.output;

  auto image = sw::testing::decode_webp(sw::testing::read_file_bytes(dir.path() / "image.webp"));
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->width, 512u);
  auto wav = sw::testing::decode_wav(sw::testing::read_file_bytes(dir.path() / "audio_tts.wav"));
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_GT(wav->seconds(), 0.5);
  auto video =
      sw::testing::decode_animated_webp(sw::testing::read_file_bytes(dir.path() / "video.webp"));
  ASSERT_TRUE(video) << video.error().message;
  EXPECT_EQ(video->frames.size(), 16u);  // 2 s at 8 fps
  auto llm = sw::testing::read_file_bytes(dir.path() / "llm.json");
  EXPECT_NE(std::string(llm.begin(), llm.end()).find("chat.completion"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "audio_stt.json"));
}

TEST(SamplesCommand, MissingOutIsAClearUsageError) {
  CommandRun run = run_command("samples");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("--out is required"), std::string::npos) << run.output;
}

TEST(SamplesCommand, UnknownCommandIsRefused) {
  CommandRun run = run_command("frobnicate");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("frobnicate"), std::string::npos) << run.output;
}

TEST(Version, PrintsNameAndTheProjectVersion) {
  CommandRun run = run_command("--version");
  EXPECT_EQ(run.exit_code, 0);
  // The whole line: the project version CMake stamps into the binary, and no variant suffix
  // that the build cannot back up.
  EXPECT_EQ(run.output, std::string("studio-worker ") + SW_VERSION + "\n");
}

}  // namespace
