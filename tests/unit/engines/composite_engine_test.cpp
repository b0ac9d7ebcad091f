// No-fallback routing of the composite engine (reference multi.rs tests), with a recording test
// double standing in for a real member engine.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/log.h"
#include "engines/build_engine.h"
#include "engines/composite_engine.h"
#include "engines/synthetic/synthetic_engine.h"

namespace sw::engines {
namespace {

using ::testing::HasSubstr;

// A member that serves one model per kind under its own name and records what it was asked.
class RecordingEngine final : public Engine {
 public:
  RecordingEngine(std::string name, Capabilities caps, int* calls)
      : name_(std::move(name)), caps_(std::move(caps)), calls_(calls) {}
  std::string_view name() const override { return name_; }
  Capabilities capabilities() const override { return caps_; }
  Result<TaskResult> dispatch(const DispatchRequest&) override {
    ++*calls_;
    return ImageResult{{1, 2, 3}, "png"};
  }

 private:
  std::string name_;
  Capabilities caps_;
  int* calls_;
};

proto::Task image_task() {
  proto::ImageParams params;
  params.prompt = "a fox";
  params.width = 64;
  params.height = 64;
  return proto::Task{params};
}

proto::Task llm_task() {
  proto::LlmParams params;
  params.messages.push_back({"user", "hi"});
  return proto::Task{params};
}

DispatchRequest with_source(std::string model, std::string engine, proto::Task task) {
  DispatchRequest request;
  request.model = std::move(model);
  request.task = std::move(task);
  request.source = proto::ModelSource{std::move(engine), {}, {}};
  request.job_id = "job-1";
  return request;
}

TEST(CompositeEngine, RefusesToFallBackToSyntheticForRealModels) {
  log::Capture capture;
  auto engine = build_engine();
  auto result = engine->dispatch(with_source("qwen3.5-0.8b", "llama-cpp", llm_task()));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unsupported);
  EXPECT_FALSE(is_retryable(result.error()));
  EXPECT_THAT(result.error().message, HasSubstr("no `llama-cpp` engine in this worker"));
  EXPECT_THAT(result.error().message, HasSubstr("model `qwen3.5-0.8b`"));
  EXPECT_THAT(result.error().message, HasSubstr("llama-server"));
  EXPECT_THAT(result.error().message, HasSubstr("STUDIO_WORKER_LLAMA_SERVER"));

  auto warnings = capture.find("engine.no_match");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].level, log::Level::Warn);
  EXPECT_EQ(warnings[0].target, "studio_worker::engine::multi");
  EXPECT_EQ(*warnings[0].field("model"), "qwen3.5-0.8b");
  EXPECT_EQ(*warnings[0].field("wanted_engine"), "llama-cpp");
  EXPECT_EQ(*warnings[0].field("job_id"), "job-1");
}

TEST(CompositeEngine, EveryMissingEngineGetsAnActionableRemedy) {
  auto engine = build_engine();
  const std::pair<const char*, const char*> cases[] = {
      {"sd-cpp", "sd-cli"},
      {"whisper-cpp", "whisper-server"},
      {"espeak-ng", "libespeak-ng"},
      {"onnx", "ONNX Runtime"},
      {"parakeet", "never valid in a studio job"},
      {"comfyui", "not an engine this worker knows"},
  };
  for (const auto& [name, hint] : cases) {
    auto result = engine->dispatch(with_source("m", name, image_task()));
    ASSERT_FALSE(result) << name;
    EXPECT_THAT(result.error().message, HasSubstr(hint)) << name;
    EXPECT_FALSE(is_retryable(result.error())) << name;
  }
}

TEST(CompositeEngine, RoutesStrictlyByModelSourceEngine) {
  int sd_calls = 0;
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<RecordingEngine>(
      "sd-cpp", Capabilities{{proto::TaskKind::Image, {"sd-cpp:*"}}}, &sd_calls));
  members.push_back(std::make_unique<SyntheticEngine>());
  CompositeEngine engine(std::move(members));

  auto routed = engine.dispatch(with_source("z-image", "sd-cpp", image_task()));
  ASSERT_TRUE(routed) << routed.error().message;
  EXPECT_EQ(sd_calls, 1);

  // A synthetic source goes to synthetic even though sd-cpp is first in priority order.
  auto synthetic = engine.dispatch(with_source("synthetic-image", "synthetic", image_task()));
  ASSERT_TRUE(synthetic) << synthetic.error().message;
  EXPECT_EQ(sd_calls, 1);
  EXPECT_EQ(std::get<ImageResult>(*synthetic).ext, "webp");
}

// Issue 17: a studio's sd image of 608×512 ran (downloads, minutes of GPU) and failed retryably,
// three times. The engine's hard rules are checked before the member runs; the failure is terminal
// so the studio does not run it again. The local API's own requests are the member's to judge.
TEST(CompositeEngine, AStudioTaskThatBreaksItsEnginesRulesFailsOnceBeforeTheEngineRuns) {
  int sd_calls = 0;
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<RecordingEngine>(
      "sd-cpp", Capabilities{{proto::TaskKind::Image, {"sd-cpp:*"}}}, &sd_calls));
  CompositeEngine engine(std::move(members));
  proto::ImageParams params;
  params.prompt = "a fox";
  params.width = 608;
  params.height = 512;
  auto result = engine.dispatch(with_source("sd-turbo", "sd-cpp", proto::Task{params}));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::InvalidArgument);
  EXPECT_FALSE(is_retryable(result.error()));
  EXPECT_THAT(result.error().message, HasSubstr("task.width: 608 is not a multiple of 64"));
  EXPECT_THAT(result.error().message, HasSubstr("GenerationRequest::align_image_size"));
  EXPECT_EQ(sd_calls, 0);

  auto local = with_source("sd-turbo", "sd-cpp", proto::Task{params});
  local.local = true;
  EXPECT_TRUE(engine.dispatch(local));
  EXPECT_EQ(sd_calls, 1);
}

TEST(CompositeEngine, WithoutSourceOnlyAnExactKindAndModelMatchIsServed) {
  auto engine = build_engine();
  DispatchRequest request;
  request.task = image_task();
  request.model = "synthetic-image";
  EXPECT_TRUE(engine->dispatch(request));

  request.model = "synthetic-llm";  // a real synthetic id, but for another kind
  auto wrong_kind = engine->dispatch(request);
  ASSERT_FALSE(wrong_kind);
  EXPECT_EQ(wrong_kind.error().code, Code::Unsupported);
  EXPECT_THAT(wrong_kind.error().message, HasSubstr("model `synthetic-llm` for image tasks"));

  request.model = "z-image-turbo-q4_k_m.gguf";
  EXPECT_FALSE(engine->dispatch(request));
}

TEST(CompositeEngine, CapabilitiesAreTheSortedUnionOfMembers) {
  int calls = 0;
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<RecordingEngine>(
      "llama-cpp", Capabilities{{proto::TaskKind::Llm, {"llama-cpp:*", "synthetic"}}}, &calls));
  members.push_back(std::make_unique<SyntheticEngine>());
  CompositeEngine engine(std::move(members));
  Capabilities caps = engine.capabilities();
  EXPECT_EQ(caps[proto::TaskKind::Llm],
            (std::vector<std::string>{"llama-cpp:*", "synthetic", "synthetic-llm"}));
  EXPECT_EQ(caps[proto::TaskKind::Image],
            (std::vector<std::string>{"synthetic", "synthetic-image"}));

  auto flat = flatten_models(caps);
  EXPECT_TRUE(std::is_sorted(flat.begin(), flat.end()));
  EXPECT_EQ(std::count(flat.begin(), flat.end(), "synthetic"), 1);
  EXPECT_EQ(task_kinds_of(caps).size(), 5u);
  EXPECT_EQ(engine.name(), "multi");
}

TEST(CompositeEngine, RoutingRefusalNamesTheMissingEngineBeforeAnyDispatch) {
  int sd_calls = 0;
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<RecordingEngine>(
      "sd-cpp", Capabilities{{proto::TaskKind::Image, {"sd-cpp:*"}}}, &sd_calls));
  CompositeEngine engine(std::move(members));

  auto refusal = engine.routing_refusal(with_source("qwen3.5-0.8b", "llama-cpp", llm_task()));
  ASSERT_TRUE(refusal);
  EXPECT_THAT(*refusal, HasSubstr("no `llama-cpp` engine in this worker"));
  EXPECT_THAT(*refusal, HasSubstr("model `qwen3.5-0.8b`"));
  EXPECT_THAT(*refusal, HasSubstr("llama-server"));
  // The synthetic engine switched off is named as such, with where to switch it back on.
  auto synthetic =
      engine.routing_refusal(with_source("synthetic-image", "synthetic", image_task()));
  ASSERT_TRUE(synthetic);
  EXPECT_THAT(*synthetic, HasSubstr("[engines] synthetic = false"));
  // A member that exists is routable (whether it serves the kind is its own, terminal, answer).
  EXPECT_FALSE(engine.routing_refusal(with_source("z-image", "sd-cpp", image_task())));
  EXPECT_EQ(sd_calls, 0) << "a routing check never dispatches";
}

TEST(CompositeEngine, AdvertisesHeldModelsOnlyUnderTheKindsOfAnEngineItHas) {
  int calls = 0;
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<RecordingEngine>(
      "llama-cpp", Capabilities{{proto::TaskKind::Llm, {"llama-cpp:*"}}}, &calls));
  members.push_back(std::make_unique<SyntheticEngine>());
  CompositeEngine engine(std::move(members));
  const std::vector<models::HeldModel> held = {
      {"stories260K.gguf", "llama-cpp"},
      {"z-image-turbo-q4_k_m.gguf", "sd-cpp"},  // no sd-cpp engine here: not advertised
      {"qwen3.5-0.8b", "llama-cpp"},
  };
  Capabilities caps = engine.with_held_models(held);
  EXPECT_EQ(caps[proto::TaskKind::Llm],
            (std::vector<std::string>{"llama-cpp:*", "qwen3.5-0.8b", "stories260K.gguf",
                                      "synthetic", "synthetic-llm"}));
  EXPECT_EQ(caps[proto::TaskKind::Image],
            (std::vector<std::string>{"synthetic", "synthetic-image"}));
  auto flat = flatten_models(caps);
  EXPECT_EQ(std::count(flat.begin(), flat.end(), "z-image-turbo-q4_k_m.gguf"), 0);
  EXPECT_EQ(engine.capabilities(), engine.with_held_models({})) << "nothing held: the names";
}

TEST(CompositeEngine, WithTheSyntheticEngineOffOnlyKindsOfRealEnginesAreListed) {
  EngineOptions options;
  options.synthetic = false;
  options.espeak = false;  // no models root and no espeak: nothing at all
  auto nothing = build_engines(options);
  EXPECT_TRUE(nothing.engine->capabilities().empty());
  EXPECT_TRUE(task_kinds_of(nothing.advertised()).empty());

  int calls = 0;
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<RecordingEngine>(
      "espeak-ng", Capabilities{{proto::TaskKind::AudioTts, {"espeak-ng:*"}}}, &calls));
  CompositeEngine tts_only(std::move(members));
  Capabilities caps = tts_only.capabilities();
  EXPECT_EQ(task_kinds_of(caps), (std::vector<proto::TaskKind>{proto::TaskKind::AudioTts}));
  EXPECT_EQ(flatten_models(caps), (std::vector<std::string>{"espeak-ng:*"}));
}

TEST(CompositeEngine, DefaultModelPrefersExactIdsThenEnginesThatNeedNoFiles) {
  Capabilities with_synthetic = build_engine()->capabilities();
  auto synthetic = default_model(with_synthetic, proto::TaskKind::Llm);
  ASSERT_TRUE(synthetic);
  EXPECT_EQ(synthetic->model, "synthetic");
  EXPECT_FALSE(synthetic->source);

  const Capabilities real_only = {{proto::TaskKind::AudioTts, {"espeak-ng:*"}},
                                  {proto::TaskKind::Llm, {"llama-cpp:*"}}};
  auto tts = default_model(real_only, proto::TaskKind::AudioTts);
  ASSERT_TRUE(tts);
  EXPECT_EQ(tts->model, "espeak-ng");
  ASSERT_TRUE(tts->source);
  EXPECT_EQ(tts->source->engine, "espeak-ng");
  EXPECT_FALSE(default_model(real_only, proto::TaskKind::Llm)) << "llama needs a model's files";
  EXPECT_FALSE(default_model(real_only, proto::TaskKind::Image)) << "no engine for the kind";
}

TEST(EngineContract, CannotServeIsTypedAndTerminal) {
  Error e = cannot_serve("sd-cpp", proto::TaskKind::Llm);
  EXPECT_EQ(e.message, "sd-cpp engine cannot serve llm tasks");
  EXPECT_EQ(e.code, Code::Unsupported);
  EXPECT_FALSE(is_retryable(e));
  EXPECT_TRUE(is_retryable(Error::unavailable("runner down")));
  EXPECT_TRUE(is_retryable(Error::io("disk")));
}

}  // namespace
}  // namespace sw::engines
