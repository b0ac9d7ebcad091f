#pragma once
// The engine contract (reference-worker.md §4.1): a named thing that advertises which models it
// serves per task kind and turns a task into a result.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/error.h"
#include "engines/runner/input_fetch.h"
#include "media/image.h"
#include "proto/types.h"
#include "transfer/download.h"

namespace sw::engines {

// Binary results are uploaded over the multipart `complete` route; `ext` names the format of
// `bytes` (which may differ from what was asked, e.g. video asked as mp4 and produced as webp).
struct ImageResult {
  media::Bytes bytes;
  std::string ext;
};
struct AudioTtsResult {
  media::Bytes bytes;
  std::string ext;
};
struct VideoResult {
  media::Bytes bytes;
  std::string ext;
};
// JSON results travel in `completeJson`.
struct LlmResult {
  proto::RawJson json;  // chat.completion
};
struct AudioSttResult {
  proto::RawJson json;  // whisper shape
};

// Alternatives in TaskKind order, so index() == kind.
using TaskResult =
    std::variant<ImageResult, LlmResult, AudioSttResult, AudioTtsResult, VideoResult>;
proto::TaskKind result_kind(const TaskResult& result);

// kind → model ids (exact ids and wildcard sentinels such as "llama-cpp:*").
using Capabilities = std::map<proto::TaskKind, std::vector<std::string>>;

// What an engine tells about a job while it works on it (issue 20: the studio's `jobProgress`).
// Called on the dispatching thread, between pieces of work (a download's progress tick, a
// token), so an implementation must be thread-safe and must not block: it records and returns.
class JobObserver {
 public:
  virtual ~JobObserver() = default;
  // Model files downloading: bytes of the current file done, and its size when known.
  virtual void download(std::uint64_t done, std::optional<std::uint64_t> total) {
    (void)done;
    (void)total;
  }
  // The engine started loading the model (a runner starting). Once per start.
  virtual void loading() {}
  // llm: answer text and reasoning text generated since the last call (either may be empty).
  // Concatenated, the calls spell the result's `content` and `reasoning_content` exactly.
  virtual void text(std::string_view content, std::string_view reasoning) {
    (void)content;
    (void)reasoning;
  }
};

struct DispatchRequest {
  std::string model;
  proto::Task task;
  std::optional<proto::ModelSource> source;  // present for studio offers (routing key)
  std::string job_id;                        // for logs; may be empty for local jobs
  bool local = false;  // from the local API: `data:` URLs are accepted for inputs
  // Cancellation (issue 20: the studio's `cancel`). Engines poll stop_requested() between pieces
  // of work (downloads, runner HTTP calls, simulated delays) and then return Code::Cancelled
  // promptly (within about a second), having closed whatever they held open: a runner request's
  // connection is closed, which makes llama-server drop the generation. Loading a runner is not
  // interrupted (it may serve other jobs); the request that would follow it is. Default: a token
  // that never stops.
  std::stop_token stop = {};
  // Progress of this job, or null (local jobs, a studio that did not welcome "progress").
  std::shared_ptr<JobObserver> observer = {};
  // The studio the job came from, for its uploads (input_fetch.h); nullopt for local jobs.
  std::optional<StudioAccess> studio = {};

  // The download progress callback for ModelCache::ensure_files: reports to `observer` and
  // stops the download once `stop` is requested.
  transfer::ProgressFn download_progress() const;
  bool cancelled() const { return stop.stop_requested(); }
};

// The error of work given up because `DispatchRequest::stop` was requested.
Error cancelled_error(std::string_view what);

// Thread-safety: dispatch() may be called concurrently from worker threads (never from the I/O
// thread); name() and capabilities() are cheap and thread-safe.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  virtual Capabilities capabilities() const = 0;
  virtual Result<TaskResult> dispatch(const DispatchRequest& request) = 0;
  // Why this worker cannot serve the request at all (no engine for it), checked before an offer
  // is accepted so that the studio gives the job to another worker instead of it failing here.
  // Cheap, no I/O: callable on the I/O thread. Default: every request is routable.
  virtual std::optional<std::string> routing_refusal(const DispatchRequest& request) const {
    (void)request;
    return std::nullopt;
  }
  // Why this engine cannot run anything right now, e.g. its runner program was removed or
  // replaced by something not executable after the worker started (an operator upgrading it, a
  // cache cleaned). A member that says so is not advertised and its offers are rejected before
  // accept, naming the engine. One stat(2) per call: not for the I/O thread's hot path.
  // Default: always available.
  virtual std::optional<std::string> unavailable() const { return std::nullopt; }
  // Why this worker cannot take the job now for lack of memory (the reference's "insufficient
  // memory: …" text), checked when the offer arrives so that another worker can take it.
  // `estimate_gib` is the offer's vramGbEstimate. Default: no memory limit.
  virtual std::optional<std::string> admission_refusal(const DispatchRequest& request,
                                                       double estimate_gib) {
    (void)request;
    (void)estimate_gib;
    return std::nullopt;
  }
  // How much memory (GiB) running `request` adds now, for the worker's admission of a job beside
  // others (worker/job_gate.h): the engine's own figure (a cached GGUF's estimate, the weights'
  // size on disk) else `estimate_gib` (the offer's vramGbEstimate); 0 when the model's runner
  // is already resident (its memory is in use, so free memory already shows it). May read a
  // file header: not for the I/O thread. Default: `estimate_gib`.
  virtual double memory_need_gib(const DispatchRequest& request, double estimate_gib) {
    (void)request;
    return estimate_gib;
  }
  // Chat streaming (local API `stream:true`): `on_chunk` receives each chat.completion.chunk JSON
  // text as it is produced and returns false to stop. Default: not supported.
  virtual Status stream_chat(const DispatchRequest& request,
                             const std::function<bool(std::string_view chunk)>& on_chunk) {
    (void)request;
    (void)on_chunk;
    return fail(Error::unsupported("the {} engine cannot stream chat", name()));
  }
};
using EnginePtr = std::unique_ptr<Engine>;

// `program` is not an executable file any more: why, in words (nullopt when it is fine).
std::optional<std::string> program_unavailable(const std::filesystem::path& program);

// The typed "wrong kind" failure: `<engine> engine cannot serve <kind> tasks`, Code::Unsupported.
Error cannot_serve(std::string_view engine, proto::TaskKind kind);

// Whether a studio should retry the job elsewhere (`fail.retryable`). Unsupported work and
// invalid input fail the same way on every worker, so they are terminal.
bool is_retryable(const Error& error);

}  // namespace sw::engines
