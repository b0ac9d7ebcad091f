#include "worker/local_api.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <filesystem>

#include "common/clock.h"
#include "common/prom_text.h"
#include "common/secrets.h"
#include "common/strings.h"
#include "engines/composite_engine.h"
#include "models/admission.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "transfer/url_policy.h"
#include "worker/local_bodies.h"
#include "worker/outbox.h"
#include "worker/run_blocking.h"
#include "worker/studio_api.h"
#include "worker/vram_probe.h"

namespace sw::worker {

namespace asio = boost::asio;
using json = nlohmann::json;
using net::HttpResponse;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::local_api");
  return instance;
}

bool is_loopback_name(std::string_view host) {
  return host == "localhost" || host == "127.0.0.1" || host == "::1" || host == "[::1]";
}

// "host[:port]" or "[v6]:port" → host.
std::string_view host_part(std::string_view authority) {
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  const auto colon = authority.find(':');
  if (colon != std::string_view::npos && authority.find(':', colon + 1) == std::string_view::npos) {
    return authority.substr(0, colon);
  }
  return authority;  // a bare IPv6 address or no port
}

bool is_loopback_origin(std::string_view origin) {
  std::string_view rest;
  if (origin.starts_with("http://")) {
    rest = origin.substr(7);
  } else if (origin.starts_with("https://")) {
    rest = origin.substr(8);
  } else {
    return false;
  }
  if (rest.find('/') != std::string_view::npos) return false;
  return is_loopback_name(host_part(rest));
}

json job_json(const JobRecord& job) {
  json out = {{"jobId", job.job_id},         {"kind", proto::to_string(job.kind)},
              {"model", job.model},          {"prompt", job.prompt},
              {"source", job.source},        {"status", job.status},
              {"startedAt", job.started_at}, {"hasThumbnail", false}};
  if (!job.reason.empty()) out["reason"] = job.reason;
  if (!job.finished_at.empty()) out["finishedAt"] = job.finished_at;
  return out;
}

json session_json(const SessionStatus& session) {
  json out = {{"state", to_string(session.phase)}};
  if (session.phase == SessionPhase::Reconnecting) out["attempt"] = session.attempt;
  if (session.phase == SessionPhase::AuthFailed || session.phase == SessionPhase::Fatal) {
    out["reason"] = session.reason;
  }
  return out;
}

json registration_json(const RegistrationStatus& registration) {
  json out = {{"state", to_string(registration.phase)}};
  if (registration.phase == RegistrationPhase::Pending) {
    out["requestId"] = registration.request_id;
    out["since"] = registration.since;
  }
  if (registration.phase == RegistrationPhase::Rejected) out["reason"] = registration.reason;
  return out;
}

HttpResponse text(int status, std::string body) {
  return HttpResponse::text(status, std::move(body), "text/plain; charset=utf-8");
}

std::optional<std::uint64_t> free_bytes(const std::filesystem::path& root) {
  std::error_code ec;
  auto probe = root;
  while (!probe.empty() && !std::filesystem::exists(probe, ec)) probe = probe.parent_path();
  if (probe.empty()) return std::nullopt;
  auto space = std::filesystem::space(probe, ec);
  if (ec) return std::nullopt;
  return space.available;
}

}  // namespace

// A generation request, decoded on the loop and run on the pool.
struct LocalApi::Generation {
  std::string job_id;
  std::string model;
  proto::Task task;
  std::optional<proto::ModelSource> source;  // from the local catalogue
  bool stream = false;
  std::optional<SteadyTime> deadline;  // on the runner's clock
  SharedTicket ticket;
};

LocalApi::LocalApi(Runtime& runtime, const StatusBoard& status, JobRunner& runner,
                   std::string token, std::filesystem::path discovery_file, LocalCatalog catalog,
                   const WorkerMetrics* metrics, std::shared_ptr<engines::RunnerPool> runners)
    : runtime_(runtime),
      status_(status),
      runner_(runner),
      token_(std::move(token)),
      discovery_file_(std::move(discovery_file)),
      catalog_(std::move(catalog)),
      metrics_(metrics),
      runners_(std::move(runners)) {}

std::optional<HttpResponse> LocalApi::guard(const net::HttpRequest& head) const {
  if (const auto* host = head.header("host"); host != nullptr) {
    if (!is_loopback_name(host_part(*host))) {
      return text(403, fmt::format("forbidden: non-loopback Host header \"{}\"", *host));
    }
  }
  if (const auto* origin = head.header("origin"); origin != nullptr) {
    if (!is_loopback_origin(*origin)) {
      return text(403, fmt::format("forbidden: cross-site request from Origin \"{}\"", *origin));
    }
  }
  const auto token = head.bearer_token();
  if (!token || !constant_time_equal(*token, token_)) {
    return text(401, fmt::format("unauthorized: send Authorization: Bearer <token>, the token in {}",
                                 discovery_file_.string()));
  }
  return std::nullopt;
}

std::variant<net::Admission, HttpResponse> LocalApi::admit(const net::HttpRequest& head) {
  const std::uint64_t limit =
      head.method == "POST" && head.path == "/image" ? kImageBodyLimit : kBodyLimit;
  if (!(head.method == "GET" && head.path == "/healthz")) {
    if (auto refused = guard(head)) return std::move(*refused);
  }
  if (const auto* length = head.header("content-length"); length != nullptr) {
    std::uint64_t declared = 0;
    if (std::sscanf(length->c_str(), "%lu", &declared) == 1 && declared > limit) {
      return text(413, fmt::format("request body exceeds {} bytes", limit));
    }
  }
  return net::Admission{limit};
}

std::variant<net::UpgradeAccepted, HttpResponse> LocalApi::upgrade(const net::HttpRequest&) {
  return text(404, "no websocket here");
}

void LocalApi::handle(net::HttpRequest request, net::Responder responder) {
  bool answered_later = false;
  HttpResponse response = route(request, responder, answered_later);
  if (!answered_later) responder.send(std::move(response));
}

namespace {

// Results finished but not yet acknowledged by the studio (ours, issue 7).
json outbox_json(const OutboxSummary& summary) {
  json oldest = nullptr;
  if (summary.oldest_created_at_ms) {
    oldest = std::max<std::int64_t>(0, (unix_millis_now() - *summary.oldest_created_at_ms) / 1000);
  }
  return {{"entries", summary.entries},
          {"bytes", summary.bytes},
          {"inMemoryOnly", summary.volatile_entries},
          {"oldestAgeSecs", oldest},
          {"delivered", summary.delivered},
          {"dropped", summary.dropped},
          {"lastError", summary.last_error.empty() ? json(nullptr) : json(summary.last_error)},
          {"maxEntries", summary.limits.max_entries},
          {"maxBytes", summary.limits.max_bytes},
          {"full", summary.full}};
}

}  // namespace

json LocalApi::runners_json() const {
  json out = json::array();
  if (!runners_) return out;
  for (const auto& runner : runners_->status()) {
    out.push_back({{"model", runner.model},
                   {"program", runner.program},
                   {"pid", runner.pid},
                   {"port", runner.port},
                   {"memoryGib", runner.memory_gib},
                   {"learnedGib", runner.learned_gib ? json(*runner.learned_gib) : json(nullptr)},
                   {"device", runner.device.empty() ? json(nullptr) : json(runner.device)},
                   {"inUse", runner.in_use}});
  }
  return out;
}

std::string LocalApi::status_json() const {
  const auto& rt = runtime_;
  const LiveStatus& live = status_.view();
  json active = json::array(), recent = json::array(), local = json::array();
  for (const auto& job : rt.active_jobs()) active.push_back(job_json(job));
  for (const auto& job : rt.recent_jobs()) recent.push_back(job_json(job));
  for (const auto& job : rt.local_jobs()) local.push_back(job_json(job));
  json heartbeat = nullptr;
  if (live.heartbeat) {
    heartbeat = {{"outcome", live.heartbeat->ok ? "ok" : "err"},
                 {"lastAttemptAt", live.heartbeat->last_attempt_at}};
    if (!live.heartbeat->ok) heartbeat["reason"] = live.heartbeat->reason;
  }
  json out = {
      {"version", SW_VERSION},
      {"pid", ::getpid()},
      {"configPath", rt.config_path().string()},
      {"paused", rt.paused()},
      {"runnersUnloaded", runners_ && runners_->unloaded()},
      {"runners", runners_json()},
      {"busy", rt.gate().busy()},
      {"registered", rt.config().registered()},
      {"workerId", rt.config().worker_id ? json(*rt.config().worker_id) : json(nullptr)},
      {"registration", registration_json(live.registration)},
      {"config", json::parse(editable_config_json(rt.config()))},
      {"session", session_json(live.session)},
      {"heartbeat", heartbeat},
      {"gpuRuntime", {{"ok", true}, {"detail", "no GPU runtime needed by the built-in engines"}}},
      {"vramTotalGb", rt.vram_total_gb()},
      {"localApiUrl", live.local_api_url},
      {"currentJobId", rt.current_studio_job() ? json(*rt.current_studio_job()) : json(nullptr)},
      {"activeJobs", active},
      {"recentJobs", recent},
      {"localJobs", local},
      {"logsSeq", rt.logs().after(~0ull).seq},
      {"logShipQueue", rt.logs().queued()},
      {"outbox", outbox_json(rt.outbox().summary())},
      {"catalog",
       {{"path", catalog_.path.string()},
        {"models", catalog_.models.size()},
        {"error", catalog_.error ? json(*catalog_.error) : json(nullptr)}}},
  };
  return out.dump();
}

HttpResponse LocalApi::route(const net::HttpRequest& request, net::Responder& responder,
                             bool& answered_later) {
  const auto& method = request.method;
  const auto& path = request.path;
  auto ok_json = [](json body, int status = 200) { return HttpResponse::json(status, body.dump()); };

  if (path == "/healthz" && method == "GET") {
    const auto root = runtime_.config().resolved_models_root();
    const auto free = free_bytes(root);
    return ok_json({{"ok", true},
                    {"version", SW_VERSION},
                    {"busy", runtime_.gate().busy()},
                    {"engine", "multi"},
                    {"modelsRoot", root.string()},
                    {"modelsRootFreeBytes", free ? json(*free) : json(nullptr)},
                    {"gpuRuntime", nullptr}});
  }
  if (path == "/daemon/status" && method == "GET") {
    return HttpResponse::json(200, status_json());
  }
  if (path == "/daemon/logs" && method == "GET") {
    std::uint64_t after = 0;
    if (auto value = request.query_param("after")) {
      // The whole value, digits only: sscanf took "-1" as 2^64−1 and "12abc" as 12.
      const char* end = value->data() + value->size();
      const auto [stop, ec] = std::from_chars(value->data(), end, after);
      if (value->empty() || ec != std::errc() || stop != end) {
        return HttpResponse::error(400, "bad_request",
                                   "after: must be a log sequence number (0 to 2^64-1)");
      }
    }
    auto page = runtime_.logs().after(after);
    json entries = json::array();
    for (const auto& entry : page.entries) entries.push_back(json::parse(proto::encode(entry)));
    return ok_json({{"entries", entries}, {"seq", page.seq}});
  }
  if (path == "/metrics" && method == "GET") {
    if (metrics_ == nullptr) return HttpResponse::error(404, "not_found", "no metrics here");
    answered_later = true;
    asio::co_spawn(runtime_.loop(), serve_metrics(this, responder), asio::detached);
    return {};
  }
  if (path == "/daemon/pause" && method == "POST") {
    bool unload = false;
    if (!request.body.empty()) {
      auto body = read_pause_body(request.body, kBodyLimit);
      if (!body) return HttpResponse::error(400, "bad_request", body.error().message);
      unload = body->unload;
    }
    const bool paused = runtime_.set_paused(true);
    if (!unload) return ok_json({{"paused", paused}});
    if (!runners_) return ok_json({{"paused", paused}, {"unloaded", true}, {"runnersStopped", 0}});
    answered_later = true;
    asio::co_spawn(runtime_.loop(), pause_unloading(this, responder), asio::detached);
    return {};
  }
  if (path == "/daemon/resume" && method == "POST") {
    if (runners_) runners_->set_unloaded(false);  // no stopping: never blocks
    return ok_json({{"paused", runtime_.set_paused(false)}});
  }
  if (path == "/daemon/config" && method == "GET") {
    return HttpResponse::json(200, editable_config_json(runtime_.config()));
  }
  if (path == "/daemon/config" && method == "PUT") {
    auto next = apply_editable_config(runtime_.config(), request.body);
    if (!next) {
      const bool bad_request = next.error().code == Code::Protocol;
      return HttpResponse::error(400, bad_request ? "bad_request" : "invalid_config",
                                 next.error().message);
    }
    if (auto saved = runtime_.update_config(std::move(*next)); !saved) {
      return HttpResponse::error(500, "config_not_saved", saved.error().message);
    }
    return HttpResponse::json(200, editable_config_json(runtime_.config()));
  }
  if (path == "/daemon/registration/reset" && method == "POST") {
    if (const auto phase = status_.view().registration.phase;
        phase != RegistrationPhase::Rejected) {
      return HttpResponse::error(409, "not_rejected",
                                 fmt::format("registration is {}; only a rejected registration "
                                             "can be reset here",
                                             to_string(phase)));
    }
    WorkerConfig next = runtime_.config();
    next.reset_registration();
    if (auto saved = runtime_.update_config(std::move(next)); !saved) {
      return HttpResponse::error(500, "config_not_saved", saved.error().message);
    }
    if (runtime_.on_registration_reset) runtime_.on_registration_reset();
    return ok_json({{"ok", true}}, 202);
  }
  if (path == "/daemon/register" && method == "POST") {
    // Ours (issue 17): `studio-worker register [--api-base-url U] [--reset] [--join-token T]`
    // (issue 22) while the daemon runs, so that the daemon does not undo it. Unlike
    // /daemon/registration/reset (the reference's, rejected registrations only), a reset here works
    // in any state.
    auto body = read_register_body(request.body, kBodyLimit);
    if (!body) return HttpResponse::error(400, "bad_request", body.error().message);
    WorkerConfig next = runtime_.config();
    if (body->api_base_url) {
      if (auto base = transfer::studio_base_url(*body->api_base_url); !base) {
        return HttpResponse::error(400, "invalid_config", "apiBaseUrl: " + base.error().message);
      }
      next.api_base_url = *body->api_base_url;
    }
    if (body->reset) next.reset_registration();
    // Approved already (a provisioning script run twice): the token is not needed, not kept.
    const bool token_not_needed = body->join_token && !body->reset && next.registered();
    if (body->join_token && !token_not_needed) {
      if (auto set = next.set_join_token(*body->join_token); !set) {
        return HttpResponse::error(400, "invalid_join_token", set.error().message);
      }
    }
    if (auto valid = validate_config(next); !valid) {
      return HttpResponse::error(400, "invalid_config", valid.error().message);
    }
    if (auto saved = runtime_.update_config(std::move(next)); !saved) {
      return HttpResponse::error(500, "config_not_saved", saved.error().message);
    }
    if ((body->reset || (body->join_token && !token_not_needed)) &&
        runtime_.on_registration_reset) {
      runtime_.on_registration_reset();
    }
    json answer = {{"apiBaseUrl", runtime_.config().api_base_url},
                   {"registration", registration_json(status_.view().registration)}};
    if (token_not_needed) {
      answer["joinToken"] = "not_needed";
      answer["workerId"] = runtime_.config().worker_id.value_or("");
    }
    return ok_json(answer);
  }
  if (path == "/daemon/shutdown" && method == "POST") {
    if (runtime_.on_shutdown_requested) {
      asio::post(runtime_.loop(), runtime_.on_shutdown_requested);
    }
    return ok_json({{"ok", true}}, 202);
  }
  if (path == "/jobs" && method == "GET") {
    json jobs = json::array();
    for (const auto& job : runtime_.active_jobs()) {
      if (job.source == "local") jobs.push_back(job_json(job));
    }
    for (const auto& job : runtime_.local_jobs()) jobs.push_back(job_json(job));
    return HttpResponse::json(200, jobs.dump());
  }

  // ---- generation ----
  std::optional<proto::TaskKind> kind;
  if (path == "/image") kind = proto::TaskKind::Image;
  if (path == "/v1/chat/completions") kind = proto::TaskKind::Llm;
  if (path == "/tts") kind = proto::TaskKind::AudioTts;
  if (path == "/stt") kind = proto::TaskKind::AudioStt;
  if (path == "/video") kind = proto::TaskKind::Video;
  if (!kind) {
    return HttpResponse::error(404, "not_found", fmt::format("no route {} {}", method, path));
  }
  if (method != "POST") {
    return HttpResponse::error(405, "method_not_allowed", fmt::format("{} wants POST", path));
  }
  auto body = read_generation_body(request.body, *kind,
                                   *kind == proto::TaskKind::Image ? kImageBodyLimit : kBodyLimit);
  if (!body) return text(400, body.error().message);
  std::string model = std::move(body->model);
  const bool stream = body->stream;
  const std::optional<std::int64_t> deadline_ms = body->deadline_ms;
  // The local catalogue first (it carries the files and the engine), then exact engine ids.
  std::optional<proto::ModelSource> source;
  if (const CatalogModel* entry = find_catalog_model(catalog_.models, model, *kind)) {
    model = entry->id;
    source = entry->source;
  }
  if (stream && (!source || source->engine != "llama-cpp")) {
    return HttpResponse::error(
        409, "model_not_loaded",
        "stream:true needs a llama-cpp model from the local catalogue (models.json)");
  }
  if (model.empty()) {
    // No catalogue entry for the kind: synthetic-<kind> when that engine is on, else an engine
    // that needs no model files (espeak-ng speaks TTS).
    auto fallback = engines::default_model(runtime_.engine_capabilities(), *kind);
    if (!fallback) {
      const std::string kind_name(proto::to_string(*kind));
      std::string why = runtime_.engine_capabilities().contains(*kind)
                            ? fmt::format(
                                  "every engine of this worker that serves {} needs a "
                                  "model's files: name a model from models.json (the "
                                  "local catalogue) or add one there",
                                  kind_name)
                            : fmt::format("no engine of this worker serves {}", kind_name);
      if (!runtime_.config().engines.synthetic) {
        why += "; the synthetic engine is off ([engines] synthetic = false)";
      }
      return text(400, fmt::format("no default model for {}: {}", kind_name, why));
    }
    model = fallback->model;
    source = std::move(fallback->source);
  }
  std::string job_id = runtime_.next_local_job_id();
  auto ticket = runner_.try_reserve(job_id);
  if (!ticket) {
    // One slot (the default): the words callers know; several: which limit was reached.
    HttpResponse busy =
        text(503, ticket.error() == "worker already has an in-flight job"
                      ? std::string("worker is busy with another job (studio or local); retry "
                                    "shortly")
                      : fmt::format("worker is busy with other jobs (studio or local): {}; retry "
                                    "shortly",
                                    ticket.error()));
    busy.headers.push_back({"retry-after", "2"});
    return busy;
  }
  Generation generation;
  generation.job_id = std::move(job_id);
  generation.model = model;
  generation.task = std::move(body->task);
  generation.source = std::move(source);
  generation.stream = stream;
  if (deadline_ms) {
    generation.deadline = runner_.clock().steady_now() + std::chrono::milliseconds(*deadline_ms);
  }
  generation.ticket = std::move(*ticket);
  answered_later = true;
  if (generation.stream) {
    asio::co_spawn(runtime_.loop(), stream_chat(this, std::move(generation), responder),
                   asio::detached);
  } else {
    asio::co_spawn(runtime_.loop(), generate(this, std::move(generation), responder),
                   asio::detached);
  }
  return {};
}

// The same memory admission as studio offers, for both generation routes: a job that does not
// fit beside the running ones is refused at once (503 naming the numbers) rather than queued.
asio::awaitable<bool> LocalApi::admit_memory(LocalApi* self, const Generation& generation,
                                             net::Responder& responder) {
  engines::DispatchRequest asked{generation.model, generation.task, generation.source,
                                 generation.job_id, true};
  SharedTicket held = generation.ticket;
  auto refused = co_await self->runner_.admit(std::move(asked), 0.0, held);
  if (!refused) co_return true;
  HttpResponse busy =
      text(503, fmt::format("worker cannot run this job now: {}; retry shortly", refused->reason));
  busy.headers.push_back({"retry-after", "2"});
  responder.send(std::move(busy));
  co_return false;
}

asio::awaitable<void> LocalApi::generate(LocalApi* self, Generation generation,
                                         net::Responder responder) {
  Runtime& runtime = self->runtime_;
  const std::string job_id = generation.job_id;
  if (!co_await admit_memory(self, generation, responder)) co_return;
  runtime.job_started(JobRecord{job_id, generation.task.kind(), generation.model,
                                prompt_for(generation.task), "local", {}, {}, {}, {}});
  engines::DispatchRequest request{generation.model, generation.task, generation.source, job_id,
                                   true};
  // Named locals: GCC 12 double-destroys temporaries inside a co_await expression.
  SharedTicket ticket = std::move(generation.ticket);
  const auto deadline = generation.deadline;
  auto outcome = co_await self->runner_.run(std::move(request), std::move(ticket), deadline);
  auto& result = outcome.result;
  if (outcome.past_deadline) {
    runtime.job_finished(job_id, false, "deadline passed: the caller stopped waiting");
    responder.send(text(504, "deadline passed: the caller stopped waiting"));
    co_return;
  }
  if (!result) {
    runtime.job_finished(job_id, false, result.error().message);
    const bool caller_error =
        result.error().code == Code::InvalidArgument || result.error().code == Code::Unsupported;
    responder.send(text(caller_error ? 400 : 500, result.error().message));
    co_return;
  }
  runtime.job_finished(job_id, true, {});
  logger().info("local.job_done", {{"job_id", job_id}, {"model", generation.model}});
  HttpResponse response;
  if (result->kind == ResultPayload::Kind::Json) {
    response = HttpResponse::json(200, std::move(result->body));
  } else {
    response.status = 200;
    response.content_type = proto::mime_for_ext(result->ext);
    response.body = std::move(result->body);
  }
  responder.send(std::move(response));
}

// Gauges owned by the loop are read here; the devices are probed on the pool (nvidia-smi).
asio::awaitable<void> LocalApi::serve_metrics(LocalApi* self, net::Responder responder) {
  MetricGauges gauges;
  gauges.connected = self->status_.view().session.phase == SessionPhase::Connected;
  gauges.paused = self->runtime_.paused();
  gauges.runners_unloaded = self->runners_ && self->runners_->unloaded();
  const auto outbox = self->runtime_.outbox().summary();
  gauges.outbox_entries = outbox.entries;
  gauges.outbox_bytes = outbox.bytes;
  const WorkerMetrics* metrics = self->metrics_;
  std::function<std::string()> work = [metrics, gauges]() mutable {
    gauges.devices = probe_device_memory(system_vram_sources());
    if (auto gib = models::available_system_memory_gib()) {
      gauges.system_memory_available_bytes = *gib * 1024 * 1024 * 1024;
    }
    return metrics->render(gauges);
  };
  const auto pool = self->runtime_.pool();
  std::string body = co_await run_blocking<std::string>(pool, std::move(work));
  responder.send(HttpResponse::text(200, std::move(body), std::string(prom::kContentType)));
}

// Stopping a runner waits for it to exit (up to its grace): on the pool, answered when done.
asio::awaitable<void> LocalApi::pause_unloading(LocalApi* self, net::Responder responder) {
  std::shared_ptr<engines::RunnerPool> runners = self->runners_;
  std::function<std::size_t()> work = [runners]() { return runners->set_unloaded(true); };
  const auto pool = self->runtime_.pool();
  const std::size_t stopped = co_await run_blocking<std::size_t>(pool, std::move(work));
  logger().info("daemon.paused_unloading", {{"runners_stopped", stopped}});
  const json body = {
      {"paused", self->runtime_.paused()}, {"unloaded", true}, {"runnersStopped", stopped}};
  responder.send(HttpResponse::json(200, body.dump()));
}

// SSE (reference-worker.md §6.2): chat.completion.chunk events as the runner produces them, an
// error event if it fails after the start, then `data: [DONE]`.
asio::awaitable<void> LocalApi::stream_chat(LocalApi* self, Generation generation,
                                            net::Responder responder) {
  Runtime& runtime = self->runtime_;
  const std::string job_id = generation.job_id;
  if (!co_await admit_memory(self, generation, responder)) co_return;
  runtime.job_started(JobRecord{job_id, generation.task.kind(), generation.model,
                                prompt_for(generation.task), "local", {}, {}, {}, {}});
  std::shared_ptr<net::EventStream> stream = responder.start_stream("text/event-stream");
  engines::DispatchRequest request{generation.model, generation.task, generation.source, job_id,
                                   true};
  engines::Engine* engine = &runtime.engine();
  auto loop = runtime.loop();
  // Chunks are written on the loop (the stream is loop-thread only); a closed stream stops the
  // runner's request at its next token.
  auto open = std::make_shared<std::atomic<bool>>(true);
  std::function<Status()> work = [engine, request, stream, loop, open]() {
    std::function<bool(std::string_view)> on_chunk = [&](std::string_view chunk) {
      asio::post(loop, [stream, open, text = fmt::format("data: {}\n\n", chunk)]() mutable {
        if (!stream || !stream->is_open()) {
          open->store(false);
          return;
        }
        stream->write(std::move(text));
      });
      return open->load();
    };
    return engine->stream_chat(request, on_chunk);
  };
  const auto pool = runtime.pool();
  auto done = co_await run_blocking<Status>(pool, std::move(work));
  generation.ticket.reset();
  if (stream) {
    if (!done) {
      const json error = {{"error", {{"message", done.error().message}}}};
      stream->write(fmt::format("data: {}\n\n", error.dump()));
    }
    stream->write("data: [DONE]\n\n");
    stream->close();
  }
  runtime.job_finished(job_id, done.has_value(), done ? std::string() : done.error().message);
  if (auto* metrics = self->runner_.metrics()) {
    metrics->count_job(proto::TaskKind::Llm, done ? JobOutcome::Ok : JobOutcome::Failed);
  }
  logger().info("local.stream_done", {{"job_id", job_id},
                                      {"model", generation.model},
                                      {"ok", done.has_value()}});
}

}  // namespace sw::worker
