#pragma once
// The studio's one mapping from errors to HTTP answers, and the small response helpers every
// route file shares. An error answer's body is always `{"error": <code>, "message": <text>}`
// (reference §2: the worker reads `error`). Pure functions; any thread.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/log.h"
#include "net/http_server.h"

namespace sw::studio::api {

// The one target the studio's HTTP routes log under.
const log::Logger& logger();

// Error code → status and body: NotFound 404 not_found; Conflict and AlreadyExists 409 conflict;
// InvalidArgument 400 invalid_request; Unavailable 503 unavailable; anything else 500
// internal_error. A client error's message is the error's own. A server-side error (Unavailable,
// IoError, Internal, …) comes from the store and may name the database's host, user or SQL: it
// is logged (target studio_worker::studio::api) and the client gets a fixed sentence.
net::HttpResponse error_response(const Error& error);

// A route's own refusals (not a stored Error): each one's HTTP status and `error` code live in
// refuse()'s table alone, beside error_response's.
enum class Refusal {
  NotFound,              // 404 not_found
  MethodNotAllowed,      // 405 method_not_allowed
  Conflict,              // 409 conflict: the resource is in another state
  NotReady,              // 409 not_ready: a job's result asked for before the job is done
  IdempotencyKeyReused,  // 409 idempotency_key_reused: the key named another request's job
  Unauthorized,          // 401 unauthorized: no credential, or an unknown one
  Forbidden,             // 403 forbidden: a known credential without the scope
  JoinTokenRefused,      // 403 join_token_refused
  PayloadTooLarge,       // 413 payload_too_large: a body beyond what the studio takes in
  RateLimited,           // 429 rate_limited: too many requests from one address
  QuotaExceeded,         // 429 quota_exceeded: an API key's quota is used up
  JobFailed,             // 410 job_failed: a failed job's result, which will never exist
  JobCancelled,          // 410 job_cancelled: a cancelled job's result, likewise
  InternalError,         // 500 internal_error: the studio itself is wrong
};
net::HttpResponse refuse(Refusal refusal, std::string_view message);
// The same, the body carrying `extra`'s members too (a job's status, a log reference).
net::HttpResponse refuse(Refusal refusal, std::string_view message, const nlohmann::json& extra);

// The body of an error answer, for answers built before their status is sent.
std::string error_body(std::string_view code, std::string_view message);

// 400 with a route's own code (invalid_request, invalid_task, …).
net::HttpResponse invalid(std::string_view code, std::string message);

// 503 unavailable, with `Retry-After: kRetryAfterSeconds`: the studio is shutting down or its
// database cannot take the request now.
inline constexpr int kRetryAfterSeconds = 2;
net::HttpResponse unavailable(std::string_view message, int retry_after_s = kRetryAfterSeconds);

net::HttpResponse ok_json(const nlohmann::json& body, int status = 200);

// An answer whose body is the file `file` (result or upload bytes, by the row's word), or, when
// this process's directory lacks it, 500 file_missing naming `what`. On a database several
// processes may share (PostgreSQL) the message says that each needs the directory of `flag`
// (processes that do not share it hold each other's rows but not the bytes); on one SQLite
// studio, that the file is gone from its directory. The path is logged, not answered.
net::HttpResponse file_answer(const std::filesystem::path& file, std::string content_type,
                              std::string_view what, std::string_view flag, bool shared_database);

// Shapes the worker protocol's paths and fields must have.
bool is_lower_hex64(std::string_view text);
bool valid_ext(std::string_view ext);  // 1–10 of [a-z0-9]

}  // namespace sw::studio::api
