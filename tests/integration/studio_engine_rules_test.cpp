// The studio's model registry and job creation against the per-engine rules (rules/engine_rules.h,
// issue 17), over real loopback HTTP with a real SQLite file: what an operator sees when a model
// or a job could never run — a 400 naming the field, the problem and the rule's source — and the
// conveniences around it (engine-irrelevant fields optional, PATCH with merge semantics, video
// jobs that default to the container that is produced).

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

using nlohmann::json;

json parse(const std::string& text) {
  return json::parse(text, nullptr, false);
}

json cli_zero() {
  return {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}};
}

json file(const std::string& role, const std::string& name,
          const std::string& url_base = "https://models.example/") {
  return {{"role", role}, {"url", url_base + name}, {"filename", name}};
}

json model(const std::string& id, const std::string& kind, json source) {
  return {{"id", id}, {"kind", kind}, {"source", std::move(source)}};
}

class StudioEngineRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    studio::StudioConfig config;
    config.data_dir = dir_.path();
    studio_ = std::make_unique<StudioHarness>(std::move(config));
  }

  HttpReply post_model(const json& body) const {
    return studio_->admin("POST", "/api/v1/models", body.dump());
  }
  HttpReply post_job(const std::string& model_id, const json& task) const {
    return studio_->admin("POST", "/api/v1/jobs", json{{"model", model_id}, {"task", task}}.dump());
  }
  // The 400's message, checked to be the named error code.
  static std::string refusal(const HttpReply& reply, const std::string& code) {
    EXPECT_EQ(reply.status, 400) << reply.body;
    const auto body = parse(reply.body);
    EXPECT_EQ(body.value("error", ""), code) << reply.body;
    return body.value("message", "");
  }
  void add_sd_model(const std::string& id, json defaults = cli_zero()) const {
    const auto reply = post_model(model(id, "image",
                                        {{"engine", "sd-cpp"},
                                         {"files", {file("diffusion-model", id + ".gguf")}},
                                         {"cliDefaults", std::move(defaults)}}));
    ASSERT_EQ(reply.status, 201) << reply.body;
  }
  std::size_t job_count() const {
    return parse(studio_->admin("GET", "/api/v1/jobs").body).at("jobs").size();
  }

  TempDir dir_;
  std::unique_ptr<StudioHarness> studio_;
};

// ---- registration ----

TEST_F(StudioEngineRulesTest, ModelsNoWorkerCouldRunAreRefusedNamingTheField) {
  struct Case {
    json body;
    std::string message;
  };
  const std::vector<Case> cases = {
      // A llama-cpp model with no files: every worker fails every job ("lists no .gguf").
      {model("empty-llama", "llm",
             {{"engine", "llama-cpp"}, {"files", json::array()}, {"cliDefaults", cli_zero()}}),
       "source.files: llama-cpp needs a .gguf file"},
      // An sd-cpp model without a diffusion model or full checkpoint.
      {model("vae-only", "image",
             {{"engine", "sd-cpp"}, {"files", {file("vae", "ae.safetensors")}}}),
       "source.files: sd-cpp needs a file of role `diffusion-model` or `model`"},
      // Plain http to a host that is not loopback: every worker's downloader refuses it.
      {model("http-llama", "llm",
             {{"engine", "llama-cpp"},
              {"files", {file("model", "q.gguf", "http://models.example/")}}}),
       "source.files[0].url: download URL must be https (plain http is allowed only to loopback "
       "hosts)"},
      {model("ftp-llama", "llm",
             {{"engine", "llama-cpp"},
              {"files", {file("model", "q.gguf", "ftp://models.example/")}}}),
       "source.files[0].url: download URL scheme \"ftp\" is not allowed"},
      {model("role-llama", "llm",
             {{"engine", "llama-cpp"}, {"files", {file("weights", "q.gguf")}}}),
       "source.files[0].role: unknown role \"weights\""},
      {model("twice-llama", "llm",
             {{"engine", "llama-cpp"},
              {"files", {file("model", "q.gguf"), file("model", "q.gguf")}}}),
       "source.files[1].filename: \"q.gguf\" is listed twice"},
      {model("odd-sd", "image",
             {{"engine", "sd-cpp"},
              {"files", {file("model", "sd.safetensors")}},
              {"cliDefaults", {{"width", 600}}}}),
       "source.cliDefaults.width: 600 is not a multiple of 64"},
  };
  for (const auto& c : cases) {
    const auto message = refusal(post_model(c.body), "invalid_model");
    EXPECT_NE(message.find(c.message), std::string::npos) << c.body.dump() << " → " << message;
  }
  EXPECT_EQ(parse(studio_->admin("GET", "/api/v1/models").body).at("models"), json::array());
}

TEST_F(StudioEngineRulesTest, EngineIrrelevantFieldsMayBeLeftOutAndAreStoredInFull) {
  // espeak-ng needs no files and ignores cliDefaults: neither need be written.
  auto reply = post_model(model("espeak", "audio_tts", {{"engine", "espeak-ng"}}));
  ASSERT_EQ(reply.status, 201) << reply.body;
  EXPECT_EQ(parse(reply.body)["source"],
            (json{{"engine", "espeak-ng"}, {"files", json::array()}, {"cliDefaults", cli_zero()}}));
  // An sd model may give only the defaults it cares about; the rest read as unset (0). The
  // stored source carries all four numbers, as reference workers require them on the wire.
  reply = post_model(model("sd", "image",
                           {{"engine", "sd-cpp"},
                            {"files", {file("diffusion-model", "sd.gguf")}},
                            {"cliDefaults", {{"steps", 4}, {"samplingMethod", "euler"}}}}));
  ASSERT_EQ(reply.status, 201) << reply.body;
  EXPECT_EQ(parse(reply.body)["source"]["cliDefaults"], (json{{"cfgScale", 0},
                                                              {"steps", 4},
                                                              {"width", 0},
                                                              {"height", 0},
                                                              {"samplingMethod", "euler"}}));
  // Loopback plain http is what a worker on the same host accepts.
  reply = post_model(model(
      "local-llama", "llm",
      {{"engine", "llama-cpp"}, {"files", {file("model", "q.gguf", "http://127.0.0.1:8000/")}}}));
  EXPECT_EQ(reply.status, 201) << reply.body;
}

TEST_F(StudioEngineRulesTest, PatchMergesIntoTheModelAndIsValidatedWhole) {
  ASSERT_EQ(post_model(model("llama", "llm",
                             {{"engine", "llama-cpp"}, {"files", {file("model", "a.gguf")}}}))
                .status,
            201);
  // A partial update: only the named members change.
  auto reply =
      studio_->admin("PATCH", "/api/v1/models/llama",
                     R"({"displayName":"Llama A","source":{"cliDefaults":{"contextSize":4096}}})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  auto stored = parse(studio_->admin("GET", "/api/v1/models/llama").body);
  EXPECT_EQ(stored["displayName"], "Llama A");
  EXPECT_EQ(stored["enabled"], true);
  EXPECT_EQ(stored["source"]["files"][0]["filename"], "a.gguf");
  EXPECT_EQ(stored["source"]["cliDefaults"]["contextSize"], 4096);

  // The merged model is checked as a whole: emptying the files is refused, nothing changes.
  const auto message =
      refusal(studio_->admin("PATCH", "/api/v1/models/llama", R"({"source":{"files":[]}})"),
              "invalid_model");
  EXPECT_NE(message.find("source.files: llama-cpp needs a .gguf file"), std::string::npos)
      << message;
  EXPECT_EQ(refusal(studio_->admin("PATCH", "/api/v1/models/llama", R"({"enabled":"no"})"),
                    "invalid_model"),
            "enabled: must be a boolean");
  EXPECT_EQ(refusal(studio_->admin("PATCH", "/api/v1/models/llama", R"({"id":"other"})"),
                    "invalid_model"),
            "id: does not match the path");
  stored = parse(studio_->admin("GET", "/api/v1/models/llama").body);
  EXPECT_EQ(stored["source"]["files"].size(), 1u);
  EXPECT_EQ(stored["enabled"], true);

  // Disabling is one member; an unknown model is a 404.
  ASSERT_EQ(studio_->admin("PATCH", "/api/v1/models/llama", R"({"enabled":false})").status, 200);
  EXPECT_EQ(parse(studio_->admin("GET", "/api/v1/models/llama").body)["enabled"], false);
  EXPECT_EQ(studio_->admin("PATCH", "/api/v1/models/nope", R"({"enabled":false})").status, 404);
}

// ---- job creation ----

// Issue 17: an sd image of 608×512 was accepted, ran three times and failed each time.
TEST_F(StudioEngineRulesTest, SdJobsWhoseSidesTheEngineWouldChangeAreRefusedNamingTheRule) {
  add_sd_model("sd");
  auto message = refusal(
      post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}, {"width", 608}, {"height", 512}}),
      "invalid_job");
  EXPECT_NE(message.find("task.width: 608 is not a multiple of 64"), std::string::npos) << message;
  EXPECT_NE(message.find("stable-diffusion.cpp src/stable-diffusion.cpp "
                         "GenerationRequest::align_image_size"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("640x512, not the 608x512 asked"), std::string::npos) << message;

  message = refusal(
      post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}, {"width", 512}, {"height", 32}}),
      "invalid_job");
  EXPECT_NE(message.find("task.height: 32 is outside 64..16320"), std::string::npos) << message;
  message = refusal(post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}, {"steps", 150}}),
                    "invalid_job");
  EXPECT_NE(message.find("task.steps: 150 is above 100"), std::string::npos) << message;
  message = refusal(post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}, {"ext", "jpg"}}),
                    "invalid_job");
  EXPECT_NE(message.find("task.ext: sd-cpp images come as webp, png, not \"jpg\""),
            std::string::npos)
      << message;
  message = refusal(
      post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}, {"samplingMethod", "dpm++ 9000"}}),
      "invalid_job");
  EXPECT_NE(message.find("task.samplingMethod: \"dpm++ 9000\" is not a sampler"), std::string::npos)
      << message;
  message = refusal(post_job("sd", {{"kind", "image"},
                                    {"prompt", "a fox"},
                                    {"initImageUrl", "http://images.example/a.png"}}),
                    "invalid_job");
  EXPECT_NE(message.find("task.initImageUrl: download URL must be https"), std::string::npos)
      << message;
  EXPECT_EQ(job_count(), 0u);

  // Multiples of 64, and the model's own defaults when the task gives none, are accepted.
  EXPECT_EQ(
      post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}, {"width", 640}, {"height", 512}})
          .status,
      201);
  EXPECT_EQ(post_job("sd", {{"kind", "image"}, {"prompt", "a fox"}}).status, 201);
}

TEST_F(StudioEngineRulesTest, TheModelsDefaultsCountWhenTheTaskLeavesASideUnset) {
  add_sd_model("sd-768", {{"width", 768}, {"height", 768}});
  // width 0 = "use the model's": 768 is fine; an odd explicit height is still refused.
  EXPECT_EQ(post_job("sd-768", {{"kind", "image"}, {"prompt", "x"}, {"width", 0}}).status, 201);
  const auto message = refusal(
      post_job("sd-768", {{"kind", "image"}, {"prompt", "x"}, {"width", 0}, {"height", 700}}),
      "invalid_job");
  EXPECT_NE(message.find("task.height: 700 is not a multiple of 64"), std::string::npos) << message;
}

TEST_F(StudioEngineRulesTest, OtherEnginesHardRulesAreCheckedToo) {
  ASSERT_EQ(post_model(model("whisper", "audio_stt",
                             {{"engine", "whisper-cpp"}, {"files", {file("model", "base.bin")}}}))
                .status,
            201);
  ASSERT_EQ(post_model(model("espeak", "audio_tts", {{"engine", "espeak-ng"}})).status, 201);
  ASSERT_EQ(post_model(model("llama", "llm",
                             {{"engine", "llama-cpp"}, {"files", {file("model", "a.gguf")}}}))
                .status,
            201);
  auto message = refusal(
      post_job("whisper",
               {{"kind", "audio_stt"}, {"inputUrl", "https://a.example/x.wav"}, {"vad", true}}),
      "invalid_job");
  EXPECT_NE(message.find("task.vad: the model lists no file of role `vad`"), std::string::npos)
      << message;
  message = refusal(
      post_job("whisper", {{"kind", "audio_stt"}, {"inputUrl", "data:audio/wav;base64,AAAA"}}),
      "invalid_job");
  EXPECT_NE(message.find("task.inputUrl: data: URLs are accepted by a worker's local API only"),
            std::string::npos)
      << message;
  message = refusal(post_job("espeak", {{"kind", "audio_tts"}, {"text", "hi"}, {"ext", "aac"}}),
                    "invalid_job");
  EXPECT_NE(
      message.find("task.ext: espeak-ng audio comes as wav, flac, ogg, opus, mp3, not \"aac\""),
      std::string::npos)
      << message;
  message =
      refusal(post_job("llama", {{"kind", "llm"}, {"messages", json::array()}}), "invalid_job");
  EXPECT_EQ(message, "task.messages: at least one message is required");
  EXPECT_EQ(job_count(), 0u);
  EXPECT_EQ(post_job("espeak", {{"kind", "audio_tts"}, {"text", "hi"}, {"ext", "ogg"}}).status,
            201);
}

// Issue 17: video jobs defaulted to `ext: mp4` and came back as animated WebP.
TEST_F(StudioEngineRulesTest, VideoJobsDefaultToWhatIsProducedAndAnUnproducibleContainerIsRefused) {
  studio_->add_model("synth-video", "video");
  auto reply = post_job("synth-video", {{"kind", "video"}, {"prompt", "a dragon"}, {"seconds", 1}});
  ASSERT_EQ(reply.status, 201) << reply.body;
  EXPECT_EQ(parse(reply.body)["task"]["ext"], "webp") << reply.body;

  for (const std::string ext : {"mp4", "webm"}) {
    const auto message =
        refusal(post_job("synth-video", {{"kind", "video"}, {"prompt", "a dragon"}, {"ext", ext}}),
                "invalid_job");
    EXPECT_NE(message.find("task.ext: \"" + ext +
                           "\" cannot be produced: no engine here links a "
                           "video codec"),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(
      post_job("synth-video", {{"kind", "video"}, {"prompt", "a dragon"}, {"ext", "gif"}}).status,
      201);
}

}  // namespace
}  // namespace sw::testing
