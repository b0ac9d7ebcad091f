#include "studio/router.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "common/clock.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "rules/engine_rules.h"
#include "studio/admin.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/request_bodies.h"
#include "studio/studio.h"

namespace sw::studio {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::api");
  return instance;
}

enum class RouteId {
  RegisterRequest,
  RegisterPoll,
  Complete,
  JobsCreate,
  JobsList,
  JobGet,
  JobResult,
  JobCancel,
  Events,
  ModelsList,
  ModelsCreate,
  ModelGet,
  ModelPut,
  ModelPatch,
  ModelDelete,
  WorkersList,
  WorkersPending,
  WorkerApprove,
  WorkerReject,
  WorkerDelete,
  WorkerLogs,
  KeysList,
  KeysCreate,
  KeyDelete,
  AdminTokenRotate,
  Metrics,
  Health,
};

enum class Auth { None, Worker, Client, Admin };
enum class BodyKind { None, Json, Result };

struct RouteSpec {
  std::string_view method;
  std::string_view pattern;  // ":x" segments capture
  RouteId id;
  Auth auth;
  BodyKind body;
};

constexpr RouteSpec kRoutes[] = {
    {"POST", "/graphics/api/workers/register-request", RouteId::RegisterRequest, Auth::None,
     BodyKind::Json},
    {"GET", "/graphics/api/workers/register-requests/:id", RouteId::RegisterPoll, Auth::None,
     BodyKind::None},
    {"POST", "/graphics/api/workers/:worker/jobs/:job/complete", RouteId::Complete, Auth::Worker,
     BodyKind::Result},
    {"POST", "/api/v1/jobs", RouteId::JobsCreate, Auth::Client, BodyKind::Json},
    {"GET", "/api/v1/jobs", RouteId::JobsList, Auth::Client, BodyKind::None},
    {"GET", "/api/v1/jobs/:id", RouteId::JobGet, Auth::Client, BodyKind::None},
    {"GET", "/api/v1/jobs/:id/result", RouteId::JobResult, Auth::Client, BodyKind::None},
    {"POST", "/api/v1/jobs/:id/cancel", RouteId::JobCancel, Auth::Client, BodyKind::Json},
    {"GET", "/api/v1/events", RouteId::Events, Auth::Client, BodyKind::None},
    {"GET", "/api/v1/models", RouteId::ModelsList, Auth::Client, BodyKind::None},
    {"POST", "/api/v1/models", RouteId::ModelsCreate, Auth::Client, BodyKind::Json},
    {"GET", "/api/v1/models/:id", RouteId::ModelGet, Auth::Client, BodyKind::None},
    {"PUT", "/api/v1/models/:id", RouteId::ModelPut, Auth::Client, BodyKind::Json},
    {"PATCH", "/api/v1/models/:id", RouteId::ModelPatch, Auth::Client, BodyKind::Json},
    {"DELETE", "/api/v1/models/:id", RouteId::ModelDelete, Auth::Client, BodyKind::None},
    {"GET", "/api/v1/workers", RouteId::WorkersList, Auth::Admin, BodyKind::None},
    {"GET", "/api/v1/workers/pending", RouteId::WorkersPending, Auth::Admin, BodyKind::None},
    {"POST", "/api/v1/workers/pending/:id/approve", RouteId::WorkerApprove, Auth::Admin,
     BodyKind::Json},
    {"POST", "/api/v1/workers/pending/:id/reject", RouteId::WorkerReject, Auth::Admin,
     BodyKind::Json},
    {"DELETE", "/api/v1/workers/:id", RouteId::WorkerDelete, Auth::Admin, BodyKind::None},
    {"GET", "/api/v1/workers/:id/logs", RouteId::WorkerLogs, Auth::Admin, BodyKind::None},
    {"GET", "/api/v1/keys", RouteId::KeysList, Auth::Admin, BodyKind::None},
    {"POST", "/api/v1/keys", RouteId::KeysCreate, Auth::Admin, BodyKind::Json},
    {"DELETE", "/api/v1/keys/:id", RouteId::KeyDelete, Auth::Admin, BodyKind::None},
    {"POST", "/api/v1/admin-token/rotate", RouteId::AdminTokenRotate, Auth::Admin, BodyKind::Json},
    {"GET", "/metrics", RouteId::Metrics, Auth::None, BodyKind::None},
    {"GET", "/healthz", RouteId::Health, Auth::None, BodyKind::None},
};

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return segments;
}

bool match_pattern(std::string_view pattern, const std::vector<std::string_view>& segments,
                   std::vector<std::string>& params) {
  const auto parts = split_path(pattern);
  if (parts.size() != segments.size()) {
    return false;
  }
  std::vector<std::string> captured;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].front() == ':') {
      captured.emplace_back(segments[i]);
    } else if (parts[i] != segments[i]) {
      return false;
    }
  }
  params = std::move(captured);
  return true;
}

struct Matched {
  const RouteSpec* spec = nullptr;
  std::vector<std::string> params;
  bool wrong_method = false;
};

Matched match_route(const HttpRequest& request) {
  Matched matched;
  const auto segments = split_path(request.path);
  for (const auto& spec : kRoutes) {
    std::vector<std::string> params;
    if (!match_pattern(spec.pattern, segments, params)) {
      continue;
    }
    if (spec.method == request.method) {
      matched.spec = &spec;
      matched.params = std::move(params);
      matched.wrong_method = false;
      return matched;
    }
    matched.wrong_method = true;
  }
  return matched;
}

HttpResponse invalid(std::string_view code, std::string message) {
  return HttpResponse::error(400, code, message);
}

HttpResponse from_error(const Error& error) {
  switch (error.code) {
    case Code::NotFound: return HttpResponse::error(404, "not_found", error.message);
    case Code::Conflict:
    case Code::AlreadyExists: return HttpResponse::error(409, "conflict", error.message);
    case Code::InvalidArgument: return HttpResponse::error(400, "invalid_request", error.message);
    case Code::Unavailable: return HttpResponse::error(503, "unavailable", error.message);
    default: return HttpResponse::error(500, "internal_error", error.message);
  }
}

HttpResponse ok_json(const json& body, int status = 200) {
  return HttpResponse::json(status, dump(body));
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

}  // namespace

class Router : public net::HttpHandler {
 public:
  explicit Router(Studio& studio) : s_(studio) {}

  std::variant<net::Admission, HttpResponse> admit(const HttpRequest& head) override {
    const auto matched = match_route(head);
    if (!matched.spec) {
      return matched.wrong_method
                 ? HttpResponse::error(405, "method_not_allowed", head.method + " " + head.path)
                 : HttpResponse::error(404, "not_found", "no route for " + head.path);
    }
    if (auto refusal = authorise(head, *matched.spec, matched.params)) {
      return std::move(*refusal);
    }
    net::Admission admission;
    switch (matched.spec->body) {
      case BodyKind::Result: admission.body_limit = s_.config_.result_body_limit; break;
      case BodyKind::Json: admission.body_limit = s_.config_.json_body_limit; break;
      case BodyKind::None: admission.body_limit = s_.config_.json_body_limit; break;
    }
    if (matched.spec->auth == Auth::None) {
      // Anyone may send these: a small body that must arrive quickly, so that an
      // unauthenticated peer cannot hold a socket (and a buffer) by trickling (issue 16).
      admission.body_limit = std::min(admission.body_limit, s_.config_.anonymous_body_limit);
      admission.body_timeout = s_.config_.anonymous_body_timeout;
    } else {
      admission.authenticated = true;  // authorise() checked the credential above
    }
    return admission;
  }

  void admit_later(const HttpRequest& head, net::Admitter admitter) override {
    auto decision = admit(head);
    const auto matched = match_route(head);
    if (std::holds_alternative<HttpResponse>(decision) || matched.spec == nullptr ||
        matched.spec->id != RouteId::Complete) {
      admitter.decide(std::move(decision));
      return;
    }
    admit_upload(head, matched.params[0], matched.params[1], std::move(admitter));
  }

  std::variant<net::UpgradeAccepted, HttpResponse> upgrade(const HttpRequest& head) override {
    std::vector<std::string> params;
    if (head.method != "GET" ||
        !match_pattern("/graphics/api/workers/:id/connect", split_path(head.path), params)) {
      return HttpResponse::error(404, "not_found", "no WebSocket route for " + head.path);
    }
    const auto& worker_id = params[0];
    if (!worker_token_ok(head, worker_id)) {
      const auto reference = random_uuid();
      logger().warn(
          "ws.upgrade_unauthorised",
          {{"worker_id", worker_id}, {"remote", head.remote_address}, {"reference", reference}});
      json body = {{"error", "unauthorized"},
                   {"message", "unknown worker or bad bearer token"},
                   {"reference", reference}};
      return HttpResponse::json(401, dump(body));
    }
    if (s_.stopping_) {
      return HttpResponse::error(503, "unavailable", "the studio is shutting down");
    }
    net::UpgradeAccepted accepted;
    accepted.handler = std::make_shared<WorkerSession>(s_.weak_from_this(), worker_id);
    accepted.message_limit = s_.config_.frame_limit;
    if (const auto* protocols = head.header("sec-websocket-protocol");
        protocols && protocols->find("studio-worker-v1") != std::string::npos) {
      accepted.subprotocol = "studio-worker-v1";
    }
    return accepted;
  }

  void handle(HttpRequest request, net::Responder responder) override {
    const auto matched = match_route(request);
    if (!matched.spec) {
      responder.send(HttpResponse::error(404, "not_found", "no route for " + request.path));
      return;
    }
    const auto& p = matched.params;
    switch (matched.spec->id) {
      case RouteId::RegisterRequest: return register_request(request, responder);
      case RouteId::RegisterPoll: return register_poll(request, p[0], responder);
      case RouteId::Complete: return complete(std::move(request), p[0], p[1], responder);
      case RouteId::JobsCreate: return create_job(request, responder);
      case RouteId::JobsList: return list_jobs(request, responder);
      case RouteId::JobGet: return get_job(p[0], responder);
      case RouteId::JobResult: return job_result(p[0], responder);
      case RouteId::JobCancel: return cancel_job(p[0], responder);
      case RouteId::Events: return events(responder);
      case RouteId::ModelsList: return list_models(responder);
      case RouteId::ModelsCreate: return put_model(request, std::nullopt, responder);
      case RouteId::ModelGet: return get_model(p[0], responder);
      case RouteId::ModelPut: return put_model(request, p[0], responder);
      case RouteId::ModelPatch: return patch_model(request, p[0], responder);
      case RouteId::ModelDelete: return delete_model(p[0], responder);
      case RouteId::WorkersList: return list_workers(responder);
      case RouteId::WorkersPending: return list_pending(responder);
      case RouteId::WorkerApprove: return approve(p[0], responder);
      case RouteId::WorkerReject: return reject(request, p[0], responder);
      case RouteId::WorkerDelete: return delete_worker(p[0], responder);
      case RouteId::WorkerLogs: return worker_logs(request, p[0], responder);
      case RouteId::KeysList: return list_keys(responder);
      case RouteId::KeysCreate: return create_key(request, responder);
      case RouteId::KeyDelete: return delete_key(p[0], responder);
      case RouteId::AdminTokenRotate: return rotate_admin_token(responder);
      case RouteId::Metrics: return metrics(responder);
      case RouteId::Health: return responder.send(ok_json({{"ok", true}}));
    }
  }

 private:
  // ---- auth ----

  bool worker_token_ok(const HttpRequest& head, const std::string& worker_id) const {
    const auto token = head.bearer_token();
    const auto worker = s_.workers_.find(worker_id);
    return token && worker != s_.workers_.end() &&
           constant_time_equal(sha256_hex(*token), worker->second.token_hash);
  }

  std::optional<HttpResponse> authorise(const HttpRequest& head, const RouteSpec& spec,
                                        const std::vector<std::string>& params) const {
    if (spec.auth == Auth::None) {
      return std::nullopt;
    }
    if (spec.auth == Auth::Worker) {
      if (worker_token_ok(head, params[0])) {
        return std::nullopt;
      }
      return HttpResponse::error(401, "unauthorized", "unknown worker or bad bearer token");
    }
    const auto token = head.bearer_token();
    if (!token) {
      return HttpResponse::error(401, "unauthorized", "Authorization: Bearer <key> required");
    }
    const auto hash = sha256_hex(*token);
    const bool admin = constant_time_equal(hash, s_.admin_token_hash_);
    if (admin) {
      return std::nullopt;
    }
    const bool client = s_.api_keys_.contains(hash);
    if (spec.auth == Auth::Client && client) {
      return std::nullopt;
    }
    if (client) {
      return HttpResponse::error(403, "forbidden", "this route needs the admin token");
    }
    return HttpResponse::error(401, "unauthorized", "unknown API key");
  }

  // ---- registration (reference §2.1–2.2) ----

  void register_request(const HttpRequest& request, const net::Responder& responder) {
    if (!s_.register_limiter_.allow(request.remote_address, s_.steady_now())) {
      responder.send(HttpResponse::error(
          429, "rate_limited",
          fmt::format("at most {} registration requests per {} s from one address",
                      s_.config_.register_rate_limit, s_.config_.register_rate_window.count())));
      return;
    }
    auto body = proto::decode_register_request(request.body);
    if (!body) {
      responder.send(invalid("invalid_request", body.error().message));
      return;
    }
    if (body->install_id.empty() || body->install_id.size() > 200) {
      responder.send(invalid("invalid_request", "installId: must be 1 to 200 characters"));
      return;
    }
    if (!is_lower_hex64(body->registration_secret_hash)) {
      responder.send(invalid("invalid_request",
                             "registrationSecretHash: must be 64 lowercase hex characters"));
      return;
    }
    store::RegistrationRecord record;
    record.id = "rr-" + random_uuid();
    record.install_id = body->install_id;
    record.secret_hash = body->registration_secret_hash;
    record.capabilities_json = proto::encode(body->capabilities);
    record.user_agent = body->user_agent;
    // Address and port: two requests from one host (two installs) are told apart by the port
    // their request came from, as well as by install id and first-seen time (issue 17).
    const bool v6 = request.remote_address.find(':') != std::string::npos;
    record.source_ip = request.remote_port == 0 ? request.remote_address
                       : v6 ? fmt::format("[{}]:{}", request.remote_address, request.remote_port)
                            : fmt::format("{}:{}", request.remote_address, request.remote_port);
    record.created_at = s_.unix_millis();
    s_.db_->call<std::string>(
        [record](store::StudioStore& st) -> Result<std::string> {
          // Dedup: a retry with the same install and secret gets the same request. A new secret
          // for the same install supersedes the old request (never adopts it: whoever holds the
          // old secret keeps no claim on the new one).
          auto existing = st.find_pending_request(record.install_id);
          if (!existing) {
            return fail(std::move(existing).error());
          }
          if (*existing) {
            if (constant_time_equal((*existing)->secret_hash, record.secret_hash)) {
              return (*existing)->id;
            }
            auto superseded = st.decide_request((*existing)->id, store::RequestStatus::Rejected,
                                                "superseded by a newer request from the same "
                                                "install",
                                                std::nullopt, record.created_at);
            if (!superseded) {
              return fail(std::move(superseded).error());
            }
          }
          SW_TRY(st.insert_request(record));
          return record.id;
        },
        [responder, install = record.install_id](Result<std::string> id) {
          if (!id) {
            responder.send(from_error(id.error()));
            return;
          }
          logger().info("registration.requested", {{"request_id", *id}, {"install_id", install}});
          responder.send(
              HttpResponse::json(200, proto::encode(proto::RegisterResponse{*id, "pending"})));
        });
  }

  // The most a poll is held open (`?waitMs=`, ours): well inside a worker's 60 s HTTP timeout.
  static constexpr std::int64_t kMaxPollWaitMs = 30'000;

  // `?waitMs=N` (ours; the reference studio ignores it): a poll of a request still pending is
  // held up to N ms (at most kMaxPollWaitMs) and answered as soon as the operator decides, so an
  // approval reaches a waiting worker at once without it polling often.
  void register_poll(const HttpRequest& request, const std::string& request_id,
                     const net::Responder& responder) {
    const auto secret = request.bearer_token();
    if (!secret) {
      responder.send(HttpResponse::error(401, "unauthorized",
                                         "Authorization: Bearer <registration secret> required"));
      return;
    }
    std::int64_t wait_ms = 0;
    if (auto text = request.query_param("waitMs"); text && !text->empty()) {
      const auto* end = text->data() + text->size();
      const auto parsed = std::from_chars(text->data(), end, wait_ms);
      if (parsed.ec != std::errc() || parsed.ptr != end || wait_ms < 0) {
        responder.send(invalid("invalid_request", "waitMs: must be a whole number of ms"));
        return;
      }
      wait_ms = std::min(wait_ms, kMaxPollWaitMs);
    }
    poll_registration(request_id, sha256_hex(*secret), std::chrono::milliseconds(wait_ms),
                      responder);
  }

  void poll_registration(const std::string& request_id, const std::string& secret_hash,
                         std::chrono::milliseconds wait, const net::Responder& responder) {
    struct Answer {
      int status = 200;
      std::string body;
      std::optional<std::pair<std::string, std::string>> token;  // worker id, hash
      bool pending = false;
    };
    s_.db_->call<Answer>(
        [request_id, secret_hash](store::StudioStore& st) -> Result<Answer> {
          auto found = st.find_request(request_id);
          if (!found) {
            return fail(std::move(found).error());
          }
          if (!*found) {
            return Answer{
                404, dump({{"error", "not_found"}, {"message", "unknown registration request"}}),
                std::nullopt};
          }
          const auto& r = **found;
          if (!constant_time_equal(secret_hash, r.secret_hash)) {
            return Answer{
                401, dump({{"error", "unauthorized"}, {"message", "registration secret rejected"}}),
                std::nullopt};
          }
          switch (r.status) {
            case store::RequestStatus::Pending:
              return Answer{200,
                            proto::encode(proto::RegistrationPoll{proto::RegistrationPending{}}),
                            std::nullopt, true};
            case store::RequestStatus::Rejected:
              return Answer{
                  200,
                  proto::encode(proto::RegistrationPoll{proto::RegistrationRejected{r.reason}}),
                  std::nullopt};
            case store::RequestStatus::Approved: break;
          }
          // Every approved poll mints a fresh token and rotates the stored hash (reference §2.2).
          const std::string token = random_hex(32);
          const std::string hash = sha256_hex(token);
          auto rotated = st.set_worker_token(r.worker_id.value_or(""), hash);
          if (!rotated) {
            return fail(std::move(rotated).error());
          }
          if (!*rotated) {
            return Answer{
                404, dump({{"error", "not_found"}, {"message", "the approved worker was deleted"}}),
                std::nullopt};
          }
          return Answer{200,
                        proto::encode(proto::RegistrationPoll{
                            proto::RegistrationApproved{*r.worker_id, token}}),
                        std::pair(*r.worker_id, hash)};
        },
        [this, responder, request_id, secret_hash, wait](Result<Answer> answer) {
          if (!answer) {
            responder.send(from_error(answer.error()));
            return;
          }
          if (answer->pending && wait.count() > 0 && !s_.stopping_) {
            hold_poll(request_id, secret_hash, wait, std::move(answer->body), responder);
            return;
          }
          if (answer->token) {
            s_.workers_[answer->token->first] = Studio::CachedWorker{answer->token->second};
          }
          responder.send(HttpResponse::json(answer->status, std::move(answer->body)));
        });
  }

  // Holds a pending poll until its request is decided (then polls once more, without waiting)
  // or `wait` ends (then answers `pending_body`).
  void hold_poll(const std::string& request_id, const std::string& secret_hash,
                 std::chrono::milliseconds wait, std::string pending_body,
                 const net::Responder& responder) {
    auto held = std::make_shared<Studio::HeldPoll>(s_.loop_);
    s_.held_polls_.emplace(request_id, held);
    held->timer.expires_after(wait);
    held->timer.async_wait([this, weak = s_.weak_from_this(), held, request_id, secret_hash,
                            pending_body = std::move(pending_body),
                            responder](const boost::system::error_code&) {
      auto studio = weak.lock();
      if (!studio) {
        return;
      }
      if (held->decided && !studio->stopping_) {
        poll_registration(request_id, secret_hash, std::chrono::milliseconds(0), responder);
        return;
      }
      auto [first, last] = studio->held_polls_.equal_range(request_id);
      for (auto it = first; it != last; ++it) {
        if (it->second == held) {
          studio->held_polls_.erase(it);
          break;
        }
      }
      responder.send(HttpResponse::json(200, pending_body));
    });
  }

  // ---- results (reference §2.3) ----

  // An upload is admitted from its path before any of its body is read, by the job book's
  // verdict (jobs::judge_active, then jobs::judge_settled on the row): a result that may be taken
  // is stored; a possible repeat or a result to drop is only verified (hashed); anything else is
  // not this worker's: 409 at once. What was decided here is decided again once the body is in
  // (complete_hashed), since the job may have moved meanwhile.
  void admit_upload(const HttpRequest& head, const std::string& worker_id,
                    const std::string& job_id, net::Admitter admitter) {
    using Mode = ResultUploadSink::Mode;
    const auto* type = head.header("content-type");
    UploadHead upload{type ? *type : std::string(), declared_length(head)};
    switch (s_.judge_active(job_id, worker_id).verdict) {
      case jobs::Verdict::Take: return admitter.decide(open_upload(Mode::Store, upload));
      case jobs::Verdict::Repeat:
      case jobs::Verdict::Drop: return admitter.decide(open_upload(Mode::Verify, upload));
      case jobs::Verdict::Busy: return admitter.decide(busy(job_id));
      case jobs::Verdict::NotYours: return admitter.decide(not_claimed(job_id));
      case jobs::Verdict::AskStore: break;
    }
    s_.db_->call<std::optional<store::JobRecord>>(
        [id = job_id](store::StudioStore& st) { return st.find_job(id); },
        [this, upload, admitter, worker_id, job_id,
         weak = s_.weak_from_this()](Result<std::optional<store::JobRecord>> job) {
          if (!weak.lock()) {
            return admitter.decide(HttpResponse::error(503, "unavailable", "shutting down"));
          }
          if (!job) {
            return admitter.decide(from_error(job.error()));
          }
          if (s_.standing(job_id, worker_id) != jobs::Standing::Unknown) {
            // It became active meanwhile (a studio load raced the look-up): ask again shortly.
            return admitter.decide(busy(job_id));
          }
          // The bytes are not in yet: a done job's repeat is checked once they are.
          switch (jobs::judge_settled(*job, worker_id, true)) {
            case jobs::Verdict::Take: return admitter.decide(open_upload(Mode::Store, upload));
            case jobs::Verdict::Repeat:
            case jobs::Verdict::Drop: return admitter.decide(open_upload(Mode::Verify, upload));
            case jobs::Verdict::Busy: return admitter.decide(busy(job_id));
            case jobs::Verdict::NotYours:
            case jobs::Verdict::AskStore: break;
          }
          admitter.decide(not_claimed(job_id));
        });
  }

  struct UploadHead {
    std::string content_type;
    std::optional<std::uint64_t> declared;
  };

  static std::optional<std::uint64_t> declared_length(const HttpRequest& head) {
    const auto* length = head.header("content-length");
    std::uint64_t value = 0;
    if (length == nullptr ||
        std::from_chars(length->data(), length->data() + length->size(), value).ec != std::errc()) {
      return std::nullopt;  // chunked: reserved as it arrives
    }
    return value;
  }

  std::variant<net::Admission, HttpResponse> open_upload(ResultUploadSink::Mode mode,
                                                         const UploadHead& upload) {
    auto sink =
        ResultUploadSink::open(mode, s_.config_.data_dir / "results", s_.upload_budget_,
                               upload.content_type, upload.declared, s_.config_.json_body_limit);
    if (auto* refusal = std::get_if<HttpResponse>(&sink)) {
      if (refusal->status == 503) {
        ++s_.metrics_.uploads_deferred;
      }
      return std::move(*refusal);
    }
    net::Admission admission{s_.config_.result_body_limit,
                             std::get<std::shared_ptr<ResultUploadSink>>(std::move(sink))};
    admission.authenticated = true;  // admit() checked the worker's token first
    return admission;
  }

  static HttpResponse not_claimed(const std::string& job_id) {
    return HttpResponse::error(409, "conflict", "job " + job_id + " is not claimed by this worker");
  }

  static HttpResponse busy(const std::string& job_id) {
    auto response = HttpResponse::error(
        503, "unavailable",
        "job " + job_id + " is being claimed, released or completed; retry shortly");
    response.headers.push_back({"retry-after", "1"});
    return response;
  }

  void complete(HttpRequest request, const std::string& worker_id, const std::string& job_id,
                const net::Responder& responder) {
    auto sink = std::dynamic_pointer_cast<ResultUploadSink>(request.body_sink);
    if (!sink) {
      responder.send(HttpResponse::error(500, "internal_error", "the upload was not streamed"));
      return;
    }
    auto received = sink->finish();
    sink.reset();  // its share of the budget: the bytes are in
    if (!received) {
      responder.send(invalid("invalid_request", received.error().message));
      return;
    }
    if (!valid_ext(received->ext)) {
      responder.send(invalid("invalid_request",
                             "ext: must be 1 to 10 lowercase letters or digits (e.g. webp)"));
      return;
    }
    s_.metrics_.upload_bytes += received->size;
    complete_hashed(BinaryUpload{std::move(received->ext), std::move(received->prompt),
                                 std::move(received->file), received->size, worker_id, job_id,
                                 std::move(received->sha256)},
                    responder);
  }

  struct BinaryUpload {
    std::string ext;
    std::optional<std::string> prompt;
    // The received bytes under a temporary name (removed when the last copy goes, unless moved
    // into place); null when the upload was only verified (a repeat or a late result).
    std::shared_ptr<ResultFile> file;
    std::uint64_t size = 0;
    std::string worker_id;
    std::string job_id;
    std::string sha256;
  };

  void complete_hashed(BinaryUpload upload, const net::Responder& responder) {
    const auto judged = s_.judge_active(upload.job_id, upload.worker_id);
    switch (judged.verdict) {
      case jobs::Verdict::Take: break;
      case jobs::Verdict::Drop:
        responder.send(ok_json({{"ok", true}, {"discarded", true}}));
        if (judged.release_holder) {
          s_.release(upload.job_id, "cancelled", {store::AttemptOutcome::Cancelled, std::nullopt},
                     false, false);
        }
        return;
      case jobs::Verdict::Busy: return responder.send(busy(upload.job_id));
      case jobs::Verdict::NotYours: return responder.send(not_claimed(upload.job_id));
      case jobs::Verdict::Repeat:
      case jobs::Verdict::AskStore: return complete_settled(std::move(upload), responder);
    }
    // Hold the job while the file is written, so that no timeout requeues it meanwhile.
    const auto previous = s_.hold_for_completion(s_.jobs_.at(upload.job_id));
    write_result_file(std::move(upload), responder,
                      [this, previous](const BinaryUpload& written_upload, const Status& written,
                                       const net::Responder& reply) {
                        store_binary(written_upload, written, reply, previous);
                      });
  }

  // Commits the received bytes under their hash on the blocking pool, then calls `then` on the
  // loop (unless the studio is gone).
  void write_result_file(
      BinaryUpload upload, const net::Responder& responder,
      std::function<void(const BinaryUpload&, const Status&, const net::Responder&)> then) {
    const auto path = s_.config_.data_dir / "results" / upload.sha256;
    boost::asio::post(*s_.blocking_, [this, upload, path, responder, then = std::move(then),
                                      weak = s_.weak_from_this()]() mutable {
      Status written;
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        // A rename: readers never see a partial file, and it survives a crash of the studio as
        // the database does (WAL, synchronous=NORMAL).
        written = upload.file ? upload.file->commit(path)
                              : Status(fail(Error::unavailable(
                                    "the job was taken up again while its result was received")));
      }
      upload.file.reset();  // a copy not needed (same bytes already stored) is removed here
      boost::asio::post(
          s_.loop_, [upload = std::move(upload), written, responder, then = std::move(then), weak] {
            if (weak.lock()) {
              then(upload, written, responder);
            }
          });
    });
  }

  // The job is not active: its row decides (jobs::judge_settled). A repeat of a stored completion
  // is idempotent; a result for a job that failed is taken (issue 18), its bytes written first
  // and the row completed in one transaction that judges it again; a result for a job done by
  // another or cancelled is dropped; anything else is not this worker's.
  void complete_settled(BinaryUpload upload, const net::Responder& responder) {
    s_.db_->call<std::optional<store::JobRecord>>(
        [id = upload.job_id](store::StudioStore& st) { return st.find_job(id); },
        [this, upload, responder,
         weak = s_.weak_from_this()](Result<std::optional<store::JobRecord>> job) mutable {
          if (!weak.lock()) {
            return responder.send(HttpResponse::error(503, "unavailable", "shutting down"));
          }
          if (!job) {
            return responder.send(from_error(job.error()));
          }
          const auto verdict = jobs::judge_settled(
              *job, upload.worker_id,
              *job && (*job)->result_binary && (*job)->result_binary->sha256 == upload.sha256);
          answer_settled(verdict, upload, responder);
          if (verdict == jobs::Verdict::Take) {
            write_result_file(std::move(upload), responder,
                              [this](const BinaryUpload& written_upload, const Status& written,
                                     const net::Responder& reply) {
                                take_settled(written_upload, written, reply);
                              });
          }
        });
  }

  // Answers every verdict but Take (which is answered once the result is stored).
  void answer_settled(jobs::Verdict verdict, const BinaryUpload& upload,
                      const net::Responder& responder) {
    switch (verdict) {
      case jobs::Verdict::Take: return;
      case jobs::Verdict::Repeat:
        ++s_.metrics_.repeated_completions;
        return responder.send(ok_json({{"ok", true}, {"repeated", true}}));
      case jobs::Verdict::Drop:
        logger().info("job.result_dropped",
                      {{"job_id", upload.job_id}, {"worker_id", upload.worker_id}});
        return responder.send(ok_json({{"ok", true}, {"discarded", true}}));
      case jobs::Verdict::Busy: return responder.send(busy(upload.job_id));
      case jobs::Verdict::NotYours:
      case jobs::Verdict::AskStore: return responder.send(not_claimed(upload.job_id));
    }
  }

  void take_settled(const BinaryUpload& upload, const Status& written,
                    const net::Responder& responder) {
    if (!written) {
      logger().error("result.write_failed",
                     {{"job_id", upload.job_id}, {"error", written.error().message}});
      return responder.send(HttpResponse::error(
          503, "unavailable", "cannot store the result: " + written.error().message));
    }
    struct Settled {
      jobs::Verdict verdict = jobs::Verdict::NotYours;
      std::optional<store::JobRecord> job;
    };
    store::BinaryResult result{upload.sha256, proto::mime_for_ext(upload.ext), upload.ext,
                               static_cast<std::int64_t>(upload.size)};
    s_.db_->call<Settled>(
        [id = upload.job_id, worker = upload.worker_id, result, prompt = upload.prompt,
         now = s_.unix_millis()](store::StudioStore& st) -> Result<Settled> {
          // Judged again with the completion, in one transaction: of two late results, the
          // first stored wins.
          auto job = st.find_job(id);
          if (!job) {
            return fail(std::move(job).error());
          }
          const bool same =
              *job && (*job)->result_binary && (*job)->result_binary->sha256 == result.sha256;
          Settled settled{jobs::judge_settled(*job, worker, same), std::move(*job)};
          if (settled.verdict != jobs::Verdict::Take) {
            return settled;
          }
          auto taken = st.complete_job_binary(id, worker, result, prompt, now);
          if (!taken) {
            return fail(std::move(taken).error());
          }
          if (!*taken) {
            settled.verdict = jobs::Verdict::Drop;  // cannot happen in one transaction
            return settled;
          }
          auto done = st.find_job(id);
          if (!done) {
            return fail(std::move(done).error());
          }
          settled.job = std::move(*done);
          return settled;
        },
        [this, upload, responder, weak = s_.weak_from_this()](Result<Settled> settled) {
          if (!weak.lock()) {
            return responder.send(HttpResponse::error(503, "unavailable", "shutting down"));
          }
          if (!settled) {
            return responder.send(HttpResponse::error(503, "unavailable", settled.error().message));
          }
          if (settled->verdict != jobs::Verdict::Take) {
            return answer_settled(settled->verdict, upload, responder);
          }
          if (settled->job) {
            s_.settled_by_late_result(*settled->job);
          }
          responder.send(ok_json({{"ok", true}}));
        });
  }

  void store_binary(const BinaryUpload& upload, const Status& written,
                    const net::Responder& responder, Studio::ActiveJob::Phase previous) {
    auto it = s_.jobs_.find(upload.job_id);
    if (it == s_.jobs_.end()) {
      responder.send(HttpResponse::error(409, "conflict", "job is no longer held"));
      return;
    }
    auto& job = it->second;
    if (!written) {
      logger().error("result.write_failed",
                     {{"job_id", upload.job_id}, {"error", written.error().message}});
      s_.resume_after_failed_completion(job, previous);
      responder.send(HttpResponse::error(503, "unavailable",
                                         "cannot store the result: " + written.error().message));
      return;
    }
    store::BinaryResult result{upload.sha256, proto::mime_for_ext(upload.ext), upload.ext,
                               static_cast<std::int64_t>(upload.size)};
    const auto now = s_.unix_millis();
    s_.finish_complete(
        upload.job_id, upload.worker_id, previous,
        [id = upload.job_id, worker = upload.worker_id, result, prompt = upload.prompt,
         now](store::StudioStore& st) {
          return st.complete_job_binary(id, worker, result, prompt, now);
        },
        [responder, job_id = upload.job_id](Result<bool> stored) {
          if (stored && *stored) {
            responder.send(ok_json({{"ok", true}}));
          } else if (stored) {
            responder.send(HttpResponse::error(409, "conflict",
                                               "job " + job_id + " is not claimed by this worker"));
          } else {
            responder.send(HttpResponse::error(503, "unavailable", stored.error().message));
          }
        });
  }

  // ---- jobs ----

  void create_job(const HttpRequest& request, const net::Responder& responder) {
    auto job = validate_job(request.body);
    if (!job) {
      responder.send(invalid("invalid_job", job.error().message));
      return;
    }
    s_.db_->call<std::pair<store::JobRecord, bool>>(
        [job = std::move(*job)](
            store::StudioStore& st) mutable -> Result<std::pair<store::JobRecord, bool>> {
          if (job.idempotency_key) {
            auto existing = st.find_job_by_idempotency_key(*job.idempotency_key);
            if (!existing) {
              return fail(std::move(existing).error());
            }
            if (*existing) {
              // Same key, another job: refused (issue 17). The first job comes back only for the
              // same request, compared as the studio reads it (see same_job_fields).
              const auto differs = differing_job_fields(**existing, job);
              if (!differs.empty()) {
                return fail(Error::make(
                    Code::Conflict,
                    "idempotencyKey \"{}\" was used for job {} with a different request "
                    "(differs in: {}); send the same request to get that job, or use a new key",
                    *job.idempotency_key, (*existing)->id, differs));
              }
              return std::pair(std::move(**existing), false);
            }
          }
          SW_TRY(st.insert_job(job));
          return std::pair(std::move(job), true);
        },
        [this, responder](Result<std::pair<store::JobRecord, bool>> stored) {
          if (!stored && stored.error().code == Code::Conflict) {
            responder.send(
                HttpResponse::error(409, "idempotency_key_reused", stored.error().message));
            return;
          }
          if (!stored) {
            responder.send(from_error(stored.error()));
            return;
          }
          auto& [record, created] = *stored;
          if (!created) {
            responder.send(ok_json(job_json(record)));
            return;
          }
          logger().debug("job.created", {{"job_id", record.id}, {"model", record.model}});
          s_.publish_job(record);
          if (auto active = Studio::make_active_job(record)) {
            s_.enqueue(std::move(*active));
          }
          responder.send(ok_json(job_json(record, {}, waiting(record)), 201));
        });
  }

  // Two requests with one idempotencyKey are the same job when every field that defines a job
  // is equal as the studio reads it: model; task, as the canonical JSON the studio stores and
  // offers (keys in one order, whitespace and defaults settled); priority (absent: 0);
  // maxAttempts (absent: the studio's default); gameId and assetName (absent: ""). Returns the
  // names of the fields that differ, comma-separated; empty when none.
  static std::string differing_job_fields(const store::JobRecord& first,
                                          const store::JobRecord& again) {
    std::string out;
    const auto add = [&out](bool differs, const char* name) {
      if (differs) {
        out += out.empty() ? name : std::string(", ") + name;
      }
    };
    add(first.model != again.model, "model");
    add(first.task_json != again.task_json, "task");
    add(first.priority != again.priority, "priority");
    add(first.max_attempts != again.max_attempts, "maxAttempts");
    add(first.game_id != again.game_id, "gameId");
    add(first.asset_name != again.asset_name, "assetName");
    return out;
  }

  Result<store::JobRecord> validate_job(const std::string& text) {
    auto body = read_job_body(
        text,
        [this](const std::string& id) -> Result<proto::TaskKind> {
          const auto model = s_.models_.find(id);
          if (model == s_.models_.end()) {
            return fail(Error::invalid_argument("model: unknown model \"{}\"", id));
          }
          if (!model->second.record.enabled) {
            return fail(Error::invalid_argument("model: model \"{}\" is disabled", id));
          }
          return model->second.record.kind;
        },
        s_.config_.json_body_limit);
    if (!body) {
      return fail(std::move(body).error());
    }
    const auto& model = s_.models_.at(body->model);
    SW_TRY(rules::check_task(model.source, body->task, rules::Stage::Creation));
    store::JobRecord job;
    job.id = "job-" + time_ordered_uuid();  // time-ordered: its index rows share recent pages
    job.model = body->model;
    job.kind = body->task.kind();
    job.task_json = proto::encode(body->task);
    job.model_source_json = proto::encode(model.source);
    if (!offer_fits_a_worker(job.task_json.size(), job.model_source_json.size())) {
      return fail(Error::invalid_argument(
          "task: the offer for this job would carry {} bytes of task and {} bytes of model "
          "source, over the {} bytes a worker reads in one message; send a smaller task",
          job.task_json.size(), job.model_source_json.size(), kWorkerMessageLimit));
    }
    job.vram_gb_estimate = model.record.vram_gb_estimate;
    job.game_id = body->game_id.value_or("");
    job.asset_name = body->asset_name.value_or("");
    job.priority = static_cast<int>(body->priority.value_or(0));
    job.max_attempts =
        static_cast<int>(body->max_attempts.value_or(s_.config_.default_max_attempts));
    job.idempotency_key = body->idempotency_key;
    job.created_at = s_.unix_millis();
    return job;
  }

  // A job with its attempt history, read in one database call.
  struct JobView {
    store::JobRecord record;
    std::vector<store::AttemptRecord> attempts;
  };
  static Result<std::optional<JobView>> find_view(store::StudioStore& st, const std::string& id) {
    auto job = st.find_job(id);
    if (!job) {
      return fail(std::move(job).error());
    }
    if (!*job) {
      return std::optional<JobView>();
    }
    auto attempts = st.job_attempts(id);
    if (!attempts) {
      return fail(std::move(attempts).error());
    }
    return std::optional<JobView>(JobView{std::move(**job), std::move(*attempts)});
  }
  // Why a queued job waits, asked of the scheduler when the view is built (loop thread).
  std::optional<std::string> waiting(const store::JobRecord& job) const {
    if (job.status != store::JobStatus::Queued) {
      return std::nullopt;
    }
    auto reason = s_.scheduler_.waiting(job.id, s_.steady_now());
    return reason ? std::optional<std::string>(std::move(reason->text)) : std::nullopt;
  }
  json view_json(const JobView& view) const {
    return job_json(view.record, view.attempts, waiting(view.record));
  }

  void get_job(const std::string& id, const net::Responder& responder) {
    s_.db_->call<std::optional<JobView>>(
        [id](store::StudioStore& st) { return find_view(st, id); },
        [this, responder, id](Result<std::optional<JobView>> job) {
          if (!job) {
            responder.send(from_error(job.error()));
          } else if (!*job) {
            responder.send(HttpResponse::error(404, "not_found", "no job " + id));
          } else {
            responder.send(ok_json(view_json(**job)));
          }
        });
  }

  void list_jobs(const HttpRequest& request, const net::Responder& responder) {
    store::JobFilter filter;
    if (auto status = request.query_param("status"); status && !status->empty()) {
      filter.status = store::parse_job_status(*status);
      if (!filter.status) {
        responder.send(invalid("invalid_request", "status: unknown status \"" + *status + "\""));
        return;
      }
    }
    if (auto kind = request.query_param("kind"); kind && !kind->empty()) {
      filter.kind = proto::parse_task_kind(*kind);
      if (!filter.kind) {
        responder.send(invalid("invalid_request", "kind: unknown task kind \"" + *kind + "\""));
        return;
      }
    }
    if (auto limit = request.query_param("limit"); limit && !limit->empty()) {
      int value = 0;
      const auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), value);
      if (ec != std::errc() || end != limit->data() + limit->size() || value < 1 || value > 500) {
        responder.send(invalid("invalid_request", "limit: must be an integer from 1 to 500"));
        return;
      }
      filter.limit = value;
    }
    const auto before = request.query_param("before");
    s_.db_->call<std::vector<JobView>>(
        [filter, before](store::StudioStore& st) mutable -> Result<std::vector<JobView>> {
          if (before && !before->empty()) {
            auto cursor = st.find_job(*before);
            if (!cursor) {
              return fail(std::move(cursor).error());
            }
            if (!*cursor) {
              return fail(Error::invalid_argument("before: no job {}", *before));
            }
            filter.before_seq = (*cursor)->seq;
          }
          auto jobs = st.list_jobs(filter);
          if (!jobs) {
            return fail(std::move(jobs).error());
          }
          std::vector<JobView> views;
          views.reserve(jobs->size());
          for (auto& job : *jobs) {
            auto attempts = st.job_attempts(job.id);
            if (!attempts) {
              return fail(std::move(attempts).error());
            }
            views.push_back(JobView{std::move(job), std::move(*attempts)});
          }
          return views;
        },
        [this, responder, limit = filter.limit](Result<std::vector<JobView>> jobs) {
          if (!jobs) {
            responder.send(from_error(jobs.error()));
            return;
          }
          json list = json::array();
          for (const auto& job : *jobs) {
            list.push_back(view_json(job));
          }
          json body = {{"jobs", std::move(list)}};
          body["nextBefore"] = static_cast<int>(jobs->size()) == limit && !jobs->empty()
                                   ? json(jobs->back().record.id)
                                   : json();
          responder.send(ok_json(body));
        });
  }

  void job_result(const std::string& id, const net::Responder& responder) {
    s_.db_->call<std::optional<store::JobRecord>>(
        [id](store::StudioStore& st) { return st.find_job(id); },
        [this, responder, id](Result<std::optional<store::JobRecord>> job) {
          if (!job) {
            responder.send(from_error(job.error()));
          } else if (!*job) {
            responder.send(HttpResponse::error(404, "not_found", "no job " + id));
          } else if ((*job)->status == store::JobStatus::Failed ||
                     (*job)->status == store::JobStatus::Cancelled) {
            // Over without a result (issue 17): say so and why, not "not ready". 410: the
            // result will never exist. The body adds the job's status and error.
            const bool failed = (*job)->status == store::JobStatus::Failed;
            const json body = {
                {"error", failed ? "job_failed" : "job_cancelled"},
                {"message", failed ? fmt::format("job {} failed: {}", id,
                                                 (*job)->error.value_or("no error recorded"))
                                   : fmt::format("job {} was cancelled", id)},
                {"status", store::to_string((*job)->status)},
                {"jobError", (*job)->error ? json(*(*job)->error) : json()}};
            responder.send(
                HttpResponse::json(410, body.dump(-1, ' ', false, json::error_handler_t::replace)));
          } else if ((*job)->status != store::JobStatus::Done) {
            responder.send(HttpResponse::error(
                409, "not_ready",
                fmt::format("job {} is {}", id, store::to_string((*job)->status))));
          } else if ((*job)->result_json) {
            responder.send(HttpResponse::json(200, *(*job)->result_json));
          } else {
            HttpResponse response;
            // By the table, not the stored column: results stored before it knew flac, ogg and opus
            // were labelled application/octet-stream.
            response.content_type = proto::mime_for_ext((*job)->result_binary->ext);
            response.file = s_.config_.data_dir / "results" / (*job)->result_binary->sha256;
            responder.send(std::move(response));
          }
        });
  }

  void cancel_job(const std::string& id, const net::Responder& responder) {
    auto it = s_.jobs_.find(id);
    const auto view = it != s_.jobs_.end() ? std::optional(it->second.view()) : std::nullopt;
    if (const auto cancel = jobs::judge_cancel(view ? &*view : nullptr);
        cancel != jobs::Cancel::AskStore) {
      auto& job = it->second;
      job.cancelled = true;
      const bool queued = cancel == jobs::Cancel::Unqueue;
      if (queued) {
        s_.scheduler_.remove(id);
      }
      const auto now = s_.unix_millis();
      s_.db_->call<std::optional<JobView>>(
          [id, now](store::StudioStore& st) -> Result<std::optional<JobView>> {
            SW_TRY(st.cancel_job(id, now));
            return find_view(st, id);
          },
          [this, responder, id, queued](Result<std::optional<JobView>> stored) {
            if (queued) {
              s_.jobs_.erase(id);
            } else if (auto live = s_.jobs_.find(id); live != s_.jobs_.end()) {
              live->second.record.status = store::JobStatus::Cancelled;
            }
            if (!stored || !*stored) {
              responder.send(stored ? HttpResponse::error(404, "not_found", "no job " + id)
                                    : from_error(stored.error()));
              return;
            }
            logger().info("job.cancelled", {{"job_id", id}});
            s_.publish_job((*stored)->record);
            responder.send(ok_json(view_json(**stored)));
          });
      return;
    }
    s_.db_->call<std::optional<JobView>>(
        [id](store::StudioStore& st) { return find_view(st, id); },
        [this, responder, id](Result<std::optional<JobView>> job) {
          if (!job) {
            responder.send(from_error(job.error()));
          } else if (!*job) {
            responder.send(HttpResponse::error(404, "not_found", "no job " + id));
          } else if ((*job)->record.status == store::JobStatus::Cancelled) {
            responder.send(ok_json(view_json(**job)));  // cancelling twice is harmless
          } else {
            responder.send(HttpResponse::error(
                409, "conflict",
                fmt::format("job {} is already {}", id, store::to_string((*job)->record.status))));
          }
        });
  }

  void events(const net::Responder& responder) {
    auto stream = responder.start_stream("text/event-stream");
    if (stream) {
      stream->write(": connected\n\n");
      s_.event_streams_.push_back(std::move(stream));
    }
  }

  // ---- models ----

  void list_models(const net::Responder& responder) {
    std::vector<const store::ModelRecord*> sorted;
    for (const auto& [id, model] : s_.models_) {
      sorted.push_back(&model.record);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->id < b->id; });
    json list = json::array();
    for (const auto* model : sorted) {
      list.push_back(model_json(*model));
    }
    responder.send(ok_json({{"models", std::move(list)}}));
  }

  void get_model(const std::string& id, const net::Responder& responder) {
    const auto it = s_.models_.find(id);
    if (it == s_.models_.end()) {
      responder.send(HttpResponse::error(404, "not_found", "no model " + id));
      return;
    }
    responder.send(ok_json(model_json(it->second.record)));
  }

  // Merge semantics (RFC 7386) over the model as GET shows it; the result is validated whole, as
  // a PUT of it would be.
  void patch_model(const HttpRequest& request, const std::string& id,
                   const net::Responder& responder) {
    const auto it = s_.models_.find(id);
    if (it == s_.models_.end()) {
      responder.send(HttpResponse::error(404, "not_found", "no model " + id));
      return;
    }
    auto merged =
        merge_model_patch(model_json(it->second.record), request.body, s_.config_.json_body_limit);
    if (!merged) {
      responder.send(invalid("invalid_model", merged.error().message));
      return;
    }
    put_model_text(*merged, id, responder);
  }

  void put_model(const HttpRequest& request, const std::optional<std::string>& path_id,
                 const net::Responder& responder) {
    put_model_text(request.body, path_id, responder);
  }

  void put_model_text(const std::string& text, const std::optional<std::string>& path_id,
                      const net::Responder& responder) {
    auto model = validate_model(text, path_id);
    if (!model) {
      responder.send(invalid("invalid_model", model.error().message));
      return;
    }
    const bool create = !path_id;
    // Copied before the call: the completion below takes `model` by move, and argument
    // evaluation order is unspecified.
    store::ModelRecord record = model->record;
    s_.db_->call<bool>(
        [record = std::move(record), create](store::StudioStore& st) -> Result<bool> {
          if (create) {
            SW_TRY(st.insert_model(record));
            return true;
          }
          return st.update_model(record);
        },
        [this, responder, model = std::move(*model), create](Result<bool> stored) mutable {
          if (!stored) {
            responder.send(
                stored.error().code == Code::Conflict
                    ? HttpResponse::error(409, "conflict", "model " + model.record.id + " exists")
                    : from_error(stored.error()));
            return;
          }
          if (!*stored) {
            responder.send(HttpResponse::error(404, "not_found", "no model " + model.record.id));
            return;
          }
          auto body = model_json(model.record);
          auto id = model.record.id;
          s_.models_.insert_or_assign(std::move(id), std::move(model));
          responder.send(ok_json(body, create ? 201 : 200));
        });
  }

  Result<Studio::CachedModel> validate_model(const std::string& text,
                                             const std::optional<std::string>& path_id) {
    auto body = read_model_body(text, path_id, s_.config_.json_body_limit);
    if (!body) {
      return fail(std::move(body).error());
    }
    Studio::CachedModel model{std::move(body->record), std::move(body->source)};
    model.record.created_at = model.record.updated_at = s_.unix_millis();
    return model;
  }

  void delete_model(const std::string& id, const net::Responder& responder) {
    s_.db_->call<bool>([id](store::StudioStore& st) { return st.delete_model(id); },
                       [this, responder, id](Result<bool> deleted) {
                         if (!deleted) {
                           responder.send(from_error(deleted.error()));
                         } else if (!*deleted) {
                           responder.send(HttpResponse::error(404, "not_found", "no model " + id));
                         } else {
                           s_.models_.erase(id);
                           responder.send(ok_json({{"deleted", id}}));
                         }
                       });
  }

  // ---- workers (admin) ----

  void list_workers(const net::Responder& responder) {
    s_.db_->call<std::vector<store::WorkerRecord>>(
        [](store::StudioStore& st) { return st.list_workers(); },
        [this, responder](Result<std::vector<store::WorkerRecord>> workers) {
          if (!workers) {
            responder.send(from_error(workers.error()));
            return;
          }
          json list = json::array();
          for (const auto& w : *workers) {
            const auto session = s_.sessions_.find(w.id);
            const bool connected = session != s_.sessions_.end();
            json item = {{"id", w.id},
                         {"installId", w.install_id},
                         {"connected", connected},
                         {"capabilities",
                          connected ? stored_json(proto::encode(session->second->capabilities_))
                                    : stored_json(w.capabilities_json)},
                         {"createdAt", iso_time(w.created_at)}};
            if (w.last_seen_at) {
              item["lastSeenAt"] = iso_time(*w.last_seen_at);
            }
            if (connected && session->second->job_id_) {
              item["currentJobId"] = *session->second->job_id_;
            } else if (w.current_job_id) {
              item["currentJobId"] = *w.current_job_id;
            }
            list.push_back(std::move(item));
          }
          responder.send(ok_json({{"workers", std::move(list)}}));
        });
  }

  void list_pending(const net::Responder& responder) {
    s_.db_->call<std::vector<store::RegistrationRecord>>(
        [](store::StudioStore& st) { return st.list_requests(store::RequestStatus::Pending); },
        [this, responder](Result<std::vector<store::RegistrationRecord>> requests) {
          if (!requests) {
            responder.send(from_error(requests.error()));
            return;
          }
          json list = json::array();
          for (const auto& r : *requests) {
            list.push_back({{"requestId", r.id},
                            {"installId", r.install_id},
                            {"capabilities", stored_json(r.capabilities_json)},
                            {"userAgent", r.user_agent},
                            {"sourceIp", r.source_ip},  // "address:port" since issue 17
                            {"createdAt", iso_time(r.created_at)},
                            // A poll of it is held open now: its worker is up and waiting.
                            {"waiting", s_.held_polls_.contains(r.id)}});
          }
          responder.send(ok_json({{"pending", std::move(list)}}));
        });
  }

  void approve(const std::string& request_id, const net::Responder& responder) {
    s_.db_->call<std::string>(
        [request_id, now = s_.unix_millis()](store::StudioStore& st) {
          return approve_request(st, request_id, now);
        },
        [this, responder, request_id](Result<std::string> worker_id) {
          if (!worker_id) {
            responder.send(from_error(worker_id.error()));
            return;
          }
          logger().info("registration.approved",
                        {{"request_id", request_id}, {"worker_id", *worker_id}});
          s_.wake_held_polls(request_id);
          // Unknown token until the worker polls; the placeholder hash matches nothing.
          s_.workers_[*worker_id] = Studio::CachedWorker{sha256_hex(random_hex(32))};
          s_.publish_worker(*worker_id, "approved");
          responder.send(ok_json({{"status", "approved"}, {"workerId", *worker_id}}));
        });
  }

  void reject(const HttpRequest& request, const std::string& request_id,
              const net::Responder& responder) {
    auto body = parse_object(request.body, true, s_.config_.json_body_limit);
    if (!body) {
      responder.send(invalid("invalid_request", body.error().message));
      return;
    }
    auto reason = field<std::string>(*body, "reason");
    if (!reason) {
      responder.send(invalid("invalid_request", reason.error().message));
      return;
    }
    s_.db_->call<bool>(
        [request_id, reason = reason->value_or(""),
         now = s_.unix_millis()](store::StudioStore& st) -> Result<bool> {
          SW_TRY(reject_request(st, request_id, reason, now));
          return true;
        },
        [this, responder, request_id](Result<bool> rejected) {
          if (!rejected) {
            responder.send(from_error(rejected.error()));
            return;
          }
          logger().info("registration.rejected", {{"request_id", request_id}});
          s_.wake_held_polls(request_id);
          responder.send(ok_json({{"status", "rejected"}, {"requestId", request_id}}));
        });
  }

  void delete_worker(const std::string& worker_id, const net::Responder& responder) {
    s_.db_->call<bool>(
        [worker_id](store::StudioStore& st) { return st.delete_worker(worker_id); },
        [this, responder, worker_id](Result<bool> deleted) {
          if (!deleted) {
            responder.send(from_error(deleted.error()));
            return;
          }
          if (!*deleted) {
            responder.send(HttpResponse::error(404, "not_found", "no worker " + worker_id));
            return;
          }
          // At once, before the answer: its sessions close (worker_deleted, 4004), its token stops
          // upgrading and its jobs go back to the queue.
          s_.revoke_worker(worker_id, "worker " + worker_id + " was deleted by the operator");
          logger().info("worker.deleted", {{"worker_id", worker_id}});
          responder.send(ok_json({{"deleted", worker_id}}));
        });
  }

  void worker_logs(const HttpRequest& request, const std::string& worker_id,
                   const net::Responder& responder) {
    std::int64_t after = 0;
    int limit = 500;
    if (auto text = request.query_param("after"); text && !text->empty()) {
      const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), after);
      if (ec != std::errc() || end != text->data() + text->size() || after < 0) {
        responder.send(invalid("invalid_request", "after: must be a non-negative integer"));
        return;
      }
    }
    if (auto text = request.query_param("limit"); text && !text->empty()) {
      const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), limit);
      if (ec != std::errc() || end != text->data() + text->size() || limit < 1 || limit > 5000) {
        responder.send(invalid("invalid_request", "limit: must be an integer from 1 to 5000"));
        return;
      }
    }
    s_.db_->call<std::vector<store::WorkerLogRecord>>(
        [worker_id, after, limit](store::StudioStore& st) {
          return st.worker_logs(worker_id, after, limit);
        },
        [responder](Result<std::vector<store::WorkerLogRecord>> logs) {
          if (!logs) {
            responder.send(from_error(logs.error()));
            return;
          }
          json list = json::array();
          for (const auto& log : *logs) {
            json item = stored_json(proto::encode(log.entry));
            item["seq"] = log.seq;
            list.push_back(std::move(item));
          }
          responder.send(ok_json({{"logs", std::move(list)}}));
        });
  }

  // ---- the admin token (issue 17) ----

  // A new admin token replaces the old at once: the old one is refused from the moment the new
  // hash is committed (before this answers).
  void rotate_admin_token(const net::Responder& responder) {
    if (s_.config_.admin_token) {
      responder.send(HttpResponse::error(
          409, "conflict",
          "this studio takes its admin token from STUDIO_SERVER_ADMIN_TOKEN: change it there and "
          "restart the studio"));
      return;
    }
    std::string token = new_admin_token();
    std::string hash = sha256_hex(token);
    s_.db_->call<bool>(
        [hash](store::StudioStore& st) -> Result<bool> {
          SW_TRY(st.set_setting(kAdminTokenSetting, hash));
          return true;
        },
        [this, responder, token, hash](Result<bool> stored) {
          if (!stored) {
            responder.send(from_error(stored.error()));
            return;
          }
          s_.admin_token_hash_ = hash;
          logger().info("admin_token.rotated");
          responder.send(ok_json({{"adminToken", token}}));
        });
  }

  // ---- API keys (admin) ----

  void list_keys(const net::Responder& responder) {
    s_.db_->call<std::vector<store::ApiKeyRecord>>(
        [](store::StudioStore& st) { return st.list_api_keys(); },
        [responder](Result<std::vector<store::ApiKeyRecord>> keys) {
          if (!keys) {
            responder.send(from_error(keys.error()));
            return;
          }
          json list = json::array();
          for (const auto& k : *keys) {
            list.push_back({{"id", k.id}, {"name", k.name}, {"createdAt", iso_time(k.created_at)}});
          }
          responder.send(ok_json({{"keys", std::move(list)}}));
        });
  }

  void create_key(const HttpRequest& request, const net::Responder& responder) {
    auto body = parse_object(request.body, true, s_.config_.json_body_limit);
    if (!body) {
      responder.send(invalid("invalid_request", body.error().message));
      return;
    }
    auto name = field<std::string>(*body, "name");
    if (!name) {
      responder.send(invalid("invalid_request", name.error().message));
      return;
    }
    if (*name && (*name)->size() > 200) {
      responder.send(invalid("invalid_request", "name: must be at most 200 characters"));
      return;
    }
    const std::string key = "sk-" + random_hex(24);
    store::ApiKeyRecord record{"key-" + random_uuid(), name->value_or(""), sha256_hex(key),
                               s_.unix_millis()};
    s_.db_->call<bool>(
        [record](store::StudioStore& st) -> Result<bool> {
          SW_TRY(st.insert_api_key(record));
          return true;
        },
        [this, responder, record, key](Result<bool> stored) {
          if (!stored) {
            responder.send(from_error(stored.error()));
            return;
          }
          s_.api_keys_[record.key_hash] = record.id;
          responder.send(ok_json({{"id", record.id},
                                  {"name", record.name},
                                  {"key", key},
                                  {"createdAt", iso_time(record.created_at)}},
                                 201));
        });
  }

  void delete_key(const std::string& id, const net::Responder& responder) {
    s_.db_->call<bool>([id](store::StudioStore& st) { return st.delete_api_key(id); },
                       [this, responder, id](Result<bool> deleted) {
                         if (!deleted) {
                           responder.send(from_error(deleted.error()));
                           return;
                         }
                         if (!*deleted) {
                           responder.send(HttpResponse::error(404, "not_found", "no key " + id));
                           return;
                         }
                         std::erase_if(s_.api_keys_,
                                       [&](const auto& entry) { return entry.second == id; });
                         responder.send(ok_json({{"deleted", id}}));
                       });
  }

  void metrics(const net::Responder& responder) {
    s_.db_->call<std::map<std::string, std::int64_t>>(
        [](store::StudioStore& st) { return st.count_jobs_by_status(); },
        [this, responder](Result<std::map<std::string, std::int64_t>> counts) {
          responder.send(HttpResponse::text(
              200,
              s_.metrics_.render(s_.scheduler_.queued_per_kind(),
                                 counts ? *counts : std::map<std::string, std::int64_t>{},
                                 s_.sessions_.size(),
                                 s_.scheduler_.waiting_counts(s_.steady_now())),
              "text/plain; version=0.0.4"));
        });
  }

  Studio& s_;
};

std::unique_ptr<net::HttpHandler> make_router(Studio& studio) {
  return std::make_unique<Router>(studio);
}

}  // namespace sw::studio
