// End to end, a mixed fleet (issue 14's "done means"): three studio-worker binaries with different
// engines behind one studio-server on loopback —
//   "llama":  llama-server (the real one when STUDIO_WORKER_LLAMA_SERVER names it, else the fake
//             runner, which plays its HTTP part) + espeak-ng + synthetic;
//   "plain":  no llama-server (the variable removed from its environment) + espeak-ng + synthetic;
//   "speech": only espeak-ng (`[engines] synthetic = false`), so it advertises audio_tts alone.
// A burst of jobs of every kind, submitted at once before any worker is connected, must all end
// `done` on a worker that has the model's engine, with no failed attempt; a job whose engine no
// worker has stays queued and says why, in the job view and in /metrics.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/sha256.h"
#include "engines/runner/child_process.h"
#include "support/farm.h"
#include "support/http_test_server.h"
#include "support/media_decoders.h"
#include "support/temp_dir.h"
#include "support/test_models.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using namespace sw::testing::farm;

json model(const std::string& id, const std::string& kind, const std::string& engine,
           json files = json::array(), json defaults = json::object()) {
  json cli = {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}};
  cli.update(defaults);
  return {{"id", id},
          {"kind", kind},
          {"vramGbEstimate", 0.1},
          {"source", {{"engine", engine}, {"files", std::move(files)}, {"cliDefaults", cli}}}};
}

std::string submit(const Studio& studio, const std::string& model_id, json task) {
  const json body = {{"model", model_id}, {"task", std::move(task)}};
  const auto reply = studio.api("POST", "/api/v1/jobs", body.dump());
  EXPECT_EQ(reply.status, 201) << reply.body;
  return json::parse(reply.body, nullptr, false).value("id", "");
}

TEST(MixedFleet, EveryJobEndsDoneOnAWorkerThatHasItsEngine) {
  SW_REQUIRE_TEST_MODELS(models);
  // The real llama-server when the machine has one, else the fake runner: routing is the subject.
  auto real =
      sw::engines::locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  const std::string llama_server = real ? real->string() : std::string(SW_FAKE_RUNNER_BIN);
  std::printf("mixed fleet: llama-server = %s\n", llama_server.c_str());

  const std::string gguf = read_file(models / "stories260K.gguf");
  sw::testing::HttpTestServer files;
  files.set_route("/stories260K.gguf",
                  sw::testing::serving(std::make_shared<const std::string>(gguf)));

  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  const json llama_files = {{{"role", "model"},
                             {"url", files.url("/stories260K.gguf")},
                             {"filename", "stories260K.gguf"},
                             {"approxBytes", gguf.size()},
                             {"sha256", sw::sha256_hex(gguf)}}};
  for (const json& m :
       {model("stories", "llm", "llama-cpp", llama_files, {{"contextSize", 256}}),
        model("espeak-en", "audio_tts", "espeak-ng"), model("synth-image", "image", "synthetic"),
        model("synth-video", "video", "synthetic"), model("synth-stt", "audio_stt", "synthetic"),
        model("sd-turbo", "image", "sd-cpp",
              {{{"role", "diffusion-model"},
                {"url", "https://models.example/sd-turbo.gguf"},
                {"filename", "sd-turbo.gguf"}}})}) {
    ASSERT_EQ(studio.api("POST", "/api/v1/models", m.dump()).status, 201) << m.dump();
  }

  // The burst, queued before any worker is there.
  std::vector<std::string> llm_jobs, tts_jobs, synthetic_jobs;
  for (int i = 0; i < 6; ++i) {
    llm_jobs.push_back(submit(studio, "stories",
                              {{"kind", "llm"},
                               {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}},
                               {"maxTokens", 8},
                               {"temperature", 0}}));
  }
  for (int i = 0; i < 3; ++i) {
    tts_jobs.push_back(
        submit(studio, "espeak-en", {{"kind", "audio_tts"}, {"text", "hello from a mixed fleet"}}));
    synthetic_jobs.push_back(
        submit(studio, "synth-image",
               {{"kind", "image"}, {"prompt", "a fox"}, {"width", 64}, {"height", 64}}));
    synthetic_jobs.push_back(submit(studio, "synth-video",
                                    {{"kind", "video"},
                                     {"prompt", "a dragon"},
                                     {"seconds", 1},
                                     {"width", 64},
                                     {"height", 64}}));
    synthetic_jobs.push_back(submit(
        studio, "synth-stt", {{"kind", "audio_stt"}, {"inputUrl", "https://example.com/a.wav"}}));
  }
  const std::string sd_job =
      submit(studio, "sd-turbo", {{"kind", "image"}, {"prompt", "a lighthouse"}});
  EXPECT_EQ(studio.job(sd_job).value("waiting", ""), "waiting: no worker connected")
      << studio.job(sd_job).dump();

  const auto models_root = [&](const std::string& name) {
    return "models_root = '" + (dir.path() / name / "models").string() + "'\n";
  };
  // Only what the test names: no runner from the environment (CI exports real ones for all).
  const EnvChanges no_runners = {{"STUDIO_WORKER_LLAMA_SERVER", std::nullopt},
                                 {"STUDIO_WORKER_WHISPER_SERVER", std::nullopt},
                                 {"STUDIO_WORKER_SD_CLI", std::nullopt},
                                 {"STUDIO_WORKER_SD_SERVER", std::nullopt}};
  EnvChanges only_llama = no_runners;
  only_llama[0].second = llama_server;
  Worker speech(dir.path() / "speech", studio.url(), 0,
                models_root("speech") + "[engines]\nsynthetic = false\n", {}, no_runners);
  const std::string speech_id = studio.approve_next();
  ASSERT_TRUE(speech.wait_session("connected")) << speech.log();
  Worker plain(dir.path() / "plain", studio.url(), 0, models_root("plain"), {}, no_runners);
  const std::string plain_id = studio.approve_next();
  ASSERT_TRUE(plain.wait_session("connected")) << plain.log();
  Worker llama(dir.path() / "llama", studio.url(), 0, models_root("llama"), {}, only_llama);
  const std::string llama_id = studio.approve_next();
  ASSERT_TRUE(llama.wait_session("connected")) << llama.log();

  auto all_logs = [&] {
    return "\n--- speech\n" + speech.log() + "\n--- plain\n" + plain.log() + "\n--- llama\n" +
           llama.log();
  };
  auto expect_done_on = [&](const std::vector<std::string>& jobs, const std::set<std::string>& on) {
    for (const auto& id : jobs) {
      ASSERT_TRUE(studio.wait_status(id, "done", 120s)) << studio.job(id).dump() << all_logs();
      const json job = studio.job(id);
      EXPECT_TRUE(on.contains(job.value("workerId", ""))) << job.dump();
      ASSERT_TRUE(job.contains("attemptHistory") && job["attemptHistory"].is_array()) << job.dump();
      for (const auto& attempt : job["attemptHistory"]) {
        EXPECT_NE(attempt.value("outcome", ""), "failed") << job.dump();
      }
      EXPECT_EQ(job["attemptHistory"].back().value("outcome", ""), "done") << job.dump();
      EXPECT_FALSE(job.contains("waiting")) << job.dump();
    }
  };
  expect_done_on(llm_jobs, {llama_id});
  expect_done_on(synthetic_jobs, {llama_id, plain_id});
  expect_done_on(tts_jobs, {llama_id, plain_id, speech_id});

  // Real speech from espeak-ng: a WAV with a second or so of audio.
  for (const auto& id : tts_jobs) {
    const auto wav = studio.api("GET", "/api/v1/jobs/" + id + "/result");
    auto audio = sw::testing::decode_wav(bytes_of(wav.body));
    ASSERT_TRUE(audio) << audio.error().message;
    EXPECT_GT(audio->seconds(), 0.5);
  }
  for (const auto& id : llm_jobs) {
    const auto chat = json::parse(studio.api("GET", "/api/v1/jobs/" + id + "/result").body);
    EXPECT_EQ(chat["object"], "chat.completion");
    EXPECT_GT(chat["usage"]["completion_tokens"].get<int>(), 0);
  }

  // No worker has sd-cpp: the job waits and says why, here and in /metrics.
  const json waiting = studio.job(sd_job);
  EXPECT_EQ(waiting.value("status", ""), "queued");
  EXPECT_EQ(waiting.value("waiting", ""), "waiting: no connected worker has engine sd-cpp")
      << waiting.dump();
  const auto metrics = studio.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find("engine=\"sd-cpp\""), std::string::npos) << metrics;

  // What each worker advertised: the speech box lists audio_tts alone.
  const auto workers = json::parse(studio.api("GET", "/api/v1/workers").body, nullptr, false);
  ASSERT_TRUE(workers.is_object()) << workers.dump();
  for (const auto& worker : workers["workers"]) {
    if (worker.value("id", worker.value("workerId", "")) != speech_id) continue;
    const auto& caps = worker["capabilities"];
    EXPECT_EQ(caps["taskKinds"], json::array({"audio_tts"})) << worker.dump();
    EXPECT_EQ(caps["supportedModelsPerKind"]["audio_tts"], json::array({"espeak-ng:*"}))
        << worker.dump();
  }
}

}  // namespace
