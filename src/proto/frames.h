#pragma once
// WebSocket frames in both directions (reference-worker.md §1.3–§1.4). Discriminator `type`.

#include <cstdint>
#include <string_view>
#include <variant>

#include "proto/types.h"

namespace sw::proto {

// Ours (issue 16): protocol extensions a peer announces by name. A worker lists the ones it
// understands in `hello.features`; a studio answers in `welcome.features` with those it supports
// too, and sends an extension's frames or fields only to a worker that announced it. The
// reference sends no `features` and gets the reference's documents, byte for byte.
//
// "limits": `welcome.limits` carries the studio's size limits (StudioLimits).
inline constexpr std::string_view kFeatureLimits = "limits";
// "capacity" (issue 19): the worker may hold several jobs at once. Once the studio echoed it in
// `welcome.features`, every heartbeat carries `capacity` (WorkerCapacity: how many more offers
// the worker takes now, and every studio job it holds), and the worker sends a heartbeat as soon
// as either changes. A studio that announced it offers a job to a worker that holds some while
// `capacity.room` > 0. Without it (the reference) the worker holds one studio job at a time, as
// the reference does; `currentJobId` keeps naming one of them either way.
inline constexpr std::string_view kFeatureCapacity = "capacity";
// "progress" (issue 20): once welcomed, the worker sends `jobProgress` frames while a studio job
// runs (download and load phases, image steps, and an llm answer's text as it is generated), so
// that the studio can stream them to its clients. Loss-tolerant: a studio may drop them.
inline constexpr std::string_view kFeatureProgress = "progress";
// "cancel" (issue 20): once welcomed, the studio sends `cancel {jobId}` when a client cancels a job
// the worker holds; the worker stops the engine's work and answers `fail` (retryable false), which
// frees its slot. Without it (the reference) a cancelled job runs to its end and its result is
// dropped.
inline constexpr std::string_view kFeatureCancel = "cancel";
// "uploads" (issue 20): the worker fetches input URLs under its studio's base URL
// (`<base>/graphics/api/uploads/<id>`: files a client uploaded) with its own bearer token. A
// studio offers jobs whose inputs are uploads only to workers that announced it.
inline constexpr std::string_view kFeatureUploads = "uploads";

// Ours (feature "capacity"): what a worker can take on now.
struct WorkerCapacity {
  // More offers the worker takes now (free job slots; memory is judged per offer).
  std::uint32_t room = 0;
  // Every studio job it holds (accepted or being admitted), oldest first.
  std::vector<std::string> job_ids = {};
  bool operator==(const WorkerCapacity&) const = default;
};

// ---- worker → studio ----
struct Hello {
  std::string auth_token;
  WorkerCapabilities capabilities;
  std::vector<std::string> features = {};  // ours: announced extensions; omitted when empty
  bool operator==(const Hello&) const = default;
};
struct Heartbeat {
  WorkerCapabilities capabilities;
  std::optional<std::string> current_job_id;  // omitted when no studio job runs
  std::optional<WorkerCapacity> capacity = {};  // ours, feature "capacity"; omitted when unset
  bool operator==(const Heartbeat&) const = default;
};
struct Accept {
  std::string job_id;
  bool operator==(const Accept&) const = default;
};
struct Reject {
  std::string job_id;
  std::string reason;
  std::optional<RejectCode> code;
  bool operator==(const Reject&) const = default;
};
struct CompleteJson {
  std::string job_id;
  RawJson result;
  std::optional<std::string> prompt;  // the full prompt, never a preview
  bool operator==(const CompleteJson&) const = default;
};
struct Fail {
  std::string job_id;
  std::string error;
  bool retryable = true;
  bool operator==(const Fail&) const = default;
};
struct LogBatch {
  std::vector<LogEntry> entries;
  bool operator==(const LogBatch&) const = default;
};
// Ours, feature "progress": how a studio job is getting on. Every field but jobId and phase is
// optional; a frame says what changed since the last one.
struct JobProgress {
  std::string job_id;
  // "download" (model files), "load" (the engine loading the model), "generate" (inference).
  std::string phase;
  std::optional<std::string> delta;            // llm: answer text generated since the last frame
  std::optional<std::string> reasoning_delta;  // llm: reasoning text since the last frame
  std::optional<std::uint64_t> done;           // units done in this phase: bytes, steps
  std::optional<std::uint64_t> total;          // units this phase has, when known
  bool operator==(const JobProgress&) const = default;
};
// Defined by the protocol but never sent by current workers; studios still accept it (§3.3).
struct ReadyForMore {
  bool operator==(const ReadyForMore&) const = default;
};

using WorkerFrame = std::variant<Hello, Heartbeat, Accept, Reject, CompleteJson, Fail, LogBatch,
                                 ReadyForMore, JobProgress>;

// ---- studio → worker ----
// Ours (feature "limits"): what the studio accepts, in bytes, so that a worker can fail a result
// that could never be delivered instead of sending it (and losing the session) again and again.
struct StudioLimits {
  // The largest text message the studio reads: a `completeJson` frame whole (result, prompt and
  // keys), as encoded. Bigger messages end the session (WebSocket close 1009).
  std::uint64_t max_frame_bytes = 0;
  // The largest body of `POST .../jobs/:jobId/complete` (the multipart upload, parts and
  // boundaries included). Bigger bodies are refused with 413.
  std::uint64_t max_upload_bytes = 0;
  bool operator==(const StudioLimits&) const = default;
};
struct Welcome {
  std::string worker_id;
  std::string server_time;
  // Ours, only to a worker whose hello announced features: the announced ones this studio
  // supports (omitted when empty), and for "limits" the limits.
  std::vector<std::string> features = {};
  std::optional<StudioLimits> limits = {};
  bool operator==(const Welcome&) const = default;
};
struct Offer {
  JobOfferClaim claim;
  bool operator==(const Offer&) const = default;
};
struct HeartbeatAck {
  bool operator==(const HeartbeatAck&) const = default;
};
struct CompleteAck {
  std::string job_id;
  bool operator==(const CompleteAck&) const = default;
};
struct FailAck {
  std::string job_id;
  bool operator==(const FailAck&) const = default;
};
// A fatal problem; the studio sends it before closing with close_code_for(code).
struct ErrorFrame {
  WorkerErrorCode code = WorkerErrorCode::InternalError;
  std::string message;
  bool operator==(const ErrorFrame&) const = default;
};

// Ours, feature "cancel": stop the work on a job the client cancelled. The worker answers `fail`
// (retryable false) once the engine let go of it; a job it does not hold is ignored.
struct CancelJob {
  std::string job_id;
  std::string reason;
  bool operator==(const CancelJob&) const = default;
};

using StudioFrame =
    std::variant<Welcome, Offer, HeartbeatAck, CompleteAck, FailAck, ErrorFrame, CancelJob>;

// The wire `type` of a frame ("hello", "completeJson", "welcome", ...).
std::string_view frame_type(const WorkerFrame& frame);
std::string_view frame_type(const StudioFrame& frame);

}  // namespace sw::proto
