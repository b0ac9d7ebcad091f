#include "worker/studio_api.h"

#include <nlohmann/json.hpp>

#include "common/json_text.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "transfer/http_client.h"
#include "transfer/url_policy.h"

namespace sw::worker {
namespace {

std::string clip(const std::string& body) {
  constexpr std::size_t kLimit = 300;
  return body.size() > kLimit ? body.substr(0, kLimit) + "…" : body;
}

Error http_error(std::string_view op, long status, const std::string& body) {
  const Code code = status >= 500 ? Code::Unavailable
                    : status == 404 ? Code::NotFound
                    : status == 409 ? Code::Conflict
                                    : Code::InvalidArgument;
  return Error::make(code, "{} failed: {} — {}", op, status, clip(body));
}

Result<std::string> route(const StudioEndpoint& studio, std::string_view path) {
  auto base = transfer::studio_base_url(studio.api_base_url);
  if (!base) return fail(base.error());
  return *base + "/graphics/api" + std::string(path);
}

}  // namespace

Result<RegisterOutcome> post_register_request(const StudioEndpoint& studio,
                                              const proto::RegisterRequest& request) {
  auto url = route(studio, "/workers/register-request");
  if (!url) return fail(url.error());
  transfer::HttpCall call;
  call.method = "POST";
  call.url = *url;
  call.body = proto::encode(request);
  call.timeout = studio.timeout;
  call.ca_file = studio.ca_file;
  call.cancelled = studio.cancelled;
  auto reply = transfer::http_call(call);
  if (!reply) return fail(Error{reply.error().code, "register-request failed: " + reply.error().message});
  if (reply->status == 403 && request.join_token) {
    // The studio's words only: any other 403 (a proxy's page) stays a transient failure.
    const auto body = parse_json(reply->body, "the studio's answer");
    const auto text = [&](const char* name) -> const std::string* {
      if (!body || !body->is_object()) return nullptr;
      const auto it = body->find(name);
      return it != body->end() ? it->template get_ptr<const std::string*>() : nullptr;
    };
    if (const auto* code = text("error"); code && *code == "join_token_refused") {
      const auto* message = text("message");
      return RegisterOutcome{JoinTokenRefused{message ? *message : std::string("refused")}};
    }
  }
  if (reply->status < 200 || reply->status >= 300) {
    return fail(http_error("register-request", reply->status, reply->body));
  }
  auto decoded = proto::decode_register_response(reply->body);
  if (!decoded) {
    return fail(Error::protocol("register-request failed: unexpected answer: {}",
                                decoded.error().message));
  }
  return RegisterOutcome{std::move(*decoded)};
}

Result<PollOutcome> poll_registration(const StudioEndpoint& studio, const std::string& request_id,
                                      const std::string& secret, std::chrono::milliseconds wait) {
  auto url = route(studio, "/workers/register-requests/" + request_id);
  if (!url) return fail(url.error());
  transfer::HttpCall call;
  call.url = *url;
  if (wait.count() > 0) call.url += "?waitMs=" + std::to_string(wait.count());
  call.bearer = secret;
  call.timeout = studio.timeout;
  call.ca_file = studio.ca_file;
  call.cancelled = studio.cancelled;
  auto reply = transfer::http_call(call);
  if (!reply) return fail(Error{reply.error().code, "register-poll failed: " + reply.error().message});
  if (reply->status == 404) return PollOutcome{RegistrationUnknown{}};
  if (reply->status < 200 || reply->status >= 300) {
    return fail(http_error("register-poll", reply->status, reply->body));
  }
  auto decoded = proto::decode_registration_poll(reply->body);
  if (!decoded) {
    return fail(Error::protocol("register-poll failed: unexpected answer: {}",
                                decoded.error().message));
  }
  return PollOutcome{std::move(*decoded)};
}

tl::expected<void, UploadFailure> upload_result(const StudioEndpoint& studio,
                                                const ResultUpload& upload) {
  auto url = route(studio, "/workers/" + upload.worker_id + "/jobs/" + upload.job_id + "/complete");
  if (!url) return tl::unexpected(UploadFailure{url.error(), 400});
  transfer::HttpCall call;
  call.method = "POST";
  call.url = *url;
  call.bearer = upload.auth_token;
  call.timeout = studio.timeout;
  call.ca_file = studio.ca_file;
  call.cancelled = studio.cancelled;
  call.form.push_back({"prompt", upload.prompt, std::nullopt, std::nullopt});
  call.form.push_back({"ext", upload.ext, std::nullopt, std::nullopt});
  call.form.push_back(
      {"image", upload.bytes, upload.job_id + "." + upload.ext, proto::mime_for_ext(upload.ext)});
  auto reply = transfer::http_call(call);
  if (!reply) {
    // NotFound comes only from loading libcurl (transfer/curl_handle.h): nothing left the worker.
    const bool local = reply.error().code == Code::NotFound;
    return tl::unexpected(UploadFailure{
        Error{reply.error().code, "complete failed: " + reply.error().message}, 0, local});
  }
  if (reply->status < 200 || reply->status >= 300) {
    return tl::unexpected(
        UploadFailure{http_error("complete", reply->status, reply->body), reply->status});
  }
  return {};
}

}  // namespace sw::worker
