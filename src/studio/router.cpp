#include "studio/router.h"

#include <algorithm>

#include "common/secrets.h"
#include "common/sha256.h"
#include "studio/admin.h"
#include "studio/api/admin_routes.h"
#include "studio/api/client_routes.h"
#include "studio/api/dashboard_routes.h"
#include "studio/api/key_routes.h"
#include "studio/api/openai_routes.h"
#include "studio/api/responses.h"
#include "studio/api/route_id.h"
#include "studio/api/upload_routes.h"
#include "studio/api/worker_routes.h"
#include "studio/db_worker.h"
#include "studio/studio.h"

namespace sw::studio {

using api::ok_json;
using api::Refusal;
using api::refuse;
using api::RouteId;
using net::HttpRequest;
using net::HttpResponse;

namespace {

// AnyWorker: the bearer token of any approved worker (the path names no worker: upload bytes).
// Client routes take any API key at or above the route's scope (Inference < Client < Admin); the
// admin token opens every one of them.
enum class Auth { None, Worker, AnyWorker, Inference, Client, Admin };
enum class BodyKind { None, Json, Result, Upload };

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
    {"POST", "/api/v1/jobs", RouteId::JobsCreate, Auth::Inference, BodyKind::Json},
    {"GET", "/api/v1/jobs", RouteId::JobsList, Auth::Inference, BodyKind::None},
    {"GET", "/api/v1/jobs/:id", RouteId::JobGet, Auth::Inference, BodyKind::None},
    {"GET", "/api/v1/jobs/:id/result", RouteId::JobResult, Auth::Inference, BodyKind::None},
    {"POST", "/api/v1/jobs/:id/cancel", RouteId::JobCancel, Auth::Inference, BodyKind::Json},
    {"GET", "/api/v1/events", RouteId::Events, Auth::Inference, BodyKind::None},
    {"GET", "/api/v1/models", RouteId::ModelsList, Auth::Inference, BodyKind::None},
    {"POST", "/api/v1/models", RouteId::ModelsCreate, Auth::Client, BodyKind::Json},
    {"GET", "/api/v1/models/:id", RouteId::ModelGet, Auth::Inference, BodyKind::None},
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
    {"PATCH", "/api/v1/keys/:id", RouteId::KeyPatch, Auth::Admin, BodyKind::Json},
    {"GET", "/api/v1/keys/:id/usage", RouteId::KeyUsage, Auth::Admin, BodyKind::None},
    {"GET", "/api/v1/usage", RouteId::OwnUsage, Auth::Inference, BodyKind::None},
    {"GET", "/api/v1/whoami", RouteId::WhoAmI, Auth::Inference, BodyKind::None},
    {"GET", "/api/v1/stats", RouteId::Stats, Auth::Client, BodyKind::None},
    {"POST", "/api/v1/admin-token/rotate", RouteId::AdminTokenRotate, Auth::Admin, BodyKind::Json},
    {"GET", "/api/v1/join-tokens", RouteId::JoinTokensList, Auth::Admin, BodyKind::None},
    {"POST", "/api/v1/join-tokens", RouteId::JoinTokenCreate, Auth::Admin, BodyKind::Json},
    {"DELETE", "/api/v1/join-tokens/:id", RouteId::JoinTokenRevoke, Auth::Admin, BodyKind::None},
    {"GET", "/v1/models", RouteId::OpenAiModels, Auth::Inference, BodyKind::None},
    {"GET", "/v1/models/:id", RouteId::OpenAiModel, Auth::Inference, BodyKind::None},
    {"POST", "/v1/chat/completions", RouteId::OpenAiChat, Auth::Inference, BodyKind::Json},
    {"POST", "/v1/images/generations", RouteId::OpenAiImages, Auth::Inference, BodyKind::Json},
    {"POST", "/v1/audio/speech", RouteId::OpenAiSpeech, Auth::Inference, BodyKind::Json},
    {"POST", "/v1/audio/transcriptions", RouteId::OpenAiTranscriptions, Auth::Inference,
     BodyKind::Upload},
    {"POST", "/api/v1/uploads", RouteId::UploadCreate, Auth::Inference, BodyKind::Upload},
    {"GET", "/api/v1/uploads/:id", RouteId::UploadGet, Auth::Inference, BodyKind::None},
    {"DELETE", "/api/v1/uploads/:id", RouteId::UploadDelete, Auth::Inference, BodyKind::None},
    {"GET", "/graphics/api/uploads/:id", RouteId::UploadDownload, Auth::AnyWorker, BodyKind::None},
    {"GET", "/metrics", RouteId::Metrics, Auth::None, BodyKind::None},
    {"GET", "/healthz", RouteId::Health, Auth::None, BodyKind::None},
    {"GET", "/", RouteId::DashboardIndex, Auth::None, BodyKind::None},
    {"GET", "/assets/:file", RouteId::DashboardAsset, Auth::None, BodyKind::None},
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
      // Decoded: a client that escapes ':' in a model id ("ns%3Aname") names "ns:name".
      auto decoded = net::decode_path_segment(segments[i]);
      if (!decoded) {
        return false;
      }
      captured.push_back(std::move(*decoded));
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
    // HEAD is GET without the body (the server writes no body for it); not for the event
    // stream, whose body never ends.
    const bool head_as_get =
        request.method == "HEAD" && spec.method == "GET" && spec.id != RouteId::Events;
    if (spec.method == request.method || head_as_get) {
      matched.spec = &spec;
      matched.params = std::move(params);
      matched.wrong_method = false;
      return matched;
    }
    matched.wrong_method = true;
  }
  return matched;
}

}  // namespace

class Router : public net::HttpHandler {
 public:
  explicit Router(Studio& studio) : s_(studio) {}

  std::variant<net::Admission, HttpResponse> admit(const HttpRequest& head) override {
    auto decision = admit_route(head);
    // OpenAI's clients read errors in OpenAI's shape (issue 20).
    if (auto* refusal = std::get_if<HttpResponse>(&decision);
        refusal != nullptr && head.path.starts_with("/v1/")) {
      return api::as_openai_error(std::move(*refusal));
    }
    return decision;
  }

  std::variant<net::Admission, HttpResponse> admit_route(const HttpRequest& head) {
    const auto matched = match_route(head);
    if (!matched.spec) {
      return matched.wrong_method ? refuse(Refusal::MethodNotAllowed, head.method + " " + head.path)
                                  : refuse(Refusal::NotFound, "no route for " + head.path);
    }
    if (auto refusal = authorise(head, *matched.spec, matched.params)) {
      return std::move(*refusal);
    }
    net::Admission admission;
    switch (matched.spec->body) {
      case BodyKind::Result: admission.body_limit = s_.config().result_body_limit; break;
      case BodyKind::Json: admission.body_limit = s_.config().json_body_limit; break;
      case BodyKind::Upload: admission.body_limit = s_.config().upload_body_limit; break;
      case BodyKind::None: admission.body_limit = s_.config().json_body_limit; break;
    }
    if (matched.spec->auth == Auth::None) {
      // Anyone may send these: a small body that must arrive quickly, so that an
      // unauthenticated peer cannot hold a socket (and a buffer) by trickling (issue 16).
      admission.body_limit = std::min(admission.body_limit, s_.config().anonymous_body_limit);
      admission.body_timeout = s_.config().anonymous_body_timeout;
    } else {
      admission.authenticated = true;  // authorise() checked the credential above
    }
    return admission;
  }

  void admit_later(const HttpRequest& head, net::Admitter admitter) override {
    auto decision = admit(head);
    const auto matched = match_route(head);
    // Another studio process may have created the key or approved the worker a moment ago (its
    // notification not here yet): in a cluster an unknown credential is read from the database
    // before it is refused.
    // (Upload downloads name no worker to read again: a worker approved elsewhere a moment ago
    // is refused until this process's cache reload learns it.)
    if (s_.clustered() && matched.spec != nullptr && matched.spec->auth != Auth::None &&
        matched.spec->auth != Auth::AnyWorker) {
      if (const auto* refusal = std::get_if<HttpResponse>(&decision);
          refusal != nullptr && refusal->status == 401) {
        reread_credentials(head, *matched.spec, matched.params, std::move(admitter));
        return;
      }
    }
    admit_decided(head, std::move(decision), matched, std::move(admitter));
  }

  void admit_decided(const HttpRequest& head, std::variant<net::Admission, HttpResponse> decision,
                     const Matched& matched, net::Admitter admitter) {
    if (std::holds_alternative<HttpResponse>(decision) || matched.spec == nullptr ||
        matched.spec->id != RouteId::Complete) {
      admitter.decide(std::move(decision));
      return;
    }
    worker_.admit_upload(head, matched.params[0], matched.params[1], std::move(admitter));
  }

  // In a cluster a worker approved (or re-registered) through another process a moment ago may
  // meet a token this process has not heard of yet: its row is read again before upgrade()
  // decides, as admit_later does for API requests.
  void prepare_upgrade(const HttpRequest& head, net::Admitter admitter) override {
    std::vector<std::string> params;
    if (!s_.clustered() || head.method != "GET" ||
        !match_pattern("/graphics/api/workers/:id/connect", split_path(head.path), params) ||
        worker_.token_ok(head, params[0])) {
      admitter.decide(net::Admission{});
      return;
    }
    s_.database().call<std::optional<store::WorkerRecord>>(
        [worker_id = params[0]](store::StudioStore& st) { return st.find_worker(worker_id); },
        [this, admitter,
         weak = s_.weak_from_this()](Result<std::optional<store::WorkerRecord>> row) {
          if (!weak.lock()) return;
          if (row && *row) {
            s_.registry().set_worker_token_hash((*row)->id, (*row)->token_hash);
          }
          // A failed read leaves the decision to upgrade() with what this process knows.
          admitter.decide(net::Admission{});
        });
  }

  std::variant<net::UpgradeAccepted, HttpResponse> upgrade(const HttpRequest& head) override {
    std::vector<std::string> params;
    if (head.method != "GET" ||
        !match_pattern("/graphics/api/workers/:id/connect", split_path(head.path), params)) {
      return refuse(Refusal::NotFound, "no WebSocket route for " + head.path);
    }
    return worker_.upgrade(head, params[0]);
  }

  void handle(HttpRequest request, net::Responder responder) override {
    const auto matched = match_route(request);
    if (!matched.spec) {
      responder.send(refuse(Refusal::NotFound, "no route for " + request.path));
      return;
    }
    const auto id = matched.spec->id;
    switch (id) {
      case RouteId::RegisterRequest:
      case RouteId::RegisterPoll:
      case RouteId::Complete:
        return worker_.handle(id, std::move(request), matched.params, responder);
      case RouteId::JobsCreate:
      case RouteId::JobsList:
      case RouteId::JobGet:
      case RouteId::JobResult:
      case RouteId::JobCancel:
      case RouteId::Events:
        return client_.handle(id, std::move(request), matched.params, responder);
      case RouteId::ModelsList:
      case RouteId::ModelsCreate:
      case RouteId::ModelGet:
      case RouteId::ModelPut:
      case RouteId::ModelPatch:
      case RouteId::ModelDelete:
      case RouteId::WorkersList:
      case RouteId::WorkersPending:
      case RouteId::WorkerApprove:
      case RouteId::WorkerReject:
      case RouteId::WorkerDelete:
      case RouteId::WorkerLogs:
      case RouteId::AdminTokenRotate:
      case RouteId::JoinTokensList:
      case RouteId::JoinTokenCreate:
      case RouteId::JoinTokenRevoke:
        return admin_.handle(id, std::move(request), matched.params, responder);
      case RouteId::KeysList:
      case RouteId::KeysCreate:
      case RouteId::KeyDelete:
      case RouteId::KeyPatch:
      case RouteId::KeyUsage:
      case RouteId::OwnUsage:
      case RouteId::WhoAmI: return keys_.handle(id, std::move(request), matched.params, responder);
      case RouteId::UploadCreate:
      case RouteId::UploadGet:
      case RouteId::UploadDelete:
      case RouteId::UploadDownload:
        return uploads_.handle(id, std::move(request), matched.params, responder);
      case RouteId::Metrics: return metrics(responder);
      case RouteId::Stats: return stats(responder);
      case RouteId::Health: return responder.send(ok_json({{"ok", true}}));
      case RouteId::DashboardIndex:
        return responder.send(dashboard::serve_file(request, "index.html"));
      case RouteId::DashboardAsset:
        return responder.send(dashboard::serve_file(request, matched.params[0]));
      case RouteId::OpenAiModels:
      case RouteId::OpenAiModel:
      case RouteId::OpenAiChat:
      case RouteId::OpenAiImages:
      case RouteId::OpenAiSpeech:
      case RouteId::OpenAiTranscriptions:
        return openai_.handle(id, std::move(request), matched.params, responder);
    }
  }

 private:
  // ---- auth ----

  std::optional<HttpResponse> authorise(const HttpRequest& head, const RouteSpec& spec,
                                        const std::vector<std::string>& params) const {
    if (spec.auth == Auth::None) {
      return std::nullopt;
    }
    if (spec.auth == Auth::Worker) {
      if (worker_.token_ok(head, params[0])) {
        return std::nullopt;
      }
      return refuse(Refusal::Unauthorized, "unknown worker or bad bearer token");
    }
    if (spec.auth == Auth::AnyWorker) {
      const auto token = head.bearer_token();
      if (token && s_.registry().worker_with_token(*token)) {
        return std::nullopt;
      }
      return refuse(Refusal::Unauthorized, "a worker's bearer token is required");
    }
    const auto token = head.bearer_token();
    if (!token) {
      return refuse(Refusal::Unauthorized, "Authorization: Bearer <key> required");
    }
    using Bearer = Registry::Bearer;
    const auto bearer = s_.registry().bearer(*token);
    if (bearer == Bearer::Unknown) {
      return refuse(Refusal::Unauthorized, "unknown API key or admin token");
    }
    const auto needed = spec.auth == Auth::Admin    ? Bearer::Admin
                        : spec.auth == Auth::Client ? Bearer::Client
                                                    : Bearer::Inference;
    if (bearer >= needed) {
      return std::nullopt;
    }
    const std::string_view scope = bearer == Bearer::Client ? "client" : "inference";
    return refuse(
        Refusal::Forbidden,
        fmt::format("this route needs {} (this key's scope is {})",
                    needed == Bearer::Admin ? "the admin token or an API key of scope admin"
                                            : "an API key of scope client or admin",
                    scope));
  }

  // The credentials that `head` presents, read again from the database into the registry; then
  // admitted (or refused) as usual.
  void reread_credentials(const HttpRequest& head, const RouteSpec& spec,
                          const std::vector<std::string>& params, net::Admitter admitter) {
    struct Fresh {
      std::optional<store::WorkerRecord> worker;
      std::optional<std::vector<store::ApiKeyRecord>> keys;
      std::optional<std::string> admin_hash;
    };
    const bool worker = spec.auth == Auth::Worker;
    const std::string worker_id = worker ? params[0] : std::string();
    s_.database().call<Fresh>(
        [worker, worker_id](store::StudioStore& st) -> Result<Fresh> {
          Fresh fresh;
          if (worker) {
            auto row = st.find_worker(worker_id);
            if (!row) {
              return fail(std::move(row).error());
            }
            fresh.worker = std::move(*row);
            return fresh;
          }
          auto keys = st.list_api_keys();
          if (!keys) {
            return fail(std::move(keys).error());
          }
          auto admin = st.setting(kAdminTokenSetting);
          if (!admin) {
            return fail(std::move(admin).error());
          }
          fresh.keys = std::move(*keys);
          fresh.admin_hash = std::move(*admin);
          return fresh;
        },
        [this, head, admitter, weak = s_.weak_from_this()](Result<Fresh> fresh) mutable {
          if (!weak.lock()) {
            return;
          }
          if (!fresh) {
            admitter.decide(api::error_response(fresh.error()));
            return;
          }
          if (fresh->worker) {
            s_.registry().set_worker_token_hash(fresh->worker->id, fresh->worker->token_hash);
          }
          if (fresh->keys) {
            s_.registry().replace_api_keys(*fresh->keys);
          }
          if (fresh->admin_hash && !s_.config().admin_token) {
            s_.registry().set_admin_token_hash(*fresh->admin_hash);
          }
          const auto matched = match_route(head);
          admit_decided(head, admit(head), matched, std::move(admitter));
        });
  }

  void metrics(const net::Responder& responder) {
    struct Counts {
      std::map<std::string, std::int64_t> by_status;
      std::map<std::string, store::KeyUsage> by_key;
    };
    s_.database().call<Counts>(
        [](store::StudioStore& st) -> Result<Counts> {
          auto by_status = st.count_jobs_by_status();
          if (!by_status) {
            return fail(std::move(by_status).error());
          }
          auto by_key = st.key_usage_totals();
          if (!by_key) {
            return fail(std::move(by_key).error());
          }
          return Counts{std::move(*by_status), std::move(*by_key)};
        },
        [this, responder](Result<Counts> counts) {
          // A database that cannot answer leaves its families empty; the live state still shows.
          const Counts none;
          const auto& c = counts ? *counts : none;
          responder.send(
              HttpResponse::text(200, s_.render_metrics(c.by_status) + render_key_usage(c.by_key),
                                 "text/plain; version=0.0.4"));
        });
  }

  // GET /api/v1/stats: /metrics's studio figures as JSON, for the dashboard's charts.
  void stats(const net::Responder& responder) {
    s_.database().call<std::map<std::string, std::int64_t>>(
        [](store::StudioStore& st) { return st.count_jobs_by_status(); },
        [this, responder](Result<std::map<std::string, std::int64_t>> counts) {
          if (!counts) {
            responder.send(api::error_response(counts.error()));
            return;
          }
          responder.send(ok_json(s_.metrics_snapshot(*counts)));
        });
  }

  Studio& s_;
  api::WorkerRoutes worker_{s_};
  api::ClientRoutes client_{s_};
  api::AdminRoutes admin_{s_};
  api::OpenAiRoutes openai_{s_};
  api::UploadRoutes uploads_{s_};
  api::KeyRoutes keys_{s_};
};

std::unique_ptr<net::HttpHandler> make_router(Studio& studio) {
  return std::make_unique<Router>(studio);
}

}  // namespace sw::studio