#pragma once
// The one path a job takes through this worker, shared by studio offers (session.h) and the
// local API's generation routes (local_api.h) (issue 19): the job gate's slots, memory
// admission (job_gate.h: several jobs at once where memory allows), the engine's dispatch on the
// pool, and the result split once into bytes or JSON.
//
//   try_reserve ──ticket──► admit ──► run: dispatch on the pool ──► ticket released
//                                                   └──► the payload, or the engine's error,
//                                                        or past the caller's deadline (Clock)
//
// Not here: what the job's caller does with the payload (the outbox and the courier for studio
// jobs, the HTTP answer for local ones), and the jobs' records (Runtime). Loop-thread only: the
// awaitables resume on the caller's executor; the engine work runs on `pool`.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "engines/engine.h"
#include "worker/job_gate.h"
#include "worker/worker_metrics.h"

namespace sw::worker {

// A finished job's result as it leaves the worker: JSON text (llm, audio_stt: completeJson, the
// HTTP body) or bytes with their file extension (image, audio_tts, video: the multipart upload,
// the HTTP body with its MIME type).
struct ResultPayload {
  enum class Kind { Json, Binary };
  Kind kind = Kind::Json;
  std::string body;  // the JSON text, or the bytes
  std::string ext;   // Binary only
};

// The one place a TaskResult is split by kind.
ResultPayload split_result(engines::TaskResult&& result);

class JobRunner {
 public:
  // Reads the memory jobs run in (JobGate::Memory), blocking (it may run nvidia-smi): called on
  // the pool. nullopt: unknown (then one job at a time).
  using MemoryProbe = std::function<std::optional<JobGate::Memory>()>;

  // `engine`, `gate` and `clock` outlive the runner; `pool` runs the engine's blocking work.
  // `metrics` (may be null, else outlives the runner) counts every run: jobs by kind and
  // outcome, the phases the engine reports (common/job_phase.h; the rest of the dispatch is
  // `infer`), result bytes and jobs running.
  JobRunner(engines::Engine& engine, JobGate& gate, boost::asio::any_io_executor pool,
            const Clock& clock, MemoryProbe memory = {}, WorkerMetrics* metrics = nullptr);

  // A slot of the gate for `job_id`, or why not (every slot held, or `limit` slots: a studio
  // without the "capacity" feature passes 1). The slot is free again when the last copy of the
  // ticket goes.
  tl::expected<SharedTicket, std::string> try_reserve(
      std::string job_id, std::size_t limit = static_cast<std::size_t>(-1));
  bool busy() const { return gate_.busy(); }
  const JobGate& gate() const { return gate_; }
  const Clock& clock() const { return clock_; }
  // The metrics of this worker, for the job's other stages (the upload), or null.
  WorkerMetrics* metrics() const { return metrics_; }

  // Why this job cannot run now for lack of memory, or nullopt once admitted: the engine's own
  // check (engines::Engine::admission_refusal), then the gate's memory rule for a job beside
  // others with the engine's memory_need_gib. Asked on the pool: it may read a GGUF header or
  // ask the GPU driver. `estimate_gib`: the offer's vramGbEstimate (0 for local jobs).
  struct Refusal {
    std::string reason;
    // True when the job would fit on this worker alone (the gate's memory rule refused it beside
    // the running jobs: `busy`, try again later); false for the engine's own refusal.
    bool busy = false;
  };
  boost::asio::awaitable<std::optional<Refusal>> admit(engines::DispatchRequest request,
                                                       double estimate_gib, SharedTicket ticket);

  struct Outcome {
    Result<ResultPayload> result;  // the payload, or the engine's error
    // The caller's deadline passed before the engine was done: it stopped waiting, and `result`
    // is to be dropped whatever it holds.
    bool past_deadline = false;
  };

  // Dispatches `request` on the pool while `ticket` holds the gate, and releases the ticket as
  // soon as the engine is done (before the caller delivers, so that the next job is not refused
  // as busy meanwhile). `deadline` is read on the runner's Clock.
  boost::asio::awaitable<Outcome> run(engines::DispatchRequest request, SharedTicket ticket,
                                      std::optional<SteadyTime> deadline = {});

 private:
  engines::Engine& engine_;
  JobGate& gate_;
  boost::asio::any_io_executor pool_;
  const Clock& clock_;
  MemoryProbe memory_;
  WorkerMetrics* metrics_;
};

}  // namespace sw::worker
