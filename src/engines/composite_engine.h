#pragma once
// The composite "multi" engine (reference-worker.md §4.1) with no-fallback routing.
//
// With a ModelSource the job goes strictly to the engine that `modelSource.engine` names; when that
// engine is not in this worker the job fails (non-retryable) with a message naming the engine and
// how to get it. It never falls back to another engine: synthetic output once fulfilled real-model
// jobs. Without a source only an exact (kind, model id) match is served. Capabilities are the
// union of the members'. Thread-safe once constructed (members are fixed).

#include <vector>

#include "engines/engine.h"

namespace sw::engines {

class CompositeEngine final : public Engine {
 public:
  // Members in priority order (used for the exact-match search without a source).
  explicit CompositeEngine(std::vector<EnginePtr> members);

  std::string_view name() const override { return "multi"; }
  Capabilities capabilities() const override;
  Result<TaskResult> dispatch(const DispatchRequest& request) override;
  std::optional<std::string> admission_refusal(const DispatchRequest& request,
                                               double estimate_gib) override;
  Status stream_chat(const DispatchRequest& request,
                     const std::function<bool(std::string_view chunk)>& on_chunk) override;

  // The member named `name`, or nullptr.
  Engine* find(std::string_view name) const;
  std::vector<std::string> member_names() const;

 private:
  // The member that serves `request` (by its source, else by exact id), or the routing error.
  Result<Engine*> route(const DispatchRequest& request) const;
  std::vector<EnginePtr> members_;
};

// The member engine that serves `modelSource.engine` (identity for every name we know; kept as a
// function so a future engine can serve several wire names).
std::string_view engine_for_source(std::string_view model_engine);

// What an operator must do to get a missing engine, for the failure message.
std::string remedy_for_missing_engine(std::string_view model_engine);

// Flat, sorted, de-duplicated union of every per-kind list (`supportedModels`), and the kinds with
// at least one model (`taskKinds`), as advertised in capabilities.
std::vector<std::string> flatten_models(const Capabilities& capabilities);
std::vector<proto::TaskKind> task_kinds_of(const Capabilities& capabilities);

}  // namespace sw::engines
