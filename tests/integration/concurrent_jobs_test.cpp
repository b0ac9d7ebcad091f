// Issue 19, "several jobs at once": one worker runs an llm job and an image job at the same time
// when memory allows, and refuses a third that does not fit with a reason naming the memory.
// Real loopback: our studio (in process, real SQLite) with a real worker daemon whose synthetic
// jobs are held in flight by a latch (no timing window) and whose free memory is a made-up
// reading; and a scripted studio that plays the reference (no "capacity" feature), toward which
// the same worker takes one job at a time.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

#include "support/hold_latch.h"
#include "support/offer_frames.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"
#include "support/worker_harness.h"

namespace sw::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// Waits (bounded) until the worker's local log ring holds `text`.
bool worker_logged(const WorkerHarness& worker, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (worker.logs().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(ConcurrentJobs, OneWorkerRunsAnLlmAndAnImageJobAtOnceAndRefusesAThirdThatDoesNotFit) {
  TempDir dir;
  studio::StudioConfig config;
  config.data_dir = dir.path() / "studio";
  // Far longer than the test: the refused job runs again only because a job ended (room), and a
  // smaller one reaches the worker meanwhile because a refusal for room does not rest it.
  config.reject_hold_off = 10min;
  StudioHarness studio(config);
  studio.add_model("synth-llm", "llm", 4.0);
  studio.add_model("synth-image", "image", 3.0);
  studio.add_model("synth-image-big", "image", 2.0);
  studio.add_model("synth-llm-small", "llm", 0.5);
  const auto credentials = register_worker(studio, "install-two");

  worker::WorkerConfig worker_config;
  worker_config.api_base_url = "http://127.0.0.1:" + std::to_string(studio.port());
  worker_config.worker_id = credentials.worker_id;
  worker_config.auth_token = credentials.token;
  worker_config.vram_threshold_gb = 24;
  worker_config.max_concurrent_jobs = 3;  // the cap leaves room: memory decides the third
  engines::EngineOptions engine;
  engine.synthetic_hold_file = dir.path() / "release";
  engine.free_memory_gib = [] { return std::optional<double>(8.0); };  // 8 GiB free, always
  auto timings = fast_timings();
  timings.read_idle_timeout = 10s;
  WorkerHarness worker(dir.path() / "worker", worker_config, timings, engine);
  HoldLatch latch(engine.synthetic_hold_file);
  ASSERT_TRUE(worker.wait_session("connected"));

  // 4 + 3 GiB fit in 8: both run at once. Both are running (accepted, held by the latch) before
  // either completes, which is the overlap.
  const auto llm = studio.create_job(llm_job("synth-llm", "a chat beside a picture"));
  const auto image = studio.create_job(image_job("synth-image", "a picture beside a chat"));
  // Both accepted and running on the worker (held by the latch) before either completes.
  bool both_running = false;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!both_running && std::chrono::steady_clock::now() < deadline) {
    const auto active = worker.status()["activeJobs"];
    both_running = active.size() == 2;
    if (!both_running) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(both_running) << worker.status().dump() << "\n" << worker.logs();
  EXPECT_EQ(studio.job_status(llm), "claimed") << "neither completed while the other started";
  EXPECT_EQ(studio.job_status(image), "claimed");
  // The studio's worker view shows both.
  const auto workers = json::parse(studio.admin("GET", "/api/v1/workers").body, nullptr, false);
  ASSERT_TRUE(workers.is_object());
  std::vector<std::string> held;
  for (const auto& item : workers["workers"]) {
    if (item.value("id", "") == credentials.worker_id && item.contains("jobIds")) {
      held = item["jobIds"].get<std::vector<std::string>>();
    }
  }
  EXPECT_THAT(held, ::testing::UnorderedElementsAre(llm, image));

  // A third needs 2 GiB: 8 − 7 leaves 1. Refused at once, naming the numbers.
  const auto third = studio.create_job(image_job("synth-image-big", "one too many"));
  EXPECT_TRUE(worker_logged(worker, "rejected " + third +
                                        ": insufficient memory: needs 2.0 GiB, "
                                        "1.0 GiB free"))
      << worker.logs();
  EXPECT_THAT(worker.logs(), HasSubstr("with 2 jobs running (they hold 7.0 GiB)"));
  EXPECT_EQ(studio.job_status(third), "queued") << "refused as busy: it waits for room";

  // A smaller job fits in what is left: the refusal did not rest the worker, and the third
  // stays back while nothing has ended.
  const auto small = studio.create_job(llm_job("synth-llm-small", "a short one beside them"));
  bool three_running = false;
  const auto small_deadline = std::chrono::steady_clock::now() + 30s;
  while (!three_running && std::chrono::steady_clock::now() < small_deadline) {
    three_running = worker.status()["activeJobs"].size() == 3;
    if (!three_running) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(three_running) << worker.status().dump() << "\n" << worker.logs();
  EXPECT_EQ(studio.job_status(small), "claimed");
  EXPECT_EQ(studio.job_status(third), "queued");

  // Once the two are done their memory is free: the third runs on the same worker.
  latch.release();
  EXPECT_TRUE(studio.wait_job_status(llm, "done", 30s)) << worker.logs();
  EXPECT_TRUE(studio.wait_job_status(image, "done", 30s)) << worker.logs();
  EXPECT_TRUE(studio.wait_job_status(small, "done", 30s)) << worker.logs();
  EXPECT_TRUE(studio.wait_job_status(third, "done", 30s)) << studio.job_status(third) << "\n"
                                                          << worker.logs();
  EXPECT_EQ(studio.job_attempts(third), 1) << "a busy refusal is not an attempt";
}

// ---- toward a studio without the feature (the reference): one job at a time ----

const std::string kReferenceWelcome =
    R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z"})";
const std::string kCapacityWelcome =
    R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z",)"
    R"("features":["capacity"]})";

struct ScriptedWorker {
  explicit ScriptedWorker(const ScriptedStudio& studio) {
    worker::WorkerConfig config;
    config.api_base_url = studio.url();
    config.worker_id = "w-1";
    config.auth_token = "token-1";
    config.max_concurrent_jobs = 3;
    engine.synthetic_hold_file = dir.path() / "release";
    engine.free_memory_gib = [] { return std::optional<double>(64.0); };
    worker = std::make_unique<WorkerHarness>(dir.path(), config, fast_timings(), engine);
  }
  TempDir dir;
  engines::EngineOptions engine;
  std::unique_ptr<WorkerHarness> worker;
};

TEST(ConcurrentJobs, TowardAStudioWithoutCapacityTheWorkerHoldsOneJobAtATime) {
  ScriptedStudio studio;
  ScriptedWorker worker(studio);
  HoldLatch latch(worker.engine.synthetic_hold_file);
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  EXPECT_THAT(hello->value("features", json::array()).dump(), HasSubstr("\"capacity\""));
  studio.send_text(kReferenceWelcome);
  studio.send_text(synthetic_llm_offer("job-a"));
  ASSERT_TRUE(studio.next_of_type("accept"));
  studio.send_text(synthetic_llm_offer("job-b"));
  auto reject = studio.next_of_type("reject");
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->value("jobId", ""), "job-b");
  EXPECT_EQ(reject->value("code", ""), "busy");
  EXPECT_EQ(reject->value("reason", ""), "worker already has an in-flight job");
  // The reference's heartbeat, key for key: no capacity.
  auto beat = studio.next_of_type("heartbeat");
  ASSERT_TRUE(beat);
  EXPECT_FALSE(beat->contains("capacity")) << beat->dump();
  EXPECT_EQ(beat->value("currentJobId", ""), "job-a");
  latch.release();
  auto complete = studio.next_of_type("completeJson", 10s);
  ASSERT_TRUE(complete);
  EXPECT_EQ(complete->value("jobId", ""), "job-a");
}

TEST(ConcurrentJobs, TowardAStudioWithCapacityTheWorkerTakesASecondJobAndSaysSo) {
  ScriptedStudio studio;
  ScriptedWorker worker(studio);
  HoldLatch latch(worker.engine.synthetic_hold_file);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kCapacityWelcome);
  auto first = studio.next_of_type("heartbeat");
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["capacity"]["room"], 3) << first->dump();
  studio.send_text(synthetic_llm_offer("job-a"));
  ASSERT_TRUE(studio.next_of_type("accept"));
  studio.send_text(synthetic_llm_offer("job-b"));
  auto second = studio.next_of_type("accept");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->value("jobId", ""), "job-b");
  // A heartbeat follows the change at once, naming both jobs and the one slot left.
  bool both = false;
  for (int i = 0; i < 20 && !both; ++i) {
    auto beat = studio.next_of_type("heartbeat");
    ASSERT_TRUE(beat);
    both = beat->contains("capacity") && (*beat)["capacity"]["jobIds"].size() == 2;
    if (both) {
      EXPECT_EQ((*beat)["capacity"]["room"], 1) << beat->dump();
    }
  }
  EXPECT_TRUE(both);
  latch.release();
}

}  // namespace
}  // namespace sw::testing
