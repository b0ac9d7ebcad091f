#include "engines/composite_engine.h"

#include <algorithm>
#include <set>

#include "common/log.h"
#include "rules/engine_rules.h"

namespace sw::engines {
namespace {
const log::Logger kLog("studio_worker::engine::multi");
}  // namespace

std::string_view engine_for_source(std::string_view model_engine) {
  return model_engine;
}

std::string remedy_for_missing_engine(std::string_view model_engine) {
  auto known = proto::parse_model_engine(model_engine);
  if (!known) {
    return fmt::format(
        "\"{}\" is not an engine this worker knows (known: sd-cpp, llama-cpp, whisper-cpp, "
        "espeak-ng, onnx, synthetic); check the model's source in the studio's registry",
        model_engine);
  }
  switch (*known) {
    case proto::ModelEngine::LlamaCpp:
      return "install llama.cpp's llama-server and put it on PATH, or set llama_server_path in "
             "config.toml or STUDIO_WORKER_LLAMA_SERVER";
    case proto::ModelEngine::SdCpp:
      return "install stable-diffusion.cpp's sd-cli (per job) or sd-server (resident) and put it "
             "on PATH, or set sd_cli_path / sd_server_path in config.toml or STUDIO_WORKER_SD_CLI "
             "/ STUDIO_WORKER_SD_SERVER";
    case proto::ModelEngine::WhisperCpp:
      return "install whisper.cpp's whisper-server and put it on PATH, or set "
             "whisper_server_path in config.toml or STUDIO_WORKER_WHISPER_SERVER";
    case proto::ModelEngine::EspeakNg:
      return "install libespeak-ng (apt-get install libespeak-ng1 espeak-ng-data) and use a "
             "build of this worker with the espeak-ng engine";
    case proto::ModelEngine::Onnx:
      return "this worker has no ONNX Runtime engine; route the model to a worker that has one";
    case proto::ModelEngine::Parakeet:
      return "parakeet models serve local streaming speech only and are never valid in a studio "
             "job";
    case proto::ModelEngine::Synthetic:
      return "the synthetic engine is switched off in this worker's config.toml "
             "([engines] synthetic = false)";
  }
  return "install the engine";
}

CompositeEngine::CompositeEngine(std::vector<EnginePtr> members) : members_(std::move(members)) {}

Engine* CompositeEngine::find(std::string_view name) const {
  for (const EnginePtr& member : members_) {
    if (member->name() == name) return member.get();
  }
  return nullptr;
}

std::vector<std::string> CompositeEngine::member_names() const {
  std::vector<std::string> names;
  for (const EnginePtr& member : members_) names.emplace_back(member->name());
  return names;
}

Capabilities CompositeEngine::capabilities() const {
  Capabilities merged;
  for (const EnginePtr& member : members_) {
    // A member whose program vanished since start is not advertised (heartbeats carry the change).
    const auto why = member->unavailable();
    note_availability(*member, why);
    if (why) continue;
    for (auto& [kind, models] : member->capabilities()) {
      auto& list = merged[kind];
      for (auto& model : models) {
        if (std::find(list.begin(), list.end(), model) == list.end()) list.push_back(model);
      }
    }
  }
  for (auto& [kind, models] : merged) std::sort(models.begin(), models.end());
  return merged;
}

void CompositeEngine::note_availability(const Engine& member,
                                        const std::optional<std::string>& why) const {
  // Logged when it changes, not on every heartbeat's scan.
  std::lock_guard lock(unavailable_mutex_);
  const std::string name(member.name());
  if (why && unavailable_.insert(name).second) {
    kLog.warn("engine.unavailable", {{"engine", name}, {"detail", *why}});
  } else if (!why && unavailable_.erase(name) > 0) {
    kLog.info("engine.available_again", {{"engine", name}});
  }
}

Capabilities CompositeEngine::with_held_models(const std::vector<models::HeldModel>& held) const {
  Capabilities advertised = capabilities();
  for (const models::HeldModel& model : held) {
    const Engine* member = find(engine_for_source(model.engine));
    if (member == nullptr || member->unavailable()) continue;
    for (const auto& [kind, ids] : member->capabilities()) {
      (void)ids;
      auto& list = advertised[kind];
      if (std::find(list.begin(), list.end(), model.id) == list.end()) list.push_back(model.id);
    }
  }
  for (auto& [kind, ids] : advertised) std::sort(ids.begin(), ids.end());
  return advertised;
}

Result<Engine*> CompositeEngine::route(const DispatchRequest& request) const {
  const proto::TaskKind kind = request.task.kind();
  if (request.source) {
    std::string_view wanted = engine_for_source(request.source->engine);
    if (Engine* member = find(wanted)) {
      kLog.debug("engine.routed", {{"job_id", request.job_id},
                                   {"model", request.model},
                                   {"engine", wanted},
                                   {"kind", proto::to_string(kind)}});
      return member;
    }
    kLog.warn("engine.no_match", {{"job_id", request.job_id},
                                  {"model", request.model},
                                  {"wanted_engine", request.source->engine},
                                  {"kind", proto::to_string(kind)}});
    // [DISCREPANCY] the reference words this so that it is sent retryable; a worker without
    // the engine fails the same way every time, so we make it terminal (Code::Unsupported).
    return fail(Error::unsupported("no `{}` engine in this worker (model `{}` requires it): {}",
                                   request.source->engine, request.model,
                                   remedy_for_missing_engine(request.source->engine)));
  }
  for (const EnginePtr& member : members_) {
    auto caps = member->capabilities();
    auto it = caps.find(kind);
    if (it != caps.end() &&
        std::find(it->second.begin(), it->second.end(), request.model) != it->second.end()) {
      return member.get();
    }
  }
  kLog.warn("engine.no_match", {{"job_id", request.job_id},
                                {"model", request.model},
                                {"wanted_engine", "(none: no model source)"},
                                {"kind", proto::to_string(kind)}});
  return fail(Error::unsupported("no engine in this worker serves model `{}` for {} tasks",
                                 request.model, proto::to_string(kind)));
}

std::optional<std::string> CompositeEngine::routing_refusal(const DispatchRequest& request) const {
  auto member = route(request);
  if (!member) return member.error().message;
  return std::nullopt;
}

Result<TaskResult> CompositeEngine::dispatch(const DispatchRequest& request) {
  auto member = route(request);
  if (!member) return fail(member.error());
  // A studio's task that breaks its engine's hard rules (an sd side that is not a multiple of 64,
  // …) fails the same on every worker: refuse it before any download or run, non-retryably
  // (InvalidArgument), so the studio does not run it again elsewhere.
  if (request.source && !request.local) {
    SW_TRY(rules::check_task(*request.source, request.task, rules::Stage::Offer));
  }
  return (*member)->dispatch(request);
}

std::optional<std::string> CompositeEngine::admission_refusal(const DispatchRequest& request,
                                                              double estimate_gib) {
  auto member = route(request);
  if (!member) return std::nullopt;  // routing_refusal() says why
  // Checked here, off the I/O thread and before accept: a program removed since start turns the
  // offer into a reject naming the engine (the studio requeues it uncounted), not a failed job.
  if (auto why = (*member)->unavailable()) {
    return fmt::format("no usable `{}` engine in this worker: {}; {}", (*member)->name(), *why,
                       remedy_for_missing_engine((*member)->name()));
  }
  return (*member)->admission_refusal(request, estimate_gib);
}

double CompositeEngine::memory_need_gib(const DispatchRequest& request, double estimate_gib) {
  auto member = route(request);
  if (!member) return estimate_gib;
  return (*member)->memory_need_gib(request, estimate_gib);
}

Status CompositeEngine::stream_chat(const DispatchRequest& request,
                                    const std::function<bool(std::string_view chunk)>& on_chunk) {
  auto member = route(request);
  if (!member) return fail(member.error());
  return (*member)->stream_chat(request, on_chunk);
}

std::optional<DefaultModel> default_model(const Capabilities& own, proto::TaskKind kind) {
  auto it = own.find(kind);
  if (it == own.end()) return std::nullopt;
  for (const auto& model : it->second) {
    if (!model.ends_with(":*")) return DefaultModel{model, std::nullopt};
  }
  // Engines that run without model files; every other one needs a model's source.
  for (std::string_view engine : {std::string_view("espeak-ng")}) {
    const std::string wildcard = std::string(engine) + ":*";
    if (std::find(it->second.begin(), it->second.end(), wildcard) != it->second.end()) {
      return DefaultModel{std::string(engine), proto::ModelSource{std::string(engine), {}, {}}};
    }
  }
  return std::nullopt;
}

std::vector<std::string> flatten_models(const Capabilities& capabilities) {
  std::set<std::string> all;
  for (const auto& [kind, models] : capabilities) all.insert(models.begin(), models.end());
  return {all.begin(), all.end()};
}

std::vector<proto::TaskKind> task_kinds_of(const Capabilities& capabilities) {
  std::vector<proto::TaskKind> kinds;
  for (const auto& [kind, models] : capabilities) {
    if (!models.empty()) kinds.push_back(kind);
  }
  return kinds;
}

}  // namespace sw::engines
