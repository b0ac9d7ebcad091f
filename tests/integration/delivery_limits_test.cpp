// Issue 16, kind 8: one delivery that can never succeed must not block everything behind it. The
// studio tells a worker that announced the "limits" feature what it accepts (and the reference
// gets the reference's welcome); a worker fails a result that is over those limits, refused as too
// large or invalid, or followed by a dropped session every time it is sent, with
// `fail {retryable:false}` naming why, and goes on delivering the rest. Real loopback: the studio
// (in process, real SQLite) with a real worker daemon, or a scripted studio for what a real one
// does not do on demand (no limits announced, a 413, dropping the session after a result).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <thread>

#include "proto/codec.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"
#include "support/worker_harness.h"

namespace sw::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

json parse(const std::string& text) {
  return json::parse(text, nullptr, false);
}

// Waits (bounded) until the worker's outbox holds no entry: the entry goes just after the frame
// that settles it is written, so a test that has read that frame must wait for it.
bool outbox_drains(const WorkerHarness& worker) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (worker.status()["outbox"]["entries"] == 0) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

studio::StudioConfig small_limits_config(const std::filesystem::path& dir) {
  studio::StudioConfig config;
  config.data_dir = dir;
  config.fail_hold_off = 0ms;
  config.claim_grace = 150ms;
  config.frame_limit = 256 * 1024;  // a completeJson of more than 256 KiB cannot be read
  config.result_body_limit = 4096;  // nor an upload of more than 4 KiB
  return config;
}

worker::WorkerConfig worker_config(std::uint16_t port, const WorkerCredentials& credentials) {
  worker::WorkerConfig config;
  config.api_base_url = "http://127.0.0.1:" + std::to_string(port);
  config.worker_id = credentials.worker_id;
  config.auth_token = credentials.token;
  return config;
}

// ---- the welcome (reference-worker.md §1.4, and the "limits" extension) ----

TEST(DeliveryLimits, AHelloWithoutFeaturesIsWelcomedWithTheReferencesKeysOnly) {
  TempDir dir;
  StudioHarness studio(small_limits_config(dir.path()));
  const auto credentials = register_worker(studio, "install-ref");
  auto client = ProtocolClient::connect(studio.port(), credentials.worker_id,
                                        ProtocolClient::Options{credentials.token, true});
  ASSERT_TRUE(client) << client.error().message;
  // The reference worker's hello, as it sends it: no `features`.
  json hello = {{"type", "hello"},
                {"authToken", credentials.token},
                {"capabilities", parse(proto::encode(test_capabilities()))}};
  (*client)->send_text(hello.dump());
  auto text = (*client)->next_text();
  ASSERT_TRUE(text);
  const json welcome = parse(*text);
  std::vector<std::string> keys;
  for (const auto& [key, value] : welcome.items()) keys.push_back(key);
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("type", "workerId", "serverTime")) << *text;
  EXPECT_EQ(welcome["type"], "welcome");
}

TEST(DeliveryLimits, AWorkerThatAnnouncesLimitsIsToldTheStudiosLimitsInItsWelcome) {
  TempDir dir;
  StudioHarness studio(small_limits_config(dir.path()));
  const auto credentials = register_worker(studio, "install-new");
  auto client = ProtocolClient::connect(studio.port(), credentials.worker_id,
                                        ProtocolClient::Options{credentials.token, true});
  ASSERT_TRUE(client) << client.error().message;
  json hello = {{"type", "hello"},
                {"authToken", credentials.token},
                {"capabilities", parse(proto::encode(test_capabilities()))},
                {"features", {"limits", "some-future-extension"}}};
  (*client)->send_text(hello.dump());
  auto text = (*client)->next_text();
  ASSERT_TRUE(text);
  const json welcome = parse(*text);
  EXPECT_EQ(welcome["type"], "welcome");
  // Only what both know is answered.
  EXPECT_EQ(welcome["features"], json::array({"limits"})) << *text;
  EXPECT_EQ(welcome["limits"]["maxFrameBytes"], 256 * 1024) << *text;
  EXPECT_EQ(welcome["limits"]["maxUploadBytes"], 4096) << *text;
}

// ---- a real worker against the studio ----

class WorkerAgainstStudio : public ::testing::Test {
 protected:
  void SetUp() override {
    studio_ = std::make_unique<StudioHarness>(small_limits_config(dir_.path() / "studio"));
    studio_->add_model("synth-llm", "llm");
    studio_->add_model("synth-image", "image");
    const auto credentials = register_worker(*studio_, "install-1");
    // These tests assert that the session is never lost: the harness's 600 ms read-idle limit
    // tripped under a loaded sanitizer run before any job existed, so it is widened here.
    auto timings = fast_timings();
    timings.read_idle_timeout = 10s;
    worker_ = std::make_unique<WorkerHarness>(dir_.path() / "worker",
                                              worker_config(studio_->port(), credentials), timings);
    ASSERT_TRUE(worker_->wait_session("connected"));
  }
  void TearDown() override {
    worker_.reset();
    studio_.reset();
  }

  TempDir dir_;
  std::unique_ptr<StudioHarness> studio_;
  std::unique_ptr<WorkerHarness> worker_;
};

TEST_F(WorkerAgainstStudio, AJsonResultOverTheStudiosLimitFailsItsJobOnceAndTheNextJobCompletes) {
  // The synthetic LLM's completeJson echoes the prompt: 300 KiB of it is over the 256 KiB cap.
  const auto big = studio_->create_job(llm_job("synth-llm", std::string(300 * 1024, 'p')));
  ASSERT_TRUE(studio_->wait_job_status(big, "failed", 60s))
      << studio_->job_status(big) << " " << studio_->job_field(big, "error") << "\n"
      << worker_->logs();
  EXPECT_EQ(studio_->job_attempts(big), 1) << "generated once, never retried";
  const std::string error = studio_->job_field(big, "error");
  EXPECT_THAT(error, HasSubstr("the studio's message limit of 262144 bytes")) << error;
  EXPECT_THAT(error, HasSubstr("completeJson message is 3")) << error;  // 300 KiB and more

  // The worker goes on with the next result on the same session.
  const auto next = studio_->create_job(llm_job("synth-llm", "a small prompt"));
  ASSERT_TRUE(studio_->wait_job_status(next, "done", 60s)) << studio_->job_status(next) << "\n"
                                                           << worker_->logs();
  EXPECT_EQ(worker_->session_state(), "connected");
  EXPECT_THAT(worker_->logs(), Not(HasSubstr("reconnect attempt"))) << "the session was never lost";
  EXPECT_TRUE(outbox_drains(*worker_)) << worker_->status().dump();
}

TEST_F(WorkerAgainstStudio, AResultOverTheStudiosUploadLimitFailsItsJobAfterOneGeneration) {
  // A 256x256 PNG of the synthetic picture is far over the 4 KiB upload limit.
  const auto big = studio_->create_job(image_job("synth-image", "a fox",
                                                 R"({"task":{"kind":"image","prompt":"a fox",)"
                                                 R"("width":256,"height":256,"ext":"png"}})"));
  ASSERT_TRUE(studio_->wait_job_status(big, "failed", 60s))
      << studio_->job_status(big) << " " << studio_->job_field(big, "error") << "\n"
      << worker_->logs();
  EXPECT_EQ(studio_->job_attempts(big), 1) << "generated once, never retried";
  EXPECT_THAT(studio_->job_field(big, "error"), HasSubstr("4096")) << "names the limit";

  const auto next = studio_->create_job(llm_job("synth-llm", "a small prompt"));
  ASSERT_TRUE(studio_->wait_job_status(next, "done", 60s)) << worker_->logs();
  EXPECT_THAT(worker_->logs(), Not(HasSubstr("reconnect attempt")));
}

// ---- a worker against a scripted studio (one that announces no limits) ----

const std::string kWelcome =
    R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z"})";

worker::WorkerConfig scripted_config(const std::string& url) {
  worker::WorkerConfig config;
  config.api_base_url = url;
  config.worker_id = "w-1";
  config.auth_token = "token-1";
  return config;
}

std::string offer(const std::string& job_id, const json& task, const std::string& model) {
  return json{{"type", "offer"},
              {"claim",
               {{"jobId", job_id},
                {"gameId", "g"},
                {"assetName", "a"},
                {"model", model},
                {"vramGbEstimate", 1},
                {"task", task},
                {"modelSource",
                 {{"engine", "synthetic"},
                  {"files", json::array()},
                  {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}}}}
      .dump();
}

std::string llm_offer(const std::string& job_id, const std::string& prompt = "the prompt") {
  return offer(job_id, {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", prompt}}}}},
               "synthetic-llm");
}

// The next frame other than heartbeats and log batches, or nullopt once `deadline` passed.
std::optional<json> next_frame_of_note(ScriptedStudio& studio,
                                       std::chrono::steady_clock::time_point deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    auto frame = studio.next_frame(1s);
    if (!frame) continue;
    auto parsed = parse(frame->text);
    if (parsed.value("type", "") != "heartbeat" && parsed.value("type", "") != "logBatch") {
      return parsed;
    }
  }
  return std::nullopt;
}

// The next frame whose type is one of `types` (others skipped), within 30 s.
std::optional<json> next_of(ScriptedStudio& studio, const std::vector<std::string>& types) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (auto frame = next_frame_of_note(studio, deadline)) {
    if (std::find(types.begin(), types.end(), frame->value("type", "")) != types.end()) {
      return frame;
    }
  }
  return std::nullopt;
}

TEST(DeliveryLimits, AResultAfterWhichTheSessionDropsEachTimeIsFailedAndTheQueueMovesOn) {
  // A studio that cannot read a result (an older studio-server with a smaller message cap, which
  // announces nothing) drops the session right after it arrives, and answers nothing after it.
  ScriptedStudio studio;
  studio.ack_heartbeats(false);
  TempDir dir;
  WorkerHarness worker(dir.path(), scripted_config(studio.url()));
  int links = 0;
  int sent = 0;
  std::optional<json> failed;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!failed && links <= 8) {
    auto frame = next_frame_of_note(studio, deadline);
    if (!frame) break;
    const std::string type = frame->value("type", "");
    if (type == "hello") {
      EXPECT_EQ((*frame)["features"],
                json::array({"limits", "capacity", "progress", "cancel", "uploads"}));
      ++links;
      studio.send_text(kWelcome);
      if (links == 1) studio.send_text(llm_offer("job-1"));
    } else if (type == "completeJson" && (*frame)["jobId"] == "job-1") {
      ++sent;
      studio.close(1009, "message too big");
    } else if (type == "fail") {
      failed = *frame;
    }
  }
  ASSERT_TRUE(failed) << "the result was sent " << sent << " times over " << links
                      << " sessions and never given up\n"
                      << worker.logs();
  EXPECT_EQ((*failed)["jobId"], "job-1");
  EXPECT_EQ((*failed)["retryable"], false);
  EXPECT_THAT((*failed)["error"].get<std::string>(), HasSubstr("session ended 3 times"));
  EXPECT_EQ(sent, 3);

  // The same session carries on with the next job, and job-1 is gone from the outbox.
  studio.ack_heartbeats(true);
  studio.send_text(llm_offer("job-2"));
  auto complete = next_of(studio, {"completeJson"});
  ASSERT_TRUE(complete) << worker.logs();
  EXPECT_EQ((*complete)["jobId"], "job-2");
  studio.send_text(R"({"type":"completeAck","jobId":"job-2"})");
  EXPECT_TRUE(outbox_drains(worker)) << worker.status().dump();
  EXPECT_EQ(worker.status()["outbox"]["dropped"], 1);
}

TEST(DeliveryLimits, AnUploadRefusedWith413FailsTheJobForGoodAndIsNotRetried) {
  ScriptedStudio studio;  // announces no limits: the worker learns of the limit from the 413
  studio.answer_uploads_with(413);
  TempDir dir;
  WorkerHarness worker(dir.path(), scripted_config(studio.url()));
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcome);
  ASSERT_TRUE(worker.wait_session("connected"));
  studio.send_text(offer("job-1",
                         {{"kind", "image"}, {"prompt", "a fox"}, {"width", 64}, {"height", 64}},
                         "synthetic-image"));
  auto failed = next_of(studio, {"fail"});
  ASSERT_TRUE(failed) << worker.logs();
  EXPECT_EQ((*failed)["jobId"], "job-1");
  EXPECT_EQ((*failed)["retryable"], false) << "a refusal that will repeat is terminal";
  EXPECT_THAT((*failed)["error"].get<std::string>(), HasSubstr("413"));
  EXPECT_EQ(studio.uploads(), 1);
  // Nothing is left to send again.
  EXPECT_TRUE(outbox_drains(worker)) << worker.status().dump();
  EXPECT_EQ(studio.uploads(), 1);
}

TEST(DeliveryLimits, WithoutAnnouncedLimitsAJsonResultOver16MibIsFailedNotSent) {
  ScriptedStudio studio;  // a studio that announces nothing: the worker's own cap applies
  TempDir dir;
  auto timings = fast_timings();
  timings.read_idle_timeout = 120s;  // the 17 MiB offer takes a while to write and read
  WorkerHarness worker(dir.path(), scripted_config(studio.url()), timings);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcome);
  ASSERT_TRUE(worker.wait_session("connected"));
  studio.send_text(llm_offer("job-1", std::string(17 << 20, 'p')));
  auto answer = next_of(studio, {"fail", "completeJson"});
  ASSERT_TRUE(answer) << worker.logs();
  EXPECT_EQ((*answer)["type"], "fail") << "never sent: the studio would drop the session";
  EXPECT_EQ((*answer)["retryable"], false);
  EXPECT_THAT((*answer)["error"].get<std::string>(),
              HasSubstr("over the message limit assumed for a studio that announces none of "
                        "16777216 bytes"));
  studio.send_text(llm_offer("job-2"));
  auto complete = next_of(studio, {"completeJson"});
  ASSERT_TRUE(complete) << worker.logs();
  EXPECT_EQ((*complete)["jobId"], "job-2");
}

}  // namespace
}  // namespace sw::testing
