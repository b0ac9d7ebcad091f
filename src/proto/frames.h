#pragma once
// WebSocket frames in both directions (reference-worker.md §1.3–§1.4). Discriminator `type`.

#include <variant>

#include "proto/types.h"

namespace sw::proto {

// ---- worker → studio ----
struct Hello {
  std::string auth_token;
  WorkerCapabilities capabilities;
  bool operator==(const Hello&) const = default;
};
struct Heartbeat {
  WorkerCapabilities capabilities;
  std::optional<std::string> current_job_id;  // omitted when no studio job runs
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
// Defined by the protocol but never sent by current workers; studios still accept it (§3.3).
struct ReadyForMore {
  bool operator==(const ReadyForMore&) const = default;
};

using WorkerFrame =
    std::variant<Hello, Heartbeat, Accept, Reject, CompleteJson, Fail, LogBatch, ReadyForMore>;

// ---- studio → worker ----
struct Welcome {
  std::string worker_id;
  std::string server_time;
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

using StudioFrame = std::variant<Welcome, Offer, HeartbeatAck, CompleteAck, FailAck, ErrorFrame>;

// The wire `type` of a frame ("hello", "completeJson", "welcome", ...).
std::string_view frame_type(const WorkerFrame& frame);
std::string_view frame_type(const StudioFrame& frame);

}  // namespace sw::proto
