#pragma once
// Join tokens (issue 22): an operator makes one (`studio-server join-token create`, or
// POST /api/v1/join-tokens) and hands it to the machines that should join; a worker whose
// register-request carries a valid one (`joinToken`, ours: only a worker given one with
// `studio-worker register --join-token` sends it) is approved at once, recorded as approved by
// "join-token:<id>". Manual approval stays the default: a request without a token waits for the
// operator as before, and a studio that does not know the member ignores it.
//
// The token is shown once and stored only as its SHA-256 (like API keys and the admin token). It
// stops working at its expiry, after its number of uses, or when revoked; the row stays so that
// the workers it approved still name it. Functions here run inside the caller's store
// transaction; not thread-safe (the store's thread, or the CLI).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

// What a new token allows. The defaults are what `join-token create` without flags makes: valid
// for a day, any number of uses.
struct JoinTokenOptions {
  std::string label;  // at most 200 bytes, no control characters
  // Lifetime from creation; nullopt: never expires. kMinJoinTokenTtl to kMaxJoinTokenTtl.
  std::optional<std::chrono::seconds> ttl = std::chrono::hours(24);
  std::optional<std::int64_t> max_uses;  // 1 to kMaxJoinTokenUses; nullopt: unlimited
};
inline constexpr std::chrono::seconds kMinJoinTokenTtl{60};
inline constexpr std::chrono::seconds kMaxJoinTokenTtl{std::chrono::hours(24 * 366)};
inline constexpr std::int64_t kMaxJoinTokenUses = 1'000'000;

// InvalidArgument naming the field that is out of range.
Status check_join_token_options(const JoinTokenOptions& options);

// "30m", "24h", "7d", "3600s", "3600" (seconds) or "never" (nullopt). InvalidArgument otherwise,
// or outside kMinJoinTokenTtl..kMaxJoinTokenTtl.
Result<std::optional<std::chrono::seconds>> parse_join_token_ttl(std::string_view text);

// A fresh token: "swjoin-" and 64 hex digits (256 random bits).
std::string new_join_token();

struct CreatedJoinToken {
  store::JoinTokenRecord record;
  std::string token;  // in clear: shown once
};
// Checks the options, mints a token and stores it. `created_by` as WorkerRecord::approved_by.
Result<CreatedJoinToken> create_join_token(store::StudioStore& store,
                                           const JoinTokenOptions& options,
                                           const std::string& created_by, store::Millis now);

enum class JoinTokenState { Active, Expired, UsedUp, Revoked };
std::string_view to_string(JoinTokenState state);
JoinTokenState join_token_state(const store::JoinTokenRecord& token, store::Millis now);

// Why `token` cannot approve a worker at `now` ("join token jt-… expired at 2026-…"), for the
// worker's operator; empty while it is active.
std::string join_token_refusal(const store::JoinTokenRecord& token, store::Millis now);

// The value recorded as who approved a worker through `token`.
std::string join_token_approver(const store::JoinTokenRecord& token);

}  // namespace sw::studio
