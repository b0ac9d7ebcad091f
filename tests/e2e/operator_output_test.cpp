// End to end, outputs that are what they say (issue 17), against the real binaries on loopback:
// every audio format a TTS job can ask for comes back from the studio (and from the worker's local
// API) as that format, labelled with its own MIME type; log lines name their level in full.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <tuple>

#include "support/farm.h"
#include "support/media_decoders.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using namespace sw::testing::farm;

// ext, the MIME type (RFC 7845 §9 puts Ogg Opus under audio/ogg), and the container libsndfile
// finds in the bytes.
const std::vector<std::tuple<std::string, std::string, std::string>> kAudioFormats = {
    {"wav", "audio/wav", "wav"},
    {"mp3", "audio/mpeg", "mp3"},
    {"flac", "audio/flac", "flac"},
    {"ogg", "audio/ogg", "ogg/vorbis"},
    {"opus", "audio/ogg", "ogg/opus"}};

TEST(OperatorOutput, EachAudioFormatIsServedAsItselfWithItsMimeType) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  const json model = {
      {"id", "espeak-en"},
      {"kind", "audio_tts"},
      {"vramGbEstimate", 0.1},
      {"source",
       {{"engine", "espeak-ng"},
        {"files", json::array()},
        {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
  ASSERT_EQ(studio.api("POST", "/api/v1/models", model.dump()).status, 201);
  std::vector<std::string> jobs;
  for (const auto& [ext, mime, container] : kAudioFormats) {
    const json body = {
        {"model", "espeak-en"},
        {"task", {{"kind", "audio_tts"}, {"text", "Hello, operator."}, {"ext", ext}}}};
    const auto reply = studio.api("POST", "/api/v1/jobs", body.dump());
    ASSERT_EQ(reply.status, 201) << reply.body;
    jobs.push_back(json::parse(reply.body).value("id", ""));
  }

  // Speech only (no synthetic engine): the local API's TTS default is then espeak-ng too.
  Worker worker(dir.path() / "worker", studio.url(), 0,
                "models_root = '" + (dir.path() / "worker" / "models").string() +
                    "'\n[engines]\nsynthetic = false\n");
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();

  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& [ext, mime, container] = kAudioFormats[i];
    SCOPED_TRACE(ext);
    ASSERT_TRUE(studio.wait_status(jobs[i], "done", 60s))
        << studio.job(jobs[i]).dump() << worker.log();
    EXPECT_EQ(studio.job(jobs[i])["result"].value("contentType", ""), mime);
    const auto result = studio.api("GET", "/api/v1/jobs/" + jobs[i] + "/result");
    ASSERT_EQ(result.status, 200) << result.body;
    EXPECT_EQ(result.content_type, mime);
    auto audio = sw::testing::decode_audio(bytes_of(result.body));
    ASSERT_TRUE(audio) << audio.error().message;
    EXPECT_EQ(audio->format, container);
    EXPECT_GT(audio->seconds(), 0.3);
    EXPECT_GT(sw::testing::rms(audio->samples), 0.01) << "speech, not silence";
  }
  // The worker's local API labels the same formats the same way (once the studio's jobs are done:
  // it runs one job at a time).
  for (const auto& [ext, mime, container] : kAudioFormats) {
    SCOPED_TRACE(ext);
    const json local = {{"text", "Hello, operator."}, {"ext", ext}};
    const auto spoken = worker.api("POST", "/tts", local.dump());
    ASSERT_EQ(spoken.status, 200) << spoken.body;
    EXPECT_EQ(spoken.content_type, mime);
  }
}

// spdlog calls the level `warning`; the old pattern cut it to five letters (`warni`).
TEST(OperatorOutput, AWarningLineSaysWarn) {
  sw::testing::TempDir dir;
  // An unreadable STUDIO_WORKER_LOG is itself reported at warn level, before anything else runs.
  const auto run = run_command({SW_STUDIO_WORKER_BIN, "--version"}, dir.path() / "out.log",
                               {{"STUDIO_WORKER_LOG", "worker=loud"}});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  const auto at = run.output.find("log.filter_invalid");
  ASSERT_NE(at, std::string::npos) << run.output;
  const auto newline = run.output.rfind('\n', at);
  const auto start = newline == std::string::npos ? 0 : newline + 1;
  const std::string line = run.output.substr(start, run.output.find('\n', at) - start);
  EXPECT_NE(line.find("Z warn  studio_worker::log: log.filter_invalid"), std::string::npos) << line;
  EXPECT_EQ(line.find("warni"), std::string::npos) << line;
}

}  // namespace
