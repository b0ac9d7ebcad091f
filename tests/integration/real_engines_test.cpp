// The real engines with the real tiny test models (found through STUDIO_WORKER_TEST_MODELS):
// llama-server and whisper-server when they are found (config-free: STUDIO_WORKER_LLAMA_SERVER /
// STUDIO_WORKER_WHISPER_SERVER or PATH), else one `SKIPPED:` line; espeak-ng always (linked).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numbers>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "common/sha256.h"
#include "engines/espeak/espeak_engine.h"
#include "engines/llama/llama_engine.h"
#include "engines/runner/child_process.h"
#include "engines/whisper/whisper_engine.h"
#include "media/audio_codec.h"
#include "media/encoders.h"
#include "models/gguf.h"
#include "support/http_test_server.h"
#include "support/media_decoders.h"
#include "support/temp_dir.h"
#include "support/test_models.h"
#include "transfer/http_client.h"

namespace sw::engines {
namespace {

// A models root holding copies of test models placed by hand (the cache reuses a top-level file
// whose sha256 matches), and a ModelSource naming them.
struct PlacedModels {
  testing::TempDir dir;
  std::shared_ptr<models::ModelCache> cache;
  PlacedModels() {
    models::CacheConfig config;
    config.root = dir.path() / "models";
    std::filesystem::create_directories(config.root);
    cache = std::make_shared<models::ModelCache>(config);
  }
  proto::ModelFile place(const std::filesystem::path& from, std::string role) {
    const auto to = cache->config().root / from.filename();
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
    auto bytes = read_file(to);
    proto::ModelFile file;
    file.role = std::move(role);
    file.url = "https://models.invalid/" + from.filename().string();  // never fetched
    file.filename = from.filename().string();
    // .value(): a copy that cannot be read fails the test (it throws) rather than reading nothing.
    file.approx_bytes = bytes.value().size();
    file.sha256 = sha256_hex(bytes.value());
    return file;
  }
};

RunnerPoolOptions roomy() {
  RunnerPoolOptions options;
  options.free_memory_gib = [] { return std::optional<double>(64.0); };
  return options;
}

proto::Task chat(std::string user, std::uint32_t max_tokens,
                 std::optional<std::vector<std::string>> stop = std::nullopt) {
  proto::LlmParams params;
  params.messages = {{"user", std::move(user)}};
  params.max_tokens = max_tokens;
  params.temperature = 0.0;
  params.stop = std::move(stop);
  return proto::Task{params};
}

nlohmann::json llm_json(const Result<TaskResult>& result) {
  return nlohmann::json::parse(std::get<LlmResult>(*result).json.text());
}

// The llama-cpp engine over a resident runner started from `server`: the real llama-server, or
// tests/fakes/fake_runner where only the runner's lifecycle is under test.
class LlamaEngineTest : public ::testing::Test {
 protected:
  void start(const std::filesystem::path& server) {
    auto dir = testing::test_models_dir();
    if (!dir) GTEST_SKIP() << "SKIPPED: test models not found (set STUDIO_WORKER_TEST_MODELS)";
    models_ = *dir;
    pool_ = std::make_shared<RunnerPool>(roomy());
    engine_ = std::make_unique<LlamaEngine>(server, placed_.cache, pool_);
  }
  // The model id is the file's stem unless given (the reference's catalogue uses the file name).
  DispatchRequest request(const std::string& model_file, proto::Task task,
                          std::optional<std::uint32_t> context = std::nullopt,
                          std::optional<std::string> id = std::nullopt) {
    proto::ModelSource source;
    source.engine = "llama-cpp";
    source.files = {placed_.place(models_ / model_file, "model")};
    source.cli_defaults.context_size = context;
    if (!id) id = std::filesystem::path(model_file).stem().string();
    return DispatchRequest{*id, std::move(task), source, "job-real"};
  }
  // A runner killed behind the pool's back is noticed on the next job, started again, and the job
  // is answered by the new one.
  void expect_recovery_after_the_runner_is_killed() {
    ASSERT_TRUE(engine_->dispatch(request("stories260K.gguf", chat("Once", 4))));
    const int pid = pool_->status().at(0).pid;
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    auto after = engine_->dispatch(request("stories260K.gguf", chat("Once", 4)));
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_NE(pool_->status().at(0).pid, pid);
    EXPECT_EQ(pool_->status().at(0).starts, 2);
  }
  std::filesystem::path models_;
  PlacedModels placed_;
  std::shared_ptr<RunnerPool> pool_;
  std::unique_ptr<LlamaEngine> engine_;
};

// Needs real model output: waits for a real llama-server.
class LlamaRealTest : public LlamaEngineTest {
 protected:
  void SetUp() override {
    auto server = locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
    if (!server) {
      GTEST_SKIP() << "SKIPPED: llama-server not found (set STUDIO_WORKER_LLAMA_SERVER; "
                      "scripts/setup-engines.sh provisions one)";
    }
    start(*server);
  }
};

// The engine's runner handling, which needs no real output: always runs, against the fake runner
// (whose answers name its pid, so a test can tell which runner answered).
class LlamaFakeRunnerTest : public LlamaEngineTest {
 protected:
  void SetUp() override { start(SW_FAKE_RUNNER_BIN); }
};

TEST_F(LlamaRealTest, GeneratesTextWithTrueTokenCountsAndStaysResident) {
  auto first = engine_->dispatch(request("stories260K.gguf", chat("Once upon a time", 24)));
  ASSERT_TRUE(first) << first.error().message;
  const auto json = llm_json(first);
  EXPECT_EQ(json["object"], "chat.completion");
  EXPECT_EQ(json["model"], "stories260K");
  const std::string content = json["choices"][0]["message"]["content"];
  EXPECT_FALSE(content.empty());
  const int completion = json["usage"]["completion_tokens"];
  const int prompt = json["usage"]["prompt_tokens"];
  EXPECT_GT(completion, 0);
  EXPECT_LE(completion, 24);
  EXPECT_GT(prompt, 3);
  EXPECT_EQ(json["usage"]["total_tokens"], prompt + completion);
  if (completion == 24) {
    EXPECT_EQ(json["choices"][0]["finish_reason"], "length");
  }
  EXPECT_TRUE(json.contains("elapsed_ms"));

  ASSERT_EQ(pool_->status().size(), 1u);
  const int pid = pool_->status()[0].pid;
  auto second = engine_->dispatch(request("stories260K.gguf", chat("The cat", 8)));
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_EQ(pool_->status()[0].pid, pid) << "the second job must not reload the model";
  EXPECT_EQ(pool_->status()[0].starts, 1);
}

// Issue 19: a real llama-server started with two request slots answers two jobs at once, each
// with the whole context, from one process.
TEST_F(LlamaRealTest, TwoJobsAtOnceShareOneRunnerWithTwoSlots) {
  engine_ = std::make_unique<LlamaEngine>(
      *locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server"), placed_.cache,
      pool_, 2);
  // The requests are made first: making one places the model file in the cache.
  const auto job_a = request("stories260K.gguf", chat("Once upon a time", 16));
  const auto job_b = request("stories260K.gguf", chat("The little dog", 16));
  Result<TaskResult> first = fail(Error::internal("unset"));
  std::thread other([&] { first = engine_->dispatch(job_a); });
  auto second = engine_->dispatch(job_b);
  other.join();
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_GT(llm_json(first)["usage"]["completion_tokens"].get<int>(), 0);
  EXPECT_GT(llm_json(second)["usage"]["completion_tokens"].get<int>(), 0);
  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_EQ(pool_->status()[0].starts, 1) << "one runner with two slots, not two runners";
}

// The settings' flags are the real program's: llama-server starts with them and answers.
TEST_F(LlamaRealTest, StartsWithAnOperatorsRunnerSettings) {
  RunnerSettings settings;
  settings.gpu_layers = "0";
  settings.threads = 2;
  settings.flash_attention = "off";
  settings.context_size = 256;
  engine_ = std::make_unique<LlamaEngine>(
      *locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server"), placed_.cache,
      pool_, 1, std::map<std::string, RunnerSettings>{{"stories260K", settings}});
  auto answer = engine_->dispatch(request("stories260K.gguf", chat("Once upon a time", 8)));
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_GT(llm_json(answer)["usage"]["completion_tokens"].get<int>(), 0);
}

// Issue 14: a model whose id is its file name, with that file at the top of the models root
// (where the cache once wanted its per-model directory), provisions and runs.
TEST_F(LlamaRealTest, RunsAModelWhoseIdIsItsFileName) {
  auto result = engine_->dispatch(
      request("stories260K.gguf", chat("Once upon a time", 8), std::nullopt, "stories260K.gguf"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(llm_json(result)["model"], "stories260K.gguf");
  EXPECT_GT(llm_json(result)["usage"]["completion_tokens"].get<int>(), 0);
}

TEST_F(LlamaRealTest, StopsOnAStopStringWithoutLeakingIt) {
  auto free_run = engine_->dispatch(request("stories260K.gguf", chat("Once upon a time", 64)));
  ASSERT_TRUE(free_run) << free_run.error().message;
  const std::string unconstrained = llm_json(free_run)["choices"][0]["message"]["content"];
  ASSERT_NE(unconstrained.find('.'), std::string::npos) << "the story needs a full stop: " << unconstrained;

  auto stopped = engine_->dispatch(
      request("stories260K.gguf", chat("Once upon a time", 64, std::vector<std::string>{"."})));
  ASSERT_TRUE(stopped) << stopped.error().message;
  const auto json = llm_json(stopped);
  const std::string content = json["choices"][0]["message"]["content"];
  EXPECT_EQ(content.find('.'), std::string::npos) << content;
  EXPECT_EQ(json["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(json["usage"]["completion_tokens"].get<int>(), 64);
  // Same model, same temperature 0: the stopped answer is the unconstrained one cut at its stop.
  EXPECT_EQ(unconstrained.substr(0, unconstrained.find('.')), content);
}

TEST_F(LlamaRealTest, AppliesTheModelsOwnChatTemplate) {
  auto result = engine_->dispatch(request("stories260K-chat.gguf", chat("Tell me a story", 8)));
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(pool_->status().size(), 1u);
  // Ask the runner the worker started how it renders these messages.
  transfer::HttpCall http;
  http.method = "POST";
  http.url = fmt::format("http://127.0.0.1:{}/apply-template", pool_->status()[0].port);
  http.body = R"({"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"Tell me a story"}]})";
  auto answer = transfer::http_call(http);
  ASSERT_TRUE(answer) << answer.error().message;
  const std::string prompt = nlohmann::json::parse(answer->body)["prompt"];
  EXPECT_NE(prompt.find("Be kind.\n\nUser: Tell me a story\nAssistant:"), std::string::npos) << prompt;
}

TEST_F(LlamaRealTest, RecoversAfterTheRunnerIsKilled) {
  expect_recovery_after_the_runner_is_killed();
}

TEST_F(LlamaFakeRunnerTest, RecoversAfterTheRunnerIsKilled) {
  expect_recovery_after_the_runner_is_killed();
}

// Issue 16: a GGUF whose header does not parse is never reused from the cache (a 0-byte file or a
// mangled one, cached by an earlier version: every job on the model failed for good) and never
// enters it (the job after the host is fixed runs). The model file has no sha256, as catalogue
// entries often have none.
TEST_F(LlamaFakeRunnerTest, AGgufThatDoesNotParseIsNeitherReusedNorCached) {
  auto real = read_file(models_ / "stories260K.gguf");
  ASSERT_TRUE(real);
  std::string garbled = *real;
  garbled.replace(0, 4, "GGUX");
  testing::HttpTestServer server;
  server.set_route("/stories260K.gguf", testing::serving(std::make_shared<std::string>(*real)));
  auto job = [&](const std::string& model, std::optional<std::uint64_t> approx) {
    proto::ModelSource source;
    source.engine = "llama-cpp";
    proto::ModelFile file;
    file.role = "model";
    file.url = server.url("/stories260K.gguf");
    file.filename = "stories260K.gguf";
    file.approx_bytes = approx;
    source.files = {file};
    return DispatchRequest{model, chat("Once", 4), source, "job-" + model};
  };
  const auto root = placed_.cache->config().root;
  auto cached = [&](const std::string& model) {
    return models::model_dir(root, model) / "stories260K.gguf";
  };

  // Left in the cache by an earlier version: fetched again, and the job runs.
  std::filesystem::create_directories(cached("empty").parent_path());
  { std::ofstream(cached("empty"), std::ios::binary); }
  auto after_empty = engine_->dispatch(job("empty", std::nullopt));
  ASSERT_TRUE(after_empty) << after_empty.error().message;
  EXPECT_TRUE(read_file(cached("empty")).value() == *real) << "not the served model";
  std::filesystem::create_directories(cached("mangled").parent_path());
  ASSERT_TRUE(write_file_atomically(cached("mangled"), garbled));
  auto after_mangled = engine_->dispatch(job("mangled", real->size()));
  ASSERT_TRUE(after_mangled) << after_mangled.error().message;
  EXPECT_TRUE(read_file(cached("mangled")).value() == *real) << "not the served model";
  EXPECT_EQ(server.request_count("/stories260K.gguf"), 2u);

  // A host serving bytes that do not parse: the job fails saying so, nothing is kept, and once
  // the host is fixed the next job fetches and runs.
  server.set_route("/stories260K.gguf", testing::serving(std::make_shared<std::string>(garbled)));
  auto refused = engine_->dispatch(job("served", real->size()));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, ::testing::HasSubstr("model served file stories260K.gguf"));
  EXPECT_THAT(refused.error().message, ::testing::HasSubstr("not a GGUF file"));
  EXPECT_FALSE(std::filesystem::exists(cached("served"))) << "the bad download was cached";
  server.set_route("/stories260K.gguf", testing::serving(std::make_shared<std::string>(*real)));
  auto fixed = engine_->dispatch(job("served", real->size()));
  ASSERT_TRUE(fixed) << fixed.error().message;
  EXPECT_EQ(server.request_count("/stories260K.gguf"), 4u);
}

TEST_F(LlamaFakeRunnerTest, PassesTheRunnersAnswerThroughUnderTheJobsModelId) {
  auto first = engine_->dispatch(request("stories260K.gguf", chat("Once", 4)));
  ASSERT_TRUE(first) << first.error().message;
  const auto json = llm_json(first);
  EXPECT_EQ(json["object"], "chat.completion");
  EXPECT_EQ(json["model"], "stories260K");
  const int pid = pool_->status().at(0).pid;
  // The fake's content, byte for byte: the engine neither rewrites nor drops the runner's text.
  EXPECT_EQ(json["choices"][0]["message"]["content"], "pid " + std::to_string(pid) + " request 1");
  EXPECT_EQ(json["usage"]["completion_tokens"], 4);
  auto second = engine_->dispatch(request("stories260K.gguf", chat("Again", 4)));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(llm_json(second)["choices"][0]["message"]["content"],
            "pid " + std::to_string(pid) + " request 2")
      << "the second job goes to the resident runner";
  EXPECT_EQ(pool_->status().at(0).starts, 1);
}

// Deadlines by progress through the engine: an llm job streams from the runner (so tokens are
// progress) and a runner that stops sending mid-answer fails the job with a retryable Timeout,
// is killed, and leaves nothing resident; a wrapper gives the fake runner its stall flag.
// Several jobs on one model (issue 19): the resident runner gets as many request slots as memory
// holds (up to the worker's job slots), each with the whole context, and jobs at once share it.
std::vector<std::string> runner_argv(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

std::string after(const std::vector<std::string>& args, const std::string& flag) {
  auto it = std::find(args.begin(), args.end(), flag);
  return it == args.end() || std::next(it) == args.end() ? std::string() : *std::next(it);
}

TEST_F(LlamaFakeRunnerTest, ARunnerGetsTheSlotsMemoryHoldsAndJobsAtOnceShareIt) {
  pool_ = std::make_shared<RunnerPool>(roomy());
  engine_ = std::make_unique<LlamaEngine>(SW_FAKE_RUNNER_BIN, placed_.cache, pool_, 3);
  // Two jobs at once, from two threads: one runner serves both. (The requests are made first:
  // making one places the model file in the cache.)
  const auto job_a = request("stories260K.gguf", chat("A", 4));
  const auto job_b = request("stories260K.gguf", chat("B", 4));
  Result<TaskResult> first = fail(Error::internal("unset"));
  std::thread other([&] { first = engine_->dispatch(job_a); });
  auto second = engine_->dispatch(job_b);
  other.join();
  ASSERT_TRUE(first) << first.error().describe();
  ASSERT_TRUE(second) << second.error().describe();
  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_EQ(pool_->status().at(0).starts, 1) << "one runner, not one per job";
  const auto args = runner_argv(pool_->status().at(0).pid);
  EXPECT_EQ(after(args, "--parallel"), "3") << "64 GiB free holds three tiny contexts";
  const auto gguf = models::read_gguf(models_ / "stories260K.gguf");
  ASSERT_TRUE(gguf) << gguf.error().message;
  EXPECT_EQ(after(args, "--ctx-size"),
            std::to_string(models::pick_context(*gguf, std::nullopt) * 3))
      << "each slot keeps the whole context";
}

TEST_F(LlamaFakeRunnerTest, ARunnerGetsFewerSlotsWhenMemoryHoldsFewerContexts) {
  const auto gguf = models::read_gguf(models_ / "stories260K.gguf");
  ASSERT_TRUE(gguf) << gguf.error().message;
  const auto context = models::pick_context(*gguf, 4096);
  const double gib = 1024.0 * 1024 * 1024;
  const double one = static_cast<double>(models::estimate_memory_bytes(*gguf, context)) / gib;
  const double two = static_cast<double>(models::estimate_memory_bytes(*gguf, context * 2)) / gib;
  ASSERT_LT(one, two);
  auto options = roomy();
  // 1 GiB is kept in reserve (models/admission.h): room for one context, not for two.
  options.free_memory_gib = [one, two] { return std::optional<double>(1.0 + (one + two) / 2); };
  pool_ = std::make_shared<RunnerPool>(options);
  engine_ = std::make_unique<LlamaEngine>(SW_FAKE_RUNNER_BIN, placed_.cache, pool_, 2);
  auto answer = engine_->dispatch(request("stories260K.gguf", chat("Once", 4), 4096));
  ASSERT_TRUE(answer) << answer.error().describe();
  const auto args = runner_argv(pool_->status().at(0).pid);
  EXPECT_EQ(after(args, "--parallel"), "1");
  EXPECT_EQ(after(args, "--ctx-size"), std::to_string(context));
}

// An operator's per-model runner settings (the local catalogue's `runner`) reach the runner's
// command line, and its contextSize replaces the model source's.
TEST_F(LlamaFakeRunnerTest, PerModelSettingsShapeTheRunnersCommandLine) {
  RunnerSettings settings;
  settings.gpu_layers = "0";
  settings.threads = 3;
  settings.context_size = 128;
  settings.flash_attention = "off";
  settings.extra_args = {"--mlock"};
  pool_ = std::make_shared<RunnerPool>(roomy());
  engine_ = std::make_unique<LlamaEngine>(
      SW_FAKE_RUNNER_BIN, placed_.cache, pool_, 1,
      std::map<std::string, RunnerSettings>{{"stories260K", settings}});
  auto answer = engine_->dispatch(request("stories260K.gguf", chat("Once", 4), 4096));
  ASSERT_TRUE(answer) << answer.error().describe();
  const auto args = runner_argv(pool_->status().at(0).pid);
  EXPECT_EQ(after(args, "--n-gpu-layers"), "0");
  EXPECT_EQ(after(args, "--threads"), "3");
  EXPECT_EQ(after(args, "--flash-attn"), "off");
  EXPECT_NE(std::find(args.begin(), args.end(), "--mlock"), args.end());
  const auto gguf = models::read_gguf(models_ / "stories260K.gguf");
  ASSERT_TRUE(gguf);
  EXPECT_EQ(after(args, "--ctx-size"), std::to_string(models::pick_context(*gguf, 128)))
      << "the operator's contextSize, not the source's 4096";
  // Another model (no settings) gets none of them.
  auto other = engine_->dispatch(
      request("stories260K.gguf", chat("Once", 4), std::nullopt, std::string("another-id")));
  ASSERT_TRUE(other) << other.error().describe();
  for (const auto& runner : pool_->status()) {
    if (runner.model != "another-id") continue;
    EXPECT_EQ(after(runner_argv(runner.pid), "--threads"), "");
  }
}

TEST_F(LlamaFakeRunnerTest, ARunnerThatStopsMidAnswerFailsTheJobRetryably) {
  const auto wrapper = placed_.dir.path() / "llama-server-stalls";
  std::ofstream(wrapper) << "#!/bin/sh\nexec '" << SW_FAKE_RUNNER_BIN
                         << "' \"$@\" --stall-after-tokens 2\n";
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  auto options = roomy();
  options.inference_stall = std::chrono::milliseconds(300);
  pool_ = std::make_shared<RunnerPool>(options);
  engine_ = std::make_unique<LlamaEngine>(wrapper, placed_.cache, pool_);
  auto stalled = engine_->dispatch(request("stories260K.gguf", chat("Once", 4)));
  ASSERT_FALSE(stalled);
  EXPECT_EQ(stalled.error().code, Code::Timeout) << stalled.error().describe();
  EXPECT_TRUE(is_retryable(stalled.error()));
  EXPECT_TRUE(pool_->status().empty()) << "the stalled runner is not kept";
}

TEST_F(LlamaRealTest, RefusesAPromptLongerThanTheContext) {
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "the little dog ran ";
  // 256 is llama-server's smallest context.
  auto result = engine_->dispatch(request("stories260K.gguf", chat(long_prompt, 8), 256));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::InvalidArgument);
  EXPECT_NE(result.error().message.find("but the context holds 256; raise contextSize or shorten "
                                        "the prompt"),
            std::string::npos)
      << result.error().message;
}

TEST_F(LlamaRealTest, StreamsChunksAsTheRunnerProducesThem) {
  std::vector<nlohmann::json> chunks;
  std::function<bool(std::string_view)> on_chunk = [&](std::string_view chunk) {
    chunks.push_back(nlohmann::json::parse(chunk));
    return true;
  };
  auto done = engine_->stream_chat(request("stories260K.gguf", chat("Once upon a time", 16)),
                                   on_chunk);
  ASSERT_TRUE(done) << done.error().message;
  std::string text;
  for (const auto& chunk : chunks) {
    EXPECT_EQ(chunk["model"], "stories260K");
    if (!chunk["choices"].empty() && chunk["choices"][0]["delta"].contains("content") &&
        chunk["choices"][0]["delta"]["content"].is_string()) {
      text += chunk["choices"][0]["delta"]["content"].get<std::string>();
    }
  }
  EXPECT_GT(chunks.size(), 3u);
  EXPECT_FALSE(text.empty());
}

// Issue 20: a studio's cancel reaches the real llama-server. The job asks for 3000 tokens from the
// random-weights model (it rarely stops by itself); the engine is cancelled as its first words
// arrive, returns Cancelled, and llama-server drops the generation: its slot goes idle and it
// logs that it cancelled the task (it says so only for a client that went away mid-answer).
// Its output goes to a file of the test's (a wrapper script) so that the test can read it.
TEST_F(LlamaRealTest, ACancelledJobStopsTheRunnersGeneration) {
  const auto server = locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  const auto log = placed_.dir.path() / "llama-server.log";
  const auto wrapper = placed_.dir.path() / "llama-server-logged";
  std::ofstream(wrapper) << "#!/bin/sh\nexec '" << server->string() << "' \"$@\" >>'"
                         << log.string() << "' 2>&1\n";
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  engine_ = std::make_unique<LlamaEngine>(wrapper, placed_.cache, pool_);

  class CancelAtFirstWords final : public JobObserver {
   public:
    void text(std::string_view content, std::string_view) override {
      words += content;
      stop.request_stop();
    }
    std::stop_source stop;
    std::string words;
  };
  auto observer = std::make_shared<CancelAtFirstWords>();
  DispatchRequest job = request("llama-2-tiny-random.gguf", chat("Tell me everything", 3000), 4096);
  job.observer = observer;
  job.stop = observer->stop.get_token();
  auto result = engine_->dispatch(job);
  ASSERT_FALSE(result) << "the job ran to its end";
  EXPECT_EQ(result.error().code, Code::Cancelled) << result.error().message;
  EXPECT_FALSE(observer->words.empty());

  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_EQ(pool_->status()[0].in_use, false);
  const std::string slots_url =
      "http://127.0.0.1:" + std::to_string(pool_->status()[0].port) + "/slots";
  // llama-server notices the closed connection at its next token, and its log thread writes the
  // line a little later; polled (bounded), as nothing of it can be awaited from here.
  bool idle = false;
  bool said_cancel = false;
  std::string said;
  for (int i = 0; i < 500 && !(idle && said_cancel); ++i) {
    transfer::HttpCall call;
    call.url = slots_url;
    auto answer = transfer::http_call(call);
    ASSERT_TRUE(answer) << answer.error().message;
    ASSERT_EQ(answer->status, 200) << answer->body;
    const auto slots = nlohmann::json::parse(answer->body);
    idle = std::none_of(slots.begin(), slots.end(), [](const nlohmann::json& slot) {
      return slot.value("is_processing", true);
    });
    said = read_file(log).value_or("");
    said_cancel = said.find("cancel task") != std::string::npos;
    if (!(idle && said_cancel)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(idle) << "llama-server still generates for a cancelled job";
  EXPECT_TRUE(said_cancel) << said;
}

// The streaming path over a real socket: the fake's events (CRLF, a keepalive comment, one word
// per chunk) reach the caller one chunk each, under the job's model id, and `[DONE]` is not one.
TEST_F(LlamaFakeRunnerTest, StreamsEachChunkUnderTheJobsModelId) {
  std::vector<nlohmann::json> chunks;
  std::function<bool(std::string_view)> on_chunk = [&](std::string_view chunk) {
    chunks.push_back(nlohmann::json::parse(chunk, nullptr, false));
    return true;
  };
  auto done = engine_->stream_chat(request("stories260K.gguf", chat("Once", 4)), on_chunk);
  ASSERT_TRUE(done) << done.error().message;
  const int pid = pool_->status().at(0).pid;
  ASSERT_EQ(chunks.size(), 5u) << "four words and the usage chunk";
  std::string text;
  for (const auto& chunk : chunks) {
    ASSERT_TRUE(chunk.is_object());
    EXPECT_EQ(chunk["model"], "stories260K");
    const auto& delta = chunk["choices"][0]["delta"];
    if (delta.contains("content")) text += delta["content"].get<std::string>();
  }
  EXPECT_EQ(text, "pid " + std::to_string(pid) + " request 1");
  EXPECT_EQ(chunks.back()["usage"]["completion_tokens"], 4);
}

// --- whisper ---------------------------------------------------------------------------------

class WhisperRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = locate_program(std::nullopt, "STUDIO_WORKER_WHISPER_SERVER", "whisper-server");
    if (!server) {
      GTEST_SKIP() << "SKIPPED: whisper-server not found (set STUDIO_WORKER_WHISPER_SERVER; "
                      "scripts/setup-engines.sh provisions one)";
    }
    auto dir = testing::test_models_dir();
    if (!dir) GTEST_SKIP() << "SKIPPED: test models not found (set STUDIO_WORKER_TEST_MODELS)";
    models_ = *dir;
    pool_ = std::make_shared<RunnerPool>(roomy());
    engine_ = std::make_unique<WhisperEngine>(*server, placed_.cache, pool_);
    auto jfk = read_file(models_ / "audio" / "jfk.wav");
    ASSERT_TRUE(jfk) << jfk.error().message;
    jfk_ = std::make_shared<const std::string>(std::move(*jfk));
    http_.set_route("/jfk.wav", testing::serving(jfk_));
  }
  DispatchRequest request(proto::AudioSttParams params, bool with_vad) {
    proto::ModelSource source;
    source.engine = "whisper-cpp";
    source.files = {placed_.place(models_ / "whisper" / "for-tests-ggml-tiny.bin", "model")};
    if (with_vad) {
      source.files.push_back(
          placed_.place(models_ / "whisper" / "for-tests-silero-v6.2.0-ggml.bin", "vad"));
    }
    return DispatchRequest{"whisper-tiny-test", proto::Task{std::move(params)}, source, "job-stt"};
  }
  std::filesystem::path models_;
  PlacedModels placed_;
  std::shared_ptr<RunnerPool> pool_;
  std::unique_ptr<WhisperEngine> engine_;
  std::shared_ptr<const std::string> jfk_;
  testing::HttpTestServer http_;
};

void expect_whisper_shape(const Result<TaskResult>& result, double seconds) {
  ASSERT_TRUE(result) << result.error().message;
  const auto json = nlohmann::json::parse(std::get<AudioSttResult>(*result).json.text());
  ASSERT_TRUE(json["text"].is_string());
  EXPECT_EQ(json["text"], "") << "the test model has no weights: its transcript is empty";
  ASSERT_TRUE(json["language"].is_string());
  const double duration = json["duration"];
  EXPECT_NEAR(duration, seconds, 0.05);
  ASSERT_TRUE(json["segments"].is_array());
  for (const auto& segment : json["segments"]) {
    EXPECT_TRUE(segment.contains("start") && segment.contains("end") && segment.contains("text"));
  }
}

TEST_F(WhisperRealTest, TranscribesJfkThroughTheTestModel) {
  proto::AudioSttParams params;
  params.input_url = http_.url("/jfk.wav");
  params.language = "en";
  expect_whisper_shape(engine_->dispatch(request(params, false)), 11.0);
}

TEST_F(WhisperRealTest, RunsTheRealVadModel) {
  proto::AudioSttParams params;
  params.input_url = http_.url("/jfk.wav");
  params.vad = true;
  expect_whisper_shape(engine_->dispatch(request(params, true)), 11.0);
  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_NE(pool_->status()[0].key.find("silero"), std::string::npos);
}

TEST_F(WhisperRealTest, ConvertsOtherRatesAndChannelsBeforeTranscribing) {
  // jfk.wav as 44.1 kHz stereo FLAC: decoded, downmixed and resampled by the worker.
  auto decoded = media::decode_audio(
      std::span(reinterpret_cast<const std::uint8_t*>(jfk_->data()), jfk_->size()));
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->channels, 1u);
  auto upsampled = media::resample(decoded->samples, 1, decoded->sample_rate, 44100);
  ASSERT_TRUE(upsampled) << upsampled.error().message;
  std::vector<std::int16_t> stereo;
  for (float sample : *upsampled) {
    const auto value = static_cast<std::int16_t>(sample * 32767.0f);
    stereo.push_back(value);
    stereo.push_back(value);
  }
  // encode_audio writes mono; write the stereo FLAC through the test's own sndfile call.
  testing::TempDir tmp;
  const auto path = tmp.path() / "jfk.flac";
  SF_INFO out_info{};
  out_info.samplerate = 44100;
  out_info.channels = 2;
  out_info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
  SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &out_info);
  ASSERT_NE(file, nullptr);
  sf_writef_short(file, stereo.data(), static_cast<sf_count_t>(stereo.size() / 2));
  sf_close(file);
  auto flac = read_file(path);
  ASSERT_TRUE(flac) << flac.error().message;
  http_.set_route("/jfk.flac", testing::serving(std::make_shared<const std::string>(*flac)));

  proto::AudioSttParams params;
  params.input_url = http_.url("/jfk.flac");
  expect_whisper_shape(engine_->dispatch(request(params, false)), 11.0);
}

// The whisper engine's path to its runner, which needs no real transcript: the upload is fetched,
// converted (44.1 kHz stereo → 16 kHz mono PCM16), sent in whisper-server's form, and the answer
// mapped. The fake runner's "transcript" describes the WAV it received.
TEST(WhisperFakeRunner, SendsTheConvertedAudioToTheRunnerAndMapsItsAnswer) {
  PlacedModels placed;
  testing::TempDir scratch;
  const auto weights = scratch.path() / "fake-ggml.bin";
  ASSERT_TRUE(write_file_atomically(weights, std::string(1024, 'w')));
  auto pool = std::make_shared<RunnerPool>(roomy());
  WhisperEngine engine(SW_FAKE_RUNNER_BIN, placed.cache, pool);

  std::vector<std::int16_t> stereo;
  for (int i = 0; i < 44100 * 3 / 2; ++i) {
    const auto v =
        static_cast<std::int16_t>(8000 * std::sin(2 * std::numbers::pi * 440 * i / 44100.0));
    stereo.push_back(v);
    stereo.push_back(v);
  }
  auto upload = media::encode_wav_pcm16(stereo, 44100, 2);
  ASSERT_TRUE(upload);
  testing::HttpTestServer http;
  http.set_route("/in.wav", testing::serving(std::make_shared<const std::string>(upload->begin(),
                                                                                 upload->end())));

  proto::AudioSttParams params;
  params.input_url = http.url("/in.wav");
  params.language = "en";
  proto::ModelSource source;
  source.engine = "whisper-cpp";
  source.files = {placed.place(weights, "model")};
  auto result = engine.dispatch(
      DispatchRequest{"whisper-fake", proto::Task{std::move(params)}, source, "job-stt"});
  ASSERT_TRUE(result) << result.error().message;
  const auto json = nlohmann::json::parse(std::get<AudioSttResult>(*result).json.text());
  // The leading space whisper puts before its text is trimmed; the WAV the runner got is 1.5 s
  // of 16 kHz mono.
  EXPECT_EQ(json["text"], "fake transcript of 1.5 s at 16000 Hz, 1 channel(s)");
  EXPECT_EQ(json["language"], "en");
  ASSERT_TRUE(json["duration"].is_number());
  EXPECT_NEAR(json["duration"].get<double>(), 1.5, 0.001);
  ASSERT_TRUE(json["segments"].is_array());
  ASSERT_EQ(pool->status().size(), 1u);
  EXPECT_EQ(pool->status()[0].starts, 1);
}

// --- espeak-ng (always) ------------------------------------------------------------------------

TEST(EspeakReal, SpeaksWavWhoseDurationGrowsWithTheText) {
  auto engine = EspeakEngine::create();
  ASSERT_TRUE(engine) << engine.error().message;
  auto speak = [&](std::string text, std::string ext = "wav") {
    proto::AudioTtsParams params;
    params.text = std::move(text);
    params.ext = std::move(ext);
    return (*engine)->dispatch(DispatchRequest{"espeak-ng:en", proto::Task{params}, std::nullopt, "tts"});
  };
  auto short_one = speak("Hello.");
  auto long_one = speak("Hello. This sentence is a good deal longer than the first one was.");
  ASSERT_TRUE(short_one) << short_one.error().message;
  ASSERT_TRUE(long_one) << long_one.error().message;
  const auto& short_bytes = std::get<AudioTtsResult>(*short_one).bytes;
  const auto& long_bytes = std::get<AudioTtsResult>(*long_one).bytes;
  auto a = testing::decode_wav(short_bytes);
  auto b = testing::decode_wav(long_bytes);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->sample_rate, static_cast<int>((*engine)->sample_rate().value_or(0)));
  EXPECT_EQ(a->sample_rate, 22050);
  EXPECT_EQ(a->channels, 1);
  EXPECT_TRUE(a->pcm16);
  EXPECT_GT(a->seconds(), 0.2);
  EXPECT_GT(b->seconds(), a->seconds() * 3);
  EXPECT_GT(testing::rms(b->samples), 0.01) << "speech, not silence";

  auto flac = speak("Hello there.", "flac");
  ASSERT_TRUE(flac) << flac.error().message;
  EXPECT_EQ(std::get<AudioTtsResult>(*flac).ext, "flac");
  auto back = media::decode_audio(std::get<AudioTtsResult>(*flac).bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->sample_rate, 22050u);

  auto bad_voice = [&] {
    proto::AudioTtsParams params;
    params.text = "hi";
    params.voice = "no-such-voice-zz";
    return (*engine)->dispatch(DispatchRequest{"espeak-ng:x", proto::Task{params}, std::nullopt, "t"});
  }();
  ASSERT_FALSE(bad_voice);
  EXPECT_EQ(bad_voice.error().code, Code::InvalidArgument);
  auto bad_ext = speak("hi", "aiff");
  ASSERT_FALSE(bad_ext);
  EXPECT_NE(bad_ext.error().message.find("not supported"), std::string::npos);
}

// Every format the TTS task offers comes back as that container, decodable by libsndfile (the
// test's own reader), as long as the WAV of the same text and not silent. espeak-ng speaks at
// 22050 Hz, which Opus cannot carry: the worker resamples (libsoxr) to Opus's native 48 kHz.
TEST(EspeakReal, EveryAudioFormatDecodesBackToTheSameSpeech) {
  auto engine = EspeakEngine::create();
  ASSERT_TRUE(engine) << engine.error().message;
  const std::string text = "Hello there. Every format should say the same thing.";
  auto speak = [&](const std::string& ext) {
    proto::AudioTtsParams params;
    params.text = text;
    params.ext = ext;
    return (*engine)->dispatch(
        DispatchRequest{"espeak-ng:en", proto::Task{params}, std::nullopt, "tts-" + ext});
  };
  auto wav = speak("wav");
  ASSERT_TRUE(wav) << wav.error().message;
  auto reference = testing::decode_audio(std::get<AudioTtsResult>(*wav).bytes);
  ASSERT_TRUE(reference) << reference.error().message;
  const double seconds = reference->seconds();
  ASSERT_GT(seconds, 1.0);

  const std::vector<std::tuple<std::string, std::string, int>> formats = {
      {"flac", "flac", 22050},
      {"ogg", "ogg/vorbis", 22050},
      {"opus", "ogg/opus", 48000},
      {"mp3", "mp3", 22050}};
  for (const auto& [ext, container, rate] : formats) {
    SCOPED_TRACE(ext);
    auto result = speak(ext);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(std::get<AudioTtsResult>(*result).ext, ext);
    auto back = testing::decode_audio(std::get<AudioTtsResult>(*result).bytes);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->format, container);
    EXPECT_EQ(back->sample_rate, rate);
    EXPECT_EQ(back->channels, 1);
    EXPECT_NEAR(back->seconds(), seconds, 0.1);
    EXPECT_GT(testing::rms(back->samples), testing::rms(reference->samples) * 0.5)
        << "speech, not silence";
  }
}

TEST(EspeakReal, SpeedChangesTheDuration) {
  auto engine = EspeakEngine::create();
  ASSERT_TRUE(engine);
  auto seconds_at = [&](double speed) {
    proto::AudioTtsParams params;
    params.text = "The quick brown fox jumps over the lazy dog.";
    params.speed = speed;
    auto result = (*engine)->dispatch(
        DispatchRequest{"espeak-ng:en", proto::Task{params}, std::nullopt, "t"});
    // .value(): an engine error or an undecodable answer fails the test (it throws).
    return testing::decode_wav(std::get<AudioTtsResult>(result.value()).bytes).value().seconds();
  };
  EXPECT_GT(seconds_at(0.6), seconds_at(1.5) * 1.5);
}

}  // namespace
}  // namespace sw::engines
