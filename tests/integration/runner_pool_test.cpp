// Runner lifecycle against a test program that plays a runner's part (tests/fakes/fake_runner):
// start and /health wait, residency, restart after a kill, a failed start, SIGTERM → SIGKILL,
// idle unload, memory admission, progress deadlines (a runner that stops talking while loading,
// mid-stream, or wedged in /inference while /health says ok; one that is slow but moving is left
// alone). Real sockets and real child processes; stall times are short, nothing asserts timing.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engines/engine.h"
#include "engines/llama/sse_splitter.h"
#include "engines/runner/child_process.h"
#include "engines/runner/runner_pool.h"
#include "support/temp_dir.h"
#include "transfer/http_client.h"

namespace sw::engines {
namespace {

RunnerLaunch fake_launch(std::string key, std::vector<std::string> extra = {}) {
  RunnerLaunch launch;
  launch.key = std::move(key);
  launch.model = "fake-model";
  launch.executable = SW_FAKE_RUNNER_BIN;
  launch.args = {"--port", "{port}"};
  launch.args.insert(launch.args.end(), extra.begin(), extra.end());
  launch.memory_gib = 1.0;
  return launch;
}

RunnerPoolOptions roomy() {
  RunnerPoolOptions options;
  options.free_memory_gib = [] { return std::optional<double>(64.0); };
  options.stop_grace = std::chrono::milliseconds(500);
  return options;
}

// One completion from the runner at `base`: its "pid <pid> request <n>" content.
Result<std::string> chat(const std::string& base) {
  transfer::HttpCall http;
  http.method = "POST";
  http.url = base + "/v1/chat/completions";
  http.body = "{}";
  http.timeout = std::chrono::seconds(10);
  auto answer = transfer::http_call(http);
  if (!answer) return fail(answer.error());
  auto body = nlohmann::json::parse(answer->body);
  return body["choices"][0]["message"]["content"].get<std::string>();
}

// One completion through the pool.
Result<std::string> ask(RunnerPool& pool, const RunnerLaunch& launch) {
  std::function<Result<std::string>(const std::string&)> call = chat;
  return pool.use(launch, "job-1", call);
}

int pid_in(const std::string& content) { return std::stoi(content.substr(4)); }

// A streamed completion, reporting each byte that arrives as progress: the words it got.
Result<std::string> ask_streaming(RunnerPool& pool, const RunnerLaunch& launch,
                                  std::string* got = nullptr) {
  std::function<Result<std::string>(const RunnerCall&)> call =
      [got](const RunnerCall& runner) -> Result<std::string> {
    llama::SseSplitter splitter;
    std::string words;
    transfer::HttpCall http;
    http.method = "POST";
    http.url = runner.base_url + "/v1/chat/completions";
    http.body = R"({"stream":true})";
    http.timeout = std::chrono::seconds(60);  // far beyond the stall times below
    http.on_body = [&](std::string_view bytes) {
      runner.progressed();
      return splitter.feed(bytes, [&](std::string_view data) {
        if (data == "[DONE]") return true;
        auto event = nlohmann::json::parse(data);
        const auto& delta = event["choices"][0]["delta"];
        if (delta.contains("content")) words += delta["content"].get<std::string>();
        if (got != nullptr) *got = words;
        return true;
      });
    };
    auto answer = transfer::http_call(http);
    if (!answer) return fail(answer.error());
    return words;
  };
  return pool.use(launch, "job-stream", call);
}

// POST /inference (whisper's route) with a minimal 16 kHz mono WAV; the pid of the runner that
// took it and whether its /health said ok just before go to `seen`.
struct Seen {
  int pid = 0;
  long health = 0;
};
Result<std::string> transcribe(RunnerPool& pool, const RunnerLaunch& launch, Seen* seen) {
  std::function<Result<std::string>(const std::string&)> call =
      [&](const std::string& base) -> Result<std::string> {
    seen->pid = pool.status().at(0).pid;
    transfer::HttpCall health;
    health.url = base + "/health";
    if (auto answer = transfer::http_call(health)) seen->health = answer->status;
    std::string wav("RIFF\0\0\0\0WAVEfmt ", 16);
    wav.resize(44, '\0');
    wav[22] = 1;                        // mono
    wav[24] = static_cast<char>(0x80);  // 16000 Hz = 0x3E80
    wav[25] = 0x3E;
    wav[34] = 16;  // bits
    transfer::HttpCall http;
    http.method = "POST";
    http.url = base + "/inference";
    http.form = {{"file", wav, std::string("a.wav"), std::string("audio/wav")}};
    http.timeout = std::chrono::seconds(60);  // far beyond the stall times below
    auto answer = transfer::http_call(http);
    if (!answer) return fail(answer.error());
    if (answer->status != 200) return fail(Error::internal("{}", answer->body));
    return answer->body;
  };
  return pool.use(launch, "job-stt", call);
}

// The process is gone (reaped), waited for as an event with a generous bound.
bool process_gone(int pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  return ::kill(pid, 0) != 0;
}

TEST(RunnerPool, StartsOnceWaitsForHealthAndStaysResident) {
  RunnerPool pool(roomy());
  auto launch = fake_launch("a", {"--loading-ms", "300"});  // /health says 503 at first
  auto first = ask(pool, launch);
  ASSERT_TRUE(first) << first.error().message;
  auto second = ask(pool, launch);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(pid_in(*first), pid_in(*second)) << "the second job must reuse the resident runner";
  EXPECT_NE(second->find("request 2"), std::string::npos);
  ASSERT_EQ(pool.status().size(), 1u);
  EXPECT_EQ(pool.status()[0].starts, 1);
  EXPECT_TRUE(pool.is_resident("a"));
}

TEST(RunnerPool, RestartsARunnerThatWasKilled) {
  RunnerPool pool(roomy());
  auto launch = fake_launch("a");
  auto first = ask(pool, launch);
  ASSERT_TRUE(first) << first.error().message;
  const int pid = pid_in(*first);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto after = ask(pool, launch);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_NE(pid_in(*after), pid);
  EXPECT_EQ(pool.status().at(0).starts, 2);
}

TEST(RunnerPool, AFailedStartIsAnErrorWithTheRunnersOwnWords) {
  RunnerPool pool(roomy());
  auto result = ask(pool, fake_launch("a", {"--fail-start"}));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unavailable);
  EXPECT_NE(result.error().message.find("refusing to start"), std::string::npos)
      << result.error().message;
  EXPECT_NE(result.error().message.find("exit code 3"), std::string::npos);
  EXPECT_TRUE(pool.status().empty());
}

TEST(RunnerPool, IdleRunnersAreUnloaded) {
  auto options = roomy();
  options.idle_unload = std::chrono::milliseconds(200);
  RunnerPool pool(options);
  auto first = ask(pool, fake_launch("a"));
  ASSERT_TRUE(first) << first.error().message;
  const int pid = pid_in(*first);
  // The reaper stops it; the process then disappears (bounded wait on an observable event).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_NE(::kill(pid, 0), 0) << "the idle runner must have been stopped";
  EXPECT_TRUE(pool.status().empty());
}

// pause --unload (issue 19): idle runners are stopped at once (their processes are gone when
// set_unloaded returns); one serving a request is left to finish and stopped when it goes idle;
// off again, runners stay resident. The event hook sees each start and each death once.
TEST(RunnerPool, UnloadedStopsIdleRunnersNowAndBusyOnesWhenTheyGoIdle) {
  auto options = roomy();
  std::mutex events_mutex;
  std::vector<std::pair<std::string, RunnerEvent>> events;
  options.on_runner_event = [&](std::string_view program, RunnerEvent event) {
    std::lock_guard lock(events_mutex);
    events.emplace_back(std::string(program), event);
  };
  RunnerPool pool(options);
  auto idle = ask(pool, fake_launch("idle"));
  ASSERT_TRUE(idle) << idle.error().message;
  const int idle_pid = pid_in(*idle);

  // A second runner, held busy by a request that waits for the test.
  std::promise<int> busy_pid;
  std::promise<void> let_go;
  std::shared_future<void> released = let_go.get_future().share();
  std::thread busy([&] {
    std::function<Result<int>(const std::string&)> call = [&](const std::string& base) {
      auto content = chat(base);
      const int pid = content ? pid_in(*content) : -1;
      busy_pid.set_value(pid);
      released.wait();
      return Result<int>(pid);
    };
    (void)pool.use(fake_launch("busy"), "job-busy", call);
  });
  const int serving_pid = busy_pid.get_future().get();
  ASSERT_GT(serving_pid, 0);

  EXPECT_EQ(pool.set_unloaded(true), 1u) << "only the idle runner is stopped now";
  EXPECT_TRUE(pool.unloaded());
  EXPECT_NE(::kill(idle_pid, 0), 0) << "the idle runner's process is gone";
  EXPECT_EQ(::kill(serving_pid, 0), 0) << "the busy runner is left to finish";
  ASSERT_EQ(pool.status().size(), 1u);
  EXPECT_TRUE(pool.status()[0].in_use);

  let_go.set_value();
  busy.join();
  EXPECT_NE(::kill(serving_pid, 0), 0) << "stopped as it went idle while unloaded";
  EXPECT_TRUE(pool.status().empty());

  pool.set_unloaded(false);
  auto again = ask(pool, fake_launch("idle"));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(pool.is_resident("idle")) << "resumed: runners stay resident again";
  ASSERT_EQ(::kill(pid_in(*again), SIGKILL), 0);
  auto after = ask(pool, fake_launch("idle"));
  ASSERT_TRUE(after) << after.error().message;

  std::lock_guard lock(events_mutex);
  const auto count = [&](RunnerEvent wanted) {
    return std::count_if(events.begin(), events.end(), [&](const auto& event) {
      return event.second == wanted && event.first == "fake-runner";
    });
  };
  EXPECT_EQ(count(RunnerEvent::Started), 4) << "idle, busy, idle again, restarted";
  EXPECT_EQ(count(RunnerEvent::Died), 1) << "stopped runners are not deaths; the killed one is";
}

TEST(RunnerPool, AdmissionRefusesWhatDoesNotFitAndUnloadsIdleRunnersForRoom) {
  auto options = roomy();
  options.free_memory_gib = [] { return std::optional<double>(2.5); };
  RunnerPool pool(options);
  auto big = fake_launch("big");
  big.memory_gib = 4.0;
  auto refused = ask(pool, big);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "insufficient memory: needs 4.00 GiB, 2.50 GiB free (1.00 GiB kept in reserve)");
  EXPECT_TRUE(pool.admission_refusal("big", 4.0).has_value());

  // 1 GiB resident + 1.5 needed: fits only once the idle one is unloaded.
  auto small = fake_launch("small");
  ASSERT_TRUE(ask(pool, small));
  auto other = fake_launch("other");
  other.memory_gib = 2.4;
  EXPECT_FALSE(pool.admission_refusal("other", 2.4).has_value());
  auto answer = ask(pool, other);
  ASSERT_TRUE(answer) << answer.error().message;
  auto status = pool.status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].key, "other");
}

// Admission that learns (issue 19): once a runner has served a request, its measured size (here
// its peak resident set: the fake runner holds --footprint-mib of touched memory) replaces the
// launch's estimate in both directions, and a restarted pool reads it back from the file.
TEST(RunnerPool, AdmissionLearnsARunnersFootprintAndKeepsItAcrossARestart) {
  sw::testing::TempDir dir;
  const auto file = dir.path() / "footprints.json";
  auto big = fake_launch("big", {"--footprint-mib", "96"});
  big.memory_gib = 0.01;  // an under-estimate: it holds more
  auto small = fake_launch("small");
  small.memory_gib = 40.0;  // an over-estimate: it holds far less
  {
    auto options = roomy();
    options.footprints = std::make_shared<FootprintBook>(file);
    RunnerPool pool(options);
    ASSERT_TRUE(ask(pool, big));
    ASSERT_TRUE(ask(pool, small));
    const auto learned = options.footprints->learned_gib("big");
    ASSERT_TRUE(learned.has_value()) << "measured after its request";
    EXPECT_GE(*learned, 96.0 / 1024) << "its touched memory is resident";
    for (const auto& runner : pool.status()) {
      ASSERT_TRUE(runner.learned_gib.has_value()) << runner.key;
      EXPECT_DOUBLE_EQ(runner.memory_gib, *runner.learned_gib * (1 + kFootprintMargin))
          << runner.key << ": admission charges the measurement with its margin";
    }
  }
  const auto mode = std::filesystem::status(file).permissions();
  EXPECT_EQ(mode & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);

  // Restarted: nothing resident, the figures come from the file.
  auto free_gib = std::make_shared<std::atomic<double>>(0.0);
  auto options = roomy();
  options.free_memory_gib = [free_gib] { return std::optional<double>(free_gib->load()); };
  options.footprints = std::make_shared<FootprintBook>(file);
  RunnerPool pool(options);
  const auto big_need = pool.need_gib("big", big.memory_gib);
  const auto small_need = pool.need_gib("small", small.memory_gib);
  EXPECT_GE(big_need, 96.0 / 1024 * (1 + kFootprintMargin));
  EXPECT_LT(small_need, 40.0);
  // 1 GiB is kept in reserve (models/admission.h): room for half of what "big" holds.
  free_gib->store(1.0 + big_need / 2);
  const auto refused = pool.admission_refusal("big", big.memory_gib);
  ASSERT_TRUE(refused.has_value()) << "its estimate (0.01 GiB) would have fitted";
  EXPECT_NE(refused->find("insufficient memory"), std::string::npos) << *refused;
  EXPECT_FALSE(ask(pool, big)) << "a start is refused alike";
  // Room for what "small" holds, far from its 40 GiB estimate.
  free_gib->store(1.0 + small_need * 2);
  EXPECT_FALSE(pool.admission_refusal("small", small.memory_gib).has_value())
      << "its estimate would have been refused";
  EXPECT_TRUE(ask(pool, small));
}

// GPU pinning (issue 19): with several GPUs a runner starts on the one with the most free memory
// that admits it, its environment pins it there, and making room stops idle runners on that GPU
// only.
std::vector<std::string> environment_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::vector<std::string> entries;
  std::string entry;
  while (std::getline(in, entry, '\0')) entries.push_back(entry);
  return entries;
}

// A pointer into `all`: keep the vector alive while it is used.
const RunnerStatus* status_of(const std::vector<RunnerStatus>& all, const std::string& key) {
  for (const auto& runner : all) {
    if (runner.key == key) return &runner;
  }
  return nullptr;
}

TEST(RunnerPool, ARunnerIsPinnedToTheGpuThatAdmitsItAndRoomIsMadeOnThatGpuOnly) {
  std::mutex mutex;
  std::vector<GpuDevice> gpus = {{"0", 3.0, "CUDA_VISIBLE_DEVICES"},
                                 {"1", 10.0, "CUDA_VISIBLE_DEVICES"}};
  auto options = roomy();
  options.gpu_devices = [&] {
    std::lock_guard lock(mutex);
    return gpus;
  };
  RunnerPool pool(options);
  auto a = fake_launch("a");
  a.memory_gib = 5.0;  // 1 GiB is kept in reserve: only GPU 1 holds it
  ASSERT_TRUE(ask(pool, a));
  const auto first_status = pool.status();  // status_of points into it
  const auto* started = status_of(first_status, "a");
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->device, "1");
  const auto env = environment_of(started->pid);
  EXPECT_NE(std::find(env.begin(), env.end(), "CUDA_VISIBLE_DEVICES=1"), env.end())
      << "the runner was started pinned to GPU 1";
  EXPECT_NE(std::find(env.begin(), env.end(), "CUDA_DEVICE_ORDER=PCI_BUS_ID"), env.end())
      << "CUDA numbers the GPUs as nvidia-smi does";

  {
    std::lock_guard lock(mutex);
    gpus = {{"0", 3.0, "CUDA_VISIBLE_DEVICES"}, {"1", 2.0, "CUDA_VISIBLE_DEVICES"}};  // a holds 8
  }
  auto b = fake_launch("b");
  b.memory_gib = 1.5;
  ASSERT_TRUE(ask(pool, b));
  EXPECT_EQ(status_of(pool.status(), "b")->device, "0") << "the GPU with the most free memory";

  auto huge = fake_launch("huge");
  huge.memory_gib = 20.0;
  const auto refused = pool.admission_refusal("huge", huge.memory_gib);
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->find("insufficient memory"), std::string::npos) << *refused;
  EXPECT_NE(refused->find("on GPU 0"), std::string::npos) << *refused;

  // 6 GiB: GPU 0 cannot make room (3 free + b's 1.5), GPU 1 can by stopping idle "a" (2 + 5).
  auto d = fake_launch("d");
  d.memory_gib = 6.0;
  ASSERT_TRUE(ask(pool, d));
  EXPECT_FALSE(pool.is_resident("a")) << "stopped to make room on GPU 1";
  EXPECT_TRUE(pool.is_resident("b")) << "GPU 0's runner is left alone";
  EXPECT_EQ(status_of(pool.status(), "d")->device, "1");

  // A model split across the GPUs (--tensor-split) is admitted against their free memory
  // together and pinned to none.
  {
    std::lock_guard lock(mutex);
    gpus = {{"0", 6.0, "CUDA_VISIBLE_DEVICES"}, {"1", 7.0, "CUDA_VISIBLE_DEVICES"}};
  }
  auto split = fake_launch("split");
  split.memory_gib = 12.5;  // GPU 1 holds 12 at most (7 free + idle "d"), both 19.5
  split.one_gpu = false;
  EXPECT_FALSE(pool.admission_refusal("split", 12.5, false).has_value());
  EXPECT_TRUE(pool.admission_refusal("split", 12.5, true).has_value()) << "no one GPU holds it";
  ASSERT_TRUE(ask(pool, split));
  const auto split_status = pool.status();
  const auto* spread = status_of(split_status, "split");
  ASSERT_NE(spread, nullptr);
  EXPECT_EQ(spread->device, "");
  const auto split_env = environment_of(spread->pid);
  EXPECT_EQ(
      std::find_if(split_env.begin(), split_env.end(),
                   [](const std::string& e) { return e.starts_with("CUDA_VISIBLE_DEVICES="); }),
      split_env.end());
}

TEST(RunnerStall, ALoadWithNoSignOfLifeIsARetryableTimeout) {
  auto options = roomy();
  options.load_stall = std::chrono::milliseconds(300);
  RunnerPool pool(options);
  auto result = ask(pool, fake_launch("a", {"--silent-loading"}));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Timeout) << result.error().describe();
  EXPECT_TRUE(is_retryable(result.error()));
  EXPECT_NE(result.error().message.find("made no progress loading fake-model for 0.3 s"),
            std::string::npos)
      << result.error().message;
  EXPECT_TRUE(pool.status().empty());
}

// By progress, not the clock: a load that takes several stall times but prints as it goes is
// waited for.
TEST(RunnerStall, ASlowLoadThatKeepsPrintingIsWaitedFor) {
  auto options = roomy();
  options.load_stall = std::chrono::milliseconds(1000);
  RunnerPool pool(options);
  auto result = ask(pool, fake_launch("a", {"--loading-ms", "3000", "--loading-ticks-ms", "150"}));
  ASSERT_TRUE(result) << result.error().describe();
  EXPECT_EQ(pool.status().at(0).starts, 1);
}

TEST(RunnerStall, AStreamThatStopsIsARetryableTimeoutAndTheRunnerIsKilled) {
  auto options = roomy();
  // Long enough that the two words always come first, however slow the machine.
  options.inference_stall = std::chrono::milliseconds(1500);
  RunnerPool pool(options);
  std::string got;
  auto result = ask_streaming(pool, fake_launch("a", {"--stall-after-tokens", "2"}), &got);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Timeout) << result.error().describe();
  EXPECT_TRUE(is_retryable(result.error()));
  EXPECT_NE(result.error().message.find("made no progress for 1.5 s"), std::string::npos)
      << result.error().message;
  ASSERT_EQ(got.substr(0, 4), "pid ") << "two words came before the stall: " << got;
  EXPECT_TRUE(process_gone(pid_in(got))) << "the stalled runner must be killed";
  EXPECT_TRUE(pool.status().empty());
}

TEST(RunnerStall, ASlowStreamThatKeepsSendingTokensIsNotCutOff) {
  auto options = roomy();
  options.inference_stall = std::chrono::milliseconds(2500);
  RunnerPool pool(options);
  // Six events 500 ms apart: longer in total than the stall time, never silent that long (a
  // five-fold margin for a slow machine).
  auto result = ask_streaming(pool, fake_launch("a", {"--token-ms", "500"}));
  ASSERT_TRUE(result) << result.error().describe();
  EXPECT_NE(result->find("request 1"), std::string::npos) << *result;
}

// whisper-server prints its progress while it transcribes; that output is the sign of life.
TEST(RunnerStall, ASlowTranscriptionThatPrintsProgressIsNotCutOff) {
  auto options = roomy();
  options.inference_stall = std::chrono::milliseconds(1000);
  RunnerPool pool(options);
  Seen seen;
  auto result = transcribe(
      pool, fake_launch("w", {"--inference-progress-ms", "150", "--inference-steps", "15"}), &seen);
  ASSERT_TRUE(result) << result.error().describe();
  EXPECT_NE(result->find("fake transcript"), std::string::npos) << *result;
}

// A whisper-server wedged in /inference whose /health still says ok: killed, the job fails
// retryably, and the next job gets a fresh runner instead of "busy" for ever.
TEST(RunnerStall, AWedgedRunnerWithAHealthyHealthIsKilledAndTheNextJobGetsAFreshOne) {
  auto options = roomy();
  // Long enough for the test's own /health read before the runner is judged wedged.
  options.inference_stall = std::chrono::milliseconds(1500);
  RunnerPool pool(options);
  const auto launch = fake_launch("w", {"--wedge-inference"});
  Seen seen;
  auto wedged = transcribe(pool, launch, &seen);
  ASSERT_FALSE(wedged);
  EXPECT_EQ(wedged.error().code, Code::Timeout) << wedged.error().describe();
  EXPECT_TRUE(is_retryable(wedged.error()));
  EXPECT_EQ(seen.health, 200) << "the runner looked healthy";
  ASSERT_NE(seen.pid, 0);
  EXPECT_TRUE(process_gone(seen.pid)) << "the wedged runner must be killed";
  EXPECT_FALSE(pool.is_resident("w"));

  auto next = ask(pool, launch);  // a completion, which this runner answers
  ASSERT_TRUE(next) << next.error().describe();
  EXPECT_NE(pid_in(*next), seen.pid) << "the next job must run on a fresh runner";
  EXPECT_NE(next->find("request 1"), std::string::npos) << *next;
}

// A crashed runner's last words make the error message, so the exit is reported only after its
// output has been read: here the reader is held back (a slow log sink) while the child exits.
TEST(ChildProcess, TheExitIsReportedAfterTheLastWordsAreRead) {
  ChildSpec spec;
  spec.executable = "/bin/sh";
  spec.args = {"-c",
               "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; "
               "echo 'last words'; exit 4"};
  spec.on_line = [](std::string_view) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  auto child = ChildProcess::start(std::move(spec));
  ASSERT_TRUE(child) << child.error().message;
  const auto exit = (*child)->wait_for(std::chrono::seconds(20));
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 4);
  const auto lines = (*child)->last_lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "last words");
}

TEST(ChildProcess, StopFallsBackToSigkillWhenSigtermIsIgnored) {
  auto port = pick_free_loopback_port();
  ASSERT_TRUE(port);
  ChildSpec spec;
  spec.executable = SW_FAKE_RUNNER_BIN;
  spec.args = {"--port", std::to_string(*port), "--ignore-sigterm"};
  std::mutex mutex;
  std::condition_variable listening;
  bool ready = false;
  spec.on_line = [&](std::string_view line) {
    if (line.find("listening") == std::string_view::npos) return;
    std::lock_guard lock(mutex);
    ready = true;
    listening.notify_all();
  };
  auto child = ChildProcess::start(std::move(spec));
  ASSERT_TRUE(child) << child.error().message;
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(listening.wait_for(lock, std::chrono::seconds(10), [&] { return ready; }));
  }
  const ChildExit exit = (*child)->stop(std::chrono::milliseconds(300));
  EXPECT_EQ(exit.signal, SIGKILL) << exit.describe();
  EXPECT_FALSE((*child)->running());
}

// Between fork and exec the child may only make system calls: a lock another thread held at the
// fork (the allocator's) stays held in the child. Starts under allocation pressure once hung
// (Boost.Process allocated there; ASan's allocator has no fork handler): about once in a couple of
// thousand starts, so this is a net, not a proof. A hang is a test timeout.
TEST(ChildProcess, StartsWhileOtherThreadsAllocate) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> allocators;
  for (int t = 0; t < 3; ++t) {
    allocators.emplace_back([&stop] {
      while (!stop) {
        std::vector<std::string> churn;
        for (int i = 0; i < 64; ++i) churn.emplace_back(static_cast<std::size_t>(100 + i), 'x');
      }
    });
  }
  int started = 0;
  for (int i = 0; i < 50; ++i) {
    ChildSpec spec;
    spec.executable = "/bin/true";
    auto child = ChildProcess::start(std::move(spec));
    if (!child) break;
    const auto exit = (*child)->wait_for(std::chrono::seconds(20));
    if (!exit || exit->code != 0) break;
    ++started;
  }
  stop = true;
  for (auto& thread : allocators) thread.join();
  EXPECT_EQ(started, 50);
}

// The worker's signal dispositions and its stdin are not the runner's: an ignored signal would
// survive exec (a runner that cannot be stopped by it), and a runner must not read our stdin.
TEST(ChildProcess, TheChildGetsDefaultSignalsAndAnEmptyStdin) {
  struct sigaction ignore {};
  struct sigaction previous {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGUSR1, &ignore, &previous), 0);
  ChildSpec spec;
  spec.executable = "/bin/sh";
  spec.args = {"-c", "read line; echo \"stdin=[$line]\"; kill -USR1 $$; echo survived"};
  auto child = ChildProcess::start(std::move(spec));
  ::sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_TRUE(child) << child.error().message;
  const auto exit = (*child)->wait_for(std::chrono::seconds(20));
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->signal, SIGUSR1) << exit->describe();
  const auto lines = (*child)->last_lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "stdin=[]");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "survived"), 0);
}

// exec's own failure (here: a file without execute permission) is an error naming the program
// and the cause, not a child that exits 127 later.
TEST(ChildProcess, AProgramThatCannotBeExecutedIsAnErrorNamingWhy) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("sw-not-executable-" + std::to_string(::getpid()));
  { std::ofstream(path) << "#!/bin/sh\necho hello\n"; }
  std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::owner_write);
  ChildSpec spec;
  spec.executable = path;
  auto child = ChildProcess::start(std::move(spec));
  std::filesystem::remove(path);
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().message.find("cannot start " + path.filename().string() + " (" +
                                       path.string() + ")"),
            std::string::npos)
      << child.error().message;
  EXPECT_NE(child.error().message.find("Permission denied"), std::string::npos)
      << child.error().message;
}

TEST(ChildProcess, LocateProgramSaysWhatToSetWhenMissing) {
  ::unsetenv("STUDIO_WORKER_TEST_NOPE");
  auto missing = locate_program(std::nullopt, "STUDIO_WORKER_TEST_NOPE", "no-such-runner-xyz");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "no-such-runner-xyz not found (set STUDIO_WORKER_TEST_NOPE or put it on PATH)");
  auto configured = locate_program(std::string("/nonexistent/llama-server"), "X", "llama-server");
  ASSERT_FALSE(configured);
  EXPECT_NE(configured.error().message.find("not an executable file"), std::string::npos);
  auto found = locate_program(std::string(SW_FAKE_RUNNER_BIN), "X", "fake-runner");
  ASSERT_TRUE(found);
}

}  // namespace
}  // namespace sw::engines
