// The worker's studio session (reference-worker.md §1.1, §1.4, §1.9, §3.3) against a scripted
// WebSocket peer on 127.0.0.1, for what a real studio cannot produce on demand: silence, stalls,
// refusals, every error frame and close code, malformed frames. Timings are scaled down
// (fast_timings: heartbeats 100 ms, read idle 600 ms, backoff 50–200 ms).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "common/file_io.h"
#include "common/sha256.h"
#include "sql/sqlite.h"
#include "support/hold_latch.h"
#include "support/offer_frames.h"
#include "support/prom_exposition.h"
#include "support/temp_dir.h"
#include "support/test_models.h"
#include "support/worker_harness.h"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using sw::testing::chat_task;
using sw::testing::no_cli_defaults;
using sw::testing::offer_frame;
using sw::testing::ScriptedStudio;
using sw::testing::synthetic_llm_offer;
using sw::testing::WorkerHarness;
using ::testing::HasSubstr;

sw::worker::WorkerConfig registered_config(const std::string& url) {
  sw::worker::WorkerConfig config;
  config.api_base_url = url;
  config.worker_id = "w-1";
  config.auth_token = "token-1";
  return config;
}

const std::string kWelcome =
    R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z"})";

// Reads the worker's hello and welcomes it, then waits until it reports itself connected.
void welcome(ScriptedStudio& studio, const WorkerHarness& worker) {
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcome);
  ASSERT_TRUE(worker.wait_session("connected"));
}

// The next frame about a job (accept, reject, fail, completeJson, …): heartbeats and log batches
// are skipped. Bounded by time, not by a count of frames: heartbeats come every 100 ms, and a
// runner start under a sanitizer on two busy cores can outlast any fixed number of them.
std::optional<json> next_job_frame(ScriptedStudio& studio) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    auto frame = studio.next_frame();
    if (!frame) return std::nullopt;
    auto parsed = json::parse(frame->text);
    if (parsed.at("type") != "heartbeat" && parsed.at("type") != "logBatch") return parsed;
  }
  return std::nullopt;
}

// Whether `caps.supportedModelsPerKind[kind]` lists `model`.
bool lists(const json& caps, const std::string& kind, const std::string& model) {
  const auto& per_kind = caps["supportedModelsPerKind"];
  if (!per_kind.contains(kind)) return false;
  for (const auto& id : per_kind[kind]) {
    if (id == model) return true;
  }
  return false;
}

// The real tiny GGUF (stories260K) placed by the operator at the top of the models root `root`,
// and the modelSource that names it by its file name (its URL is never fetched); nullopt when it
// could not be read back.
std::optional<json> place_stories_model(const std::filesystem::path& models,
                                        const std::filesystem::path& root) {
  std::filesystem::create_directories(root);
  std::filesystem::copy_file(models / "stories260K.gguf", root / "stories260K.gguf");
  auto bytes = sw::read_file(root / "stories260K.gguf");
  if (!bytes) return std::nullopt;
  return json{{"engine", "llama-cpp"},
              {"files",
               {{{"role", "model"},
                 {"url", "https://models.invalid/stories260K.gguf"},  // never fetched
                 {"filename", "stories260K.gguf"},
                 {"approxBytes", bytes->size()},
                 {"sha256", sw::sha256_hex(*bytes)}}}},
              {"cliDefaults", no_cli_defaults()}};
}

TEST(WorkerSession, HelloCarriesTheCredentialsAndNothingIsPumpedOrAcceptedBeforeWelcome) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  EXPECT_EQ((*hello)["authToken"], "token-1");
  EXPECT_EQ((*hello)["capabilities"]["engine"], "multi");
  EXPECT_EQ(studio.last_header("authorization"), "Bearer token-1");
  EXPECT_EQ(studio.last_header("sec-websocket-protocol"), "studio-worker-v1");
  // An offer before welcome is dropped; no heartbeat goes out before welcome either.
  studio.send_text(synthetic_llm_offer("job-early"));
  EXPECT_FALSE(studio.next_frame(400ms)) << "nothing may be sent before welcome";
  studio.send_text(kWelcome);
  ASSERT_TRUE(studio.next_of_type("heartbeat"));
  ASSERT_TRUE(worker.wait_session("connected"));
  // A real offer now: accept, then completeJson with the full prompt.
  studio.send_text(synthetic_llm_offer("job-1"));
  auto accept = studio.next_of_type("accept");
  ASSERT_TRUE(accept);
  EXPECT_EQ((*accept)["jobId"], "job-1");
  auto complete = studio.next_of_type("completeJson");
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["jobId"], "job-1");
  EXPECT_EQ((*complete)["prompt"], "the prompt");
  EXPECT_EQ((*complete)["result"]["object"], "chat.completion");
  EXPECT_THAT(worker.logs(), HasSubstr("offer frame before welcome dropped"));
}

TEST(WorkerSession, HeartbeatsCarryTheCurrentConfigAndThePauseFlag) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcome);
  ASSERT_TRUE(studio.next_of_type("heartbeat"));
  ASSERT_EQ(worker.api("PUT", "/daemon/config", R"({"vramThresholdGb":3.5})").status, 200);
  ASSERT_EQ(worker.api("POST", "/daemon/pause").status, 200);
  // Within a few beats: the new threshold and the pause in the heartbeat, and the pause
  // transition shipped to the studio as a log entry.
  bool seen = false;
  bool shipped = false;
  for (int i = 0; i < 60 && !(seen && shipped); ++i) {
    auto frame = studio.next_frame();
    ASSERT_TRUE(frame);
    auto parsed = json::parse(frame->text);
    if (parsed["type"] == "heartbeat") {
      seen = seen || (parsed["capabilities"]["vramThresholdGb"] == 3.5 &&
                      parsed["capabilities"]["autoEnabled"] == false);
    } else if (parsed["type"] == "logBatch") {
      shipped = shipped || frame->text.find("claiming paused by operator") != std::string::npos;
    }
  }
  EXPECT_TRUE(seen) << "threshold and pause reach the studio without a reconnect";
  EXPECT_TRUE(shipped);
  EXPECT_EQ(studio.upgrades(), 1);
  // Paused: an offer is rejected with code paused.
  studio.send_text(synthetic_llm_offer("job-p"));
  auto reject = studio.next_of_type("reject");
  ASSERT_TRUE(reject);
  EXPECT_EQ((*reject)["code"], "paused");
}

TEST(WorkerSession, ASilentHalfOpenLinkIsDroppedAfterTheIdleLimitAndReconnected) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.ack_heartbeats(false);  // the studio goes quiet but keeps the socket open
  studio.send_text(kWelcome);
  ASSERT_TRUE(studio.wait_upgrades(2, 5s)) << worker.logs();
  EXPECT_THAT(worker.logs(), HasSubstr("no frame from the studio for 600 ms"));
}

TEST(WorkerSession, AnUpgradeThatNeverAnswersTimesOutAndIsRetried) {
  // A listener whose kernel completes the TCP handshake but that never reads or answers.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  std::atomic<int> accepted{0};
  std::vector<int> held;
  std::thread acceptor([&] {
    while (accepted < 2) {
      const int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      held.push_back(fd);
      ++accepted;
    }
  });
  sw::testing::TempDir dir;
  auto timings = sw::testing::fast_timings();
  timings.connect_timeout = 300ms;
  {
    WorkerHarness worker(dir.path(), registered_config("http://127.0.0.1:" + std::to_string(port)),
                         timings);
    acceptor.join();  // returns once the worker came back for a second attempt
    EXPECT_EQ(accepted, 2);
    EXPECT_THAT(worker.logs(), HasSubstr("websocket upgrade failed: no answer in time"));
  }
  for (int fd : held) ::close(fd);
  ::close(listener);
}

// A 401 is permanent: the daemon exits 11 (ExitCode::AuthFailed) after one attempt, so that a
// supervisor does not restart it into the same refusal (issue 17).
TEST(WorkerSession, A401OnTheUpgradeEndsTheDaemonWithTheAuthFailedCode) {
  ScriptedStudio studio;
  studio.refuse_upgrades_with(401);
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  EXPECT_EQ(worker.wait_exit(), 11);
  EXPECT_EQ(worker.exit_reason(), "401 on websocket upgrade");
  EXPECT_EQ(studio.upgrades(), 1);
}

TEST(WorkerSession, OtherUpgradeRefusalsAreRetriedWithBackoff) {
  ScriptedStudio studio;
  studio.refuse_upgrades_with(503);
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  ASSERT_TRUE(studio.wait_upgrades(3));
  EXPECT_THAT(worker.logs(), HasSubstr("session error: HTTP 503 on websocket upgrade"));
  EXPECT_THAT(worker.logs(), HasSubstr("; reconnect attempt 2 in "));
}

TEST(WorkerSession, CloseCode4001IsAnAuthFailureOtherCloseCodesReconnect) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  welcome(studio, worker);
  studio.close(4003, "duplicate");  // a close without the error frame: a plain disconnect
  ASSERT_TRUE(studio.wait_upgrades(2));
  welcome(studio, worker);
  studio.close(4001, "bad token");
  EXPECT_EQ(worker.wait_exit(), 11);
  EXPECT_EQ(worker.exit_reason(), "server closed 4001: bad token");
  EXPECT_EQ(studio.upgrades(), 2);
}

// Each error frame ends the session for good and the daemon with the code a supervisor acts on
// (exit_codes.h): the permanent ones their own, the others 1 (a restart may help).
class ErrorFrames : public ::testing::TestWithParam<std::pair<std::string, int>> {};

TEST_P(ErrorFrames, EndTheDaemonWithTheirExitCodeWithoutReconnecting) {
  const auto& [code, exit_code] = GetParam();
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  welcome(studio, worker);
  studio.send_text(json{{"type", "error"}, {"code", code}, {"message", "scripted"}}.dump());
  EXPECT_EQ(worker.wait_exit(), exit_code);
  EXPECT_EQ(worker.exit_reason(), code + ": scripted");
  EXPECT_EQ(studio.upgrades(), 1);
}

INSTANTIATE_TEST_SUITE_P(EveryCode, ErrorFrames,
                         ::testing::Values(std::pair<std::string, int>{"auth_failed", 11},
                                           std::pair<std::string, int>{"protocol_violation", 1},
                                           std::pair<std::string, int>{"duplicate_worker", 13},
                                           std::pair<std::string, int>{"worker_deleted", 12},
                                           std::pair<std::string, int>{"internal_error", 1}));

class MalformedFrames : public ::testing::TestWithParam<std::string> {};

std::string MalformedCaseName(const ::testing::TestParamInfo<std::string>& param) {
  static const char* const kNames[] = {"Binary", "UnknownType", "NotJson", "OfferWithoutTask"};
  return kNames[param.index];
}

TEST_P(MalformedFrames, AreAProtocolViolationThatEndsTheLinkAndReconnects) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  welcome(studio, worker);
  if (GetParam() == "binary") {
    studio.send_binary("\x01\x02\x03");
  } else {
    studio.send_text(GetParam());
  }
  ASSERT_TRUE(studio.wait_upgrades(2)) << worker.logs();
  EXPECT_THAT(worker.logs(), HasSubstr("session error: protocol violation"));
  EXPECT_EQ(worker.status().at("activeJobs"), json::array()) << "no job was started";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedFrames,
    ::testing::Values(
        "binary", R"({"type":"surprise"})", "not json",
        R"({"type":"offer","claim":{"jobId":"j","gameId":"g","assetName":"a",)"
        R"("model":"m","vramGbEstimate":1,"modelSource":{"engine":"synthetic",)"
        R"("files":[],"cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}}}})"),
    MalformedCaseName);

TEST(WorkerSession, ABusyWorkerRejectsASecondOfferWithCodeBusy) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  // job-a is held in flight until the test releases it: no timing window.
  sw::engines::EngineOptions held;
  held.synthetic_hold_file = dir.path() / "release-job-a";
  WorkerHarness worker(dir.path(), registered_config(studio.url()), sw::testing::fast_timings(),
                       held);
  sw::testing::HoldLatch latch(held.synthetic_hold_file);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcome);
  studio.send_text(synthetic_llm_offer("job-a"));
  ASSERT_TRUE(studio.next_of_type("accept"));
  studio.send_text(synthetic_llm_offer("job-b"));
  auto reject = studio.next_of_type("reject");
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->value("jobId", ""), "job-b");
  EXPECT_EQ(reject->value("code", ""), "busy");
  // The heartbeat names the job in flight.
  bool named = false;
  for (int i = 0; i < 10 && !named; ++i) {
    auto beat = studio.next_of_type("heartbeat");
    ASSERT_TRUE(beat);
    named = beat->value("currentJobId", "") == "job-a";
  }
  EXPECT_TRUE(named);
  latch.release();
  auto complete = studio.next_of_type("completeJson", 5s);
  ASSERT_TRUE(complete);
  EXPECT_EQ(complete->value("jobId", ""), "job-a");
}

// Issue 19: the outbox's disk write runs off the event loop. While a finished result waits for
// the disk (here another process holds outbox.db's write lock), the worker still answers the
// local API and the studio's next offer; the result is sent only once it is on disk.
TEST(WorkerSession, AnOfferIsAnsweredWhileAResultWaitsForTheDisk) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  welcome(studio, worker);
  auto other = sw::sql::Db::open(worker.config_path().parent_path() / "outbox.db");
  ASSERT_TRUE(other) << other.error().message;
  ASSERT_TRUE(other->exec("BEGIN IMMEDIATE"));
  studio.send_text(synthetic_llm_offer("job-1"));
  ASSERT_TRUE(studio.next_of_type("accept"));
  // The engine is done with job-1 (the gate is free) and its result is on its way to the disk
  // (the job is active until the outbox has it): the status route answers meanwhile.
  const auto job1_active = [&](const json& status) {
    for (const auto& job : status["activeJobs"]) {
      if (job.value("jobId", "") == "job-1") return true;
    }
    return false;
  };
  const auto writing = [&] {
    const auto status = worker.status();
    return status.is_object() && !status.value("busy", true) && job1_active(status);
  };
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {
    seen = writing();
    if (!seen) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(seen) << worker.status().dump();
  studio.send_text(synthetic_llm_offer("job-2"));
  auto answer = next_job_frame(studio);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->value("jobId", ""), "job-2") << answer->dump();
  EXPECT_EQ(answer->value("type", ""), "accept") << answer->dump();
  // job-1's write still waits for the lock (job-2 may hold the gate now).
  EXPECT_TRUE(job1_active(worker.status())) << worker.status().dump();
  ASSERT_TRUE(other->exec("ROLLBACK"));
  std::set<std::string> completed;
  while (completed.size() < 2) {
    auto frame = next_job_frame(studio);
    ASSERT_TRUE(frame);
    ASSERT_EQ(frame->value("type", ""), "completeJson") << frame->dump();
    completed.insert(frame->value("jobId", ""));
  }
  EXPECT_EQ(completed, (std::set<std::string>{"job-1", "job-2"}));
  // Both reached the disk: none was kept in memory only.
  EXPECT_EQ(worker.status()["outbox"].value("inMemoryOnly", -1), 0) << worker.status().dump();
}

// Issue 18: a studio whose run limit passed may offer the job again while this worker still holds
// its result (the engine is done, the result not yet acknowledged). The worker refuses it without
// a code, naming the job, instead of running it a second time; other jobs are still taken.
TEST(WorkerSession, AnOfferOfAJobWhoseResultItHoldsIsRefusedNotRunAgain) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  welcome(studio, worker);
  studio.send_text(synthetic_llm_offer("job-1"));
  ASSERT_TRUE(studio.next_of_type("accept"));
  auto complete = studio.next_of_type("completeJson");
  ASSERT_TRUE(complete);
  // Not acknowledged: job-1's result stays in the outbox.
  studio.send_text(synthetic_llm_offer("job-1"));
  auto reject = studio.next_of_type("reject");
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->value("jobId", ""), "job-1");
  EXPECT_FALSE(reject->contains("code")) << reject->dump();
  EXPECT_EQ(reject->value("reason", ""), "worker already runs job job-1 or holds its result");
  studio.send_text(synthetic_llm_offer("job-2"));
  auto accept = studio.next_of_type("accept");
  ASSERT_TRUE(accept);
  EXPECT_EQ(accept->value("jobId", ""), "job-2");
}

// outbox_max_entries: a worker whose undelivered results fill its outbox takes no more work
// (a result it could not keep would be GPU time thrown away): the next offer is rejected with
// code busy, saying why, and work resumes once the studio has acknowledged the result.
TEST(WorkerSession, AFullOutboxRejectsOffersWithCodeBusyUntilDeliveryCatchesUp) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  auto config = registered_config(studio.url());
  config.outbox_max_entries = 1;
  WorkerHarness worker(dir.path(), config);
  welcome(studio, worker);
  studio.send_text(synthetic_llm_offer("job-1"));
  ASSERT_TRUE(studio.next_of_type("accept"));
  auto complete = studio.next_of_type("completeJson");
  ASSERT_TRUE(complete);
  ASSERT_EQ(complete->value("jobId", ""), "job-1");
  // Not acknowledged: the result stays in the outbox, which is now full.
  studio.send_text(synthetic_llm_offer("job-2"));
  auto reject = studio.next_of_type("reject");
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->value("jobId", ""), "job-2");
  EXPECT_EQ(reject->value("code", ""), "busy");
  EXPECT_THAT(reject->value("reason", ""), HasSubstr("result outbox is full (1 results"));
  // Acknowledged: the entry goes, and the next offer is taken.
  studio.send_text(R"({"type":"completeAck","jobId":"job-1"})");
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      const auto status = worker.status();
      if (status.is_object() && status.contains("outbox") &&
          status["outbox"].value("entries", -1) == 0) {
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }()) << worker.status().dump();
  studio.send_text(synthetic_llm_offer("job-3"));
  auto accept = studio.next_of_type("accept");
  ASSERT_TRUE(accept);
  EXPECT_EQ(accept->value("jobId", ""), "job-3");
}

// Memory admission (reference-worker.md §3.10): an offer whose model does not fit in the free
// memory minus the reserve is rejected before any accept, with no code (the job, not the worker's
// state, is the reason) and the figures in the reason. The llama-cpp engine is present (the fake
// runner stands in for llama-server; nothing is started or downloaded), free memory is 2.5 GiB.
TEST(WorkerSession, AnOfferThatDoesNotFitInFreeMemoryIsRejectedBeforeAccept) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  auto config = registered_config(studio.url());
  config.models_root = (dir.path() / "models").string();
  config.llama_server_path = SW_FAKE_RUNNER_BIN;
  sw::engines::EngineOptions engines;
  engines.free_memory_gib = []() -> std::optional<double> { return 2.5; };
  WorkerHarness worker(dir.path(), config, sw::testing::fast_timings(), engines);
  welcome(studio, worker);
  const json offer = {
      {"type", "offer"},
      {"claim",
       {{"jobId", "job-big"},
        {"gameId", "g"},
        {"assetName", "a"},
        {"model", "big-llm"},
        {"vramGbEstimate", 4},
        {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}},
        {"modelSource",
         {{"engine", "llama-cpp"},
          {"files",
           {{{"role", "model"},
             {"url", "http://127.0.0.1:9/big.gguf"},
             {"filename", "big.gguf"},
             {"approxBytes", 4000000000},
             {"sha256", std::string(64, 'a')}}}},
          {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}}}};
  studio.send_text(offer.dump());
  // The first answer to the offer is the reject: skip heartbeats and log batches, not accepts.
  std::optional<json> answer;
  for (int i = 0; i < 50 && !answer; ++i) {
    auto frame = studio.next_frame();
    ASSERT_TRUE(frame) << worker.logs();
    auto parsed = json::parse(frame->text);
    const std::string type = parsed.value("type", "");
    if (type == "accept" || type == "reject") answer = parsed;
  }
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->value("type", ""), "reject") << answer->dump();
  EXPECT_EQ(answer->value("jobId", ""), "job-big");
  EXPECT_FALSE(answer->contains("code")) << answer->dump();
  EXPECT_EQ(answer->value("reason", ""),
            "insufficient memory: needs 4.00 GiB, 2.50 GiB free (1.00 GiB kept in reserve)");
  EXPECT_EQ(worker.status().value("busy", true), false) << "the refused job left nothing behind";
}

// Issue 14: an offer that reaches a worker without the model's engine (a race with the
// advertisement, an old studio) is rejected, naming the engine, so that the studio gives the job
// to another worker; it is never accepted and never failed here.
TEST(WorkerSession, AnOfferForAnEngineTheWorkerLacksIsRejectedNamingItNotFailed) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  auto config = registered_config(studio.url());
  config.llama_server_path = (dir.path() / "no-such-llama-server").string();
  WorkerHarness worker(dir.path(), config);
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  EXPECT_FALSE(lists((*hello)["capabilities"], "llm", "llama-cpp:*"))
      << "an engine the worker lacks is not advertised";
  studio.send_text(kWelcome);
  ASSERT_TRUE(worker.wait_session("connected"));

  const json llama = {{"engine", "llama-cpp"},
                      {"files",
                       {{{"role", "model"},
                         {"url", "https://models.invalid/qwen.gguf"},
                         {"filename", "qwen.gguf"}}}},
                      {"cliDefaults", no_cli_defaults()}};
  studio.send_text(offer_frame("job-llama", "qwen3.5-0.8b", chat_task("hi"), llama));
  auto reject = next_job_frame(studio);
  ASSERT_TRUE(reject);
  EXPECT_EQ((*reject)["type"], "reject") << reject->dump();
  EXPECT_EQ((*reject)["jobId"], "job-llama");
  EXPECT_THAT((*reject)["reason"].get<std::string>(),
              HasSubstr("no `llama-cpp` engine in this worker (model `qwen3.5-0.8b` requires it)"));
  EXPECT_THAT((*reject)["reason"].get<std::string>(), HasSubstr("llama-server"));
  EXPECT_FALSE(reject->contains("code")) << "not busy or paused: the job goes elsewhere";

  // Nothing else follows about that job: the next frames are about the next offer, which runs.
  studio.send_text(synthetic_llm_offer("job-2"));
  auto accept = next_job_frame(studio);
  ASSERT_TRUE(accept);
  EXPECT_EQ((*accept)["type"], "accept") << accept->dump();
  EXPECT_EQ((*accept)["jobId"], "job-2");
  auto complete = next_job_frame(studio);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["type"], "completeJson") << complete->dump();
  EXPECT_EQ((*complete)["jobId"], "job-2");
}

// A runner program that disappears after start (an operator upgrading llama.cpp, a cleaned
// cache) must not turn this worker into a sink that fails every llama job: the next offer is
// rejected before accept, naming the engine, and the heartbeats stop advertising it.
TEST(WorkerSession, ARunnerProgramRemovedAfterStartIsNoLongerAdvertisedAndItsOffersAreRejected) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto program = dir.path() / "llama-server";
  std::filesystem::copy_file(SW_FAKE_RUNNER_BIN, program);
  auto config = registered_config(studio.url());
  config.models_root = (dir.path() / "models").string();
  config.llama_server_path = program.string();
  WorkerHarness worker(dir.path(), config);
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  ASSERT_TRUE(lists((*hello)["capabilities"], "llm", "llama-cpp:*")) << hello->dump();
  studio.send_text(kWelcome);
  ASSERT_TRUE(worker.wait_session("connected"));

  std::filesystem::remove(program);
  const json llama = {{"engine", "llama-cpp"},
                      {"files",
                       {{{"role", "model"},
                         {"url", "https://models.invalid/qwen.gguf"},
                         {"filename", "qwen.gguf"}}}},
                      {"cliDefaults", no_cli_defaults()}};
  studio.send_text(offer_frame("job-gone", "qwen", chat_task("hi"), llama));
  auto reject = next_job_frame(studio);
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->at("type"), "reject") << reject->dump();
  EXPECT_EQ(reject->at("jobId"), "job-gone");
  EXPECT_THAT(reject->at("reason").get<std::string>(), HasSubstr("`llama-cpp`"));
  EXPECT_THAT(reject->at("reason").get<std::string>(), HasSubstr(program.string()));
  EXPECT_FALSE(reject->contains("code"));

  // Within a few heartbeats the advertisement drops llama-cpp (the scan runs off the loop).
  bool dropped = false;
  for (int i = 0; i < 50 && !dropped; ++i) {
    auto beat = studio.next_of_type("heartbeat");
    ASSERT_TRUE(beat);
    dropped = !lists(beat->at("capabilities"), "llm", "llama-cpp:*");
  }
  EXPECT_TRUE(dropped) << "heartbeats still advertise llama-cpp:*";
}

TEST(WorkerSession, WithTheSyntheticEngineOffOnlyTheRealEnginesKindsAreAdvertised) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  auto config = registered_config(studio.url());
  config.engines.synthetic = false;
  config.llama_server_path = (dir.path() / "no-such-llama-server").string();
  config.sd_cli_path = (dir.path() / "no-such-sd-cli").string();
  config.whisper_server_path = (dir.path() / "no-such-whisper-server").string();
  WorkerHarness worker(dir.path(), config);
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  const json caps = (*hello)["capabilities"];
  // Only espeak-ng (not advertised when libespeak-ng or its data is missing) is left: audio_tts
  // or nothing.
  for (const auto& kind : {"image", "llm", "audio_stt", "video"}) {
    EXPECT_FALSE(caps["supportedModelsPerKind"].contains(kind)) << kind;
    for (const auto& listed : caps["taskKinds"]) EXPECT_NE(listed, kind);
  }
  for (const auto& model : caps["supportedModels"]) {
    EXPECT_EQ(model.get<std::string>().find("synthetic"), std::string::npos) << model;
  }
  if (caps["supportedModelsPerKind"].contains("audio_tts")) {
    EXPECT_EQ(caps["supportedModelsPerKind"]["audio_tts"], json::array({"espeak-ng:*"}));
    EXPECT_EQ(caps["taskKinds"], json::array({"audio_tts"}));
  } else {
    EXPECT_TRUE(caps["taskKinds"].empty());
  }
  studio.send_text(kWelcome);
  ASSERT_TRUE(worker.wait_session("connected"));
  // A synthetic job is refused the same way as any missing engine, saying where it was switched
  // off.
  studio.send_text(synthetic_llm_offer("job-s"));
  auto reject = next_job_frame(studio);
  ASSERT_TRUE(reject);
  EXPECT_EQ((*reject)["type"], "reject") << reject->dump();
  EXPECT_THAT((*reject)["reason"].get<std::string>(), HasSubstr("no `synthetic` engine"));
  EXPECT_THAT((*reject)["reason"].get<std::string>(), HasSubstr("[engines] synthetic = false"));
}

// Issue 14: a model whose id is also its file name (the reference's catalogue names them so),
// with that file placed by the operator at the top of the models root, provisions and runs; once
// the cache holds it, heartbeats (and the next hello) list its id under the kind its engine
// serves. The runner is the test program that plays llama-server's part (the real one is in
// real_engines_test); the GGUF is the real tiny test model (its header sizes the runner).
TEST(WorkerSession, AModelWhoseIdIsItsFileNameRunsAndIsAdvertisedOnceHeld) {
  SW_REQUIRE_TEST_MODELS(models);
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto root = dir.path() / "models";
  const auto placed = place_stories_model(models, root);
  ASSERT_TRUE(placed);
  const json& source = *placed;
  auto config = registered_config(studio.url());
  config.llama_server_path = SW_FAKE_RUNNER_BIN;
  {
    WorkerHarness worker(dir.path(), config);
    auto hello = studio.next_of_type("hello");
    ASSERT_TRUE(hello);
    EXPECT_TRUE(lists((*hello)["capabilities"], "llm", "llama-cpp:*"));
    EXPECT_FALSE(lists((*hello)["capabilities"], "llm", "stories260K.gguf")) << "not held yet";
    studio.send_text(kWelcome);
    ASSERT_TRUE(worker.wait_session("connected"));

    studio.send_text(offer_frame("job-file-id", "stories260K.gguf", chat_task("Once"), source));
    auto accept = next_job_frame(studio);
    ASSERT_TRUE(accept);
    EXPECT_EQ((*accept)["type"], "accept") << accept->dump() << worker.logs();
    auto complete = next_job_frame(studio);
    ASSERT_TRUE(complete);
    ASSERT_EQ((*complete)["type"], "completeJson") << complete->dump() << worker.logs();
    EXPECT_THAT((*complete)["result"]["choices"][0]["message"]["content"].get<std::string>(),
                HasSubstr("pid "));
    EXPECT_FALSE(std::filesystem::is_regular_file(root / "by-model" / "stories260K.gguf" /
                                                  "stories260K.gguf"))
        << "the operator's copy is used in place";

    bool advertised = false;
    for (int i = 0; i < 50 && !advertised; ++i) {
      auto beat = studio.next_of_type("heartbeat");
      ASSERT_TRUE(beat);
      advertised = lists((*beat)["capabilities"], "llm", "stories260K.gguf");
      EXPECT_FALSE(lists((*beat)["capabilities"], "image", "stories260K.gguf"));
    }
    EXPECT_TRUE(advertised) << "a held model is advertised within a few heartbeats";
  }
  WorkerHarness restarted(dir.path(), config);
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  EXPECT_TRUE(lists((*hello)["capabilities"], "llm", "stories260K.gguf"));
}

}  // namespace

namespace {

// Issue 19, deadlines by progress, end to end: a runner that stops sending tokens mid-answer is
// killed after runner_inference_stall_secs and the studio gets a retryable `fail` naming the stall
// (another worker may run the job), not a wait for a fixed total.
TEST(WorkerSession, ARunnerThatStallsMidAnswerFailsTheJobRetryablyToTheStudio) {
  SW_REQUIRE_TEST_MODELS(models);
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto root = dir.path() / "models";
  const auto placed = place_stories_model(models, root);
  ASSERT_TRUE(placed);
  const auto wrapper = dir.path() / "llama-server-stalls";
  std::ofstream(wrapper) << "#!/bin/sh\nexec '" << SW_FAKE_RUNNER_BIN
                         << "' \"$@\" --stall-after-tokens 2\n";
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  auto config = registered_config(studio.url());
  config.models_root = root.string();
  config.llama_server_path = wrapper.string();
  config.runner_inference_stall_secs = 1;
  WorkerHarness worker(dir.path(), config);
  welcome(studio, worker);
  studio.send_text(offer_frame("job-stalls", "stories260K.gguf", chat_task("Once"), *placed));
  auto accept = next_job_frame(studio);
  ASSERT_TRUE(accept);
  ASSERT_EQ((*accept)["type"], "accept") << accept->dump() << worker.logs();
  auto failed = next_job_frame(studio);
  ASSERT_TRUE(failed) << worker.logs();
  ASSERT_EQ((*failed)["type"], "fail") << failed->dump() << worker.logs();
  EXPECT_EQ((*failed)["jobId"], "job-stalls");
  EXPECT_EQ((*failed)["retryable"], true) << failed->dump();
  EXPECT_THAT(failed->value("error", ""), HasSubstr("made no progress for 1 s")) << failed->dump();
  EXPECT_TRUE(worker.status()["runners"].empty()) << "the stalled runner is not kept";
}

// Issue 19: `pause --unload` (POST /daemon/pause {"unload":true}) stops the idle runner at once
// (its process is gone when the answer comes), status says so, and the next offer is refused as
// paused. The job before it shows in /metrics: the llm job by kind and outcome, its runner's start
// and its phases (fetch of the model file, load of the runner, infer, upload of the result).
TEST(WorkerSession, PauseUnloadStopsTheIdleRunnerAndRefusesTheNextOffer) {
  SW_REQUIRE_TEST_MODELS(models);
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto root = dir.path() / "models";
  const auto placed = place_stories_model(models, root);
  ASSERT_TRUE(placed);
  const json& source = *placed;
  auto config = registered_config(studio.url());
  config.models_root = root.string();
  config.llama_server_path = SW_FAKE_RUNNER_BIN;
  WorkerHarness worker(dir.path(), config);
  welcome(studio, worker);
  studio.send_text(offer_frame("job-run", "stories260K.gguf", chat_task("Once"), source));
  auto accept = next_job_frame(studio);
  ASSERT_TRUE(accept);
  ASSERT_EQ((*accept)["type"], "accept") << accept->dump() << worker.logs();
  auto complete = next_job_frame(studio);
  ASSERT_TRUE(complete);
  ASSERT_EQ((*complete)["type"], "completeJson") << complete->dump() << worker.logs();
  // Acknowledged, or the worker sends the result again after completion_ack_wait (1 s here),
  // which a slow run would read below in place of the reject.
  studio.send_text(R"({"type":"completeAck","jobId":"job-run"})");

  const json before = worker.status();
  ASSERT_EQ(before["runners"].size(), 1u) << before.dump();
  const int pid = before["runners"][0].value("pid", 0);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), 0) << "the runner stays resident after its job";
  EXPECT_EQ(before.value("runnersUnloaded", true), false);

  auto paused = worker.api("POST", "/daemon/pause", R"({"unload":true})");
  ASSERT_EQ(paused.status, 200) << paused.body;
  const json answer = json::parse(paused.body);
  EXPECT_EQ(answer.value("paused", false), true);
  EXPECT_EQ(answer.value("runnersStopped", -1), 1);
  EXPECT_NE(::kill(pid, 0), 0) << "the idle runner's process is gone";
  const json after = worker.status();
  EXPECT_EQ(after.value("paused", false), true);
  EXPECT_EQ(after.value("runnersUnloaded", false), true);
  EXPECT_TRUE(after["runners"].empty()) << after.dump();

  studio.send_text(offer_frame("job-next", "stories260K.gguf", chat_task("Twice"), source));
  auto refused = next_job_frame(studio);
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)["type"], "reject") << refused->dump();
  EXPECT_EQ((*refused)["jobId"], "job-next");
  EXPECT_EQ((*refused)["code"], "paused");

  // The job that ran, as an operator's scraper sees it.
  auto scraped = worker.api("GET", "/metrics");
  ASSERT_EQ(scraped.status, 200) << scraped.body;
  const auto metrics = sw::testing::parse_exposition(scraped.body);
  ASSERT_TRUE(metrics.errors.empty()) << ::testing::PrintToString(metrics.errors) << scraped.body;
  EXPECT_EQ(metrics.value(R"(studio_worker_jobs_total{kind="llm",outcome="ok"})"), 1);
  EXPECT_EQ(metrics.value(R"(studio_worker_runner_starts_total{program="fake-runner"})"), 1);
  EXPECT_EQ(metrics.value(R"(studio_worker_runner_deaths_total{program="fake-runner"})"), 0)
      << "a runner the worker stopped did not die";
  for (const char* phase : {"fetch", "load", "infer", "upload"}) {
    EXPECT_EQ(metrics.value(std::string("studio_worker_job_phase_seconds_count{phase=\"") + phase +
                            "\"}"),
              1)
        << phase;
  }
  EXPECT_EQ(metrics.value("studio_worker_paused"), 1);
  EXPECT_EQ(metrics.value("studio_worker_runners_unloaded"), 1);
  EXPECT_EQ(metrics.value("studio_worker_connected"), 1);

  auto resumed = worker.api("POST", "/daemon/resume");
  ASSERT_EQ(resumed.status, 200);
  EXPECT_EQ(worker.status().value("runnersUnloaded", true), false);
}

}  // namespace

// ---- Issue 20: progress, cancel, uploads (the worker's side; the test plays the studio) ----

namespace {

// A welcome from a studio that supports the issue-20 features.
const std::string kWelcomeWithFeatures =
    R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z",)"
    R"("features":["progress","cancel","uploads"]})";

std::string cancel_frame(const std::string& job_id, const std::string& reason) {
  return json{{"type", "cancel"}, {"jobId", job_id}, {"reason", reason}}.dump();
}

// The job's frames up to and including the first of `last_type` (heartbeats and log batches
// skipped); nothing when the link went quiet first.
std::vector<json> job_frames_until(ScriptedStudio& studio, const std::string& last_type) {
  std::vector<json> frames;
  while (auto frame = next_job_frame(studio)) {
    frames.push_back(*frame);
    if ((*frame)["type"] == last_type) return frames;
  }
  return {};
}

}  // namespace

TEST(WorkerSession, HelloAnnouncesProgressCancelAndUploads) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  WorkerHarness worker(dir.path(), registered_config(studio.url()));
  auto hello = studio.next_of_type("hello");
  ASSERT_TRUE(hello);
  const auto features = (*hello)["features"].get<std::vector<std::string>>();
  for (const char* feature : {"limits", "capacity", "progress", "cancel", "uploads"}) {
    EXPECT_THAT(features, ::testing::Contains(feature));
  }
}

// A studio that welcomed "progress" sees the answer grow: generate deltas after the accept and
// before the completeJson, which joined are the result's content exactly.
TEST(WorkerSession, ProgressDeltasComeBeforeCompleteJsonAndSpellTheAnswer) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  sw::engines::EngineOptions engines;
  engines.synthetic_job_duration = 200ms;  // the answer's words spread over it
  WorkerHarness worker(dir.path(), registered_config(studio.url()), sw::testing::fast_timings(),
                       engines);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcomeWithFeatures);
  ASSERT_TRUE(worker.wait_session("connected"));
  studio.send_text(synthetic_llm_offer("job-s"));
  const auto frames = job_frames_until(studio, "completeJson");
  ASSERT_FALSE(frames.empty()) << worker.logs();
  EXPECT_EQ(frames.front()["type"], "accept");
  std::string joined;
  int deltas = 0;
  for (const auto& frame : frames) {
    if (frame["type"] != "jobProgress") continue;
    EXPECT_EQ(frame["jobId"], "job-s");
    EXPECT_EQ(frame["phase"], "generate") << frame.dump();
    ASSERT_TRUE(frame.contains("delta")) << frame.dump();
    joined += frame["delta"].get<std::string>();
    ++deltas;
  }
  EXPECT_GE(deltas, 1);
  const json& complete = frames.back();
  const std::string content = complete["result"]["choices"][0]["message"]["content"];
  EXPECT_EQ(joined, content);
  EXPECT_THAT(content, HasSubstr("[synthetic] reply to prompt #"));
}

// Compatibility: a studio that did not echo "progress" (the reference) never gets jobProgress.
TEST(WorkerSession, WithoutTheProgressFeatureNoProgressFrameIsSent) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  sw::engines::EngineOptions engines;
  engines.synthetic_job_duration = 200ms;
  WorkerHarness worker(dir.path(), registered_config(studio.url()), sw::testing::fast_timings(),
                       engines);
  welcome(studio, worker);
  studio.send_text(synthetic_llm_offer("job-plain"));
  const auto frames = job_frames_until(studio, "completeJson");
  ASSERT_EQ(frames.size(), 2u) << worker.logs();
  EXPECT_EQ(frames[0]["type"], "accept");
  EXPECT_EQ(frames[1]["type"], "completeJson");
}

// A cancel mid-job stops the engine's work (the synthetic job would run for an hour), is answered
// with fail (retryable false), frees the slot at once (a heartbeat no longer names the job, and
// the next offer is accepted); a cancel for a job the worker does not hold changes nothing.
TEST(WorkerSession, ACancelMidJobFailsNotRetryableAndFreesTheSlot) {
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  sw::engines::EngineOptions engines;
  engines.synthetic_job_duration = std::chrono::hours(1);
  WorkerHarness worker(dir.path(), registered_config(studio.url()), sw::testing::fast_timings(),
                       engines);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcomeWithFeatures);
  ASSERT_TRUE(worker.wait_session("connected"));

  studio.send_text(cancel_frame("job-unknown", "not ours"));  // ignored
  studio.send_text(synthetic_llm_offer("job-long"));
  auto accept = next_job_frame(studio);
  ASSERT_TRUE(accept);
  ASSERT_EQ((*accept)["type"], "accept") << accept->dump();
  // The first word is out: the engine is in the middle of the job.
  auto progress = next_job_frame(studio);
  ASSERT_TRUE(progress);
  ASSERT_EQ((*progress)["type"], "jobProgress") << progress->dump();
  studio.send_text(cancel_frame("job-long", "client went away"));
  auto failed = next_job_frame(studio);
  ASSERT_TRUE(failed) << worker.logs();
  ASSERT_EQ((*failed)["type"], "fail") << failed->dump();
  EXPECT_EQ((*failed)["jobId"], "job-long");
  EXPECT_EQ((*failed)["error"], "cancelled by the studio: client went away");
  EXPECT_EQ((*failed)["retryable"], false);
  studio.send_text(R"({"type":"failAck","jobId":"job-long"})");
  // The next heartbeat names no job (sent at once, not at the next beat; not timed here).
  bool freed = false;
  for (int i = 0; i < 20 && !freed; ++i) {
    auto beat = studio.next_of_type("heartbeat");
    ASSERT_TRUE(beat);
    freed = !beat->contains("currentJobId");
  }
  EXPECT_TRUE(freed);
  EXPECT_TRUE(worker.status()["activeJobs"].empty()) << worker.status().dump();

  // The slot is free: the next offer is accepted, and cancelled the same way.
  studio.send_text(synthetic_llm_offer("job-next"));
  auto next = next_job_frame(studio);
  ASSERT_TRUE(next);
  ASSERT_EQ((*next)["type"], "accept") << next->dump();
  studio.send_text(cancel_frame("job-next", "changed my mind"));
  const auto rest = job_frames_until(studio, "fail");
  ASSERT_FALSE(rest.empty()) << worker.logs();
  EXPECT_EQ(rest.back()["jobId"], "job-next");
  EXPECT_EQ(rest.back()["retryable"], false);
  EXPECT_THAT(worker.logs(), HasSubstr("studio cancelled job job-long: client went away"));
}

// The llama engine's path with the fake runner: the model loads ("load" once), the answer streams
// ("generate" deltas that spell the content), then completeJson.
TEST(WorkerSession, ARunnerJobReportsLoadThenDeltasThatSpellTheAnswer) {
  SW_REQUIRE_TEST_MODELS(models);
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto root = dir.path() / "models";
  const auto placed = place_stories_model(models, root);
  ASSERT_TRUE(placed);
  auto config = registered_config(studio.url());
  config.models_root = root.string();
  config.llama_server_path = SW_FAKE_RUNNER_BIN;
  WorkerHarness worker(dir.path(), config);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcomeWithFeatures);
  ASSERT_TRUE(worker.wait_session("connected"));
  studio.send_text(offer_frame("job-run", "stories260K.gguf", chat_task("Once"), *placed));
  const auto frames = job_frames_until(studio, "completeJson");
  ASSERT_FALSE(frames.empty()) << worker.logs();
  studio.send_text(R"({"type":"completeAck","jobId":"job-run"})");
  int loads = 0;
  std::string joined;
  bool delta_before_load = false;
  for (const auto& frame : frames) {
    if (frame["type"] != "jobProgress") continue;
    if (frame["phase"] == "load") ++loads;
    if (frame["phase"] == "generate") {
      joined += frame.value("delta", "");
      delta_before_load = delta_before_load || loads == 0;
    }
  }
  EXPECT_EQ(loads, 1);
  EXPECT_FALSE(delta_before_load);
  EXPECT_EQ(joined, frames.back()["result"]["choices"][0]["message"]["content"]);
  EXPECT_THAT(joined, HasSubstr("request"));
}

// A cancel while the runner's stream is open ends the request at once (the stalled stream would
// hold it for ten minutes), and the runner stays for the next job.
TEST(WorkerSession, ACancelEndsARunnerRequestThatWouldStallForMinutes) {
  SW_REQUIRE_TEST_MODELS(models);
  ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto root = dir.path() / "models";
  const auto placed = place_stories_model(models, root);
  ASSERT_TRUE(placed);
  const auto wrapper = dir.path() / "llama-server-stalls";
  std::ofstream(wrapper) << "#!/bin/sh\nexec '" << SW_FAKE_RUNNER_BIN
                         << "' \"$@\" --stall-after-tokens 2\n";
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  auto config = registered_config(studio.url());
  config.models_root = root.string();
  config.llama_server_path = wrapper.string();
  config.runner_inference_stall_secs = 600;  // only the cancel can end the request
  WorkerHarness worker(dir.path(), config);
  ASSERT_TRUE(studio.next_of_type("hello"));
  studio.send_text(kWelcomeWithFeatures);
  ASSERT_TRUE(worker.wait_session("connected"));
  studio.send_text(offer_frame("job-stalls", "stories260K.gguf", chat_task("Once"), *placed));
  // Wait for the answer's first words: the request is open and the runner has gone quiet.
  bool generating = false;
  while (!generating) {
    auto frame = next_job_frame(studio);
    ASSERT_TRUE(frame) << worker.logs();
    ASSERT_NE((*frame)["type"], "fail") << frame->dump();
    generating = (*frame)["type"] == "jobProgress" && (*frame)["phase"] == "generate";
  }
  studio.send_text(cancel_frame("job-stalls", "client went away"));
  auto failed = job_frames_until(studio, "fail");
  ASSERT_FALSE(failed.empty()) << worker.logs();
  EXPECT_EQ(failed.back()["error"], "cancelled by the studio: client went away");
  EXPECT_EQ(failed.back()["retryable"], false);
  // The runner stays resident for the next job: a cancel is not a runner failure.
  EXPECT_EQ(worker.status()["runners"].size(), 1u) << worker.status().dump();
}
