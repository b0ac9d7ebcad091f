#pragma once
// JSON shapes of the client API (studio-server.md "Client API"), built with nlohmann. Internal to
// the studio module. Thread-safe (pure functions).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "studio/store/studio_store.h"

namespace sw::studio {

// {id, model, kind, status, priority, attempts, maxAttempts, workerId?, createdAt, claimedAt?,
//  finishedAt?, error?, result?, task, gameId, assetName, idempotencyKey?, waiting?,
//  attemptHistory: [{workerId, offeredAt, startedAt?, endedAt?, outcome, reason?}]}
// `attempts` stays the count the spec names (studio-server.md), so the history has its own key;
// times are RFC 3339 like the view's other times. `workerId` is the holder, or for a done or
// failed job the last worker that had it. `waiting` (a queued job no worker takes now) comes
// from the scheduler.
nlohmann::json job_json(const store::JobRecord& job,
                        const std::vector<store::AttemptRecord>& attempts = {},
                        const std::optional<std::string>& waiting = std::nullopt);
std::string job_event_json(const store::JobRecord& job);
std::string worker_event_json(const std::string& worker_id, std::string_view state);
nlohmann::json model_json(const store::ModelRecord& model);
// A join token without its secret (issue 22): {id, label, state (active, expired, used_up,
// revoked, as of `now`), createdAt, createdBy, expiresAt (null: never), maxUses (null:
// unlimited), uses, lastUsedAt?, revokedAt?}.
nlohmann::json join_token_json(const store::JoinTokenRecord& token, std::int64_t now);
// Parses a stored JSON column; null when it is not JSON (never throws).
nlohmann::json stored_json(const std::string& text);
std::string iso_time(std::int64_t unix_millis);
// Idempotency keys are per owner (issue 20): an API key's job stores "<key id>/<idempotency key>",
// so that two keys never meet each other's jobs through one; the admin token's (and older jobs)
// store the key as sent. `scoped_idempotency_key` makes the stored form, `idempotency_key_as_sent`
// gives back what the client sent.
std::string scoped_idempotency_key(const std::optional<std::string>& owner, std::string key);
std::optional<std::string> idempotency_key_as_sent(const store::JobRecord& job);
// Compact JSON text with invalid UTF-8 replaced, never throwing.
std::string dump(const nlohmann::json& value);

}  // namespace sw::studio
