// The studio's one mapping from errors and refusals to HTTP answers: the status a client sees,
// the `error` code it branches on, and what it is never told (the database's own words).

#include "studio/api/responses.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace sw::studio::api {
namespace {

std::pair<int, std::string> status_and_code(const net::HttpResponse& response) {
  return {response.status, nlohmann::json::parse(response.body).at("error").get<std::string>()};
}

int count_header(const net::HttpResponse& response, std::string_view name) {
  int count = 0;
  for (const auto& header : response.headers) {
    count += header.name == name ? 1 : 0;
  }
  return count;
}

TEST(StudioResponses, EveryRefusalHasItsOwnStatusAndCode) {
  const std::vector<std::tuple<Refusal, int, std::string>> table = {
      {Refusal::NotFound, 404, "not_found"},
      {Refusal::MethodNotAllowed, 405, "method_not_allowed"},
      {Refusal::Conflict, 409, "conflict"},
      {Refusal::NotReady, 409, "not_ready"},
      {Refusal::IdempotencyKeyReused, 409, "idempotency_key_reused"},
      {Refusal::Unauthorized, 401, "unauthorized"},
      {Refusal::Forbidden, 403, "forbidden"},
      {Refusal::JoinTokenRefused, 403, "join_token_refused"},
      {Refusal::PayloadTooLarge, 413, "payload_too_large"},
      {Refusal::RateLimited, 429, "rate_limited"},
      {Refusal::QuotaExceeded, 429, "quota_exceeded"},
      {Refusal::JobFailed, 410, "job_failed"},
      {Refusal::JobCancelled, 410, "job_cancelled"},
      {Refusal::InternalError, 500, "internal_error"},
  };
  for (const auto& [refusal, status, code] : table) {
    const auto answer = refuse(refusal, "why: " + code);
    EXPECT_EQ(status_and_code(answer), std::make_pair(status, code));
    EXPECT_EQ(nlohmann::json::parse(answer.body).at("message"), "why: " + code);
    EXPECT_EQ(answer.content_type, "application/json");
  }
}

TEST(StudioResponses, ARefusalMayCarryMoreMembersButNotReplaceItsCodeOrMessage) {
  const auto answer = refuse(Refusal::JobFailed, "job j1 failed: boom",
                             {{"status", "failed"}, {"error", "ok"}, {"message", "hidden"}});
  EXPECT_EQ(answer.status, 410);
  const auto body = nlohmann::json::parse(answer.body);
  EXPECT_EQ(body.at("error"), "job_failed");
  EXPECT_EQ(body.at("message"), "job j1 failed: boom");
  EXPECT_EQ(body.at("status"), "failed");
}

TEST(StudioResponses, ClientErrorsKeepTheirMessageAndServerErrorsHideIt) {
  EXPECT_EQ(status_and_code(error_response(Error{Code::NotFound, "no job j1"})),
            std::make_pair(404, std::string("not_found")));
  EXPECT_EQ(status_and_code(error_response(Error{Code::AlreadyExists, "x"})),
            std::make_pair(409, std::string("conflict")));
  const auto invalid = error_response(Error{Code::InvalidArgument, "task: required"});
  EXPECT_EQ(status_and_code(invalid), std::make_pair(400, std::string("invalid_request")));
  EXPECT_EQ(nlohmann::json::parse(invalid.body).at("message"), "task: required");

  const std::string secret = "connection to server at \"db.internal\" (10.0.0.5), user sw failed";
  for (const auto code : {Code::Unavailable, Code::IoError, Code::Internal, Code::Protocol}) {
    const auto answer = error_response(Error{code, secret});
    EXPECT_GE(answer.status, 500) << to_string(code);
    EXPECT_EQ(answer.body.find("db.internal"), std::string::npos) << answer.body;
  }
  const auto busy = error_response(Error{Code::Unavailable, secret});
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(count_header(busy, "retry-after"), 1);
}

TEST(StudioResponses, AnUnavailableAnswerSaysWhenToRetryOnce) {
  const auto answer = unavailable("busy", 5);
  EXPECT_EQ(status_and_code(answer), std::make_pair(503, std::string("unavailable")));
  ASSERT_EQ(count_header(answer, "retry-after"), 1);
  for (const auto& header : answer.headers) {
    if (header.name == "retry-after") {
      EXPECT_EQ(header.value, "5");
    }
  }
}

}  // namespace
}  // namespace sw::studio::api
