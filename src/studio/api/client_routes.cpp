#include "studio/api/client_routes.h"

#include <charconv>

#include "common/clock.h"
#include "common/secrets.h"
#include "proto/codec.h"
#include "proto/mime.h"
#include "rules/engine_rules.h"
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
      case RouteId::JobGet: return get_job(p[0], responder);
      case RouteId::JobResult: return job_result(p[0], responder);
      case RouteId::JobCancel: return cancel_job(p[0], responder);
      case RouteId::Events: return events(responder);
      default: break;
    }
    responder.send(HttpResponse::error(404, "not_found", "no route for " + request.path));
  }

  // ---- jobs ----

  void create_job(const HttpRequest& request, const net::Responder& responder) {
    auto valid = validate_job(request.body);
    if (!valid) {
      responder.send(invalid("invalid_job", valid.error().message));
      return;
    }
    // Inputs that are studio uploads (issue 20) must exist; the job takes them as it is stored.
    auto inputs = uploads::upload_refs(valid->task);
    s_.database().call<tx::CreatedJob>(
        [job = std::move(valid->record), inputs = std::move(inputs)](
            store::StudioStore& st) mutable { return tx::create_job(st, std::move(job), inputs); },
        [this, responder, task = std::move(valid->task),
         source = std::move(valid->source)](Result<tx::CreatedJob> stored) mutable {
          if (!stored && stored.error().code == Code::Conflict) {
            responder.send(
                HttpResponse::error(409, "idempotency_key_reused", stored.error().message));
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
          if (!stored->created) {
            responder.send(ok_json(job_json(stored->record)));
            return;
          }
          // The task and source this request decoded: the stored JSON was encoded from them.
          s_.job_created(stored->record, std::move(task), std::move(source));
          responder.send(ok_json(job_json(stored->record, {}, waiting(stored->record)), 201));
        });
  }

  // A new job as validated: its row, and the task and model source its JSON columns encode.
  struct NewJob {
    store::JobRecord record;
    proto::Task task;
    proto::ModelSource source;
  };
  Result<NewJob> validate_job(const std::string& text) {
    auto body = read_job_body(
        text,
        [this](const std::string& id) -> Result<proto::TaskKind> {
          const auto* model = s_.registry().model(id);
          if (model == nullptr) {
            return fail(Error::invalid_argument("model: unknown model \"{}\"", id));
          }
          if (!model->record.enabled) {
            return fail(Error::invalid_argument("model: model \"{}\" is disabled", id));
          }
          return model->record.kind;
        },
        s_.config().json_body_limit);
    if (!body) {
      return fail(std::move(body).error());
    }
    const auto& model = *s_.registry().model(body->model);
    SW_TRY(rules::check_task(model.source, body->task, rules::Stage::Creation));
    store::JobRecord job;
    job.id = "job-" + time_ordered_uuid();  // time-ordered: its index rows share recent pages
    job.model = body->model;
    job.kind = body->task.kind();
    job.task_json = proto::encode(body->task);
    job.model_source_json = model.source_json;
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
        static_cast<int>(body->max_attempts.value_or(s_.config().default_max_attempts));
    job.idempotency_key = body->idempotency_key;
    job.created_at = s_.unix_millis();
    return NewJob{std::move(job), std::move(body->task), model.source};
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

  void get_job(const std::string& id, const net::Responder& responder) {
    s_.database().call<std::optional<tx::JobView>>(
        [id](store::StudioStore& st) { return tx::find_job_view(st, id); },
        [this, responder, id](Result<std::optional<tx::JobView>> job) {
          if (!job) {
            responder.send(error_response(job.error()));
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

  void job_result(const std::string& id, const net::Responder& responder) {
    s_.database().call<std::optional<store::JobRecord>>(
        [id](store::StudioStore& st) { return st.find_job(id); },
        [this, responder, id](Result<std::optional<store::JobRecord>> job) {
          if (!job) {
            responder.send(error_response(job.error()));
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
            response.file = s_.results_dir() / (*job)->result_binary->sha256;
            responder.send(std::move(response));
          }
        });
  }

  void cancel_job(const std::string& id, const net::Responder& responder) {
    s_.cancel_job(id, [this, responder, id](Result<std::optional<tx::JobView>> job) {
      if (!job) {
        responder.send(error_response(job.error()));
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
      s_.add_event_stream(std::move(stream));
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
