#pragma once
// The worker's HTTP calls to its studio (reference-worker.md §2.1–§2.3): register-request, the
// approval poll, and the multipart `complete` upload of a binary result. Blocking (libcurl): call
// on a worker thread. Thread-safe. Non-2xx answers become errors `<op> failed: <status> — <body>`.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include "common/error.h"
#include "proto/registration.h"

namespace sw::worker {

struct StudioEndpoint {
  std::string api_base_url;  // as configured; normalised per call
  std::optional<std::string> ca_file;
  std::chrono::milliseconds timeout{60000};
  // When set and true, a call in flight ends within about a second with a Cancelled error (the
  // daemon's stop; see transfer::HttpCall::cancelled). Must be thread-safe.
  std::function<bool()> cancelled;
};

// 403 join_token_refused (issue 22): studio-server will not approve a request with this join
// token (unknown, expired, used up, revoked); `reason` is its message. Permanent for this token.
struct JoinTokenRefused {
  std::string reason;
};
using RegisterOutcome = std::variant<proto::RegisterResponse, JoinTokenRefused>;
Result<RegisterOutcome> post_register_request(const StudioEndpoint& studio,
                                              const proto::RegisterRequest& request);

// 404: the studio no longer knows the request (the worker starts over).
struct RegistrationUnknown {};
using PollOutcome = std::variant<proto::RegistrationPoll, RegistrationUnknown>;
// `wait` > 0 adds `?waitMs=<ms>` (ours): studio-server holds a pending poll up to that long and
// answers as soon as the operator decides; the reference studio ignores the parameter and answers
// at once. Keep it well below studio.timeout.
Result<PollOutcome> poll_registration(const StudioEndpoint& studio, const std::string& request_id,
                                      const std::string& secret,
                                      std::chrono::milliseconds wait = {});

struct ResultUpload {
  std::string worker_id;
  std::string auth_token;
  std::string job_id;
  std::string prompt;  // the full prompt
  std::string ext;
  std::string bytes;
};

// Why an upload failed, for the retry decision: transport errors and 5xx are worth retrying,
// 4xx (409: the job is not ours any more) are not, nor is a worker that cannot upload at all.
struct UploadFailure {
  Error error;
  long status = 0;  // 0 for transport errors
  // Nothing was sent: this worker cannot make HTTP calls (libcurl could not be loaded; the
  // failure is remembered for the process's life), so no retry here can deliver it.
  bool local = false;
  bool retryable() const { return !local && (status == 0 || status >= 500); }
};
tl::expected<void, UploadFailure> upload_result(const StudioEndpoint& studio,
                                                const ResultUpload& upload);

}  // namespace sw::worker
