#include "worker/job_runner.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <type_traits>
#include <variant>

#include "worker/run_blocking.h"

namespace sw::worker {

ResultPayload split_result(engines::TaskResult&& result) {
  return std::visit(
      [](auto&& value) -> ResultPayload {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, engines::LlmResult> ||
                      std::is_same_v<T, engines::AudioSttResult>) {
          return ResultPayload{ResultPayload::Kind::Json, value.json.text(), {}};
        } else {
          return ResultPayload{ResultPayload::Kind::Binary,
                               std::string(value.bytes.begin(), value.bytes.end()),
                               std::move(value.ext)};
        }
      },
      std::move(result));
}

JobRunner::JobRunner(engines::Engine& engine, JobGate& gate, boost::asio::any_io_executor pool,
                     const Clock& clock, MemoryProbe memory, WorkerMetrics* metrics)
    : engine_(engine),
      gate_(gate),
      pool_(std::move(pool)),
      clock_(clock),
      memory_(std::move(memory)),
      metrics_(metrics) {}

namespace {

// The phases one dispatch reported on its pool thread; what they leave of the dispatch's time is
// `infer` (unless the engine timed infer itself).
class DispatchPhases final : public PhaseSink {
 public:
  explicit DispatchPhases(engines::JobObserver* observer) : observer_(observer) {}
  // The job's observer hears that the model loads (the studio's `jobProgress` phase "load").
  void phase_began(JobPhase phase) override {
    if (observer_ != nullptr && phase == JobPhase::Load) observer_->loading();
  }
  void phase_done(JobPhase phase, std::chrono::nanoseconds elapsed) override {
    reported[static_cast<std::size_t>(phase)] += elapsed;
    seen[static_cast<std::size_t>(phase)] = true;
  }
  void record(WorkerMetrics& metrics, std::chrono::nanoseconds total) const {
    std::chrono::nanoseconds accounted{0};
    for (const auto phase : kAllJobPhases) {
      const auto at = static_cast<std::size_t>(phase);
      if (!seen[at]) continue;
      metrics.observe_phase(phase, reported[at]);
      accounted += reported[at];
    }
    if (!seen[static_cast<std::size_t>(JobPhase::Infer)]) {
      metrics.observe_phase(JobPhase::Infer,
                            std::max(total - accounted, std::chrono::nanoseconds{0}));
    }
  }

  std::array<std::chrono::nanoseconds, kJobPhaseCount> reported{};
  std::array<bool, kJobPhaseCount> seen{};

 private:
  engines::JobObserver* observer_;
};

}  // namespace

tl::expected<SharedTicket, std::string> JobRunner::try_reserve(std::string job_id,
                                                               std::size_t limit) {
  auto ticket = gate_.try_acquire(std::move(job_id), limit);
  if (!ticket) return tl::unexpected(std::move(ticket).error());
  return std::make_shared<JobGate::Ticket>(std::move(*ticket));
}

// Named locals below: GCC 12 double-destroys temporaries inside a co_await expression.

boost::asio::awaitable<std::optional<JobRunner::Refusal>> JobRunner::admit(
    engines::DispatchRequest request, double estimate_gib, SharedTicket ticket) {
  engines::Engine* engine = &engine_;
  JobGate* gate = &gate_;
  const MemoryProbe* memory = &memory_;
  std::function<std::optional<Refusal>()> work = [engine, gate, memory, request, estimate_gib,
                                                  ticket]() -> std::optional<Refusal> {
    if (auto refusal = engine->admission_refusal(request, estimate_gib)) {
      return Refusal{std::move(*refusal), false};
    }
    const double need = engine->memory_need_gib(request, estimate_gib);
    // Read unless this is the only job (its memory is the engine's to judge): another may be
    // admitted while this is read, so the gate, not this check, decides.
    std::optional<JobGate::Memory> reading;
    if (gate->held() > 1 && *memory) reading = (*memory)();
    if (auto refusal = gate->admit(*ticket, need, reading))
      return Refusal{std::move(*refusal), true};
    return std::nullopt;
  };
  const boost::asio::any_io_executor pool = pool_;
  co_return co_await run_blocking<std::optional<Refusal>>(pool, std::move(work));
}

boost::asio::awaitable<JobRunner::Outcome> JobRunner::run(engines::DispatchRequest request,
                                                          SharedTicket ticket,
                                                          std::optional<SteadyTime> deadline) {
  engines::Engine* engine = &engine_;
  WorkerMetrics* metrics = metrics_;
  const proto::TaskKind kind = request.task.kind();
  if (metrics != nullptr) metrics->job_began();
  std::function<Result<engines::TaskResult>()> work = [engine, request, metrics]() {
    DispatchPhases phases(request.observer.get());
    const auto started = std::chrono::steady_clock::now();
    Result<engines::TaskResult> out = fail(Error::internal("unset"));
    {
      PhaseScope scope(&phases);
      out = engine->dispatch(request);
    }
    if (metrics != nullptr) phases.record(*metrics, std::chrono::steady_clock::now() - started);
    return out;
  };
  const boost::asio::any_io_executor pool = pool_;
  auto result = co_await run_blocking<Result<engines::TaskResult>>(pool, std::move(work));
  // The engine is done with the GPU: the gate is free before the result is delivered.
  ticket.reset();
  if (metrics != nullptr) metrics->job_ended();
  Outcome outcome{fail(Error::internal("unset")), false};
  outcome.past_deadline = deadline && clock_.steady_now() > *deadline;
  if (result) {
    outcome.result = split_result(std::move(*result));
  } else {
    outcome.result = fail(std::move(result).error());
  }
  if (metrics != nullptr) {
    if (outcome.past_deadline) {
      metrics->count_job(kind, JobOutcome::Deadline);
    } else if (outcome.result) {
      metrics->count_job(kind, JobOutcome::Ok);
      metrics->count_result_bytes(kind, outcome.result->body.size());
    } else {
      metrics->count_job(kind, JobOutcome::Failed);
    }
  }
  co_return outcome;
}

}  // namespace sw::worker
