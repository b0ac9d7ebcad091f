// studio-worker figures of targets.md, against the real binary and a scripted studio on loopback:
//   worker_start_to_hello_ms       fork+exec of `studio-worker run` → its hello frame arrives
//                                  (median of 9 starts)
//   worker_offer_to_accept_p50_ms / _p99_ms
//                                  offer written by the studio → accept read by the studio,
//                                  500 sequential synthetic llm offers on one session
//   worker_idle_rss_mib            VmRSS of the connected, idle worker after 3 s of heartbeats
//                                  (before any job)
// With llama-server (STUDIO_WORKER_LLAMA_SERVER or PATH) and the test models
// (STUDIO_WORKER_TEST_MODELS), a llama-cpp model on the real worker (stories260K.gguf served from
// a loopback HTTP server, downloaded and verified by the worker):
//   worker_llama_first_job_offer_to_token_ms
//                                  the first job: offer → download, runner start, load, one token,
//                                  result read by the studio
//   worker_llama_resident_offer_to_token_p50_ms / _p99_ms
//                                  later jobs on the same model (maxTokens 1): offer written →
//                                  completeJson with the first token read by the studio
//   worker_llama_runner_starts     distinct llama-server processes seen across all the jobs
//                                  (1 = no reload after the first job)
// Several jobs at once (issue 19), against our studio and a worker in this process (synthetic
// jobs of 100 ms each, 32 of them queued at once, free memory read as 64 GiB):
//   worker_synthetic_jobs_per_s_one_slot / _two_slots
//                                  jobs done per second with max_concurrent_jobs = 1 and 2, in
//                                  the same run (submit all → the last is done)
// Prints `<name>: <value> <unit>` lines (SKIPPED lines for what it cannot run). A failed run
// exits 1; --check compares with targets.md (start → hello ≤ 50 ms, idle RSS ≤ 15 MiB, offer →
// accept p99 ≤ 1 ms) and exits 2 on a miss (a MISS line each).
// Also worker_llama_jobs_per_s_one_slot / _two_slots: real llama-server jobs drained with one job
// slot and with two (one runner, --parallel 2), when llama-server and the test models are there.
// Run: build/ci/bench/worker_bench [--check] [--smaps PATH]
// --smaps PATH writes the idle worker's /proc/<pid>/smaps there (where its resident memory is).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>

#include <set>

#include "common/file_io.h"
#include "common/sha256.h"
#include "engines/runner/child_process.h"
#include "support/http_test_server.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"
#include "support/test_models.h"
#include "support/worker_harness.h"
#include "worker/config.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

pid_t start_worker(const std::filesystem::path& config) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("STUDIO_WORKER_LOG", "error", 1);
    ::execl(SW_STUDIO_WORKER_BIN, SW_STUDIO_WORKER_BIN, "--config", config.c_str(), "run",
            "--local-api-port", "0", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

void stop_worker(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

double rss_mib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

std::string offer(int n) {
  return json{{"type", "offer"},
              {"claim",
               {{"jobId", "job-" + std::to_string(n)},
                {"gameId", "g"},
                {"assetName", "a"},
                {"model", "synthetic-llm"},
                {"vramGbEstimate", 0},
                {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}},
                {"modelSource",
                 {{"engine", "synthetic"},
                  {"files", json::array()},
                  {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}}}}
      .dump();
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

// The worker's direct children (its runners), from every thread's children list.
std::set<pid_t> children_of(pid_t pid) {
  std::set<pid_t> children;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream list(task.path() / "children");
    pid_t child = 0;
    while (list >> child) children.insert(child);
  }
  return children;
}

std::string llama_offer(int n, const std::string& url, const std::string& sha256,
                        std::size_t bytes) {
  return json{
      {"type", "offer"},
      {"claim",
       {{"jobId", "llama-" + std::to_string(n)},
        {"gameId", "g"},
        {"assetName", "a"},
        {"model", "stories"},
        {"vramGbEstimate", 0},
        {"task",
         {{"kind", "llm"},
          {"messages", {{{"role", "user"}, {"content", "Once upon a time " + std::to_string(n)}}}},
          {"maxTokens", 1},
          {"temperature", 0}}},
        {"modelSource",
         {{"engine", "llama-cpp"},
          {"files",
           {{{"role", "model"},
             {"url", url},
             {"filename", "stories260K.gguf"},
             {"approxBytes", bytes},
             {"sha256", sha256}}}},
          {"cliDefaults",
           {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}, {"contextSize", 256}}}}}}}}
      .dump();
}

// One llama-cpp job through the real worker: offer → completeJson (with its one token). False
// when the job did not complete with a token.
bool run_llama_job(sw::testing::ScriptedStudio& studio, const std::string& offer_text,
                   double& elapsed_ms) {
  const auto begin = Clock::now();
  studio.send_text(offer_text);
  auto done = studio.next_of_type("completeJson", 120s);
  elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - begin).count();
  if (!done) return false;
  // Acknowledged as a studio would, so the outbox does not resend it into the next job's wait.
  studio.send_text(json{{"type", "completeAck"}, {"jobId", (*done)["jobId"]}}.dump());
  const auto& result = (*done)["result"];
  return result.is_object() && result.contains("usage") &&
         result["usage"].value("completion_tokens", 0) == 1;
}

// Returns false when a run failed (no figure is printed then).
bool bench_llama(const std::filesystem::path& worker_config_dir, const std::string& welcome) {
  auto server =
      sw::engines::locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  auto models = sw::testing::test_models_dir();
  if (!server || !models) {
    std::printf("SKIPPED: llama offer-to-first-token (%s)\n",
                !server ? "llama-server not found (set STUDIO_WORKER_LLAMA_SERVER)"
                        : "test models not found (set STUDIO_WORKER_TEST_MODELS)");
    return true;
  }
  auto gguf = sw::read_file(*models / "stories260K.gguf");
  if (!gguf) {
    std::fprintf(stderr, "cannot read stories260K.gguf: %s\n", gguf.error().message.c_str());
    return false;
  }
  const std::string sha256 = sw::sha256_hex(*gguf);
  const std::size_t bytes = gguf->size();
  sw::testing::HttpTestServer files;
  files.set_route("/stories260K.gguf",
                  sw::testing::serving(std::make_shared<const std::string>(std::move(*gguf))));
  const std::string url = files.url("/stories260K.gguf");

  sw::testing::ScriptedStudio studio;
  const auto config_path = worker_config_dir / "llama-config.toml";
  sw::worker::WorkerConfig config;
  config.api_base_url = studio.url();
  config.worker_id = "w-bench";
  config.auth_token = "token";
  config.models_root = (worker_config_dir / "llama-models").string();
  if (!sw::worker::save_config(config_path, config) ||
      !sw::worker::save_state(sw::worker::state_path_for(config_path), config)) {
    return false;
  }
  const pid_t pid = start_worker(config_path);
  if (!studio.next_of_type("hello", 10s)) {
    stop_worker(pid);
    return false;
  }
  studio.send_text(welcome);
  std::set<pid_t> runners;
  double first_ms = 0;
  bool ok = run_llama_job(studio, llama_offer(0, url, sha256, bytes), first_ms);
  const auto first_children = children_of(pid);
  runners.insert(first_children.begin(), first_children.end());
  std::vector<double> resident;
  for (int n = 1; ok && n <= 40; ++n) {
    double ms = 0;
    ok = run_llama_job(studio, llama_offer(n, url, sha256, bytes), ms);
    resident.push_back(ms);
    const auto now = children_of(pid);
    runners.insert(now.begin(), now.end());
  }
  stop_worker(pid);
  if (!ok || runners.empty()) {
    std::fprintf(stderr, "a llama job did not complete with one token%s\n",
                 runners.empty() ? " (no runner process seen)" : "");
    return false;
  }
  std::printf("worker_llama_first_job_offer_to_token_ms: %.1f ms\n", first_ms);
  std::printf("worker_llama_resident_offer_to_token_p50_ms: %.2f ms\n", percentile(resident, 0.5));
  std::printf("worker_llama_resident_offer_to_token_p99_ms: %.2f ms\n", percentile(resident, 0.99));
  std::printf("worker_llama_runner_starts: %zu processes (1 = no reload after the first job)\n",
              runners.size());
  return true;
}

// Submits every body at once and waits until each job is done: jobs per second from the first
// submission to the last job done, or 0 when one did not finish within `timeout`.
double drain_jobs_per_s(const sw::testing::StudioHarness& studio,
                        const std::vector<std::string>& bodies, std::chrono::seconds timeout,
                        std::size_t slots) {
  std::vector<std::string> jobs;
  const auto begin = Clock::now();
  for (const auto& body : bodies) jobs.push_back(studio.create_job(body));
  for (const auto& job : jobs) {
    if (!studio.wait_job_status(job, "done", timeout)) {
      std::cerr << "job " << job << " did not finish with " << slots
                << " slots: " << studio.job_status(job) << "\n";
      return 0;
    }
  }
  return static_cast<double>(jobs.size()) /
         std::chrono::duration<double>(Clock::now() - begin).count();
}

// Jobs per second that one worker with `slots` job slots drains: 32 synthetic 100 ms jobs
// queued at once, the clock from the first submission to the last job done. 0 on a failure.
double synthetic_jobs_per_s(std::size_t slots) {
  constexpr int kJobs = 32;
  sw::testing::TempDir dir;
  sw::studio::StudioConfig studio_config;
  studio_config.data_dir = dir.path() / "studio";
  sw::testing::StudioHarness studio(studio_config);
  studio.add_model("synth-llm", "llm", 1.0);
  const auto credentials = sw::testing::register_worker(studio, "bench-slots");
  sw::worker::WorkerConfig config;
  config.api_base_url = "http://127.0.0.1:" + std::to_string(studio.port());
  config.worker_id = credentials.worker_id;
  config.auth_token = credentials.token;
  config.vram_threshold_gb = 24;
  config.max_concurrent_jobs = slots;
  sw::engines::EngineOptions engine;
  engine.synthetic_job_duration = 100ms;
  engine.free_memory_gib = [] { return std::optional<double>(64.0); };
  sw::testing::WorkerHarness worker(dir.path() / "worker", config, sw::testing::fast_timings(),
                                    engine);
  if (!worker.wait_session("connected")) return 0;
  std::vector<std::string> bodies;
  for (int i = 0; i < kJobs; ++i) {
    bodies.push_back(sw::testing::llm_job("synth-llm", "job " + std::to_string(i)));
  }
  return drain_jobs_per_s(studio, bodies, 60s, slots);
}

// Jobs per second one worker with `slots` job slots drains of real llama-server jobs (the
// stories260K test model, 32 tokens each): 24 jobs queued at once through our studio, the clock
// from the first submission to the last job done. With 2 slots one resident llama-server serves
// both (--parallel 2). 0 on a failure; nullopt without llama-server or the test models.
std::optional<double> llama_jobs_per_s(std::size_t slots) {
  constexpr int kJobs = 24;
  auto server =
      sw::engines::locate_program(std::nullopt, "STUDIO_WORKER_LLAMA_SERVER", "llama-server");
  auto models = sw::testing::test_models_dir();
  if (!server || !models) return std::nullopt;
  auto gguf = sw::read_file(*models / "stories260K.gguf");
  if (!gguf) return 0.0;
  const std::string sha256 = sw::sha256_hex(*gguf);
  const std::size_t bytes = gguf->size();
  sw::testing::HttpTestServer files;
  files.set_route("/stories260K.gguf",
                  sw::testing::serving(std::make_shared<const std::string>(std::move(*gguf))));
  sw::testing::TempDir dir;
  sw::studio::StudioConfig studio_config;
  studio_config.data_dir = dir.path() / "studio";
  sw::testing::StudioHarness studio(studio_config);
  const json model = {
      {"id", "stories"},
      {"kind", "llm"},
      {"vramGbEstimate", 0},
      {"source",
       {{"engine", "llama-cpp"},
        {"files",
         {{{"role", "model"},
           {"url", files.url("/stories260K.gguf")},
           {"filename", "stories260K.gguf"},
           {"approxBytes", bytes},
           {"sha256", sha256}}}},
        {"cliDefaults",
         {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}, {"contextSize", 256}}}}}};
  if (studio.admin("POST", "/api/v1/models", model.dump()).status != 201) return 0.0;
  const auto credentials = sw::testing::register_worker(studio, "bench-llama-slots");
  sw::worker::WorkerConfig config;
  config.api_base_url = "http://127.0.0.1:" + std::to_string(studio.port());
  config.worker_id = credentials.worker_id;
  config.auth_token = credentials.token;
  config.vram_threshold_gb = 24;
  config.max_concurrent_jobs = slots;
  config.models_root = (dir.path() / "models").string();
  sw::engines::EngineOptions engine;
  engine.llama_server_path = server->string();
  engine.free_memory_gib = [] { return std::optional<double>(64.0); };
  sw::testing::WorkerHarness worker(dir.path() / "worker", config, sw::testing::fast_timings(),
                                    engine);
  if (!worker.wait_session("connected")) return 0.0;
  auto job_body = [](int n) {
    return json{{"model", "stories"},
                {"task",
                 {{"kind", "llm"},
                  {"messages", {{{"role", "user"}, {"content", "Once " + std::to_string(n)}}}},
                  {"maxTokens", 32},
                  {"temperature", 0}}}}
        .dump();
  };
  // The first job loads the runner: not part of the figure.
  const auto warm = studio.create_job(job_body(-1));
  if (!studio.wait_job_status(warm, "done", 120s)) return 0.0;
  std::vector<std::string> bodies;
  for (int i = 0; i < kJobs; ++i) bodies.push_back(job_body(i));
  return drain_jobs_per_s(studio, bodies, 120s, slots);
}

}  // namespace

int main(int argc, char** argv) {
  bool check = false;
  std::string smaps_path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--check") {
      check = true;
    } else if (arg == "--smaps" && i + 1 < argc) {
      smaps_path = argv[++i];
    } else {
      std::cerr << "usage: worker_bench [--check] [--smaps PATH]\n";
      return 1;
    }
  }
  int misses = 0;
  auto target = [&](const char* name, double value, double limit, const char* unit) {
    if (value > limit) {
      std::printf("MISS: %s %.3f > %.3f %s (targets.md)\n", name, value, limit, unit);
      ++misses;
    }
  };
  sw::testing::ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto config_path = dir.path() / "config.toml";
  sw::worker::WorkerConfig config;
  config.api_base_url = studio.url();
  config.worker_id = "w-bench";
  config.auth_token = "token";
  config.models_root = (dir.path() / "models").string();
  if (!sw::worker::save_config(config_path, config) ||
      !sw::worker::save_state(sw::worker::state_path_for(config_path), config)) {
    return 1;
  }
  const std::string welcome =
      R"({"type":"welcome","workerId":"w-bench","serverTime":"2026-01-01T00:00:00Z"})";

  std::vector<double> starts;
  for (int i = 0; i < 9; ++i) {
    const auto begin = Clock::now();
    const pid_t pid = start_worker(config_path);
    auto hello = studio.next_of_type("hello", 10s);
    const auto end = Clock::now();
    stop_worker(pid);
    if (!hello) {
      std::cerr << "no hello from the worker\n";
      return 1;
    }
    starts.push_back(std::chrono::duration<double, std::milli>(end - begin).count());
  }
  std::printf("worker_start_to_hello_ms: %.2f ms\n", percentile(starts, 0.5));
  target("worker_start_to_hello_ms", percentile(starts, 0.5), 50, "ms");

  const pid_t pid = start_worker(config_path);
  if (!studio.next_of_type("hello", 10s)) return 1;
  studio.send_text(welcome);
  std::this_thread::sleep_for(3s);  // connected and idle: heartbeats only
  const double idle_rss = rss_mib(pid);
  if (!smaps_path.empty()) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
    std::ofstream out(smaps_path);
    out << in.rdbuf();
  }
  std::printf("worker_idle_rss_mib: %.1f MiB\n", idle_rss);
  target("worker_idle_rss_mib", idle_rss, 15, "MiB");
  std::vector<double> latencies;
  for (int n = 0; n < 500; ++n) {
    const auto begin = Clock::now();
    studio.send_text(offer(n));
    auto accept = studio.next_of_type("accept", 10s);
    const auto end = Clock::now();
    auto done = studio.next_of_type("completeJson", 10s);
    const std::string job_id = "job-" + std::to_string(n);
    if (!accept || !done || (*accept)["jobId"] != job_id || (*done)["jobId"] != job_id) {
      std::cerr << "offer " << n << " was not accepted and completed\n";
      stop_worker(pid);
      return 1;
    }
    studio.send_text(json{{"type", "completeAck"}, {"jobId", job_id}}.dump());
    latencies.push_back(std::chrono::duration<double, std::milli>(end - begin).count());
  }
  std::printf("worker_offer_to_accept_p50_ms: %.3f ms\n", percentile(latencies, 0.5));
  std::printf("worker_offer_to_accept_p99_ms: %.3f ms\n", percentile(latencies, 0.99));
  target("worker_offer_to_accept_p99_ms", percentile(latencies, 0.99), 1, "ms");
  stop_worker(pid);
  if (!bench_llama(dir.path(), welcome)) return 1;

  const double one_slot = synthetic_jobs_per_s(1);
  const double two_slots = synthetic_jobs_per_s(2);
  if (one_slot <= 0 || two_slots <= 0) return 1;
  std::printf("worker_synthetic_jobs_per_s_one_slot: %.2f jobs/s\n", one_slot);
  std::printf("worker_synthetic_jobs_per_s_two_slots: %.2f jobs/s\n", two_slots);
  const auto llama_one = llama_jobs_per_s(1);
  if (!llama_one) {
    std::printf("SKIPPED: llama jobs/s by slots (llama-server or the test models not found)\n");
  } else {
    const auto llama_two = llama_jobs_per_s(2);
    if (*llama_one <= 0 || !llama_two || *llama_two <= 0) return 1;
    std::printf("worker_llama_jobs_per_s_one_slot: %.2f jobs/s\n", *llama_one);
    std::printf("worker_llama_jobs_per_s_two_slots: %.2f jobs/s\n", *llama_two);
  }
  return check && misses > 0 ? 2 : 0;
}
