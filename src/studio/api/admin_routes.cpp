#include "studio/api/admin_routes.h"

#include <algorithm>
#include <charconv>

#include "common/clock.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "rules/engine_rules.h"
#include "studio/admin.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/join_tokens.h"
#include "studio/json_views.h"
#include "studio/request_bodies.h"
#include "studio/studio.h"
#include "studio/transactions.h"

namespace sw::studio::api {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

class AdminRoutes::Impl {
 public:
  explicit Impl(Studio& studio) : s_(studio) {}

  void handle(RouteId id, HttpRequest request, const std::vector<std::string>& p,
              const net::Responder& responder) {
    switch (id) {
      case RouteId::ModelsList: return list_models(responder);
      case RouteId::ModelsCreate: return put_model(request, std::nullopt, responder);
      case RouteId::ModelGet: return get_model(p[0], responder);
      case RouteId::ModelPut: return put_model(request, p[0], responder);
      case RouteId::ModelPatch: return patch_model(request, p[0], responder);
      case RouteId::ModelDelete: return delete_model(p[0], responder);
      case RouteId::WorkersList: return list_workers(responder);
      case RouteId::WorkersPending: return list_pending(responder);
      case RouteId::WorkerApprove: return approve(request, p[0], responder);
      case RouteId::JoinTokensList: return list_join_tokens(responder);
      case RouteId::JoinTokenCreate: return create_join_token(request, responder);
      case RouteId::JoinTokenRevoke: return revoke_join_token(request, p[0], responder);
      case RouteId::WorkerReject: return reject(request, p[0], responder);
      case RouteId::WorkerDelete: return delete_worker(p[0], responder);
      case RouteId::WorkerLogs: return worker_logs(request, p[0], responder);
      case RouteId::AdminTokenRotate: return rotate_admin_token(responder);
      default: break;
    }
    responder.send(refuse(Refusal::NotFound, "no route for " + request.path));
  }

  // ---- models ----

  void list_models(const net::Responder& responder) {
    json list = json::array();
    for (const auto* model : s_.registry().models()) {
      list.push_back(model_json(model->record));
    }
    responder.send(ok_json({{"models", std::move(list)}}));
  }

  void get_model(const std::string& id, const net::Responder& responder) {
    const auto* model = s_.registry().model(id);
    if (model == nullptr) {
      responder.send(refuse(Refusal::NotFound, "no model " + id));
      return;
    }
    responder.send(ok_json(model_json(model->record)));
  }

  // Merge semantics (RFC 7386) over the model as GET shows it; the result is validated whole, as
  // a PUT of it would be.
  void patch_model(const HttpRequest& request, const std::string& id,
                   const net::Responder& responder) {
    const auto* model = s_.registry().model(id);
    if (model == nullptr) {
      responder.send(refuse(Refusal::NotFound, "no model " + id));
      return;
    }
    auto merged =
        merge_model_patch(model_json(model->record), request.body, s_.config().json_body_limit);
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
    s_.database().call<bool>(
        [record = std::move(record), create](store::StudioStore& st) {
          return tx::save_model(st, record, create);
        },
        [this, responder, model = std::move(*model), create](Result<bool> stored) mutable {
          if (!stored) {
            responder.send(stored.error().code == Code::Conflict
                               ? refuse(Refusal::Conflict, "model " + model.record.id + " exists")
                               : error_response(stored.error()));
            return;
          }
          if (!*stored) {
            responder.send(refuse(Refusal::NotFound, "no model " + model.record.id));
            return;
          }
          auto body = model_json(model.record);
          s_.registry().put_model(std::move(model));
          responder.send(ok_json(body, create ? 201 : 200));
        });
  }

  Result<CatalogueModel> validate_model(const std::string& text,
                                        const std::optional<std::string>& path_id) {
    auto body = read_model_body(text, path_id, s_.config().json_body_limit);
    if (!body) {
      return fail(std::move(body).error());
    }
    CatalogueModel model{std::move(body->record), std::move(body->source)};
    model.record.created_at = model.record.updated_at = s_.unix_millis();
    return model;
  }

  void delete_model(const std::string& id, const net::Responder& responder) {
    s_.database().call<bool>([id](store::StudioStore& st) { return st.delete_model(id); },
                             [this, responder, id](Result<bool> deleted) {
                               if (!deleted) {
                                 responder.send(error_response(deleted.error()));
                               } else if (!*deleted) {
                                 responder.send(refuse(Refusal::NotFound, "no model " + id));
                               } else {
                                 s_.registry().remove_model(id);
                                 responder.send(ok_json({{"deleted", id}}));
                               }
                             });
  }

  // ---- workers (admin) ----

  void list_workers(const net::Responder& responder) {
    s_.database().call<std::vector<store::WorkerRecord>>(
        [](store::StudioStore& st) { return st.list_workers(); },
        [this, responder](Result<std::vector<store::WorkerRecord>> workers) {
          if (!workers) {
            responder.send(error_response(workers.error()));
            return;
          }
          json list = json::array();
          for (const auto& w : *workers) {
            const auto live = s_.connected_worker(w.id);
            json item = {{"id", w.id},
                         {"installId", w.install_id},
                         {"connected", live.has_value()},
                         {"capabilities", live ? stored_json(live->capabilities_json)
                                               : stored_json(w.capabilities_json)},
                         {"createdAt", iso_time(w.created_at)}};
            if (!w.approved_by.empty()) {  // issue 22: who let it in (the admin, a key, a token)
              item["approvedBy"] = w.approved_by;
            }
            if (w.last_seen_at) {
              item["lastSeenAt"] = iso_time(*w.last_seen_at);
            }
            if (live) {  // the dashboard's fleet view (issue 21)
              item["connectedAt"] = iso_time(live->connected_at);
              if (live->last_heartbeat_at) {
                item["lastHeartbeatAt"] = iso_time(*live->last_heartbeat_at);
              }
            }
            if (live && live->job_id) {
              item["currentJobId"] = *live->job_id;
              item["jobIds"] = live->job_ids;
            } else if (w.current_job_id) {
              item["currentJobId"] = *w.current_job_id;
            }
            list.push_back(std::move(item));
          }
          responder.send(ok_json({{"workers", std::move(list)}}));
        });
  }

  // ---- join tokens (issue 22) ----

  void list_join_tokens(const net::Responder& responder) {
    s_.database().call<std::vector<store::JoinTokenRecord>>(
        [](store::StudioStore& st) { return st.list_join_tokens(); },
        [this, responder](Result<std::vector<store::JoinTokenRecord>> tokens) {
          if (!tokens) {
            responder.send(error_response(tokens.error()));
            return;
          }
          json list = json::array();
          for (const auto& token : *tokens) {
            list.push_back(join_token_json(token, s_.unix_millis()));
          }
          responder.send(ok_json({{"joinTokens", std::move(list)}}));
        });
  }

  void create_join_token(const HttpRequest& request, const net::Responder& responder) {
    auto options = read_join_token_body(request.body, s_.config().json_body_limit);
    if (!options) {
      responder.send(invalid("invalid_request", options.error().message));
      return;
    }
    s_.database().call<CreatedJoinToken>(
        [options = *options, by = actor(request), now = s_.unix_millis()](store::StudioStore& st) {
          return studio::create_join_token(st, options, by, now);
        },
        [this, responder](Result<CreatedJoinToken> created) {
          if (!created) {
            responder.send(error_response(created.error()));
            return;
          }
          logger().info("join_token.created", {{"join_token_id", created->record.id},
                                               {"by", created->record.created_by}});
          json body = join_token_json(created->record, s_.unix_millis());
          body["token"] = created->token;  // shown once
          responder.send(ok_json(body, 201));
        });
  }

  void revoke_join_token(const HttpRequest& request, const std::string& id,
                         const net::Responder& responder) {
    s_.database().call<bool>(
        [id, now = s_.unix_millis()](store::StudioStore& st) {
          return st.revoke_join_token(id, now);
        },
        [this, responder, id, by = actor(request)](Result<bool> revoked) {
          if (!revoked) {
            responder.send(error_response(revoked.error()));
            return;
          }
          if (!*revoked) {
            responder.send(refuse(Refusal::NotFound,
                                  fmt::format("no join token {} that is not revoked already", id)));
            return;
          }
          logger().info("join_token.revoked", {{"join_token_id", id}, {"by", by}});
          responder.send(ok_json({{"id", id}, {"revoked", true}}));
        });
  }

  void list_pending(const net::Responder& responder) {
    s_.database().call<std::vector<store::RegistrationRecord>>(
        [](store::StudioStore& st) { return st.list_requests(store::RequestStatus::Pending); },
        [this, responder](Result<std::vector<store::RegistrationRecord>> requests) {
          if (!requests) {
            responder.send(error_response(requests.error()));
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
                            {"waiting", s_.poll_held(r.id)}});
          }
          responder.send(ok_json({{"pending", std::move(list)}}));
        });
  }

  // Who acts, as recorded on what they approve or create (WorkerRecord::approved_by).
  std::string actor(const HttpRequest& request) const {
    const auto token = request.bearer_token();
    const auto owner = token ? s_.registry().bearer_owner(*token) : std::nullopt;
    if (!owner) return "unknown";
    return *owner == "admin" ? *owner : "key:" + *owner;
  }

  void approve(const HttpRequest& request, const std::string& request_id,
               const net::Responder& responder) {
    s_.database().call<std::string>(
        [request_id, now = s_.unix_millis(), by = actor(request)](store::StudioStore& st) {
          return approve_request(st, request_id, now, by);
        },
        [this, responder, request_id](Result<std::string> worker_id) {
          if (!worker_id) {
            responder.send(error_response(worker_id.error()));
            return;
          }
          logger().info("registration.approved",
                        {{"request_id", request_id}, {"worker_id", *worker_id}});
          s_.request_decided(request_id);
          // Unknown token until the worker polls; the placeholder hash matches nothing.
          s_.registry().set_worker_token_hash(*worker_id, sha256_hex(random_hex(32)));
          s_.publish_worker(*worker_id, "approved");
          responder.send(ok_json({{"status", "approved"}, {"workerId", *worker_id}}));
        });
  }

  void reject(const HttpRequest& request, const std::string& request_id,
              const net::Responder& responder) {
    auto body = parse_object(request.body, true, s_.config().json_body_limit);
    if (!body) {
      responder.send(invalid("invalid_request", body.error().message));
      return;
    }
    auto reason = field<std::string>(*body, "reason");
    if (!reason) {
      responder.send(invalid("invalid_request", reason.error().message));
      return;
    }
    s_.database().call<bool>(
        [request_id, reason = reason->value_or(""), now = s_.unix_millis(),
         by = actor(request)](store::StudioStore& st) -> Result<bool> {
          SW_TRY(reject_request(st, request_id, reason, now, by));
          return true;
        },
        [this, responder, request_id](Result<bool> rejected) {
          if (!rejected) {
            responder.send(error_response(rejected.error()));
            return;
          }
          logger().info("registration.rejected", {{"request_id", request_id}});
          s_.request_decided(request_id);
          responder.send(ok_json({{"status", "rejected"}, {"requestId", request_id}}));
        });
  }

  void delete_worker(const std::string& worker_id, const net::Responder& responder) {
    s_.database().call<bool>(
        [worker_id](store::StudioStore& st) { return st.delete_worker(worker_id); },
        [this, responder, worker_id](Result<bool> deleted) {
          if (!deleted) {
            responder.send(error_response(deleted.error()));
            return;
          }
          if (!*deleted) {
            responder.send(refuse(Refusal::NotFound, "no worker " + worker_id));
            return;
          }
          // At once, before the answer: its sessions close (worker_deleted, 4004), its token stops
          // upgrading and its jobs go back to the queue.
          s_.worker_deleted(worker_id);
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
    s_.database().call<std::vector<store::WorkerLogRecord>>(
        [worker_id, after, limit](store::StudioStore& st) {
          return st.worker_logs(worker_id, after, limit);
        },
        [responder](Result<std::vector<store::WorkerLogRecord>> logs) {
          if (!logs) {
            responder.send(error_response(logs.error()));
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
    if (s_.config().admin_token) {
      responder.send(refuse(
          Refusal::Conflict,
          "this studio takes its admin token from STUDIO_SERVER_ADMIN_TOKEN: change it there and "
          "restart the studio"));
      return;
    }
    std::string token = new_admin_token();
    std::string hash = sha256_hex(token);
    s_.database().call<bool>(
        [hash](store::StudioStore& st) -> Result<bool> {
          SW_TRY(st.set_setting(kAdminTokenSetting, hash));
          return true;
        },
        [this, responder, token, hash](Result<bool> stored) {
          if (!stored) {
            responder.send(error_response(stored.error()));
            return;
          }
          s_.registry().set_admin_token_hash(hash);
          logger().info("admin_token.rotated");
          responder.send(ok_json({{"adminToken", token}}));
        });
  }

  Studio& s_;
};

AdminRoutes::AdminRoutes(Studio& studio) : impl_(std::make_unique<Impl>(studio)) {}
AdminRoutes::~AdminRoutes() = default;

void AdminRoutes::handle(RouteId id, net::HttpRequest request,
                         const std::vector<std::string>& params, const net::Responder& responder) {
  impl_->handle(id, std::move(request), params, responder);
}

}  // namespace sw::studio::api
