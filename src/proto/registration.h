#pragma once
// Registration HTTP bodies (reference-worker.md §2.1–§2.2).

#include <variant>

#include "proto/types.h"

namespace sw::proto {

// POST /graphics/api/workers/register-request
struct RegisterRequest {
  std::string install_id;
  std::string registration_secret_hash;  // 64 lowercase hex: sha256 of the secret's hex text
  WorkerCapabilities capabilities;
  std::string user_agent;
  std::optional<std::string> label;  // legacy; accepted and ignored by studios
  // Ours (issue 22): a join token the worker's operator was given. Sent only when set
  // (`studio-worker register --join-token`); studio-server then approves the request at once
  // (answering status "approved") or refuses it with 403 join_token_refused. A studio that does
  // not know the member ignores it and the request waits for the operator as before.
  std::optional<std::string> join_token;
  bool operator==(const RegisterRequest&) const = default;
};

// 200 answer to a register-request.
struct RegisterResponse {
  std::string request_id;
  // "pending"; studio-server answers "approved" to a request its join token approved (ours).
  std::string status = "pending";
  bool operator==(const RegisterResponse&) const = default;
};

// GET /graphics/api/workers/register-requests/:id, tagged by `status`.
struct RegistrationPending {
  bool operator==(const RegistrationPending&) const = default;
};
struct RegistrationApproved {
  std::string worker_id;
  std::string auth_token;
  bool operator==(const RegistrationApproved&) const = default;
};
struct RegistrationRejected {
  std::string reason;  // default ""
  bool operator==(const RegistrationRejected&) const = default;
};
using RegistrationPoll =
    std::variant<RegistrationPending, RegistrationApproved, RegistrationRejected>;

}  // namespace sw::proto
