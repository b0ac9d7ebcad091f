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
