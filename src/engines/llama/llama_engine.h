#pragma once
// The llama-cpp engine (`modelSource.engine == "llama-cpp"`, advertises `llm: ["llama-cpp:*"]`):
// chat completions through a resident llama-server per model (reference-worker.md §4.4, with the
// runner as a managed child process instead of an in-process library).
// Thread-safe; dispatch() blocks (worker threads only).

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "engines/engine.h"
#include "engines/runner/runner_pool.h"
#include "engines/runner/runner_settings.h"
#include "models/model_cache.h"

namespace sw::engines {

class LlamaEngine final : public Engine {
 public:
  // `max_slots`: how many requests one resident llama-server may serve at once (the worker's
  // max_concurrent_jobs). A runner gets the most slots, up to that, whose memory (the GGUF
  // estimate with a KV cache per slot) fits what is free when it starts; one when unknown.
  // `settings`: the operator's per-model runner settings by model id (runner_settings.h).
  LlamaEngine(std::filesystem::path llama_server, std::shared_ptr<models::ModelCache> cache,
              std::shared_ptr<RunnerPool> runners, std::uint32_t max_slots = 1,
              std::map<std::string, RunnerSettings> settings = {});

  std::string_view name() const override { return "llama-cpp"; }
  Capabilities capabilities() const override;
  std::optional<std::string> unavailable() const override { return program_unavailable(server_); }
  Result<TaskResult> dispatch(const DispatchRequest& request) override;
  std::optional<std::string> admission_refusal(const DispatchRequest& request,
                                               double estimate_gib) override;
  double memory_need_gib(const DispatchRequest& request, double estimate_gib) override;
  Status stream_chat(const DispatchRequest& request,
                     const std::function<bool(std::string_view chunk)>& on_chunk) override;

 private:
  // The model's memory: the cached GGUF's estimate, else `estimate_gib`; and its runner's key.
  std::optional<std::pair<std::string, double>> runner_need(const DispatchRequest& request,
                                                            double estimate_gib) const;
  Result<RunnerLaunch> prepare(const DispatchRequest& request, const proto::LlmParams& params);
  std::filesystem::path server_;
  std::shared_ptr<models::ModelCache> cache_;
  std::shared_ptr<RunnerPool> runners_;
  std::uint32_t max_slots_ = 1;
  std::map<std::string, RunnerSettings> settings_;
  // The model's settings (empty when it has none) and the context a request slot asks for.
  const RunnerSettings& settings_for(const std::string& model) const;
  std::optional<std::uint32_t> requested_context(const DispatchRequest& request,
                                                 const proto::ModelSource& source) const;
  // Launches of resident runners: a job for a model already loaded skips the cache check and the
  // GGUF read (the runner holds the file open; measured 0.91 → see bench/engine_bench).
  std::mutex mutex_;
  std::map<std::string, RunnerLaunch> launches_;
};

}  // namespace sw::engines
