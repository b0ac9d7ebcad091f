#include "studio/api/client_routes.h"

#include <charconv>

#include "common/clock.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "rules/engine_rules.h"
#include "studio/api/job_intake.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/request_bodies.h"
#include "studio/studio.h"
#include "studio/transactions.h"
#include "studio/uploads.h"

namespace sw::studio::api {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

class ClientRoutes::Impl {
 public:
  explicit Impl(Studio& studio) : s_(studio) {}

  void handle(RouteId id, HttpRequest request, const std::vector<std::string>& p,
              const net::Responder& responder) {
    switch (id) {
      case RouteId::JobsCreate: return create_job(request, responder);
      case RouteId::JobsList: return list_jobs(request, responder);
      case RouteId::JobGet: return get_job(p[0], confined(request), responder);
      case RouteId::JobResult: return job_result(p[0], confined(request), responder);
      case RouteId::JobCancel: return cancel_job(p[0], confined(request), responder);
      case RouteId::Events: return events(request, responder);
      default: break;
    }
    responder.send(refuse(Refusal::NotFound, "no route for " + request.path));
  }

  // An inference-scoped key sees only its own jobs (issue 20): the key's id, else nullopt.
  std::optional<std::string> confined(const HttpRequest& request) const {
    const auto token = request.bearer_token();
    return token ? s_.registry().confined_owner(*token) : std::nullopt;
  }
  // Whether a confined bearer may see `job`; another key's job reads as absent (404), so that
  // ids are not confirmed either.
  static bool visible(const store::JobRecord& job, const std::optional<std::string>& owner) {
    return !owner || job.owner == owner;
  }

  // ---- jobs ----

  void create_job(const HttpRequest& request, const net::Responder& responder) {
    // Ours (issue 20): `?waitMs=` holds the answer until the job ends or the wait does; the
    // reference studio ignores it, as it ignores registration's.
    std::chrono::milliseconds wait{0};
    if (auto text = request.query_param("waitMs"); text && !text->empty()) {
      std::int64_t value = 0;
      const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
      const auto most =
          std::chrono::duration_cast<std::chrono::milliseconds>(s_.config().job_wait_limit).count();
      if (ec != std::errc() || end != text->data() + text->size() || value < 0 || value > most) {
        responder.send(invalid("invalid_request",
                               fmt::format("waitMs: must be an integer from 0 to {}", most)));
        return;
      }
      wait = std::chrono::milliseconds(value);
    }
    auto body = read_job_body(
        request.body, [this](const std::string& id) { return model_kind_for_job(s_, id); },
        s_.config().json_body_limit);
    const auto token = request.bearer_token();
    auto valid = body ? prepare_job(s_, std::move(*body),
                                    token ? s_.registry().bearer_owner(*token) : std::nullopt)
                      : fail(std::move(body).error());
    if (!valid) {
      responder.send(invalid("invalid_job", valid.error().message));
      return;
    }
    submit_job(s_, std::move(*valid), [this, responder, wait](Result<tx::CreatedJob> stored) {
      if (!stored && stored.error().code == Code::Conflict) {
        responder.send(refuse(Refusal::IdempotencyKeyReused, stored.error().message));
        return;
      }
      if (!stored && stored.error().code == Code::InvalidArgument) {
        responder.send(invalid("invalid_job", stored.error().message));
        return;
      }
      if (!stored) {
        responder.send(error_response(stored.error()));
        return;
      }
      if (stored->refused) {
        responder.send(quota_exceeded(*stored->refused));
        return;
      }
      const int status = stored->created ? 201 : 200;
      if (wait.count() == 0 || is_finished(stored->record.status)) {
        responder.send(ok_json(job_json(stored->record, {}, waiting(stored->record)), status));
        return;
      }
      await_job_end(
          s_, stored->record.id, wait,
          [this, responder, status, fallback = stored->record](Result<store::JobRecord> job) {
            const auto& record = job ? *job : fallback;
            responder.send(ok_json(job_json(record, {}, waiting(record)), status));
          });
    });
  }

  // Why a queued job waits, asked of the scheduler when the view is built (loop thread).
  std::optional<std::string> waiting(const store::JobRecord& job) const {
    if (job.status != store::JobStatus::Queued) {
      return std::nullopt;
    }
    return s_.waiting_reason(job.id);
  }
  json view_json(const tx::JobView& view) const {
    return job_json(view.record, view.attempts, waiting(view.record));
  }

  void get_job(const std::string& id, std::optional<std::string> owner,
               const net::Responder& responder) {
    s_.database().call<std::optional<tx::JobView>>(
        [id](store::StudioStore& st) { return tx::find_job_view(st, id); },
        [this, responder, id, owner](Result<std::optional<tx::JobView>> job) {
          if (!job) {
            responder.send(error_response(job.error()));
          } else if (!*job || !visible((*job)->record, owner)) {
            responder.send(refuse(Refusal::NotFound, "no job " + id));
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
    if (auto model = request.query_param("model"); model && !model->empty()) {
      if (model->size() > 200) {
        responder.send(invalid("invalid_request", "model: longer than 200 bytes"));
        return;
      }
      filter.model = std::move(*model);
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
    filter.owner = confined(request);
    const auto before = request.query_param("before");
    s_.database().call<std::vector<tx::JobView>>(
        [filter, before](store::StudioStore& st) { return tx::list_job_views(st, filter, before); },
        [this, responder, limit = filter.limit](Result<std::vector<tx::JobView>> jobs) {
          if (!jobs) {
            responder.send(error_response(jobs.error()));
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

  void job_result(const std::string& id, std::optional<std::string> owner,
                  const net::Responder& responder) {
    s_.database().call<std::optional<store::JobRecord>>(
        [id](store::StudioStore& st) { return st.find_job(id); },
        [this, responder, id, owner](Result<std::optional<store::JobRecord>> job) {
          if (!job) {
            responder.send(error_response(job.error()));
          } else if (!*job || !visible(**job, owner)) {
            responder.send(refuse(Refusal::NotFound, "no job " + id));
          } else if ((*job)->status == store::JobStatus::Failed ||
                     (*job)->status == store::JobStatus::Cancelled) {
            // Over without a result (issue 17): say so and why, not "not ready". 410: the
            // result will never exist. The body adds the job's status and error.
            const bool failed = (*job)->status == store::JobStatus::Failed;
            responder.send(refuse(failed ? Refusal::JobFailed : Refusal::JobCancelled,
                                  failed ? fmt::format("job {} failed: {}", id,
                                                       (*job)->error.value_or("no error recorded"))
                                         : fmt::format("job {} was cancelled", id),
                                  {{"status", store::to_string((*job)->status)},
                                   {"jobError", (*job)->error ? json(*(*job)->error) : json()}}));
          } else if ((*job)->status != store::JobStatus::Done) {
            responder.send(
                refuse(Refusal::NotReady,
                       fmt::format("job {} is {}", id, store::to_string((*job)->status))));
          } else if ((*job)->result_json) {
            responder.send(HttpResponse::json(200, *(*job)->result_json));
          } else {
            // By the table, not the stored column: results stored before it knew flac, ogg and opus
            // were labelled application/octet-stream.
            responder.send(file_answer(s_.results_dir() / (*job)->result_binary->sha256,
                                       proto::mime_for_ext((*job)->result_binary->ext),
                                       "job " + id + "'s result", "--results-dir",
                                       s_.config().database_uri.has_value()));
          }
        });
  }

  void cancel_job(const std::string& id, std::optional<std::string> owner,
                  const net::Responder& responder) {
    if (owner) {
      // A confined key cancels only its own job: the row says whose it is.
      s_.database().call<std::optional<store::JobRecord>>(
          [id](store::StudioStore& st) { return st.find_job(id); },
          [this, responder, id, owner](Result<std::optional<store::JobRecord>> job) {
            if (!job) {
              responder.send(error_response(job.error()));
            } else if (!*job || !visible(**job, owner)) {
              responder.send(refuse(Refusal::NotFound, "no job " + id));
            } else {
              cancel_job(id, std::nullopt, responder);
            }
          });
      return;
    }
    s_.cancel_job(id, [this, responder, id](Result<std::optional<tx::JobView>> job) {
      if (!job) {
        responder.send(error_response(job.error()));
      } else if (!*job) {
        responder.send(refuse(Refusal::NotFound, "no job " + id));
      } else if ((*job)->record.status == store::JobStatus::Cancelled) {
        responder.send(ok_json(view_json(**job)));  // cancelling twice is harmless
      } else {
        responder.send(refuse(
            Refusal::Conflict,
            fmt::format("job {} is already {}", id, store::to_string((*job)->record.status))));
      }
    });
  }

  void events(const HttpRequest& request, const net::Responder& responder) {
    if (confined(request)) {
      // The stream shows every job and worker; a key confined to its own jobs waits on them with
      // POST /api/v1/jobs?waitMs= or GET /api/v1/jobs/:id instead.
      responder.send(refuse(
          Refusal::Forbidden,
          "GET /api/v1/events shows every job: it needs an API key of scope client or admin (this "
          "key's scope is inference; wait with ?waitMs= on POST /api/v1/jobs instead)"));
      return;
    }
    auto stream = responder.start_stream("text/event-stream");
    if (stream) {
      const auto* last = request.header("Last-Event-ID");
      const auto token = request.bearer_token();
      s_.add_event_stream(std::move(stream),
                          last != nullptr ? std::optional<std::string>(*last) : std::nullopt,
                          token ? sha256_hex(*token) : std::string());
    }
  }

  Studio& s_;
};

ClientRoutes::ClientRoutes(Studio& studio) : impl_(std::make_unique<Impl>(studio)) {}
ClientRoutes::~ClientRoutes() = default;

void ClientRoutes::handle(RouteId id, net::HttpRequest request,
                          const std::vector<std::string>& params, const net::Responder& responder) {
  impl_->handle(id, std::move(request), params, responder);
}

}  // namespace sw::studio::api
