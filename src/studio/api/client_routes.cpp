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
            responder.send(error_response(stored.error()));
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
    s_.db_->call<std::optional<store::JobRecord>>(
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
                                    : error_response(stored.error()));
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
      stream->write(": connected\n\n");
      s_.event_streams_.push_back(std::move(stream));
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
