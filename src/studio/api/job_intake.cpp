#include "studio/api/job_intake.h"

#include <boost/asio/steady_timer.hpp>

#include "common/secrets.h"
#include "proto/codec.h"
#include "rules/engine_rules.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/studio.h"
#include "studio/uploads.h"

namespace sw::studio::api {

Result<proto::TaskKind> model_kind_for_job(const Studio& studio, const std::string& id) {
  const auto* model = studio.registry().model(id);
  if (model == nullptr) {
    return fail(Error::invalid_argument("model: unknown model \"{}\"", id));
  }
  if (!model->record.enabled) {
    return fail(Error::invalid_argument("model: model \"{}\" is disabled", id));
  }
  return model->record.kind;
}

Result<NewJob> prepare_job(const Studio& studio, JobBody body, std::optional<std::string> owner) {
  SW_TRY(model_kind_for_job(studio, body.model));
  const auto& model = *studio.registry().model(body.model);
  if (body.task.kind() != model.record.kind) {
    return fail(Error::invalid_argument("model: \"{}\" serves {} tasks, not {}", body.model,
                                        proto::to_string(model.record.kind),
                                        proto::to_string(body.task.kind())));
  }
  SW_TRY(rules::check_task(model.source, body.task, rules::Stage::Creation));
  store::JobRecord job;
  job.id = "job-" + time_ordered_uuid();  // time-ordered: its index rows share recent pages
  job.model = body.model;
  job.kind = body.task.kind();
  job.task_json = proto::encode(body.task);
  job.model_source_json = model.source_json;
  if (!offer_fits_a_worker(job.task_json.size(), job.model_source_json.size())) {
    return fail(Error::invalid_argument(
        "task: the offer for this job would carry {} bytes of task and {} bytes of model "
        "source, over the {} bytes a worker reads in one message; send a smaller task",
        job.task_json.size(), job.model_source_json.size(), kWorkerMessageLimit));
  }
  const auto& config = studio.config();
  job.vram_gb_estimate = model.record.vram_gb_estimate;
  job.game_id = body.game_id.value_or("");
  job.asset_name = body.asset_name.value_or("");
  job.priority = static_cast<int>(body.priority.value_or(0));
  job.max_attempts = static_cast<int>(body.max_attempts.value_or(config.default_max_attempts));
  if (body.idempotency_key) {
    job.idempotency_key = scoped_idempotency_key(owner, std::move(*body.idempotency_key));
  }
  job.created_at = studio.unix_millis();
  job.owner = std::move(owner);
  return NewJob{std::move(job), std::move(body.task), model.source};
}

void submit_job(Studio& studio, NewJob job, std::function<void(Result<tx::CreatedJob>)> done) {
  // Inputs that are studio uploads (issue 20) must exist; the job takes them as it is stored.
  auto inputs = uploads::upload_refs(job.task);
  std::optional<store::KeyQuota> quota;
  if (job.record.owner) {
    if (const auto* key = studio.registry().api_key(*job.record.owner)) {
      quota = key->quota;
    }
  }
  studio.database().call<tx::CreatedJob>(
      [record = std::move(job.record), inputs = std::move(inputs),
       quota](store::StudioStore& st) mutable {
        return tx::create_job(st, std::move(record), inputs, quota);
      },
      [&studio, weak = studio.weak_from_this(), task = std::move(job.task),
       source = std::move(job.source),
       done = std::move(done)](Result<tx::CreatedJob> stored) mutable {
        if (!weak.lock()) {
          return;
        }
        if (stored && stored->created) {
          // The task and source this request decoded: the stored JSON was encoded from them.
          studio.job_created(stored->record, std::move(task), std::move(source));
        }
        done(std::move(stored));
      });
}

net::HttpResponse quota_exceeded(const QuotaRefusal& refusal) {
  auto response = refuse(Refusal::QuotaExceeded, refusal.message);
  response.headers.push_back({"retry-after", std::to_string(refusal.retry_after_s)});
  return response;
}

bool is_finished(store::JobStatus status) {
  return status == store::JobStatus::Done || status == store::JobStatus::Failed ||
         status == store::JobStatus::Cancelled;
}

namespace {

struct EndWaiter : std::enable_shared_from_this<EndWaiter> {
  EndWaiter(Studio& s, std::string id, std::function<void(Result<store::JobRecord>)> callback)
      : studio(s), job_id(std::move(id)), timer(s.loop()), done(std::move(callback)) {}
  Studio& studio;
  std::string job_id;
  boost::asio::steady_timer timer;
  std::function<void(Result<store::JobRecord>)> done;
  std::uint64_t watch_id = 0;
  bool answered = false;

  void finish(Result<store::JobRecord> job) {
    if (answered) {
      return;
    }
    answered = true;
    studio.unwatch_job(job_id, watch_id);
    timer.cancel();
    auto callback = std::move(done);
    callback(std::move(job));
  }

  // Reads the row; answers when it is finished, or whatever it is when `any` (the limit passed).
  void read(bool any) {
    studio.database().call<std::optional<store::JobRecord>>(
        [id = job_id](store::StudioStore& st) { return st.find_job(id); },
        [self = shared_from_this(), weak = studio.weak_from_this(),
         any](Result<std::optional<store::JobRecord>> row) {
          if (!weak.lock() || self->answered) {
            return;
          }
          if (!row) {
            self->finish(fail(std::move(row).error()));
          } else if (!*row) {
            self->finish(fail(Error::not_found("no job {}", self->job_id)));
          } else if (any || is_finished((*row)->status)) {
            self->finish(std::move(**row));
          }
        });
  }
};

}  // namespace

void await_job_end(Studio& studio, const std::string& job_id, std::chrono::milliseconds limit,
                   std::function<void(Result<store::JobRecord>)> done) {
  auto waiter = std::make_shared<EndWaiter>(studio, job_id, std::move(done));
  std::weak_ptr<EndWaiter> weak = waiter;
  waiter->watch_id =
      studio.watch_job(job_id, {.on_change =
                                    [weak](const store::JobRecord* committed) {
                                      auto self = weak.lock();
                                      if (!self) {
                                        return;
                                      }
                                      // The row, not the published record: that one carries no
                                      // result. Null: changed in another studio process.
                                      if (committed == nullptr || is_finished(committed->status)) {
                                        self->read(false);
                                      }
                                    },
                                .on_progress = {}});
  // The timer's handler holds the waiter: it lives until it answers.
  waiter->timer.expires_after(limit);
  waiter->timer.async_wait([waiter](boost::system::error_code ec) {
    if (!ec) {
      waiter->read(true);
    }
  });
  waiter->read(false);
}

}  // namespace sw::studio::api
