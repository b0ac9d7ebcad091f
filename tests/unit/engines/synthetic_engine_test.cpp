// The synthetic engine's outputs, checked with the real decoders.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "engines/synthetic/synthetic_engine.h"
#include "engines/synthetic/tone.h"
#include "proto/codec.h"
#include "support/media_decoders.h"

namespace sw::engines {
namespace {

using ::testing::HasSubstr;

Result<TaskResult> run(proto::Task task, std::string model = "") {
  SyntheticEngine engine;
  DispatchRequest request;
  if (model.empty()) model = SyntheticEngine::model_for(task.kind());
  request.model = std::move(model);
  request.task = std::move(task);
  request.source = proto::ModelSource{"synthetic", {}, {}};
  return engine.dispatch(request);
}

proto::ImageParams image(std::string prompt, std::uint32_t w, std::uint32_t h, std::string ext) {
  proto::ImageParams p;
  p.prompt = std::move(prompt);
  p.width = w;
  p.height = h;
  p.ext = std::move(ext);
  return p;
}

TEST(SyntheticCapabilities, OnlySyntheticIdsNeverAWildcard) {
  SyntheticEngine engine;
  auto caps = engine.capabilities();
  ASSERT_EQ(caps.size(), 5u);
  for (const auto& [kind, models] : caps) {
    EXPECT_EQ(models, (std::vector<std::string>{"synthetic", SyntheticEngine::model_for(kind)}));
    for (const auto& m : models) {
      EXPECT_EQ(m.find('*'), std::string::npos);
      EXPECT_EQ(m.rfind("synthetic", 0), 0u);
    }
  }
  EXPECT_EQ(SyntheticEngine::model_for(proto::TaskKind::AudioStt), "synthetic-stt");
  EXPECT_EQ(SyntheticEngine::model_for(proto::TaskKind::AudioTts), "synthetic-tts");
}

TEST(SyntheticEngine, RefusesRealModelIdsWithoutASyntheticSource) {
  SyntheticEngine engine;
  DispatchRequest request;
  request.model = "qwen3.5-0.8b";
  request.task = proto::Task{image("p", 64, 64, "png")};
  auto result = engine.dispatch(request);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unsupported);
}

TEST(SyntheticImage, PngAndWebpDecodeAtTheRequestedSize) {
  for (const char* ext : {"png", "webp"}) {
    auto result = run(proto::Task{image("a fox", 300, 200, ext)});
    ASSERT_TRUE(result) << result.error().message;
    const auto& out = std::get<ImageResult>(*result);
    EXPECT_EQ(out.ext, ext);
    auto decoded = std::string(ext) == "png" ? testing::decode_png(out.bytes)
                                             : testing::decode_webp(out.bytes);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(decoded->width, 300u);
    EXPECT_EQ(decoded->height, 200u);
  }
}

TEST(SyntheticImage, SizeIsClampedTo64Through2048) {
  auto small = run(proto::Task{image("p", 10, 5000, "png")});
  ASSERT_TRUE(small) << small.error().message;
  auto decoded = testing::decode_png(std::get<ImageResult>(*small).bytes);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->width, 64u);
  EXPECT_EQ(decoded->height, 2048u);
}

TEST(SyntheticImage, DeterministicPerInputAndVisiblyDifferentAcrossPrompts) {
  auto a1 = run(proto::Task{image("a red fox in snow", 128, 128, "png")});
  auto a2 = run(proto::Task{image("a red fox in snow", 128, 128, "png")});
  auto b = run(proto::Task{image("a lighthouse at dawn", 128, 128, "png")});
  ASSERT_TRUE(a1 && a2 && b);
  EXPECT_EQ(std::get<ImageResult>(*a1).bytes, std::get<ImageResult>(*a2).bytes);
  auto da = testing::decode_png(std::get<ImageResult>(*a1).bytes);
  auto db = testing::decode_png(std::get<ImageResult>(*b).bytes);
  ASSERT_TRUE(da && db);
  EXPECT_GT(testing::mean_abs_diff(da->rgba, db->rgba), 20.0);
}

TEST(SyntheticImage, UnsupportedExtIsAnInvalidArgumentNotMislabelledBytes) {
  auto result = run(proto::Task{image("p", 64, 64, "jpg")});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::InvalidArgument);
  EXPECT_THAT(result.error().message, HasSubstr("\"jpg\""));
}

proto::ChatCompletion run_llm(proto::LlmParams params) {
  auto result = run(proto::Task{std::move(params)});
  EXPECT_TRUE(result) << result.error().message;
  auto completion = proto::decode_chat_completion(std::get<LlmResult>(*result).json.text());
  EXPECT_TRUE(completion) << completion.error().message;
  return *completion;
}

TEST(SyntheticLlm, ChatCompletionWithRealUsageCounts) {
  proto::LlmParams params;
  params.system = "be brief";
  params.messages = {{"user", "tell me a story"}};
  auto completion = run_llm(params);
  ASSERT_EQ(completion.choices.size(), 1u);
  const auto& message = completion.choices[0].message;
  EXPECT_EQ(message.role, "assistant");
  EXPECT_THAT(message.content, HasSubstr("[synthetic] reply to prompt #"));
  EXPECT_EQ(completion.choices[0].finish_reason, "stop");
  // "system: be brief" + "user: tell me a story" = 3 + 5 words; the reply has 5 words.
  EXPECT_EQ(completion.usage.prompt_tokens, 8u);
  EXPECT_EQ(completion.usage.completion_tokens, 5u);
  EXPECT_EQ(completion.usage.total_tokens, 13u);
  EXPECT_EQ(completion.model, "synthetic-llm");
  EXPECT_TRUE(completion.elapsed_ms.has_value());

  params.messages = {{"user", "tell me another story"}};
  EXPECT_NE(run_llm(params).choices[0].message.content, message.content);
}

TEST(SyntheticLlm, TokenBudgetAndStopStringsAreHonoured) {
  proto::LlmParams params;
  params.messages = {{"user", "hi"}};
  params.max_tokens = 2;
  auto capped = run_llm(params);
  EXPECT_EQ(capped.choices[0].finish_reason, "length");
  EXPECT_EQ(capped.usage.completion_tokens, 2u);
  EXPECT_EQ(capped.choices[0].message.content, "[synthetic] reply");

  params.max_tokens = 512;
  params.stop = std::vector<std::string>{" to"};
  auto stopped = run_llm(params);
  EXPECT_EQ(stopped.choices[0].message.content, "[synthetic] reply");
  EXPECT_EQ(stopped.choices[0].finish_reason, "stop");
}

// Records what an engine tells about a job; the test waits on it for the first piece.
class RecordingObserver final : public JobObserver {
 public:
  void text(std::string_view content, std::string_view reasoning) override {
    std::lock_guard lock(mutex_);
    content_ += content;
    reasoning_ += reasoning;
    ++calls_;
    changed_.notify_all();
  }
  void wait_for_calls(int n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return calls_ >= n; });
  }
  std::string content() {
    std::lock_guard lock(mutex_);
    return content_;
  }
  int calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string content_;
  std::string reasoning_;
  int calls_ = 0;
};

DispatchRequest llm_request(std::string prompt) {
  proto::LlmParams params;
  params.messages = {{"user", std::move(prompt)}};
  DispatchRequest request;
  request.model = "synthetic-llm";
  request.task = proto::Task{std::move(params)};
  request.source = proto::ModelSource{"synthetic", {}, {}};
  return request;
}

// Issue 20: the answer reaches the observer in several pieces that spell the result's content.
TEST(SyntheticLlm, TellsTheAnswerWordByWordAndThePiecesSpellTheContent) {
  SyntheticEngine engine(std::chrono::milliseconds(20));
  auto observer = std::make_shared<RecordingObserver>();
  DispatchRequest request = llm_request("stream it");
  request.observer = observer;
  auto result = engine.dispatch(request);
  ASSERT_TRUE(result) << result.error().message;
  auto completion = proto::decode_chat_completion(std::get<LlmResult>(*result).json.text());
  ASSERT_TRUE(completion);
  EXPECT_EQ(observer->content(), completion->choices[0].message.content);
  EXPECT_EQ(observer->calls(), 5) << "one piece per word of the 5-word reply";
}

// Issue 20: a cancel ends the simulated work at once (a wait of an hour would hang the test).
TEST(SyntheticLlm, ACancelEndsTheSimulatedWorkAtOnce) {
  SyntheticEngine engine(std::chrono::hours(1));
  auto observer = std::make_shared<RecordingObserver>();
  std::stop_source stop;
  DispatchRequest request = llm_request("cancel me");
  request.observer = observer;
  request.stop = stop.get_token();
  Result<TaskResult> result = fail(Error::internal("unset"));
  std::thread job([&] { result = engine.dispatch(request); });
  observer->wait_for_calls(1);  // the first word comes at once; the rest are an hour away
  stop.request_stop();
  job.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Cancelled);
  EXPECT_EQ(observer->calls(), 1);

  // Other kinds too, and a job cancelled before it starts never runs.
  SyntheticEngine quick;
  DispatchRequest image_request;
  image_request.model = "synthetic-image";
  image_request.task = proto::Task{image("p", 64, 64, "png")};
  image_request.stop = stop.get_token();
  auto image_result = quick.dispatch(image_request);
  ASSERT_FALSE(image_result);
  EXPECT_EQ(image_result.error().code, Code::Cancelled);
}

TEST(SyntheticStt, WhisperShape) {
  proto::AudioSttParams params;
  params.input_url = "https://example/a.wav";
  params.language = "nl";
  auto result = run(proto::Task{params});
  ASSERT_TRUE(result) << result.error().message;
  auto transcript = proto::decode_transcript(std::get<AudioSttResult>(*result).json.text());
  ASSERT_TRUE(transcript) << transcript.error().message;
  EXPECT_THAT(transcript->text, HasSubstr("[synthetic] transcript of "));
  EXPECT_EQ(transcript->language, "nl");
  EXPECT_DOUBLE_EQ(transcript->duration, 1.0);
  ASSERT_TRUE(transcript->segments);
  EXPECT_EQ(transcript->segments->size(), 1u);
}

testing::DecodedAudio tts(std::string text, std::optional<double> speed = std::nullopt) {
  proto::AudioTtsParams params;
  params.text = std::move(text);
  params.speed = speed;
  auto result = run(proto::Task{params});
  EXPECT_TRUE(result) << result.error().message;
  EXPECT_EQ(std::get<AudioTtsResult>(*result).ext, "wav");
  auto audio = testing::decode_wav(std::get<AudioTtsResult>(*result).bytes);
  EXPECT_TRUE(audio) << audio.error().message;
  return *audio;
}

TEST(SyntheticTts, MonoPcm16At22050WithDurationFromTextLength) {
  const std::string text = "hello there, this is the synthetic voice speaking";
  auto audio = tts(text);
  EXPECT_EQ(audio.sample_rate, 22050);
  EXPECT_EQ(audio.channels, 1);
  EXPECT_TRUE(audio.pcm16);
  EXPECT_NEAR(audio.seconds(), synthetic::speech_seconds(text, 1.0), 1.0 / 22050);
  EXPECT_GT(testing::rms(audio.samples), 0.05);  // audible, not silence

  auto longer = tts(text + " and a good deal more text after that");
  EXPECT_GT(longer.seconds(), audio.seconds() * 1.5);
  auto faster = tts(text, 2.0);
  EXPECT_NEAR(faster.seconds(), audio.seconds() / 2, 2.0 / 22050);
}

TEST(SyntheticTts, BadInputIsRefused) {
  proto::AudioTtsParams params;
  params.text = "   ";
  EXPECT_FALSE(run(proto::Task{params}));
  params.text = "hi";
  params.ext = "mp3";
  auto mp3 = run(proto::Task{params});
  ASSERT_FALSE(mp3);
  EXPECT_EQ(mp3.error().code, Code::InvalidArgument);
  params.ext = "wav";
  params.speed = 0.0;
  EXPECT_FALSE(run(proto::Task{params}));
  params.speed = std::nullopt;
  params.text = std::string(synthetic::kMaxSpeechCharacters + 1, 'a');
  EXPECT_FALSE(run(proto::Task{params}));
}

proto::VideoParams video(std::string ext, double seconds, std::optional<std::uint32_t> fps) {
  proto::VideoParams p;
  p.prompt = "a tiny dragon";
  p.ext = std::move(ext);
  p.seconds = seconds;
  p.fps = fps;
  p.width = 96;
  p.height = 80;
  return p;
}

TEST(SyntheticVideo, AnimatedWebpHasSecondsTimesFpsFramesThatMove) {
  auto result = run(proto::Task{video("webp", 1.5, 6)});
  ASSERT_TRUE(result) << result.error().message;
  const auto& out = std::get<VideoResult>(*result);
  EXPECT_EQ(out.ext, "webp");
  auto anim = testing::decode_animated_webp(out.bytes);
  ASSERT_TRUE(anim) << anim.error().message;
  EXPECT_EQ(anim->width, 96u);
  EXPECT_EQ(anim->height, 80u);
  ASSERT_EQ(anim->frames.size(), 9u);
  EXPECT_TRUE(anim->loops_forever);
  EXPECT_GT(testing::mean_abs_diff(anim->frames[0], anim->frames[4]), 1.0);
}

TEST(SyntheticVideo, GifWhenAskedAndWebpForContainersWeCannotWrite) {
  auto gif = run(proto::Task{video("gif", 1.0, 5)});
  ASSERT_TRUE(gif) << gif.error().message;
  EXPECT_EQ(std::get<VideoResult>(*gif).ext, "gif");
  auto decoded = testing::decode_gif(std::get<VideoResult>(*gif).bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->frames.size(), 5u);
  EXPECT_EQ(decoded->delays_ms[0], 200);
  EXPECT_TRUE(decoded->loops_forever);

  auto mp4 = run(proto::Task{video("mp4", 0.5, std::nullopt)});
  ASSERT_TRUE(mp4) << mp4.error().message;
  EXPECT_EQ(std::get<VideoResult>(*mp4).ext, "webp");  // labelled as what it is
  auto webp = testing::decode_animated_webp(std::get<VideoResult>(*mp4).bytes);
  ASSERT_TRUE(webp);
  EXPECT_EQ(webp->frames.size(), 4u);  // 0.5 s at the default 8 fps
}

TEST(SyntheticVideo, DeterministicAndBoundedRequests) {
  auto a = run(proto::Task{video("webp", 0.5, 4)});
  auto b = run(proto::Task{video("webp", 0.5, 4)});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(std::get<VideoResult>(*a).bytes, std::get<VideoResult>(*b).bytes);

  EXPECT_FALSE(run(proto::Task{video("webp", 0.0, 4)}));
  EXPECT_FALSE(run(proto::Task{video("webp", 1.0, 0)}));
  EXPECT_FALSE(run(proto::Task{video("webp", 1.0, 61)}));
  proto::VideoParams huge = video("webp", 60, 60);
  huge.width = 2048;
  huge.height = 2048;
  auto refused = run(proto::Task{huge});
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("over the synthetic engine's limit"));
}

}  // namespace
}  // namespace sw::engines
