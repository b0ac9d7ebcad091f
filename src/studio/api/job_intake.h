#pragma once
// How a client's request becomes a studio job, shared by the native API (POST /api/v1/jobs) and
// the OpenAI-compatible routes (issue 20): checks against the model catalogue and the engine
// rules, the job's row, the commit and the announcement; and waiting for a job's end.
// Loop-thread only.

#include <chrono>
#include <functional>
#include <string>

#include "common/error.h"
#include "net/http_server.h"
#include "proto/types.h"
#include "studio/request_bodies.h"
#include "studio/store/studio_store.h"
#include "studio/transactions.h"

namespace sw::studio {
class Studio;
}

namespace sw::studio::api {

// A new job as validated: its row, and the task and model source its JSON columns encode.
struct NewJob {
  store::JobRecord record;
  proto::Task task;
  proto::ModelSource source;
};

// The catalogue's answer for a job's model: its kind, or InvalidArgument "model: unknown model
// "x"" / "model: model "x" is disabled".
Result<proto::TaskKind> model_kind_for_job(const Studio& studio, const std::string& model_id);

// A decoded request as a job row: the model must be known and enabled, the task must pass the
// engine rules at creation, and the offer must fit in one worker message. InvalidArgument
// naming the field otherwise. `owner`: who asks (Registry::bearer_owner), recorded on the job.
Result<NewJob> prepare_job(const Studio& studio, JobBody body, std::optional<std::string> owner);

// Commits the job (or finds the one its idempotency key names) and, when new, announces and
// queues it. `done` runs on the loop: Conflict when the idempotency key was used for another
// job; InvalidArgument when an input names an upload that is missing or another job's. A job of
// an API key with a quota is created only while the key has room (else `refused` is set and
// nothing is stored: answer it with quota_exceeded()).
void submit_job(Studio& studio, NewJob job, std::function<void(Result<tx::CreatedJob>)> done);

bool is_finished(store::JobStatus status);

// 429 quota_exceeded with Retry-After (seconds until the quota's period turns).
net::HttpResponse quota_exceeded(const QuotaRefusal& refusal);

// Calls `done` once: with the job as committed when it ends (done, failed, cancelled), or, once
// `limit` has passed, with the job as the database has it then (still queued or claimed). Reads
// the row once at the start too, so a job that ended before the call is answered at once.
void await_job_end(Studio& studio, const std::string& job_id, std::chrono::milliseconds limit,
                   std::function<void(Result<store::JobRecord>)> done);

}  // namespace sw::studio::api
