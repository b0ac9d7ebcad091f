#include "engines/llama/llama_engine.h"

#include <algorithm>
#include <chrono>

#include "common/json_text.h"
#include "common/log.h"
#include "engines/llama/llama_mapping.h"
#include "engines/llama/sse_splitter.h"
#include "engines/runner/model_files.h"
#include "models/admission.h"
#include "models/gguf.h"
#include "transfer/http_client.h"

namespace sw::engines {
namespace {

const log::Logger kLog("studio_worker::engine::llama");
constexpr double kGib = 1024.0 * 1024.0 * 1024.0;
// Not the deadline that matters: a request fails once the runner makes no progress for the pool's
// inference_stall (runner_pool.h). This only bounds a runner that trickles tokens for ever.
constexpr auto kRequestBackstop = std::chrono::hours(6);

// The runner's identity: same model file, same context → same resident llama-server.
// Settings shape the command line, so they are part of the identity (and of the learned
// footprint's key): a changed setting starts a new runner.
std::string runner_key(const std::string& model, const std::string& filename,
                       std::optional<std::uint32_t> context, const RunnerSettings& settings) {
  std::string key = fmt::format("llama-server|{}|{}|{}", model, filename, context.value_or(0));
  for (const auto& arg : llama::settings_args(settings)) key += "|" + arg;
  return key;
}

const RunnerSettings kNoSettings{};

// The model-role .gguf, else the first .gguf (§4.4).
const proto::ModelFile* gguf_entry(const proto::ModelSource& source) {
  for (const auto& file : source.files) {
    if (file.role == "model" && file.filename.ends_with(".gguf")) return &file;
  }
  for (const auto& file : source.files) {
    if (file.filename.ends_with(".gguf")) return &file;
  }
  return nullptr;
}

}  // namespace

LlamaEngine::LlamaEngine(std::filesystem::path llama_server,
                         std::shared_ptr<models::ModelCache> cache,
                         std::shared_ptr<RunnerPool> runners, std::uint32_t max_slots,
                         std::map<std::string, RunnerSettings> settings)
    : server_(std::move(llama_server)),
      cache_(std::move(cache)),
      runners_(std::move(runners)),
      max_slots_(std::max<std::uint32_t>(max_slots, 1)),
      settings_(std::move(settings)) {}

const RunnerSettings& LlamaEngine::settings_for(const std::string& model) const {
  auto it = settings_.find(model);
  return it == settings_.end() ? kNoSettings : it->second;
}

std::optional<std::uint32_t> LlamaEngine::requested_context(
    const DispatchRequest& request, const proto::ModelSource& source) const {
  const auto& settings = settings_for(request.model);
  return settings.context_size ? settings.context_size : source.cli_defaults.context_size;
}

Capabilities LlamaEngine::capabilities() const {
  return {{proto::TaskKind::Llm, {"llama-cpp:*"}}};
}

Result<RunnerLaunch> LlamaEngine::prepare(const DispatchRequest& request,
                                          const proto::LlmParams& params) {
  auto source = require_source(request.source, name());
  if (!source) return fail(source.error());
  if (params.messages.empty()) {
    return fail(Error::invalid_argument("llm task has no messages"));
  }
  const proto::ModelFile* entry = gguf_entry(**source);
  if (entry == nullptr) {
    return fail(Error::invalid_argument("model `{}` lists no .gguf file for llama-cpp",
                                        request.model));
  }
  const std::string key =
      runner_key(request.model, entry->filename, requested_context(request, **source),
                 settings_for(request.model));
  if (runners_->is_resident(key)) {
    std::lock_guard lock(mutex_);
    if (auto it = launches_.find(key); it != launches_.end()) return it->second;
  }
  // A cached GGUF whose header does not parse (0 bytes, cut short, not a GGUF) is fetched again
  // rather than failing every job on this model; a download that does not parse is not cached.
  const std::string gguf_name = entry->filename;
  const models::FileCheck parses = [gguf_name](const proto::ModelFile& file,
                                               const std::filesystem::path& path) -> Status {
    if (file.filename != gguf_name) return {};
    auto header = models::read_gguf(path);
    if (!header) return fail(header.error());
    return {};
  };
  auto files = cache_->ensure_files(request.model, **source, request.download_progress(), parses);
  if (!files) return fail(files.error());
  const models::CachedFile* gguf = nullptr;
  for (const auto& file : *files) {
    if (file.path.filename() == entry->filename) gguf = &file;
  }
  if (gguf == nullptr) return fail(Error::internal("the cache returned no {}", entry->filename));
  auto info = models::read_gguf(gguf->path);
  if (!info) return fail(info.error());
  const std::uint32_t context = models::pick_context(*info, requested_context(request, **source));

  // Slots for jobs at once on this model (issue 19): as many as memory holds, each with the whole
  // context; the same key whatever the count, so a second job joins the resident runner.
  std::uint32_t slots = 1;
  if (max_slots_ > 1) {
    const auto free = runners_->free_memory_gib();
    for (std::uint32_t n = max_slots_; free && n > 1; --n) {
      const double need =
          static_cast<double>(models::estimate_memory_bytes(*info, context * n)) / kGib;
      if (models::admit(need, free).admitted) {
        slots = n;
        break;
      }
    }
  }
  RunnerLaunch launch;
  launch.key = key;
  launch.model = request.model;
  launch.executable = server_;
  launch.args = llama::server_args(gguf->path, context, slots);
  const auto extra = llama::settings_args(settings_for(request.model));
  launch.args.insert(launch.args.end(), extra.begin(), extra.end());
  launch.memory_gib =
      static_cast<double>(models::estimate_memory_bytes(*info, context * slots)) / kGib;
  // Its footprint grows with its slots: one learned with two is not charged for four.
  if (slots > 1) launch.footprint_key = fmt::format("{}|slots={}", key, slots);
  launch.one_gpu = settings_for(request.model).tensor_split.empty();
  std::lock_guard lock(mutex_);
  launches_[key] = launch;
  return launch;
}

std::optional<std::pair<std::string, double>> LlamaEngine::runner_need(
    const DispatchRequest& request, double estimate_gib) const {
  if (!request.source) return std::nullopt;
  const proto::ModelFile* entry = gguf_entry(*request.source);
  if (entry == nullptr) return std::nullopt;  // dispatch explains
  double needed = estimate_gib;
  // A file already in the cache gives a better figure than the catalogue's estimate.
  const auto cached = models::model_dir(cache_->config().root, request.model) / entry->filename;
  if (auto info = models::read_gguf(cached)) {
    const auto context = models::pick_context(*info, requested_context(request, *request.source));
    needed = static_cast<double>(models::estimate_memory_bytes(*info, context)) / kGib;
  }
  return std::pair(
      runner_key(request.model, entry->filename, requested_context(request, *request.source),
                 settings_for(request.model)),
      needed);
}

std::optional<std::string> LlamaEngine::admission_refusal(const DispatchRequest& request,
                                                          double estimate_gib) {
  auto need = runner_need(request, estimate_gib);
  if (!need) return std::nullopt;
  return runners_->admission_refusal(need->first, need->second,
                                     settings_for(request.model).tensor_split.empty());
}

double LlamaEngine::memory_need_gib(const DispatchRequest& request, double estimate_gib) {
  auto need = runner_need(request, estimate_gib);
  if (!need) return estimate_gib;
  return runners_->is_resident(need->first) ? 0.0 : runners_->need_gib(need->first, need->second);
}

Result<TaskResult> LlamaEngine::dispatch(const DispatchRequest& request) {
  const auto* params = std::get_if<proto::LlmParams>(&request.task.params);
  if (params == nullptr) return fail(cannot_serve(name(), request.task.kind()));
  auto launch = prepare(request, *params);
  if (!launch) return fail(launch.error());
  if (request.cancelled()) return fail(cancelled_error("the llm job"));

  // Streamed, though the job's answer is whole: each token is progress for the stall deadline,
  // where a plain answer would be silent until the last token; and the job's observer sees the
  // answer as it grows (issue 20), split as the result will be.
  const std::string body =
      llama::chat_request(*params, request.source->cli_defaults.chat_template_kwargs, true).dump();
  const auto started = std::chrono::steady_clock::now();
  JobObserver* observer = request.observer.get();
  std::function<Result<std::string>(const RunnerCall&)> call =
      [&](const RunnerCall& runner) -> Result<std::string> {
    llama::SseSplitter splitter;
    llama::StreamedCompletion streamed;
    llama::StreamingSplit split;
    bool observed = false;
    bool bad_event = false;
    bool done = false;
    transfer::HttpCall http;
    http.method = "POST";
    http.url = runner.base_url + "/v1/chat/completions";
    http.body = body;
    http.timeout = kRequestBackstop;
    // A cancelled job closes its connection (checked per event, and by libcurl at least once a
    // second while the runner is silent, e.g. processing the prompt): llama-server notices the
    // closed connection and drops the generation, freeing its slot.
    http.cancelled = [&request] { return request.cancelled(); };
    http.on_body = [&](std::string_view bytes) {
      runner.progressed();
      if (request.cancelled()) return false;
      return splitter.feed(bytes, [&](std::string_view data) {
        if (data == "[DONE]") {
          done = true;
          return true;
        }
        auto chunk = parse_json(data, "llama-server's event");
        if (!chunk) {
          bad_event = true;
          return false;
        }
        streamed.add(*chunk);
        if (observer != nullptr) {
          const auto delta = split.feed(llama::chunk_content(*chunk));
          if (!delta.empty()) {
            observed = true;
            observer->text(delta.content, delta.reasoning);
          }
        }
        return true;
      });
    };
    auto answer = transfer::http_call(http);
    if (request.cancelled()) return fail(cancelled_error("the llm job"));
    if (bad_event) return fail(Error::protocol("llama-server sent an event that is not JSON"));
    if (!answer) {
      // Once text reached the observer, the pool's retry on a fresh runner would repeat it.
      if (observed) return fail(Error::internal("{}", answer.error().message));
      return fail(answer.error());
    }
    if (answer->status < 200 || answer->status >= 300) {
      return fail(llama::runner_error(answer->status, answer->body));
    }
    if (streamed.error()) return fail(llama::runner_error(500, streamed.error()->dump()));
    if (!done) return fail(Error::unavailable("llama-server's answer ended before [DONE]"));
    if (observer != nullptr) {
      const auto rest = split.finish();
      if (!rest.empty()) observer->text(rest.content, rest.reasoning);
    }
    return streamed.completion().dump();
  };
  auto raw = runners_->use(*launch, request.job_id, call);
  if (!raw) return fail(raw.error());
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  auto result = llama::completion_result(*raw, request.model, elapsed.count());
  if (!result) return fail(result.error());
  kLog.info("llm.done", {{"job_id", request.job_id},
                         {"model", request.model},
                         {"completion_tokens", (*result)["usage"]["completion_tokens"].dump()},
                         {"elapsed_ms", elapsed.count()}});
  auto json = proto::RawJson::parse(result->dump());
  if (!json) return fail(json.error());
  return TaskResult{LlmResult{std::move(*json)}};
}

Status LlamaEngine::stream_chat(const DispatchRequest& request,
                                const std::function<bool(std::string_view chunk)>& on_chunk) {
  const auto* params = std::get_if<proto::LlmParams>(&request.task.params);
  if (params == nullptr) return fail(cannot_serve(name(), request.task.kind()));
  auto launch = prepare(request, *params);
  if (!launch) return fail(launch.error());
  const std::string body =
      llama::chat_request(*params, request.source->cli_defaults.chat_template_kwargs, true).dump();
  bool sent_any = false;
  std::function<Result<bool>(const RunnerCall&)> call =
      [&](const RunnerCall& runner) -> Result<bool> {
    llama::SseSplitter splitter;
    transfer::HttpCall http;
    http.method = "POST";
    http.url = runner.base_url + "/v1/chat/completions";
    http.body = body;
    http.timeout = kRequestBackstop;
    http.on_body = [&](std::string_view bytes) {
      runner.progressed();
      return splitter.feed(bytes, [&](std::string_view data) {
        if (data == "[DONE]") return true;  // the caller ends the stream its own way
        // Bounded before parsing: a deep chunk must not overflow the stack in dump().
        auto chunk = parse_json(data, "llama-server's event");
        if (!chunk) return true;
        if (chunk->is_object() && chunk->contains("model")) (*chunk)["model"] = request.model;
        sent_any = true;
        return on_chunk(chunk->dump());
      });
    };
    auto answer = transfer::http_call(http);
    if (!answer) {
      // Once tokens reached the caller a retry would repeat them: report, do not retry.
      if (sent_any) return fail(Error::internal("{}", answer.error().message));
      return fail(answer.error());
    }
    if (answer->status < 200 || answer->status >= 300) {
      return fail(llama::runner_error(answer->status, answer->body));
    }
    return true;
  };
  auto done = runners_->use(*launch, request.job_id, call);
  if (!done) return fail(done.error());
  return {};
}

}  // namespace sw::engines
