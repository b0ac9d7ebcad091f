// The local catalogue's per-model runner settings (worker/local_catalog.h, `"runner"`): what an
// operator writes becomes llama-server flags; what it must not write is refused, naming the field.

#include "worker/local_catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "engines/llama/llama_mapping.h"

namespace sw::worker {
namespace {

using ::testing::HasSubstr;

std::string entry_with(const std::string& runner) {
  return R"({"models":[{"id":"chat","kind":"llm","source":{"engine":"llama-cpp","files":[)"
         R"({"role":"model","url":"https://example.org/m.gguf","filename":"m.gguf",)"
         R"("sha256":")" +
         std::string(64, 'a') +
         R"("}],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}},"runner":)" + runner +
         "}]}";
}

TEST(LocalCatalog, RunnerSettingsBecomeTheRunnersFlags) {
  auto catalog = parse_local_catalog(
      entry_with(R"({"gpuLayers":"all","threads":6,"contextSize":8192,"flashAttention":"on",)"
                 R"("tensorSplit":[3,1],"extraArgs":["--mlock","--batch-size=1024"]})"),
      "models.json");
  ASSERT_TRUE(catalog) << catalog.error().message;
  ASSERT_EQ(catalog->size(), 1u);
  const auto& runner = catalog->at(0).runner;
  EXPECT_EQ(runner.context_size, 8192u);
  const std::vector<std::string> expected = {"--n-gpu-layers", "all",
                                             "--threads",      "6",
                                             "--flash-attn",   "on",
                                             "--tensor-split", "3,1",
                                             "--mlock",        "--batch-size=1024"};
  EXPECT_EQ(engines::llama::settings_args(runner), expected);
  auto plain = parse_local_catalog(entry_with(R"({"gpuLayers":20})"), "models.json");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(engines::llama::settings_args(plain->at(0).runner),
            (std::vector<std::string>{"--n-gpu-layers", "20"}));
}

// An entry is written as the studio's POST /api/v1/models takes a model: an engine without files
// needs no `files`, and `cliDefaults` (or any of its four numbers) may be left out.
TEST(LocalCatalog, FilesAndCliDefaultsMayBeLeftOutAsOnTheStudiosApi) {
  auto catalog = parse_local_catalog(
      R"({"models":[{"id":"voice","kind":"audio_tts","source":{"engine":"espeak-ng"}},)"
      R"({"id":"chat","kind":"llm","source":{"engine":"synthetic","cliDefaults":{"contextSize":512}}}]})",
      "models.json");
  ASSERT_TRUE(catalog) << catalog.error().message;
  ASSERT_EQ(catalog->size(), 2u);
  EXPECT_TRUE(catalog->at(0).source.files.empty());
  EXPECT_EQ(catalog->at(0).source.cli_defaults.steps, 0);
  EXPECT_EQ(catalog->at(1).source.cli_defaults.context_size, 512u);
  auto bad = parse_local_catalog(
      R"({"models":[{"id":"x","kind":"llm","source":{"engine":"synthetic","files":"none"}}]})",
      "models.json");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("files"));
}

TEST(LocalCatalog, BadRunnerSettingsAreRefusedNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([1])", "`runner` must be an object"},
      {R"({"gpuLayers":"most"})", "runner.gpuLayers"},
      {R"({"gpuLayers":-1})", "runner.gpuLayers"},
      {R"({"threads":0})", "runner.threads: 1 to 1024"},
      {R"({"threads":"8"})", "runner.threads"},
      {R"({"contextSize":10})", "runner.contextSize"},
      {R"({"flashAttention":true})", "runner.flashAttention"},
      {R"({"tensorSplit":[]})", "runner.tensorSplit"},
      {R"({"tensorSplit":[1,-2]})", "runner.tensorSplit"},
      {R"({"extraArgs":"--mlock"})", "runner.extraArgs"},
      {R"({"extraArgs":[""]})", "runner.extraArgs"},
      {R"({"extraArgs":["--port","9"]})", "--port is set by the worker"},
      {R"({"extraArgs":["--host=0.0.0.0"]})", "--host is set by the worker"},
      {R"({"extraArgs":["-m","/etc/shadow"]})", "-m is set by the worker"},
      {R"({"gpuLayer":3})", "runner.gpuLayer: unknown"},
  };
  for (const auto& [runner, words] : cases) {
    auto catalog = parse_local_catalog(entry_with(runner), "models.json");
    ASSERT_FALSE(catalog) << runner;
    EXPECT_THAT(catalog.error().message, HasSubstr("models.json: models[0]: ")) << runner;
    EXPECT_THAT(catalog.error().message, HasSubstr(words)) << runner;
  }
}

}  // namespace
}  // namespace sw::worker
