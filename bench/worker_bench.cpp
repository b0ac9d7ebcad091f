// studio-worker figures of targets.md, against the real binary and a scripted studio on loopback:
//   worker_start_to_hello_ms       fork+exec of `studio-worker run` → its hello frame arrives
//                                  (median of 9 starts)
//   worker_offer_to_accept_p50_ms / _p99_ms
//                                  offer written by the studio → accept read by the studio,
//                                  500 sequential synthetic llm offers on one session
//   worker_idle_rss_mib            VmRSS of the connected, idle worker after 3 s of heartbeats
//                                  (before any job)
// Prints `<name>: <value> <unit>` lines. Run: build/ci/bench/worker_bench

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/temp_dir.h"
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

}  // namespace

int main() {
  sw::testing::ScriptedStudio studio;
  sw::testing::TempDir dir;
  const auto config_path = dir.path() / "config.toml";
  sw::worker::WorkerConfig config;
  config.api_base_url = studio.url();
  config.worker_id = "w-bench";
  config.auth_token = "token";
  config.models_root = (dir.path() / "models").string();
  if (!sw::worker::save_config(config_path, config)) return 1;
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

  const pid_t pid = start_worker(config_path);
  if (!studio.next_of_type("hello", 10s)) return 1;
  studio.send_text(welcome);
  std::this_thread::sleep_for(3s);  // connected and idle: heartbeats only
  std::printf("worker_idle_rss_mib: %.1f MiB\n", rss_mib(pid));
  std::vector<double> latencies;
  for (int n = 0; n < 500; ++n) {
    const auto begin = Clock::now();
    studio.send_text(offer(n));
    auto accept = studio.next_of_type("accept", 10s);
    const auto end = Clock::now();
    if (!accept || !studio.next_of_type("completeJson", 10s)) {
      std::cerr << "offer " << n << " was not accepted and completed\n";
      stop_worker(pid);
      return 1;
    }
    latencies.push_back(std::chrono::duration<double, std::milli>(end - begin).count());
  }
  std::printf("worker_offer_to_accept_p50_ms: %.3f ms\n", percentile(latencies, 0.5));
  std::printf("worker_offer_to_accept_p99_ms: %.3f ms\n", percentile(latencies, 0.99));
  stop_worker(pid);
  return 0;
}
