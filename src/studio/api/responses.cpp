#include "studio/api/responses.h"

#include <fmt/format.h>

#include <algorithm>

#include "studio/json_views.h"

namespace sw::studio::api {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::api");
  return instance;
}

net::HttpResponse error_response(const Error& error) {
  switch (error.code) {
    case Code::NotFound: return refuse(Refusal::NotFound, error.message);
    case Code::Conflict:
    case Code::AlreadyExists: return refuse(Refusal::Conflict, error.message);
    case Code::InvalidArgument:
      return net::HttpResponse::error(400, "invalid_request", error.message);
    case Code::Unavailable:
      // The store's own words name the database (host, user, SQL): for the operator's log only.
      logger().warn("store.unavailable", {{"error", error.message}});
      return unavailable("the studio's database cannot take the request now; try again shortly");
    default:
      logger().error("request.failed",
                     {{"code", std::string(to_string(error.code))}, {"error", error.message}});
      return refuse(Refusal::InternalError,
                    "the studio failed to answer this request; its log says why");
  }
}

namespace {

std::pair<int, std::string_view> status_and_code(Refusal refusal) {
  switch (refusal) {
    case Refusal::NotFound: return {404, "not_found"};
    case Refusal::MethodNotAllowed: return {405, "method_not_allowed"};
    case Refusal::Conflict: return {409, "conflict"};
    case Refusal::NotReady: return {409, "not_ready"};
    case Refusal::IdempotencyKeyReused: return {409, "idempotency_key_reused"};
    case Refusal::Unauthorized: return {401, "unauthorized"};
    case Refusal::Forbidden: return {403, "forbidden"};
    case Refusal::JoinTokenRefused: return {403, "join_token_refused"};
    case Refusal::PayloadTooLarge: return {413, "payload_too_large"};
    case Refusal::RateLimited: return {429, "rate_limited"};
    case Refusal::QuotaExceeded: return {429, "quota_exceeded"};
    case Refusal::JobFailed: return {410, "job_failed"};
    case Refusal::JobCancelled: return {410, "job_cancelled"};
    case Refusal::InternalError: break;
  }
  return {500, "internal_error"};
}

}  // namespace

net::HttpResponse refuse(Refusal refusal, std::string_view message) {
  const auto [status, code] = status_and_code(refusal);
  return net::HttpResponse::error(status, code, message);
}

net::HttpResponse refuse(Refusal refusal, std::string_view message, const nlohmann::json& extra) {
  const auto [status, code] = status_and_code(refusal);
  nlohmann::json body = {{"error", code}, {"message", message}};
  for (const auto& [key, value] : extra.items()) {
    if (key != "error" && key != "message") {
      body[key] = value;
    }
  }
  return net::HttpResponse::json(status, dump(body));
}

net::HttpResponse file_answer(const std::filesystem::path& file, std::string content_type,
                              std::string_view what, std::string_view flag, bool shared_database) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    logger().error("file.missing", {{"file", file.string()},
                                    {"what", std::string(what)},
                                    {"error", ec ? ec.message() : "not a file"}});
    return net::HttpResponse::error(
        500, "file_missing",
        shared_database
            ? fmt::format("this studio process does not hold the bytes of {}: every studio "
                          "process on one database needs the same {} (one path, or a shared "
                          "mount)",
                          what, flag)
            : fmt::format("the bytes of {} are missing from the studio's directory (deleted, or "
                          "a backup restored without them); the studio's log names the file",
                          what));
  }
  net::HttpResponse response;
  response.content_type = std::move(content_type);
  response.file = file;
  return response;
}

std::string error_body(std::string_view code, std::string_view message) {
  return dump({{"error", code}, {"message", message}});
}

net::HttpResponse invalid(std::string_view code, std::string message) {
  return net::HttpResponse::error(400, code, message);
}

net::HttpResponse unavailable(std::string_view message, int retry_after_s) {
  auto response = net::HttpResponse::error(503, "unavailable", message);
  response.headers.push_back({"retry-after", std::to_string(retry_after_s)});
  return response;
}

net::HttpResponse ok_json(const nlohmann::json& body, int status) {
  return net::HttpResponse::json(status, dump(body));
}

bool is_lower_hex64(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool valid_ext(std::string_view ext) {
  return !ext.empty() && ext.size() <= 10 && std::all_of(ext.begin(), ext.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

}  // namespace sw::studio::api
