#pragma once
// Resident model servers (llama-server, whisper-server, sd-server) kept by the worker.
//
// A runner is keyed by what it serves (program + model files + launch flags). acquire() returns
// the resident one, or admits, starts and waits for a new one on a free loopback port:
//
//   absent ──admit──▶ starting ──/health 200──▶ ready ◀──lease──▶ in use
//      ▲                 │ exit / timeout          │ idle > idle_unload, or memory needed
//      └──── failed ◀────┘                         ▼
//                                               stopping ──▶ absent
//
// Memory admission (reference-worker.md §3.10): needed ≤ free − 1 GiB, crediting idle runners
// that would be stopped to make room (least recently used first). A runner that died is started
// again on the next acquire; use() restarts once when the runner dies under a request. Runners are
// stopped (process group SIGTERM, then SIGKILL) on shutdown, and die with the worker anyway.
// Thread-safe. Blocking: call from worker threads.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "engines/runner/child_process.h"

namespace sw::engines {

struct RunnerLaunch {
  std::string key;    // residency identity: same key, same runner
  std::string model;  // model id, for logs and status
  std::filesystem::path executable;
  std::vector<std::string> args;  // "{port}" is replaced by the port chosen
  std::vector<std::string> extra_env;
  double memory_gib = 0;  // what admission charges for it
  std::string health_path = "/health";
  std::chrono::milliseconds start_timeout{std::chrono::minutes(5)};
};

struct RunnerPoolOptions {
  std::chrono::milliseconds idle_unload{std::chrono::minutes(10)};
  // Free memory now (GPU, else system), GiB; nullopt = unknown (admits nothing).
  std::function<std::optional<double>()> free_memory_gib;
  std::chrono::milliseconds stop_grace{std::chrono::seconds(5)};
  std::chrono::milliseconds health_poll{50};
};

struct RunnerStatus {
  std::string key;
  std::string model;
  std::string program;
  int pid = 0;
  std::uint16_t port = 0;
  double memory_gib = 0;
  int starts = 0;
  bool in_use = false;
};

class RunnerPool {
 public:
  explicit RunnerPool(RunnerPoolOptions options);
  ~RunnerPool();
  RunnerPool(const RunnerPool&) = delete;
  RunnerPool& operator=(const RunnerPool&) = delete;

  // Runs `request(base_url)` against the runner for `launch` ("http://127.0.0.1:<port>"), starting
  // it when needed. If the request fails and the runner has died meanwhile, the runner is started
  // again and the request retried once. `job_id` tags the runner's output lines in the log.
  // Errors: Unavailable for "insufficient memory: …" and for a runner that would not start (with
  // its last output lines), or whatever `request` returned.
  template <typename T>
  Result<T> use(const RunnerLaunch& launch, const std::string& job_id,
                const std::function<Result<T>(const std::string& base_url)>& request);

  // The admission refusal that acquiring `key` would meet now, if any (for offer-time rejects).
  std::optional<std::string> admission_refusal(const std::string& key, double needed_gib) const;
  bool is_resident(const std::string& key) const;
  std::vector<RunnerStatus> status() const;
  // Stops every runner (shutdown). Later calls start runners again.
  void stop_all();

 private:
  struct Runner;
  struct Checkout {
    std::shared_ptr<Runner> runner;
    std::string base_url;
  };
  Result<Checkout> checkout(const RunnerLaunch& launch, const std::string& job_id);
  void release(const std::shared_ptr<Runner>& runner);
  bool died(const std::shared_ptr<Runner>& runner) const;
  Result<std::shared_ptr<Runner>> start_runner(const RunnerLaunch& launch,
                                               const std::string& job_id);
  void reaper_loop();

  RunnerPoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_reaper_;
  std::map<std::string, std::shared_ptr<Runner>> runners_;
  std::map<std::string, std::shared_ptr<std::mutex>> start_locks_;  // one start per key at a time
  bool stopping_ = false;
  std::thread reaper_;
};

template <typename T>
Result<T> RunnerPool::use(const RunnerLaunch& launch, const std::string& job_id,
                          const std::function<Result<T>(const std::string& base_url)>& request) {
  for (int attempt = 0;; ++attempt) {
    auto out = checkout(launch, job_id);
    if (!out) return fail(out.error());
    Result<T> result = request(out->base_url);
    // Only transport failures can mean the runner went away (a refused prompt cannot).
    const bool runner_died = !result &&
                             (result.error().code == Code::Unavailable ||
                              result.error().code == Code::Timeout) &&
                             died(out->runner);
    release(out->runner);
    if (!runner_died || attempt > 0) return result;
  }
}

}  // namespace sw::engines
