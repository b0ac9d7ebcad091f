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
  bool operator==(const RegisterRequest&) const = default;
};

// 200 answer to a register-request.
struct RegisterResponse {
  std::string request_id;
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
