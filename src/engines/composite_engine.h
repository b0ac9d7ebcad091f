#pragma once
// The composite "multi" engine (reference-worker.md §4.1) with no-fallback routing.
//
// With a ModelSource the job goes strictly to the engine that `modelSource.engine` names; when that
// engine is not in this worker, routing_refusal() names the engine and how to get it (a studio
// offer is rejected with it before accept, so the job goes to another worker) and dispatch fails
// with the same words (non-retryable). It never falls back to another engine: synthetic output
// once fulfilled real-model jobs. Without a source only an exact (kind, model id) match is served.
//
// Capabilities are the union of the members' own names (`llama-cpp:*`, `synthetic`,
// `synthetic-llm`, …): fixed for the process. What a worker advertises adds the model ids its
// cache holds (with_held_models). Thread-safe once constructed (members are fixed).

#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "engines/engine.h"
#include "models/model_cache.h"

namespace sw::engines {

class CompositeEngine final : public Engine {
 public:
  // Members in priority order (used for the exact-match search without a source).
  explicit CompositeEngine(std::vector<EnginePtr> members);

  std::string_view name() const override { return "multi"; }
  Capabilities capabilities() const override;
  Result<TaskResult> dispatch(const DispatchRequest& request) override;
  // The routing error's text when no member serves `request` (see the class comment).
  std::optional<std::string> routing_refusal(const DispatchRequest& request) const override;
  std::optional<std::string> admission_refusal(const DispatchRequest& request,
                                               double estimate_gib) override;
  double memory_need_gib(const DispatchRequest& request, double estimate_gib) override;
  Status stream_chat(const DispatchRequest& request,
                     const std::function<bool(std::string_view chunk)>& on_chunk) override;

  // The member named `name`, or nullptr.
  Engine* find(std::string_view name) const;
  std::vector<std::string> member_names() const;

  // The advertised per-kind lists (reference-worker.md §1.5): capabilities() plus the exact id
  // of every held model whose engine is a member, under each kind that member serves. A model
  // whose engine this worker lacks is not advertised: it could not run here. Sorted, unique.
  Capabilities with_held_models(const std::vector<models::HeldModel>& held) const;

 private:
  // The member that serves `request` (by its source, else by exact id), or the routing error.
  Result<Engine*> route(const DispatchRequest& request) const;
  void note_availability(const Engine& member, const std::optional<std::string>& why) const;
  std::vector<EnginePtr> members_;
  mutable std::mutex unavailable_mutex_;
  mutable std::set<std::string> unavailable_;  // members last seen unavailable (for the log)
};

// The member engine that serves `modelSource.engine` (identity for every name we know; kept as a
// function so a future engine can serve several wire names).
std::string_view engine_for_source(std::string_view model_engine);

// What an operator must do to get a missing engine, for the failure message.
std::string remedy_for_missing_engine(std::string_view model_engine);

// The model a request that names none runs on for `kind` (the local API, when its catalogue has
// nothing for the kind): the first exact id in `own` (the synthetic engine's `synthetic-<kind>`),
// else an engine of `own` that needs no model files (espeak-ng), with a source naming it. nullopt
// when every engine serving the kind needs a model's files. `own` is the engine's capabilities(),
// not the advertised lists (a held model id needs its source to run).
struct DefaultModel {
  std::string model;
  std::optional<proto::ModelSource> source;
};
std::optional<DefaultModel> default_model(const Capabilities& own, proto::TaskKind kind);

// Flat, sorted, de-duplicated union of every per-kind list (`supportedModels`), and the kinds with
// at least one model (`taskKinds`), as advertised in capabilities.
std::vector<std::string> flatten_models(const Capabilities& capabilities);
std::vector<proto::TaskKind> task_kinds_of(const Capabilities& capabilities);

}  // namespace sw::engines
