#include "studio/transactions.h"

#include <fmt/format.h>

#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "studio/admin.h"
#include "studio/api/responses.h"
#include "studio/join_tokens.h"
#include "studio/json_views.h"

namespace sw::studio::tx {

Result<std::optional<JobView>> find_job_view(store::StudioStore& store, const std::string& id) {
  auto job = store.find_job(id);
  if (!job) {
    return fail(std::move(job).error());
  }
  if (!*job) {
    return std::optional<JobView>();
  }
  auto attempts = store.job_attempts(id);
  if (!attempts) {
    return fail(std::move(attempts).error());
  }
  return std::optional<JobView>(JobView{std::move(**job), std::move(*attempts)});
}

Result<std::vector<JobView>> list_job_views(store::StudioStore& store, store::JobFilter filter,
                                            const std::optional<std::string>& before) {
  if (before && !before->empty()) {
    auto cursor = store.find_job(*before);
    if (!cursor) {
      return fail(std::move(cursor).error());
    }
    // Another owner's job reads as absent to a confined list, as it does to GET.
    if (!*cursor || (filter.owner && (*cursor)->owner != filter.owner)) {
      return fail(Error::invalid_argument("before: no job {}", *before));
    }
    filter.before_seq = (*cursor)->seq;
  }
  auto jobs = store.list_jobs(filter);
  if (!jobs) {
    return fail(std::move(jobs).error());
  }
  std::vector<JobView> views;
  views.reserve(jobs->size());
  for (auto& job : *jobs) {
    auto attempts = store.job_attempts(job.id);
    if (!attempts) {
      return fail(std::move(attempts).error());
    }
    views.push_back(JobView{std::move(job), std::move(*attempts)});
  }
  return views;
}

std::string differing_job_fields(const store::JobRecord& first, const store::JobRecord& again) {
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

namespace {

// The job an idempotency key already names, if any: the same request gets it back, a different
// one is a conflict that names the fields.
Result<std::optional<CreatedJob>> job_of_key(store::StudioStore& store,
                                             const store::JobRecord& job) {
  auto existing = store.find_job_by_idempotency_key(*job.idempotency_key);
  if (!existing) {
    return fail(std::move(existing).error());
  }
  if (!*existing) {
    return std::optional<CreatedJob>();
  }
  const auto differs = differing_job_fields(**existing, job);
  if (!differs.empty()) {
    return fail(
        Error::make(Code::Conflict,
                    "idempotencyKey \"{}\" was used for job {} with a different request "
                    "(differs in: {}); send the same request to get that job, or use a new key",
                    idempotency_key_as_sent(job).value_or(""), (*existing)->id, differs));
  }
  return std::optional<CreatedJob>(CreatedJob{std::move(**existing), false});
}

}  // namespace

namespace {
// Every upload a new job names exists and is free (or already this job's).
// `owner`: the job's. An API key's job takes only that key's uploads (issue 20: a key never
// reaches another's input); the admin token's job may take any.
Status check_inputs(store::StudioStore& store, const std::string& job_id,
                    const std::optional<std::string>& owner,
                    const std::vector<uploads::UploadRef>& inputs) {
  for (const auto& input : inputs) {
    auto upload = uploads::valid_upload_id(input.id)
                      ? store.find_upload(input.id)
                      : Result<std::optional<store::UploadRecord>>(std::nullopt);
    if (!upload) {
      return fail(std::move(upload).error());
    }
    if (!*upload || (owner && *owner != "admin" && (*upload)->owner != *owner)) {
      return fail(
          Error::invalid_argument("task.{}: no upload \"{}\" (upload it first with POST "
                                  "/api/v1/uploads, and use the url it answers)",
                                  input.field, input.id));
    }
    if ((*upload)->job_id && *(*upload)->job_id != job_id) {
      return fail(Error::invalid_argument(
          "task.{}: upload \"{}\" is already the input of job {}; upload it again", input.field,
          input.id, *(*upload)->job_id));
    }
  }
  return {};
}
}  // namespace

Result<CreatedJob> create_job(store::StudioStore& store, store::JobRecord job,
                              const std::vector<uploads::UploadRef>& inputs,
                              const std::optional<store::KeyQuota>& quota) {
  const bool metered = job.owner && *job.owner != "admin";
  if (metered && quota) {
    // Until the batch commits: a check through another studio process waits for this job. Taken
    // before the idempotency look-up, so that the same request through two processes at once
    // finds the first one's job rather than a quota the first one just used up.
    SW_TRY(store.hold_key_usage(*job.owner));
  }
  if (job.idempotency_key) {
    auto known = job_of_key(store, job);
    if (!known) {
      return fail(std::move(known).error());
    }
    if (*known) {
      return std::move(**known);
    }
  }
  if (metered && quota) {
    auto days = store.key_usage(*job.owner, quota_period_first_day(quota->period, job.created_at));
    if (!days) {
      return fail(std::move(days).error());
    }
    if (auto refusal = judge_quota(*quota, sum_usage(*days), job.created_at)) {
      return CreatedJob{std::move(job), false, std::move(refusal)};
    }
  }
  if (auto inserted = store.insert_job(job); !inserted) {
    // Another studio process on the same database inserted this key between the read above and
    // this insert (the same request sent through two processes at once): answer as if it came
    // second.
    if (inserted.error().code == Code::Conflict && job.idempotency_key) {
      auto known = job_of_key(store, job);
      if (known && *known) {
        return std::move(**known);
      }
      if (!known) {
        return fail(std::move(known).error());
      }
    }
    return fail(std::move(inserted).error());
  }
  SW_TRY(check_inputs(store, job.id, job.owner, inputs));
  for (const auto& input : inputs) {
    auto taken = store.attach_upload(input.id, job.id);
    if (!taken) {
      return fail(std::move(taken).error());
    }
    if (!*taken) {  // taken by another job between the check and now (another studio process)
      return fail(Error::invalid_argument("task.{}: upload \"{}\" was just taken by another job",
                                          input.field, input.id));
    }
  }
  if (metered) {
    SW_TRY(store.add_key_usage(*job.owner, store::utc_day(job.created_at),
                               store::KeyUsage{.jobs = 1}));
  }
  return CreatedJob{std::move(job), true};
}

Result<store::UploadRecord> delete_upload(store::StudioStore& store, const std::string& id,
                                          const std::optional<std::string>& owner) {
  auto upload = store.find_upload(id);
  if (!upload) {
    return fail(std::move(upload).error());
  }
  if (!*upload || (owner && (*upload)->owner != *owner)) {
    return fail(Error::not_found("no upload {}", id));
  }
  auto status = store.upload_job_status(id);
  if (!status) {
    return fail(std::move(status).error());
  }
  if (*status && (**status == store::JobStatus::Queued || **status == store::JobStatus::Claimed)) {
    return fail(Error::make(Code::Conflict, "upload {} is the input of job {}, which is {}", id,
                            (*upload)->job_id.value_or(""), store::to_string(**status)));
  }
  auto deleted = store.delete_upload(id);
  if (!deleted) {
    return fail(std::move(deleted).error());
  }
  return std::move(**upload);
}

Result<CancelOutcome> cancel_job(store::StudioStore& store, const std::string& id,
                                 store::Millis now) {
  // A no-op for a job that is over; on a shared database it also cancels a job that another
  // studio process holds (that process learns it from the row).
  auto cancelled = store.cancel_job(id, now);
  if (!cancelled) {
    return fail(std::move(cancelled).error());
  }
  auto job = find_job_view(store, id);
  if (!job) {
    return fail(std::move(job).error());
  }
  return CancelOutcome{std::move(*job), *cancelled};
}

Result<std::string> open_registration(store::StudioStore& store,
                                      const store::RegistrationRecord& request) {
  auto existing = store.find_pending_request(request.install_id);
  if (!existing) {
    return fail(std::move(existing).error());
  }
  if (*existing) {
    if (constant_time_equal((*existing)->secret_hash, request.secret_hash)) {
      return (*existing)->id;
    }
    auto superseded = store.decide_request((*existing)->id, store::RequestStatus::Rejected,
                                           "superseded by a newer request from the same install",
                                           std::nullopt, request.created_at, "studio");
    if (!superseded) {
      return fail(std::move(superseded).error());
    }
  }
  SW_TRY(store.insert_request(request));
  return request.id;
}

Result<JoinAnswer> join_registration(store::StudioStore& store,
                                     const store::RegistrationRecord& request,
                                     const std::string& token_hash) {
  auto found = store.find_join_token_by_hash(token_hash);
  if (!found) {
    return fail(std::move(found).error());
  }
  if (!*found) {
    return JoinAnswer{"", "", "", "join token not recognised by this studio"};
  }
  const store::JoinTokenRecord& token = **found;
  const std::string approver = join_token_approver(token);
  auto earlier = store.find_request_by_secret(request.install_id, request.secret_hash);
  if (!earlier) {
    return fail(std::move(earlier).error());
  }
  if (*earlier && (*earlier)->status == store::RequestStatus::Approved &&
      (*earlier)->decided_by == approver && (*earlier)->worker_id) {
    return JoinAnswer{(*earlier)->id, *(*earlier)->worker_id, token.id, ""};
  }
  if (auto refusal = join_token_refusal(token, request.created_at); !refusal.empty()) {
    return JoinAnswer{"", "", token.id, std::move(refusal)};
  }
  auto used = store.use_join_token(token.id, request.created_at);
  if (!used) {
    return fail(std::move(used).error());
  }
  if (!*used) {
    // Another process took its last use, or revoked it, a moment ago.
    return JoinAnswer{"", "", token.id, fmt::format("join token {} is no longer valid", token.id)};
  }
  auto opened = open_registration(store, request);
  if (!opened) {
    return fail(std::move(opened).error());
  }
  auto worker = approve_request(store, *opened, request.created_at, approver);
  if (!worker) {
    return fail(std::move(worker).error());
  }
  return JoinAnswer{*opened, *worker, token.id, ""};
}

Result<RegistrationAnswer> poll_registration(store::StudioStore& store,
                                             const std::string& request_id,
                                             const std::string& secret_hash) {
  auto found = store.find_request(request_id);
  if (!found) {
    return fail(std::move(found).error());
  }
  if (!*found) {
    return RegistrationAnswer{api::refuse(api::Refusal::NotFound, "unknown registration request"),
                              std::nullopt};
  }
  const auto& r = **found;
  if (!constant_time_equal(secret_hash, r.secret_hash)) {
    return RegistrationAnswer{
        api::refuse(api::Refusal::Unauthorized, "registration secret rejected"), std::nullopt};
  }
  switch (r.status) {
    case store::RequestStatus::Pending:
      return RegistrationAnswer{
          net::HttpResponse::json(
              200, proto::encode(proto::RegistrationPoll{proto::RegistrationPending{}})),
          std::nullopt, true};
    case store::RequestStatus::Rejected:
      return RegistrationAnswer{
          net::HttpResponse::json(
              200, proto::encode(proto::RegistrationPoll{proto::RegistrationRejected{r.reason}})),
          std::nullopt};
    case store::RequestStatus::Approved: break;
  }
  const std::string token = random_hex(32);
  const std::string hash = sha256_hex(token);
  auto rotated = store.set_worker_token(r.worker_id.value_or(""), hash);
  if (!rotated) {
    return fail(std::move(rotated).error());
  }
  if (!*rotated) {
    return RegistrationAnswer{
        api::refuse(api::Refusal::NotFound, "the approved worker was deleted"), std::nullopt};
  }
  return RegistrationAnswer{
      net::HttpResponse::json(200, proto::encode(proto::RegistrationPoll{
                                       proto::RegistrationApproved{*r.worker_id, token}})),
      std::pair(*r.worker_id, hash)};
}

Result<SettledCompletion> complete_settled(store::StudioStore& store, const std::string& id,
                                           const std::string& worker_id,
                                           const DeliveredResult& result,
                                           const std::optional<std::string>& prompt,
                                           store::Millis now) {
  auto job = store.find_job(id);
  if (!job) {
    return fail(std::move(job).error());
  }
  const auto* json = std::get_if<proto::RawJson>(&result);
  const auto* binary = std::get_if<store::BinaryResult>(&result);
  const bool same =
      *job &&
      (json != nullptr ? (*job)->result_json && proto::same_json(*(*job)->result_json, json->text())
                       : (*job)->result_binary && (*job)->result_binary->sha256 == binary->sha256);
  SettledCompletion settled{jobs::judge_settled(*job, worker_id, same), std::move(*job)};
  if (settled.verdict != jobs::Verdict::Take) {
    return settled;
  }
  auto taken = json != nullptr ? store.complete_job_json(id, worker_id, json->text(), prompt, now)
                               : store.complete_job_binary(id, worker_id, *binary, prompt, now);
  if (!taken) {
    return fail(std::move(taken).error());
  }
  if (!*taken) {
    // Only when the row moved between the two statements: not inside one transaction of one
    // process, but possible under PostgreSQL's READ COMMITTED with another process.
    settled.verdict = jobs::Verdict::Drop;
    return settled;
  }
  auto done = store.find_job(id);
  if (!done) {
    return fail(std::move(done).error());
  }
  settled.job = std::move(*done);
  return settled;
}

Result<bool> save_model(store::StudioStore& store, const store::ModelRecord& model, bool create) {
  if (create) {
    SW_TRY(store.insert_model(model));
    return true;
  }
  return store.update_model(model);
}

}  // namespace sw::studio::tx
