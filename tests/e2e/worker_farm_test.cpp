// End to end: the `studio-server` and `studio-worker` binaries on loopback, driven only through
// their public surfaces (the client API, the worker's local API, signals). A worker registers, is
// approved, runs a job of every kind and the results decode; a paused worker's offers go to
// another; two workers share a queue; a worker killed mid-job loses nothing; a restarted studio
// gets its worker back.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/sha256.h"
#include "engines/runner/child_process.h"
#include "support/farm.h"
#include "support/hold_latch.h"
#include "support/http_test_server.h"
#include "support/media_decoders.h"
#include "support/protocol_client.h"
#include "support/temp_dir.h"
#include "support/test_models.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using sw::testing::http_request;
using sw::testing::HttpReply;

using namespace sw::testing::farm;

// Whether the worker's status names `job` as its job in flight (currentJobId is null when idle).
bool runs(const Worker& worker, const std::string& job) {
  const auto status = worker.status();
  const auto current = status.is_object() ? status.find("currentJobId") : status.end();
  return current != status.end() && current->is_string() && current->get<std::string>() == job;
}

TEST(WorkerFarm, AWorkerIsApprovedAndRunsAJobOfEveryKindWhoseResultsDecode) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker worker(dir.path() / "w1", studio);
  EXPECT_TRUE(worker.wait_session("waiting_for_approval"));
  const std::string worker_id = studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  EXPECT_EQ(worker.status().value("workerId", ""), worker_id);
  // The token is on disk in the daemon's state file (not the operator's config.toml), 0600, and
  // the daemon never printed it.
  const auto state = worker.config().parent_path() / "state.toml";
  const auto perms = std::filesystem::status(state).permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(read_file(worker.config()).find("auth_token"), std::string::npos);
  const auto token_line = read_file(state).find("auth_token = '");
  ASSERT_NE(token_line, std::string::npos);
  const std::string token = read_file(state).substr(token_line + 14, 64);
  EXPECT_EQ(worker.log().find(token), std::string::npos);

  const auto image = studio.submit("image", {{"prompt", "a fox"}, {"width", 96}, {"height", 64}});
  const auto llm =
      studio.submit("llm", {{"messages", {{{"role", "user"}, {"content", "the full prompt"}}}}});
  const auto tts = studio.submit("audio_tts", {{"text", "hello from the farm"}});
  const auto stt = studio.submit("audio_stt", {{"inputUrl", "https://example.com/a.wav"}});
  const auto video = studio.submit(
      "video", {{"prompt", "a dragon"}, {"seconds", 1}, {"width", 64}, {"height", 64}});
  for (const auto& id : {image, llm, tts, stt, video}) {
    ASSERT_TRUE(studio.wait_status(id, "done")) << studio.job(id).dump() << worker.log();
    EXPECT_EQ(studio.job(id).value("workerId", ""), worker_id);
  }
  auto png_or_webp = studio.api("GET", "/api/v1/jobs/" + image + "/result");
  ASSERT_EQ(png_or_webp.content_type, "image/webp");
  auto decoded = sw::testing::decode_webp(bytes_of(png_or_webp.body));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 96u);
  EXPECT_EQ(decoded->height, 64u);
  auto wav = studio.api("GET", "/api/v1/jobs/" + tts + "/result");
  auto audio = sw::testing::decode_wav(bytes_of(wav.body));
  ASSERT_TRUE(audio) << audio.error().message;
  EXPECT_GT(audio->seconds(), 0.2);
  auto chat = json::parse(studio.api("GET", "/api/v1/jobs/" + llm + "/result").body);
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(studio.job(llm).value("prompt", ""), "the full prompt");
  auto transcript = json::parse(studio.api("GET", "/api/v1/jobs/" + stt + "/result").body);
  EXPECT_TRUE(transcript.contains("text") && transcript.contains("segments"));
  auto anim = studio.api("GET", "/api/v1/jobs/" + video + "/result");
  auto frames = sw::testing::decode_animated_webp(bytes_of(anim.body));
  ASSERT_TRUE(frames) << frames.error().message;
  EXPECT_GT(frames->frames.size(), 1u);

  // The worker shows what it did, and SIGTERM ends it cleanly.
  EXPECT_EQ(worker.status()["recentJobs"].size(), 5u);
  EXPECT_EQ(worker.terminate(), 0);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "w1" / "local-api.json"));
}

// The shared libraries of process `pid` (its /proc/<pid>/maps), e.g. "libcurl.so.4.8.0".
std::set<std::string> mapped_libraries(pid_t pid) {
  std::set<std::string> names;
  std::istringstream maps(read_file("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.rfind('/');
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos) {
      names.insert(line.substr(slash + 1));
    }
  }
  return names;
}

bool maps_one_of(const std::set<std::string>& libraries, const std::string& stem) {
  return std::any_of(libraries.begin(), libraries.end(),
                     [&](const std::string& name) { return name.starts_with(stem + "."); });
}

// An idle worker carries only what it uses (issue 19: its resident memory): the libraries of
// downloads (libcurl and its TLS/Kerberos/LDAP tree), of codecs and of speech are opened when a
// job first needs them. The worker is started again once approved, as its service would start
// it: while it waits for approval it polls the studio over libcurl, which then stays loaded.
TEST(WorkerFarm, AnIdleWorkerHasNotLoadedDownloadCodecOrSpeechLibrariesUntilAJobNeedsThem) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker worker(dir.path() / "w1", studio);
  EXPECT_TRUE(worker.wait_session("waiting_for_approval"));
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  ASSERT_EQ(worker.terminate(), 0);
  worker.start();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto idle = mapped_libraries(worker.pid());
  ASSERT_TRUE(maps_one_of(idle, "libc")) << "the maps are readable";
  for (const std::string stem : {"libcurl", "libgnutls", "libpng16", "libwebp", "libwebpmux",
                                 "libgif", "libsndfile", "libsoxr", "libespeak-ng"}) {
    EXPECT_FALSE(maps_one_of(idle, stem)) << stem << " is loaded by an idle worker";
  }
  const auto image = studio.submit("image", {{"prompt", "a fox"}, {"width", 32}, {"height", 32}});
  ASSERT_TRUE(studio.wait_status(image, "done")) << studio.job(image).dump() << worker.log();
  const auto busy = mapped_libraries(worker.pid());
  EXPECT_TRUE(maps_one_of(busy, "libwebp")) << "the image was encoded as WebP";
  EXPECT_FALSE(maps_one_of(busy, "libsoxr")) << "nothing was resampled";
}

TEST(WorkerFarm, APausedWorkerRejectsOffersAndAnotherWorkerTakesThem) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker first(dir.path() / "w1", studio);
  studio.approve_next();
  ASSERT_TRUE(first.wait_session("connected"));
  ASSERT_EQ(first.api("POST", "/daemon/pause").body, R"({"paused":true})");
  // The paused worker is the earliest connected, so it is offered the job first.
  const auto job = studio.submit("llm", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  ASSERT_TRUE(eventually([&] {
    return first.log().find("rejected " + job + ": worker paused by operator") !=
           std::string::npos;
  })) << first.log();
  Worker second(dir.path() / "w2", studio);
  const std::string second_id = studio.approve_next();
  ASSERT_TRUE(studio.wait_status(job, "done")) << studio.job(job).dump();
  EXPECT_EQ(studio.job(job).value("workerId", ""), second_id);
  EXPECT_EQ(studio.job(job).value("attempts", -1), 1) << "one run: a paused reject is none";
}

TEST(WorkerFarm, TwoWorkersShareOneQueue) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker first(dir.path() / "w1", studio, 100);
  const std::string first_id = studio.approve_next();
  Worker second(dir.path() / "w2", studio, 100);
  const std::string second_id = studio.approve_next();
  ASSERT_TRUE(first.wait_session("connected"));
  ASSERT_TRUE(second.wait_session("connected"));
  std::vector<std::string> jobs;
  for (int i = 0; i < 12; ++i) {
    jobs.push_back(studio.submit("llm", {{"messages", {{{"role", "user"}, {"content", "q"}}}}}));
  }
  std::map<std::string, int> per_worker;
  for (const auto& id : jobs) {
    ASSERT_TRUE(studio.wait_status(id, "done"));
    ++per_worker[studio.job(id).value("workerId", "")];
  }
  EXPECT_GT(per_worker[first_id], 0);
  EXPECT_GT(per_worker[second_id], 0);
  EXPECT_EQ(per_worker[first_id] + per_worker[second_id], 12);
}

TEST(WorkerFarm, AWorkerKilledMidJobLosesNothingAnotherWorkerFinishesIt) {
  sw::testing::TempDir dir;
  // No claim grace (0: requeue at once): a grace shorter than the workers' heartbeat is refused.
  Studio studio(dir.path() / "studio", 0, {"--claim-grace-ms", "0"});
  studio.add_models();
  // The job is held in flight on w1 (never released: w1 is killed holding it).
  Worker slow(dir.path() / "w1", studio.url(), 0, "",
              {"--synthetic-hold-file", (dir.path() / "never").string()});
  const std::string slow_id = studio.approve_next();
  ASSERT_TRUE(slow.wait_session("connected"));
  const auto job = studio.submit("image", {{"prompt", "a slow fox"}, {"width", 64}, {"height", 64}});
  ASSERT_TRUE(eventually([&] {
    const auto current = slow.status()["currentJobId"];
    return current.is_string() && current == job;
  }));
  EXPECT_EQ(studio.job(job).value("status", ""), "claimed");
  slow.kill9();
  Worker rescuer(dir.path() / "w2", studio);
  const std::string rescuer_id = studio.approve_next();
  ASSERT_TRUE(studio.wait_status(job, "done")) << studio.job(job).dump();
  EXPECT_EQ(studio.job(job).value("workerId", ""), rescuer_id);
  EXPECT_EQ(studio.job(job).value("attempts", 0), 2) << "runs started: the lost one and the rescue";
  EXPECT_NE(rescuer_id, slow_id);
}

TEST(WorkerFarm, AWorkerRestartedAfterACrashDeliversTheResultItHadFinished) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  // The job is held in flight until the studio is gone: no timing window.
  sw::testing::HoldLatch latch(dir.path() / "release");
  Worker worker(dir.path() / "w1", studio.url(), 0, "",
                {"--synthetic-hold-file", latch.path().string()});
  const std::string worker_id = studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected"));
  const auto job = studio.submit("image", {{"prompt", "kept safe"}, {"width", 64}, {"height", 48}});
  ASSERT_TRUE(eventually([&] {
    const auto current = worker.status()["currentJobId"];
    return current.is_string() && current == job;
  }));
  // The studio goes away while the worker runs; the worker finishes into its outbox…
  const auto port = studio.port();
  EXPECT_EQ(studio.terminate(), 0);
  ASSERT_TRUE(worker.wait_session("reconnecting")) << worker.log();
  latch.release();
  ASSERT_TRUE(eventually([&] { return worker.status()["outbox"].value("entries", 0) == 1; }))
      << worker.status().dump();
  // …and is killed before it could deliver. Both come back.
  worker.kill9();
  studio.start(port);
  worker.start();
  ASSERT_TRUE(studio.wait_status(job, "done", 60s)) << studio.job(job).dump() << worker.log();
  EXPECT_EQ(studio.job(job).value("workerId", ""), worker_id);
  EXPECT_EQ(studio.job(job).value("attempts", -1), 1) << "one run: the claim survived the restarts";
  ASSERT_TRUE(eventually([&] { return worker.status()["outbox"].value("entries", -1) == 0; }));
  auto image = studio.api("GET", "/api/v1/jobs/" + job + "/result");
  auto decoded = sw::testing::decode_webp(bytes_of(image.body));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 64u);
}

TEST(WorkerFarm, AfterAStudioRestartTheWorkerReconnectsAndCarriesOn) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker worker(dir.path() / "w1", studio);
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected"));
  const auto port = studio.port();
  EXPECT_EQ(studio.terminate(), 0);
  ASSERT_TRUE(worker.wait_session("reconnecting"));
  studio.start(port);
  ASSERT_TRUE(worker.wait_session("connected", 60s)) << worker.log();
  const auto job = studio.submit("llm", {{"messages", {{{"role", "user"}, {"content", "again"}}}}});
  ASSERT_TRUE(studio.wait_status(job, "done")) << worker.log();
}

// Issue 16: `--max-json-mib` above 16 is honoured over the WebSocket too. The worker echoes the
// prompt in its completeJson, so a 20 MiB prompt makes a 20 MiB message: the studio reads it (its
// message cap follows the JSON limit) instead of dropping every session it arrives on.
TEST(WorkerFarm, AJsonLimitAbove16MibIsHonouredForA20MibJsonResultOverTheWebSocket) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio", 0, {"--max-json-mib", "24"});
  studio.add_models();
  const std::string prompt(20u << 20, 'p');
  const json body = {
      {"model", "synth-llm"},
      {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", prompt}}}}}}};
  // A 20 MiB job takes the studio a while to validate and store: a longer answer deadline. It is
  // submitted before the worker connects: parsing 20 MiB holds the studio's loop (tens of seconds
  // in an unoptimised sanitizer build on a busy machine), which would starve a session's
  // heartbeats past the worker's 20 s read deadline; what is under test is the result's way back.
  const auto reply = http_request(studio.port(), "POST", "/api/v1/jobs", body.dump(), kAdmin,
                                  "application/json", 120s);
  ASSERT_EQ(reply.status, 201) << reply.body.substr(0, 300);
  const std::string job = json::parse(reply.body, nullptr, false).value("id", "");
  ASSERT_FALSE(job.empty());
  Worker worker(dir.path() / "w1", studio);
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected", 60s)) << worker.log();
  // The job's view holds the task, prompt and result (60 MiB): look at it now and then only.
  json view;
  const bool settled = eventually(
      [&] {
        view = json::parse(http_request(studio.port(), "GET", "/api/v1/jobs/" + job, "", kAdmin,
                                        "application/json", 60s)
                               .body,
                           nullptr, false);
        const std::string status = view.is_object() ? view.value("status", "") : "";
        if (status == "done" || status == "failed") return true;
        std::this_thread::sleep_for(1s);
        return false;
      },
      120s);
  ASSERT_TRUE(settled) << worker.log();
  ASSERT_EQ(view.value("status", ""), "done") << view.value("error", "") << "\n" << worker.log();
  EXPECT_EQ(view.value("attempts", -1), 1);
  EXPECT_EQ(view.value("prompt", "").size(), prompt.size());
  EXPECT_EQ(view["result"]["json"]["object"], "chat.completion");
  EXPECT_EQ(worker.log().find("reconnect attempt"), std::string::npos) << "no session was lost\n"
                                                                       << worker.log();
}

// `--kind-run-limit KIND=SECONDS`: a job of that kind claimed for longer with no result goes back
// to the queue with the limit named; a job of another kind keeps the
// default limit (an hour here) and stays with its worker. Both jobs are held in flight by the
// test; the llm job started first, so a limit applied to every kind would requeue it first.
TEST(WorkerFarm, AJobPastItsKindsRunLimitIsRequeuedAndOtherKindsKeepTheDefault) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio", 0, {"--run-limit-s", "3600", "--kind-run-limit", "image=1"});
  studio.add_models();
  sw::testing::HoldLatch latch(dir.path() / "release");
  const std::vector<std::string> held = {"--synthetic-hold-file", latch.path().string()};
  Worker first(dir.path() / "w1", studio.url(), 0, "", held);
  const std::string first_id = studio.approve_next();
  ASSERT_TRUE(first.wait_session("connected")) << first.log();
  const auto llm = studio.submit("llm", {{"messages", {{{"role", "user"}, {"content", "slow"}}}}});
  ASSERT_TRUE(eventually([&] { return runs(first, llm); }));
  Worker second(dir.path() / "w2", studio.url(), 0, "", held);
  const std::string second_id = studio.approve_next();
  ASSERT_TRUE(second.wait_session("connected")) << second.log();
  const auto image = studio.submit("image", {{"prompt", "slow"}, {"width", 64}, {"height", 64}});
  ASSERT_TRUE(eventually([&] { return runs(second, image); }));

  ASSERT_TRUE(eventually([&] {
    const auto lapsed = studio.job(image).value("attemptHistory", json::array());
    return !lapsed.empty() && lapsed.at(0).value("outcome", "") == "requeued";
  })) << studio.job(image).dump();
  EXPECT_EQ(studio.job(image).value("attempts", -1), 1) << "one run started, and it lapsed";
  // The attempt that lapsed names the kind's limit (the job's `error` may by now say why a later
  // offer was refused: the held worker is still busy with it).
  const auto history = studio.job(image).at("attemptHistory");
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.at(0).value("outcome", ""), "requeued") << history.dump();
  EXPECT_EQ(history.at(0).value("reason", ""), "no result within the run limit of 1 s")
      << history.dump();
  const auto kept = studio.job(llm);
  EXPECT_EQ(kept.value("status", ""), "claimed") << kept.dump();
  EXPECT_EQ(kept.value("attempts", -1), 1);
  EXPECT_EQ(kept.value("workerId", ""), first_id);

  // Released, both finish; the image's late result is still taken.
  latch.release();
  ASSERT_TRUE(studio.wait_status(llm, "done")) << studio.job(llm).dump();
  ASSERT_TRUE(studio.wait_status(image, "done")) << studio.job(image).dump();
  EXPECT_EQ(studio.job(llm).value("attempts", -1), 1);
}

// SIGTERM while a job runs: the worker gives the job its grace (5 s) to finish and deliver, and
// exits 0. The job is held until the worker has logged the signal, then released: it can only
// reach the studio if the daemon kept its session for the grace.
TEST(WorkerFarm, OnSigtermARunningJobFinishesAndIsDeliveredWithinTheGraceThenExitZero) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  sw::testing::HoldLatch latch(dir.path() / "release");
  Worker worker(dir.path() / "w1", studio.url(), 0, "",
                {"--synthetic-hold-file", latch.path().string()});
  const std::string worker_id = studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto job = studio.submit("llm", {{"messages", {{{"role", "user"}, {"content", "last"}}}}});
  ASSERT_TRUE(eventually([&] { return runs(worker, job); }));

  worker.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return worker.log().find("daemon.signal") != std::string::npos; }))
      << worker.log();
  latch.release();
  const auto code = worker.wait_exit(30s);
  ASSERT_TRUE(code) << "the daemon did not exit after its job ended\n" << worker.log();
  EXPECT_EQ(*code, 0) << worker.log();
  const auto view = studio.job(job);
  EXPECT_EQ(view.value("status", ""), "done") << view.dump() << worker.log();
  EXPECT_EQ(view.value("workerId", ""), worker_id);
  EXPECT_EQ(worker.log().find("daemon.job_abandoned_at_shutdown"), std::string::npos)
      << worker.log();
}

// SIGTERM while a job runs that cannot finish within the grace: the worker hands the job back
// (`fail`, retryable, "worker stopping") before it closes, and the studio offers it to the other
// worker at once. The studio's claim grace is ten minutes: without the hand-back the job would
// sit claimed by the stopped worker for all of it.
TEST(WorkerFarm, AWorkerStoppedMidJobHandsItBackAndAnotherWorkerGetsItAtOnce) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio", 0, {"--claim-grace-ms", "600000"});
  studio.add_models();
  sw::testing::HoldLatch latch(dir.path() / "release");
  Worker stopping(dir.path() / "w1", studio.url(), 0, "",
                  {"--synthetic-hold-file", latch.path().string()});
  const std::string stopping_id = studio.approve_next();
  ASSERT_TRUE(stopping.wait_session("connected")) << stopping.log();
  const auto job = studio.submit("image", {{"prompt", "handed on"}, {"width", 64}, {"height", 64}});
  ASSERT_TRUE(eventually([&] { return runs(stopping, job); }));
  Worker rescuer(dir.path() / "w2", studio);
  const std::string rescuer_id = studio.approve_next();
  ASSERT_TRUE(rescuer.wait_session("connected")) << rescuer.log();

  stopping.signal(SIGTERM);
  ASSERT_TRUE(studio.wait_status(job, "done", 60s)) << studio.job(job).dump() << stopping.log();
  const auto view = studio.job(job);
  EXPECT_EQ(view.value("workerId", ""), rescuer_id);
  ASSERT_EQ(view["attemptHistory"].size(), 2u) << view.dump();
  const auto& first = view["attemptHistory"][0];
  EXPECT_EQ(first.value("workerId", ""), stopping_id);
  EXPECT_EQ(first.value("reason", ""), "worker stopping") << view.dump();
  EXPECT_EQ(view["attemptHistory"][1].value("workerId", ""), rescuer_id);

  latch.release();  // the engine's thread ends; the daemon exits
  const auto code = stopping.wait_exit(30s);
  ASSERT_TRUE(code) << stopping.log();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(stopping.log(), ::testing::HasSubstr("daemon.job_handed_back"));
  EXPECT_EQ(stopping.log().find("daemon.job_abandoned_at_shutdown"), std::string::npos);
}

// A worker waiting for approval at its default pace: its poll is held open by studio-server until
// the operator decides, so the approval reaches it at once (the reference's 30 s poll would leave
// it waiting far longer than the wait below).
TEST(WorkerFarm, ApprovalReachesAWorkerWaitingAtTheDefaultPollPaceAtOnce) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker worker(dir.path() / "w1", studio.url(), 0, "", {"--registration-poll-ms", "1000"});
  std::string request_id;
  ASSERT_TRUE(eventually([&] {
    const auto reply =
        json::parse(studio.api("GET", "/api/v1/workers/pending").body, nullptr, false);
    if (!reply.is_object() || reply["pending"].size() != 1) return false;
    request_id = reply["pending"][0].value("requestId", "");
    return reply["pending"][0].value("waiting", false);
  })) << "the worker's poll is not held open by the studio\n"
      << worker.log();
  const auto approved = studio.api("POST", "/api/v1/workers/pending/" + request_id + "/approve");
  ASSERT_EQ(approved.status, 200) << approved.body;
  ASSERT_TRUE(worker.wait_session("connected", 10s)) << worker.log();
}

// A stop does not wait for the studio to answer the held approval poll (up to 25 s): the poll in
// flight is cancelled and the daemon exits 0 at once, also when two pending workers stop together.
// The 10 s bound is only a hang guard, well below the 25 s the studio would hold the poll.
TEST(WorkerFarm, ASigtermWhileWaitingForApprovalEndsTheHeldPollAndExitsZeroAtOnce) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker first(dir.path() / "w1", studio);
  Worker second(dir.path() / "w2", studio);
  ASSERT_TRUE(eventually([&] {
    const auto reply =
        json::parse(studio.api("GET", "/api/v1/workers/pending").body, nullptr, false);
    if (!reply.is_object() || reply["pending"].size() != 2) return false;
    return reply["pending"][0].value("waiting", false) &&
           reply["pending"][1].value("waiting", false);
  })) << "the workers' polls are not held open by the studio\n"
      << first.log() << second.log();
  first.signal(SIGTERM);
  second.signal(SIGTERM);
  EXPECT_EQ(first.wait_exit(10s), std::optional<int>(0))
      << "a pending worker did not exit promptly\n"
      << first.log();
  EXPECT_EQ(second.wait_exit(10s), std::optional<int>(0))
      << "a pending worker did not exit promptly\n"
      << second.log();
  EXPECT_THAT(first.log(), ::testing::HasSubstr("daemon.stopped"));
}

std::string worker_cli(const Worker& worker, const std::filesystem::path& log,
                       std::vector<std::string> args, int* exit_code = nullptr) {
  std::vector<std::string> argv = {SW_STUDIO_WORKER_BIN, "--config", worker.config().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto result = run_command(argv, log);
  if (exit_code != nullptr) *exit_code = result.exit_code;
  return result.output;
}

// `set-threshold` while the daemon runs goes through its local API: the daemon uses the new value
// at once and keeps it when it later saves its own state (here: the approval).
TEST(WorkerFarm, SetThresholdWhileTheDaemonRunsIsAppliedByTheDaemonAndKept) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker worker(dir.path() / "w1", studio);
  ASSERT_TRUE(worker.wait_session("waiting_for_approval")) << worker.log();
  int code = -1;
  const auto out = worker_cli(worker, dir.path() / "cli.log", {"set-threshold", "3.5"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("vram_threshold_gb set to 3.5 by the running daemon"));
  EXPECT_EQ(worker.status()["config"].value("vramThresholdGb", 0.0), 3.5);
  const auto set =
      worker_cli(worker, dir.path() / "cli.log", {"config", "set", "auto_start", "false"}, &code);
  ASSERT_EQ(code, 0) << set;
  EXPECT_THAT(set, ::testing::HasSubstr("auto_start set to false by the running daemon"));
  EXPECT_FALSE(worker.status()["config"].value("autoStart", true));
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  EXPECT_EQ(worker.status()["config"].value("vramThresholdGb", 0.0), 3.5);
  EXPECT_THAT(read_file(worker.config()), ::testing::HasSubstr("vram_threshold_gb = 3.5"));
}

// `pause --unload`, `status` and `resume` (issue 19) go through the running daemon's local API:
// the pause and the unloading show in `status` and in /daemon/status, and resume ends both.
TEST(WorkerFarm, PauseUnloadAndResumeWhileTheDaemonRunsShowInStatus) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker worker(dir.path() / "w1", studio);
  ASSERT_TRUE(worker.wait_session("waiting_for_approval")) << worker.log();
  const auto log = dir.path() / "cli.log";
  int code = -1;
  const auto paused = worker_cli(worker, log, {"pause", "--unload"}, &code);
  ASSERT_EQ(code, 0) << paused;
  EXPECT_THAT(paused, ::testing::HasSubstr("refuses offers; 0 idle runner(s) stopped"));
  EXPECT_TRUE(worker.status().value("paused", false));
  EXPECT_TRUE(worker.status().value("runnersUnloaded", false));
  const auto status = worker_cli(worker, log, {"status"}, &code);
  ASSERT_EQ(code, 0) << status;
  EXPECT_THAT(status, ::testing::HasSubstr("paused: true (runners unloaded)\n"));
  EXPECT_THAT(status, ::testing::HasSubstr("runners: none\n"));
  const auto resumed = worker_cli(worker, log, {"resume"}, &code);
  ASSERT_EQ(code, 0) << resumed;
  EXPECT_THAT(resumed, ::testing::HasSubstr("takes offers again"));
  EXPECT_THAT(worker_cli(worker, log, {"status"}, &code), ::testing::HasSubstr("paused: false\n"));
  EXPECT_FALSE(worker.status().value("runnersUnloaded", true));
}

// `register --reset` while the daemon runs: the daemon drops its session and identity and asks
// the studio for approval again at once; the new approval gives it a new worker id.
TEST(WorkerFarm, RegisterResetWhileTheDaemonRunsMakesItAskForApprovalAgain) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker worker(dir.path() / "w1", studio);
  const std::string first_id = studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  int code = -1;
  const auto out = worker_cli(worker, dir.path() / "cli.log", {"register", "--reset"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("asks the studio for approval again now"));
  ASSERT_TRUE(worker.wait_session("waiting_for_approval")) << worker.log();
  const std::string second_id = studio.approve_next();
  EXPECT_NE(second_id, first_id);
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  EXPECT_EQ(worker.status().value("workerId", ""), second_id);
}

// `status` shows the live daemon while it runs (session, studio, busy, the job it runs, the
// outbox), and the file, saying the daemon is not running, once it has stopped.
TEST(WorkerFarm, StatusShowsTheLiveDaemonWhileItRunsAndTheFileOtherwise) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  sw::testing::HoldLatch latch(dir.path() / "release");
  Worker worker(dir.path() / "w1", studio.url(), 0, "",
                {"--synthetic-hold-file", latch.path().string()});
  const std::string worker_id = studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto job = studio.submit("image", {{"prompt", "shown"}, {"width", 64}, {"height", 64}});
  ASSERT_TRUE(eventually([&] { return runs(worker, job); }));
  int code = -1;
  const auto live = worker_cli(worker, dir.path() / "status.log", {"status"}, &code);
  EXPECT_EQ(code, 0) << live;
  EXPECT_THAT(live, ::testing::HasSubstr("daemon: running (pid "));
  EXPECT_THAT(live, ::testing::HasSubstr("studio: " + studio.url()));
  EXPECT_THAT(live, ::testing::HasSubstr("session: connected\n"));
  EXPECT_THAT(live, ::testing::HasSubstr("registration: approved as " + worker_id));
  EXPECT_THAT(live, ::testing::HasSubstr("paused: false"));
  EXPECT_THAT(live, ::testing::HasSubstr("busy: true"));
  EXPECT_THAT(live, ::testing::HasSubstr("current job: " + job + " (image, model synth-image)"));
  EXPECT_THAT(live, ::testing::HasSubstr("outbox: 0 results, 0 bytes awaiting delivery"));
  latch.release();
  ASSERT_TRUE(studio.wait_status(job, "done"));
  EXPECT_EQ(worker.terminate(), 0);
  const auto stopped = worker_cli(worker, dir.path() / "status.log", {"status"}, &code);
  EXPECT_EQ(code, 0) << stopped;
  EXPECT_THAT(stopped, ::testing::HasSubstr("daemon: not running"));
  EXPECT_THAT(stopped, ::testing::HasSubstr("registration: approved as " + worker_id));
}

// One daemon per config directory: a second `run` on the same config finds the lock taken, says
// so and exits at once with 14 (ExitCode::AlreadyRunning; the reference exits 0, §5.3, which a
// supervisor cannot tell from a clean stop: issue 17), and the first daemon keeps running with
// its local API and discovery file untouched.
TEST(WorkerFarm, ASecondDaemonOnTheSameConfigDirectoryRefusesAndTheFirstRunsOn) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  Worker first(dir.path() / "w1", studio);
  ASSERT_TRUE(first.wait_session("waiting_for_approval")) << first.log();
  const auto discovery = read_file(dir.path() / "w1" / "local-api.json");

  const auto log = dir.path() / "second.log";
  pid_t second = spawn(
      {SW_STUDIO_WORKER_BIN, "--config", first.config().string(), "run", "--local-api-port", "0"},
      log);
  int status = 0;
  const bool exited = eventually([&] { return ::waitpid(second, &status, WNOHANG) == second; });
  if (!exited) stop_process(second, SIGKILL);
  ASSERT_TRUE(exited) << "a second daemon runs on the same config directory\n" << read_file(log);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 14);
  EXPECT_THAT(read_file(log), ::testing::HasSubstr("another studio-worker daemon runs for " +
                                                   first.config().string()));
  EXPECT_EQ(read_file(dir.path() / "w1" / "local-api.json"), discovery);
  EXPECT_EQ(first.session_state(), "waiting_for_approval") << "the first daemon still answers";
  EXPECT_EQ(first.terminate(), 0);
}

}  // namespace

namespace {

// A llama-cpp job end to end: the studio offers a llama-cpp job whose GGUF is served by a loopback
// HTTP server; the worker downloads and verifies it, starts `llama` as its runner, answers, and
// keeps the runner for the next job. `first_chat` receives the first job's chat completion.
void run_two_llama_jobs(const std::filesystem::path& llama, const std::filesystem::path& models,
                        json& first_chat) {
  const std::string gguf = read_file(models / "stories260K.gguf");
  sw::testing::HttpTestServer files;
  files.set_route("/stories260K.gguf",
                  sw::testing::serving(std::make_shared<const std::string>(gguf)));

  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  const json model = {
      {"id", "stories"},
      {"kind", "llm"},
      {"vramGbEstimate", 0.1},
      {"source",
       {{"engine", "llama-cpp"},
        {"files",
         {{{"role", "model"},
           {"url", files.url("/stories260K.gguf")},
           {"filename", "stories260K.gguf"},
           {"approxBytes", gguf.size()},
           {"sha256", sw::sha256_hex(gguf)}}}},
        {"cliDefaults",
         {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}, {"contextSize", 512}}}}}};
  ASSERT_EQ(studio.api("POST", "/api/v1/models", model.dump()).status, 201);
  const auto root = dir.path() / "models";
  Worker worker(
      dir.path() / "w1", studio, 0,
      "models_root = '" + root.string() + "'\nllama_server_path = '" + llama.string() + "'\n");
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();

  auto submit = [&](const std::string& text) {
    const json body = {{"model", "stories"},
                       {"task",
                        {{"kind", "llm"},
                         {"messages", {{{"role", "user"}, {"content", text}}}},
                         {"maxTokens", 16},
                         {"temperature", 0}}}};
    const auto reply = studio.api("POST", "/api/v1/jobs", body.dump());
    EXPECT_EQ(reply.status, 201) << reply.body;
    return json::parse(reply.body, nullptr, false).value("id", "");
  };
  const auto first = submit("Once upon a time");
  ASSERT_TRUE(studio.wait_status(first, "done", 60s)) << studio.job(first).dump() << worker.log();
  first_chat = json::parse(studio.api("GET", "/api/v1/jobs/" + first + "/result").body);
  const json& chat = first_chat;
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["model"], "stories");
  EXPECT_GT(chat["usage"]["completion_tokens"].get<int>(), 0);
  EXPECT_FALSE(chat["choices"][0]["message"]["content"].get<std::string>().empty());
  EXPECT_EQ(read_file(root / "by-model" / "stories" / "stories260K.gguf"), gguf)
      << "downloaded and kept";

  const auto second = submit("The dog");
  ASSERT_TRUE(studio.wait_status(second, "done", 60s)) << worker.log();
  EXPECT_EQ(files.request_count("/stories260K.gguf"), 1u) << "the file is fetched once";
  const std::string log = worker.log();
  std::size_t starts = 0;
  for (auto at = log.find("runner.ready"); at != std::string::npos; at = log.find("runner.ready", at + 1)) {
    ++starts;
  }
  EXPECT_EQ(starts, 1u) << "the second job reuses the resident runner";
  EXPECT_EQ(worker.terminate(), 0);
}

}  // namespace

// With the real llama-server: a real generation.
TEST(WorkerFarm, ALlamaCppJobDownloadsItsModelStartsTheRunnerAndCompletes) {
  auto llama =
      sw::engines::locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  if (!llama) {
    GTEST_SKIP() << "SKIPPED: llama-server not found (set STUDIO_WORKER_LLAMA_SERVER; "
                    "scripts/setup-engines.sh provisions one)";
  }
  SW_REQUIRE_TEST_MODELS(models);
  json chat;
  run_two_llama_jobs(*llama, models, chat);
}

// The same path (offer, download, sha256, runner start and reuse, result delivery) with the fake
// runner as llama-server, so that it runs on every machine: only the text differs, and the fake's
// text proves that the runner the worker started answered.
TEST(WorkerFarm, LlamaCppJobsRunEndToEndAgainstTheFakeRunner) {
  SW_REQUIRE_TEST_MODELS(models);
  json chat;
  run_two_llama_jobs(SW_FAKE_RUNNER_BIN, models, chat);
  ASSERT_TRUE(chat.is_object()) << "no result was fetched";
  ASSERT_TRUE(chat["choices"][0]["message"]["content"].is_string()) << chat.dump();
  EXPECT_THAT(chat["choices"][0]["message"]["content"].get<std::string>(),
              ::testing::MatchesRegex("pid [0-9]+ request 1"));
}
