// The per-engine rule table (rules/engine_rules.h): what each engine refuses, at which stage, and
// in which words.

#include <gtest/gtest.h>

#include "rules/engine_rules.h"

namespace sw::rules {
namespace {

proto::ModelSource source(std::string engine, std::vector<proto::ModelFile> files = {}) {
  proto::ModelSource s;
  s.engine = std::move(engine);
  s.files = std::move(files);
  return s;
}

proto::ModelFile file(std::string role, std::string name,
                      std::string base = "https://models.example/") {
  return {std::move(role), base + name, name, std::nullopt, std::nullopt};
}

proto::Task image(std::uint32_t width, std::uint32_t height) {
  proto::ImageParams p;
  p.prompt = "a fox";
  p.width = width;
  p.height = height;
  return {p};
}

std::string message_of(const Status& status) {
  EXPECT_FALSE(status);
  if (status) return "";
  EXPECT_EQ(status.error().code, Code::InvalidArgument);
  return status.error().message;
}

TEST(EngineRules, SdSidesMustBeMultiplesOf64WithinTheLimits) {
  const auto sd = source("sd-cpp", {file("diffusion-model", "m.gguf")});
  for (const auto stage : {Stage::Creation, Stage::Offer}) {
    EXPECT_TRUE(check_task(sd, image(512, 512), stage));
    EXPECT_TRUE(check_task(sd, image(64, 16320), stage));
    const auto message = message_of(check_task(sd, image(608, 512), stage));
    EXPECT_EQ(message,
              "task.width: 608 is not a multiple of 64; stable-diffusion.cpp aligns a side up to "
              "its model's multiple (up to 64; stable-diffusion.cpp src/stable-diffusion.cpp "
              "GenerationRequest::align_image_size), so the image would come out 640x512, not the "
              "608x512 asked");
    EXPECT_NE(message_of(check_task(sd, image(512, 16384), stage))
                  .find("task.height: 16384 is "
                        "outside 64..16320"),
              std::string::npos);
  }
  // Other image engines have no such rule (the synthetic engine draws any size).
  EXPECT_TRUE(check_task(source("synthetic"), image(608, 500), Stage::Creation));
}

TEST(EngineRules, SdSizeStepsAndCfgFollowTheReferencePrecedence) {
  proto::ModelCliDefaults defaults;
  defaults.width = 768;
  defaults.steps = 4;
  proto::ImageParams task;
  task.width = 0;
  task.height = 0;
  task.steps = 20;  // the wire default: unset
  auto resolved = sd_resolved(task, defaults);
  EXPECT_EQ(resolved.width, 768u);
  EXPECT_EQ(resolved.height, 1024u);
  EXPECT_EQ(resolved.steps, 4u);
  EXPECT_EQ(resolved.cfg_scale, 1.0);
  task.steps = 30;
  task.cfg_scale = 2.5;
  resolved = sd_resolved(task, defaults);
  EXPECT_EQ(resolved.steps, 30u);
  EXPECT_EQ(resolved.cfg_scale, 2.5);

  // A model default that breaks the rule is refused through the task that would use it.
  auto sd = source("sd-cpp", {file("model", "m.safetensors")});
  sd.cli_defaults.width = 700;
  EXPECT_NE(message_of(check_task(sd, image(0, 512), Stage::Creation)).find("task.width: 700"),
            std::string::npos);
}

TEST(EngineRules, SdStepsDenoiseSeedAndSampler) {
  const auto sd = source("sd-cpp", {file("model", "m.safetensors")});
  auto task = image(512, 512);
  auto& p = std::get<proto::ImageParams>(task.params);
  p.steps = 101;
  EXPECT_NE(message_of(check_task(sd, task, Stage::Offer)).find("task.steps: 101 is above 100"),
            std::string::npos);
  p.steps = 100;
  EXPECT_TRUE(check_task(sd, task, Stage::Offer));
  p.denoise = 1.5;
  EXPECT_NE(
      message_of(check_task(sd, task, Stage::Offer)).find("task.denoise: 1.5 is outside 0..1"),
      std::string::npos);
  p.denoise.reset();
  p.seed = 1ull << 63;
  EXPECT_NE(message_of(check_task(sd, task, Stage::Offer)).find("task.seed:"), std::string::npos);
  p.seed = 42;
  p.sampling_method = "dpm++ 9000";
  // The pinned sampler list is the studio's check; a worker's own sd-cli may know newer names.
  EXPECT_NE(message_of(check_task(sd, task, Stage::Creation)).find("task.samplingMethod"),
            std::string::npos);
  EXPECT_TRUE(check_task(sd, task, Stage::Offer));
  p.sampling_method = "euler_a";
  EXPECT_TRUE(check_task(sd, task, Stage::Creation));
}

TEST(EngineRules, VideoContainersAreRefusedAtCreationOnlyAndDefaultToWebp) {
  EXPECT_EQ(kDefaultVideoExt, "webp");
  proto::VideoParams video;
  video.prompt = "a dragon";
  ASSERT_EQ(video.ext, "mp4") << "the wire default a reference studio relies on";
  const proto::Task task{video};
  const auto synthetic = source("synthetic");
  EXPECT_NE(message_of(check_task(synthetic, task, Stage::Creation))
                .find("task.ext: \"mp4\" cannot be produced"),
            std::string::npos);
  // A reference studio's video task (ext mp4 by default) still runs on our worker.
  EXPECT_TRUE(check_task(synthetic, task, Stage::Offer));
  video.ext = "gif";
  EXPECT_TRUE(check_task(synthetic, proto::Task{video}, Stage::Creation));
  video.fps = 0;
  EXPECT_EQ(message_of(check_task(synthetic, proto::Task{video}, Stage::Offer)),
            "task.fps: 0 is outside 1..60");
}

TEST(EngineRules, OtherEnginesTaskRules) {
  proto::AudioSttParams stt;
  stt.input_url = "https://a.example/x.wav";
  stt.vad = true;
  const auto whisper = source("whisper-cpp", {file("model", "base.bin")});
  EXPECT_NE(message_of(check_task(whisper, {stt}, Stage::Offer)).find("task.vad:"),
            std::string::npos);
  EXPECT_TRUE(check_task(source("whisper-cpp", {file("model", "base.bin"), file("vad", "v.bin")}),
                         {stt}, Stage::Offer));
  stt.vad.reset();
  stt.input_url = "http://a.example/x.wav";
  EXPECT_NE(message_of(check_task(whisper, {stt}, Stage::Creation)).find("task.inputUrl:"),
            std::string::npos);

  proto::AudioTtsParams tts;
  tts.text = "hello";
  tts.ext = "opus";
  EXPECT_TRUE(check_task(source("espeak-ng"), {tts}, Stage::Creation));
  tts.ext = "aac";
  EXPECT_NE(message_of(check_task(source("espeak-ng"), {tts}, Stage::Creation)).find("task.ext"),
            std::string::npos);
  tts.ext = "ogg";
  EXPECT_NE(message_of(check_task(source("synthetic"), {tts}, Stage::Creation)).find("wav"),
            std::string::npos);

  proto::LlmParams llm;
  EXPECT_EQ(
      message_of(check_task(source("llama-cpp", {file("model", "a.gguf")}), {llm}, Stage::Offer)),
      "task.messages: at least one message is required");

  proto::ImageParams edit;
  edit.prompt = "remove";
  edit.init_image_url = "https://a.example/i.png";
  EXPECT_NE(
      message_of(check_task(source("onnx", {file("model", "lama.onnx")}), {edit}, Stage::Creation))
          .find("task.maskUrl: the onnx engine"),
      std::string::npos);
  // An engine this build does not know has no rules here (the worker's routing refuses it).
  EXPECT_TRUE(check_task(source("future-engine"), {llm}, Stage::Offer));
}

TEST(EngineRules, ModelsNeedTheFilesTheirEngineReadsFromUrlsWorkersAccept) {
  using proto::TaskKind;
  EXPECT_TRUE(check_model(TaskKind::Llm, source("llama-cpp", {file("model", "a.gguf")})));
  EXPECT_TRUE(check_model(TaskKind::AudioTts, source("espeak-ng")));
  EXPECT_TRUE(check_model(TaskKind::Video, source("synthetic")));
  EXPECT_TRUE(check_model(TaskKind::Llm,
                          source("llama-cpp", {file("model", "a.gguf", "http://127.0.0.1:9/")})));
  EXPECT_TRUE(check_model(TaskKind::Llm,
                          source("llama-cpp", {file("model", "a.gguf", "http://localhost:9/")})));

  const std::vector<std::pair<proto::ModelSource, std::string>> refused = {
      {source("llama-cpp"), "source.files: llama-cpp needs a .gguf file"},
      {source("llama-cpp", {file("model", "a.bin")}), "source.files: llama-cpp needs a .gguf"},
      {source("sd-cpp", {file("vae", "ae.gguf")}), "source.files: sd-cpp needs a file of role"},
      {source("whisper-cpp", {file("vad", "v.bin")}), "source.files: whisper-cpp needs a model"},
      {source("onnx", {file("model", "a.bin")}), "source.files: onnx needs a `model` file"},
      {source("llama-cpp", {file("model", "a.gguf", "http://10.0.0.2/")}),
       "source.files[0].url: download URL must be https"},
      {source("llama-cpp", {file("model", "a.gguf", "file:///srv/")}),
       "source.files[0].url: download URL scheme \"file\" is not allowed"},
      {source("llama-cpp", {file("model", "../a.gguf")}),
       "source.files[0].filename: \"../a.gguf\" is not a plain file name"},
      {source("llama-cpp", {file("model", ".model.json")}), "source.files[0].filename"},
      {source("llama-cpp", {file("checkpoint", "a.gguf")}), "source.files[0].role: unknown role"},
      {source("future-engine"), "source.engine: unknown engine \"future-engine\""},
  };
  for (const auto& [s, expected] : refused) {
    const auto kind = s.engine == "sd-cpp" || s.engine == "onnx" ? TaskKind::Image
                      : s.engine == "whisper-cpp"                ? TaskKind::AudioStt
                                                                 : TaskKind::Llm;
    const auto message = message_of(check_model(kind, s));
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  EXPECT_EQ(
      message_of(check_model(TaskKind::Image, source("llama-cpp", {file("model", "a.gguf")}))),
      "source.engine: llama-cpp does not serve image tasks");

  auto sd = source("sd-cpp", {file("diffusion-model", "m.gguf")});
  sd.cli_defaults.height = 520;
  EXPECT_NE(message_of(check_model(TaskKind::Image, sd)).find("source.cliDefaults.height: 520"),
            std::string::npos);
  sd.cli_defaults.height = 0;
  sd.cli_defaults.steps = 500;
  EXPECT_NE(message_of(check_model(TaskKind::Image, sd)).find("source.cliDefaults.steps: 500"),
            std::string::npos);
}

}  // namespace
}  // namespace sw::rules
