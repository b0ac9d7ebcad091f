#pragma once
// The studio's named transactions: every write or read that needs more than one store call.
// Each runs inside one DbWorker op, which is one savepoint of one database transaction on either
// backend, so it is atomic on its own; a route or a session only names the transaction it wants
// and never scripts store calls itself (issue 18). approve_request and reject_request (admin.h)
// belong here too; they stay there because the CLI shares them.
//
// Not thread-safe: the store's thread only (DbWorker), like the store.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"
#include "jobs/job_book.h"
#include "net/http_types.h"
#include "proto/results.h"
#include "studio/quota.h"
#include "studio/store/studio_store.h"
#include "studio/uploads.h"

namespace sw::studio::tx {

// A job with its attempt history (the client API's view of a job).
struct JobView {
  store::JobRecord record;
  std::vector<store::AttemptRecord> attempts;
};

Result<std::optional<JobView>> find_job_view(store::StudioStore& store, const std::string& id);
// One page of jobs, newest first, starting before the job `before` (InvalidArgument when that
// job does not exist).
Result<std::vector<JobView>> list_job_views(store::StudioStore& store, store::JobFilter filter,
                                            const std::optional<std::string>& before);

// A client's new job. With an idempotency key already used: the first job when the request is
// the same (`created` false), else Conflict naming the fields that differ (issue 17).
struct CreatedJob {
  store::JobRecord record;
  bool created = false;
  // Not created: the owner's quota is used up (issue 20). `record` is the job as it was asked for.
  std::optional<QuotaRefusal> refused = std::nullopt;
};
// `inputs`: the uploads its task names (issue 20), each of which must exist and be no other job's
// (else InvalidArgument naming the field and the id); a created job takes them in the same
// transaction. A repeat with an idempotency key takes nothing again.
// A job whose owner is an API key counts towards the key's usage; with `quota` (the key's) it is
// created only while this period's usage is below every limit, else `refused` says why. (Two
// processes creating at once may both pass the check: a quota can be overrun by the requests in
// flight.)
Result<CreatedJob> create_job(store::StudioStore& store, store::JobRecord job,
                              const std::vector<uploads::UploadRef>& inputs = {},
                              const std::optional<store::KeyQuota>& quota = std::nullopt);
// Deletes an upload's row (the caller removes its file after the commit) and returns it:
// NotFound when there is none (or, with `owner`, it is another's), Conflict while a job that is
// not over took it.
Result<store::UploadRecord> delete_upload(store::StudioStore& store, const std::string& id,
                                          const std::optional<std::string>& owner = std::nullopt);
// The names of the fields that tell two requests with one idempotency key apart, comma-separated;
// empty when they are the same job. Compared as the studio stores them: model; task as canonical
// JSON; priority; maxAttempts; gameId; assetName.
std::string differing_job_fields(const store::JobRecord& first, const store::JobRecord& again);

// queued or claimed → cancelled, then the job as it now reads; nullopt when there is no such
// job. A job that was already over is returned unchanged (its status says so).
// What a cancel found: the job as it is now (nullopt: no such job), and whether this call is the
// one that cancelled it (false for a job already over or already cancelled).
struct CancelOutcome {
  std::optional<JobView> job;
  bool changed = false;
};
Result<CancelOutcome> cancel_job(store::StudioStore& store, const std::string& id,
                                 store::Millis now);

// A worker's registration request (reference §2.1). A retry with the same install and secret
// gets the same request id; a new secret for the same install supersedes the old request
// (rejected, never adopted: whoever holds the old secret keeps no claim on the new one).
Result<std::string> open_registration(store::StudioStore& store,
                                      const store::RegistrationRecord& request);

// A registration request that carries a join token (issue 22), in one transaction: the token is
// checked and one use counted (a conditional update: two workers cannot both take a token's last
// use), the request opened as above and approved at once, by "join-token:<id>". A repeat of a
// request this token already approved (the worker lost the answer) gets the same request again
// and counts no use. `refusal` says why the token cannot be used (unknown, expired, used up,
// revoked); nothing is written then.
struct JoinAnswer {
  std::string request_id;
  std::string worker_id;
  std::string join_token_id;
  std::string refusal;
};
Result<JoinAnswer> join_registration(store::StudioStore& store,
                                     const store::RegistrationRecord& request,
                                     const std::string& token_hash);

// A poll of a registration request (reference §2.2), as the worker is answered.
struct RegistrationAnswer {
  net::HttpResponse response;  // the answer (200 with the poll's JSON, or a refusal)
  // Approved: the worker id and the hash of the token just minted (the cache learns it).
  std::optional<std::pair<std::string, std::string>> token;
  bool pending = false;
};
// Every approved poll mints a fresh token and rotates the stored hash (reference §2.2).
Result<RegistrationAnswer> poll_registration(store::StudioStore& store,
                                             const std::string& request_id,
                                             const std::string& secret_hash);

// A result for a job that is not active here (settled, or active nowhere in memory), judged
// again from its row (jobs::judge_settled) with the completion in one transaction: of two late
// results the first stored wins. One rule for both shapes of result: completeJson's JSON text
// (the same result again is the same JSON value) and a result upload's bytes (the same sha256).
using DeliveredResult = std::variant<proto::RawJson, store::BinaryResult>;
struct SettledCompletion {
  jobs::Verdict verdict = jobs::Verdict::NotYours;
  std::optional<store::JobRecord> job;  // as it reads after the completion (Take) or before
};
Result<SettledCompletion> complete_settled(store::StudioStore& store, const std::string& id,
                                           const std::string& worker_id,
                                           const DeliveredResult& result,
                                           const std::optional<std::string>& prompt,
                                           store::Millis now);

// A model created (Conflict when the id exists) or replaced (false when it does not exist).
Result<bool> save_model(store::StudioStore& store, const store::ModelRecord& model, bool create);

}  // namespace sw::studio::tx
