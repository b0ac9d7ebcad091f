#pragma once
// Resident model servers (llama-server, whisper-server, sd-server) kept by the worker.
//
// A runner is keyed by what it serves (program + model files + launch flags). acquire() returns
// the resident one, or admits, starts and waits for a new one on a free loopback port:
//
//   absent ──admit──▶ starting ──/health 200──▶ ready ◀──lease──▶ in use
//      ▲                 │ exit / load stall       │ idle > idle_unload,   │ inference stall
//      └──── failed ◀────┘                         ▼ or memory needed      ▼ (killed)
//                                               stopping ──▶ absent ◀───────┘
//
// Deadlines go by progress, not by the clock (the shape of transfer/download.h's stall_timeout):
// a load fails only after `load_stall` without a sign of life (an output byte, a change in the
// /health answer, bytes read from storage), and a request only after `inference_stall` without
// one (an output byte, progress the engine reports through RunnerCall::progressed: a streamed
// token, an SSE event). A slow disk or a big model that keeps moving is never cut off. A request
// that stalls has its runner killed (a whisper-server wedged in /inference whose /health still
// says ok) and fails with a retryable Timeout; the next job starts a fresh runner.
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
#include "engines/runner/footprint_book.h"

namespace sw::engines {

struct RunnerLaunch {
  std::string key;    // residency identity: same key, same runner
  std::string model;  // model id, for logs and status
  std::filesystem::path executable;
  std::vector<std::string> args;  // "{port}" is replaced by the port chosen
  std::vector<std::string> extra_env;
  double memory_gib = 0;  // what admission charges for it
  std::string health_path = "/health";
  // What its learned footprint is filed under (footprint_book.h); empty: `key`. Differs from
  // `key` where the command line varies with what is free at start (llama-server's slots).
  std::string footprint_key;
  // false: never pinned to one GPU (a model split across GPUs, llama-server's --tensor-split);
  // admission then reads the GPUs' free memory together.
  bool one_gpu = true;

  const std::string& footprint_id() const { return footprint_key.empty() ? key : footprint_key; }
};

// What on_runner_event reports: a runner became healthy, or one the pool did not stop was found
// dead (once per runner).
enum class RunnerEvent { Started, Died };

// A GPU a runner can be pinned to (issue 19): its free memory now, and how a runner is told to
// use it and no other (the runtime's visibility variable, set in the runner's environment).
struct GpuDevice {
  std::string id;  // "0", "1", …: the value the variable takes (nvidia-smi's index)
  double free_gib = 0;
  std::string visible_env;  // "CUDA_VISIBLE_DEVICES", or "HIP_VISIBLE_DEVICES" on AMD
};

struct RunnerPoolOptions {
  std::chrono::milliseconds idle_unload{std::chrono::minutes(10)};
  // Starting: no output, no change in the health answer and no storage reads for this long ⇒
  // the start fails (Timeout) and the runner is stopped. A model loading from disk prints,
  // reads or both; two minutes of neither is a hung load, whatever the model's size.
  std::chrono::milliseconds load_stall{std::chrono::minutes(2)};
  // In use: no output, no reported progress and no storage reads for this long ⇒ the runner is
  // killed and the request fails (Timeout, retryable). Generous because a long prompt is
  // processed before the first token and not every runner prints while it does.
  std::chrono::milliseconds inference_stall{std::chrono::minutes(5)};
  // Free memory now (GPU, else system), GiB; nullopt = unknown (admits nothing).
  std::function<std::optional<double>()> free_memory_gib;
  // The GPUs, probed now. When it lists any, a runner is started on one of them (the one with
  // the most free memory that admits it, after stopping idle runners on that GPU if needed),
  // pinned there through its visibility variable, and admission reads that GPU's free memory
  // instead of free_memory_gib. Unset or empty: no pinning.
  std::function<std::vector<GpuDevice>()> gpu_devices;
  std::chrono::milliseconds stop_grace{std::chrono::seconds(5)};
  std::chrono::milliseconds health_poll{50};
  // Called (on the thread that saw it, without the pool's lock) with the runner's program name
  // (llama-server, whisper-server, sd-server: one per engine) for metrics. Must be thread-safe.
  std::function<void(std::string_view program, RunnerEvent event)> on_runner_event;
  // Learned footprints (footprint_book.h): after its first request, then at most every 5 min, a
  // runner's process is measured with `process_memory_gib` and the figure replaces the launch's
  // estimate in admission. Null: estimates only.
  std::shared_ptr<FootprintBook> footprints;
  // What a runner process holds now, GiB: the GPU memory it uses where runners use a GPU, else
  // its peak resident set (/proc/<pid>/status VmHWM, the default); nullopt: cannot tell (then
  // nothing is learned). Called without the pool's lock, on the job's thread.
  std::function<std::optional<double>(int pid)> process_memory_gib;
};

struct RunnerStatus {
  std::string key;
  std::string model;
  std::string program;
  int pid = 0;
  std::uint16_t port = 0;
  double memory_gib = 0;              // what admission charges: learned, else the estimate
  std::optional<double> learned_gib;  // measured (footprint_book.h), when known
  std::string device;                 // the GPU it is pinned to; empty when not pinned
  int starts = 0;
  bool in_use = false;
};

// What a request gets: where the runner listens, and a way to say "the runner moved" (a token,
// an event, a progress report) that resets the inference stall deadline. Thread-safe.
struct RunnerCall {
  std::string base_url;  // "http://127.0.0.1:<port>"
  std::function<void()> progressed;
};

class RunnerPool {
 public:
  explicit RunnerPool(RunnerPoolOptions options);
  ~RunnerPool();
  RunnerPool(const RunnerPool&) = delete;
  RunnerPool& operator=(const RunnerPool&) = delete;

  // Runs `request(call)` against the runner for `launch`, starting it when needed. If the
  // request fails and the runner has died meanwhile (not killed for a stall), the runner is
  // started again and the request retried once. `job_id` tags the runner's output lines.
  // Errors: Unavailable for "insufficient memory: …" and for a runner that would not start (with
  // its last output lines); Timeout for a load or a request that stalled (the runner is gone by
  // then); or whatever `request` returned.
  template <typename T>
  Result<T> use(const RunnerLaunch& launch, const std::string& job_id,
                const std::function<Result<T>(const RunnerCall& call)>& request);
  // The same for a request that reports no progress of its own (output bytes and storage reads
  // still count).
  template <typename T>
  Result<T> use(const RunnerLaunch& launch, const std::string& job_id,
                const std::function<Result<T>(const std::string& base_url)>& request) {
    return use<T>(launch, job_id,
                  std::function<Result<T>(const RunnerCall&)>(
                      [&](const RunnerCall& call) { return request(call.base_url); }));
  }

  // The admission refusal that acquiring `key` would meet now, if any (for offer-time rejects).
  // `needed_gib` is the estimate; a learned footprint for `key` replaces it.
  // `one_gpu` false: the runner would use every GPU (RunnerLaunch::one_gpu).
  std::optional<std::string> admission_refusal(const std::string& key, double needed_gib,
                                               bool one_gpu = true) const;
  // What a runner for `key` costs: its learned footprint (plus margin), else `estimate_gib`.
  double need_gib(const std::string& key, double estimate_gib) const;
  // Free memory now, GiB: the GPU with the most (gpu_devices), else free_memory_gib; nullopt when
  // unknown. Blocking.
  std::optional<double> free_memory_gib() const;
  bool is_resident(const std::string& key) const;
  std::vector<RunnerStatus> status() const;
  // Stops every runner (shutdown). Later calls start runners again.
  void stop_all();
  // `pause --unload` (issue 19): on, every idle runner is stopped now, and while it stays on a
  // runner that is serving a request is left to finish and stopped as soon as it goes idle (the
  // job is not cut short). Returns how many runners were stopped now (each within stop_grace).
  // Off (resume), runners stay resident again as usual. Later jobs still start runners, which
  // are stopped when they go idle while it is on.
  std::size_t set_unloaded(bool on);
  bool unloaded() const;

 private:
  struct Runner;
  struct Checkout {
    std::shared_ptr<Runner> runner;
    RunnerCall call;
  };
  Result<Checkout> checkout(const RunnerLaunch& launch, const std::string& job_id);
  void release(const std::shared_ptr<Runner>& runner);
  double need_of(const RunnerLaunch& launch) const {
    return need_gib(launch.footprint_id(), launch.memory_gib);
  }
  // Measures the runner's process and records it (after a request: loaded and has run).
  void learn_footprint(Runner& runner);
  bool died(const std::shared_ptr<Runner>& runner);
  void report(const std::shared_ptr<Runner>& runner, RunnerEvent event);
  // Set once the reaper killed the runner for an inference stall; the error to report then.
  std::optional<Error> stalled(const std::shared_ptr<Runner>& runner) const;
  Result<std::shared_ptr<Runner>> start_runner(const RunnerLaunch& launch,
                                               const std::string& job_id,
                                               const std::string& device);
  void reaper_loop();
  // Under the lock: idle runners on `device` (every idle runner when empty), least recently used
  // first: what admission may stop to make room there.
  std::vector<std::shared_ptr<Runner>> idle_on(const std::string& device) const;
  static std::optional<double> total_free(const std::vector<GpuDevice>& devices);
  // Under the lock: admission of `needed` GiB on the GPUs (most free first), crediting idle
  // runners on each; the device and the runners to stop, or the refusal naming the best GPU.
  struct Placement {
    GpuDevice device;
    std::vector<std::shared_ptr<Runner>> to_unload;
  };
  tl::expected<Placement, std::string> place_on_gpu(std::vector<GpuDevice> devices,
                                                    double needed) const;

  RunnerPoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_reaper_;
  std::map<std::string, std::shared_ptr<Runner>> runners_;
  std::map<std::string, std::shared_ptr<std::mutex>> start_locks_;  // one start per key at a time
  bool stopping_ = false;
  bool unloaded_ = false;  // pause --unload
  std::thread reaper_;
};

template <typename T>
Result<T> RunnerPool::use(const RunnerLaunch& launch, const std::string& job_id,
                          const std::function<Result<T>(const RunnerCall& call)>& request) {
  for (int attempt = 0;; ++attempt) {
    auto out = checkout(launch, job_id);
    if (!out) return fail(out.error());
    Result<T> result = request(out->call);
    // Killed for a stall while this ran: whatever came back may be cut short (a stream that
    // ends with its connection can look complete). Not retried here: the job fails, retryably.
    if (auto stall = stalled(out->runner)) {
      release(out->runner);
      return fail(std::move(*stall));
    }
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
