#include "studio/json_views.h"

#include "studio/join_tokens.h"

#include "common/clock.h"
#include "common/json_text.h"
#include "proto/mime.h"

namespace sw::studio {

std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string iso_time(std::int64_t unix_millis) {
  return format_rfc3339_millis(unix_millis);
}

std::string scoped_idempotency_key(const std::optional<std::string>& owner, std::string key) {
  return owner && *owner != "admin" ? *owner + "/" + key : key;
}

std::optional<std::string> idempotency_key_as_sent(const store::JobRecord& job) {
  if (!job.idempotency_key || !job.owner || *job.owner == "admin") {
    return job.idempotency_key;
  }
  const std::string prefix = *job.owner + "/";
  return job.idempotency_key->starts_with(prefix) ? job.idempotency_key->substr(prefix.size())
                                                  : *job.idempotency_key;
}

nlohmann::json stored_json(const std::string& text) {
  auto parsed = parse_json(text, "stored JSON");
  return parsed ? std::move(*parsed) : nlohmann::json();
}

nlohmann::json job_json(const store::JobRecord& job,
                        const std::vector<store::AttemptRecord>& attempts,
                        const std::optional<std::string>& waiting) {
  nlohmann::json out = {
      {"id", job.id},
      {"model", job.model},
      {"kind", proto::to_string(job.kind)},
      {"status", store::to_string(job.status)},
      {"priority", job.priority},
      {"attempts", job.attempts},
      {"maxAttempts", job.max_attempts},
      {"createdAt", iso_time(job.created_at)},
      {"task", stored_json(job.task_json)},
      {"gameId", job.game_id},
      {"assetName", job.asset_name},
  };
  if (job.worker_id) {
    out["workerId"] = *job.worker_id;
  } else if (job.last_worker_id &&
             (job.status == store::JobStatus::Done || job.status == store::JobStatus::Failed)) {
    out["workerId"] = *job.last_worker_id;  // who did it, or who failed it last
  }
  if (waiting && job.status == store::JobStatus::Queued) {
    out["waiting"] = *waiting;
  }
  auto history = nlohmann::json::array();
  for (const auto& attempt : attempts) {
    nlohmann::json entry = {{"workerId", attempt.worker_id},
                            {"offeredAt", iso_time(attempt.offered_at)},
                            {"outcome", store::to_string(attempt.outcome)}};
    if (attempt.started_at) {
      entry["startedAt"] = iso_time(*attempt.started_at);
    }
    if (attempt.ended_at) {
      entry["endedAt"] = iso_time(*attempt.ended_at);
    }
    if (attempt.reason) {
      entry["reason"] = *attempt.reason;
    }
    history.push_back(std::move(entry));
  }
  out["attemptHistory"] = std::move(history);
  if (job.prompt) {
    out["prompt"] = *job.prompt;  // the full prompt the worker reported with its result
  }
  if (auto key = idempotency_key_as_sent(job)) {
    out["idempotencyKey"] = std::move(*key);
  }
  if (job.claimed_at) {
    out["claimedAt"] = iso_time(*job.claimed_at);
  }
  if (job.finished_at) {
    out["finishedAt"] = iso_time(*job.finished_at);
  }
  if (job.error && job.status != store::JobStatus::Done) {
    out["error"] = *job.error;
  }
  if (job.status == store::JobStatus::Done) {
    if (job.result_json) {
      out["result"] = {{"json", stored_json(*job.result_json)}};
    } else if (job.result_binary) {
      out["result"] = {{"contentType", proto::mime_for_ext(job.result_binary->ext)},
                       {"bytes", job.result_binary->bytes},
                       {"sha256", job.result_binary->sha256},
                       {"ext", job.result_binary->ext},
                       {"url", "/api/v1/jobs/" + job.id + "/result"}};
    }
  }
  return out;
}

std::string job_event_json(const store::JobRecord& job) {
  nlohmann::json out = {{"id", job.id},
                        {"status", store::to_string(job.status)},
                        {"kind", proto::to_string(job.kind)},
                        {"model", job.model},
                        {"attempts", job.attempts}};
  if (job.worker_id) {
    out["workerId"] = *job.worker_id;
  }
  if (job.error && job.status != store::JobStatus::Done) {
    out["error"] = *job.error;
  }
  return dump(out);
}

std::string worker_event_json(const std::string& worker_id, std::string_view state) {
  return dump({{"id", worker_id}, {"state", state}});
}

nlohmann::json model_json(const store::ModelRecord& model) {
  return {{"id", model.id},
          {"kind", proto::to_string(model.kind)},
          {"displayName", model.display_name},
          {"vramGbEstimate", model.vram_gb_estimate},
          {"enabled", model.enabled},
          {"source", stored_json(model.source_json)}};
}

nlohmann::json join_token_json(const store::JoinTokenRecord& token, std::int64_t now) {
  nlohmann::json out = {{"id", token.id},
                        {"label", token.label},
                        {"state", to_string(join_token_state(token, now))},
                        {"createdAt", iso_time(token.created_at)},
                        {"createdBy", token.created_by},
                        {"expiresAt", nullptr},
                        {"maxUses", nullptr},
                        {"uses", token.uses}};
  if (token.expires_at) out["expiresAt"] = iso_time(*token.expires_at);
  if (token.max_uses) out["maxUses"] = *token.max_uses;
  if (token.last_used_at) out["lastUsedAt"] = iso_time(*token.last_used_at);
  if (token.revoked_at) out["revokedAt"] = iso_time(*token.revoked_at);
  return out;
}

}  // namespace sw::studio
