#include "studio/join_tokens.h"

#include <algorithm>
#include <charconv>

#include "common/clock.h"
#include "common/secrets.h"
#include "common/sha256.h"

namespace sw::studio {

Status check_join_token_options(const JoinTokenOptions& options) {
  if (options.label.size() > 200) {
    return fail(Error::invalid_argument("label: must be at most 200 bytes of UTF-8"));
  }
  if (std::any_of(options.label.begin(), options.label.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return fail(Error::invalid_argument("label: must not hold control characters"));
  }
  if (options.ttl && (*options.ttl < kMinJoinTokenTtl || *options.ttl > kMaxJoinTokenTtl)) {
    return fail(Error::invalid_argument("ttl: must be {} to {} seconds (or never)",
                                        kMinJoinTokenTtl.count(), kMaxJoinTokenTtl.count()));
  }
  if (options.max_uses && (*options.max_uses < 1 || *options.max_uses > kMaxJoinTokenUses)) {
    return fail(Error::invalid_argument("uses: must be 1 to {}", kMaxJoinTokenUses));
  }
  return {};
}

Result<std::optional<std::chrono::seconds>> parse_join_token_ttl(std::string_view text) {
  if (text == "never") {
    return std::optional<std::chrono::seconds>();
  }
  std::int64_t unit = 1;
  std::string_view digits = text;
  if (!text.empty()) {
    switch (text.back()) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: unit = 0; break;
    }
    if (unit != 0) {
      digits.remove_suffix(1);
    } else {
      unit = 1;
    }
  }
  std::int64_t count = 0;
  const auto* end = digits.data() + digits.size();
  const auto parsed = std::from_chars(digits.data(), end, count);
  if (digits.empty() || parsed.ec != std::errc() || parsed.ptr != end || count <= 0 ||
      count > kMaxJoinTokenTtl.count()) {
    return fail(Error::invalid_argument(
        "ttl \"{}\": expected a duration such as 30m, 24h or 7d, or never", text));
  }
  const std::chrono::seconds ttl{count * unit};
  if (ttl < kMinJoinTokenTtl || ttl > kMaxJoinTokenTtl) {
    return fail(Error::invalid_argument("ttl \"{}\": must be 1m to 366d (or never)", text));
  }
  return std::optional<std::chrono::seconds>(ttl);
}

std::string new_join_token() {
  return "swjoin-" + random_hex(32);
}

Result<CreatedJoinToken> create_join_token(store::StudioStore& store,
                                           const JoinTokenOptions& options,
                                           const std::string& created_by, store::Millis now) {
  SW_TRY(check_join_token_options(options));
  CreatedJoinToken created;
  created.token = new_join_token();
  auto& record = created.record;
  record.id = "jt-" + random_uuid();
  record.token_hash = sha256_hex(created.token);
  record.label = options.label;
  record.created_by = created_by;
  record.created_at = now;
  if (options.ttl) {
    record.expires_at =
        now + std::chrono::duration_cast<std::chrono::milliseconds>(*options.ttl).count();
  }
  record.max_uses = options.max_uses;
  SW_TRY(store.insert_join_token(record));
  return created;
}

std::string_view to_string(JoinTokenState state) {
  switch (state) {
    case JoinTokenState::Active: return "active";
    case JoinTokenState::Expired: return "expired";
    case JoinTokenState::UsedUp: return "used_up";
    case JoinTokenState::Revoked: return "revoked";
  }
  return "revoked";
}

JoinTokenState join_token_state(const store::JoinTokenRecord& token, store::Millis now) {
  if (token.revoked_at) return JoinTokenState::Revoked;
  if (token.expires_at && *token.expires_at <= now) return JoinTokenState::Expired;
  if (token.max_uses && token.uses >= *token.max_uses) return JoinTokenState::UsedUp;
  return JoinTokenState::Active;
}

std::string join_token_refusal(const store::JoinTokenRecord& token, store::Millis now) {
  switch (join_token_state(token, now)) {
    case JoinTokenState::Active: return "";
    case JoinTokenState::Revoked:
      return fmt::format("join token {} was revoked at {}", token.id,
                         format_rfc3339_millis(token.revoked_at.value_or(0)));
    case JoinTokenState::Expired:
      return fmt::format("join token {} expired at {}", token.id,
                         format_rfc3339_millis(token.expires_at.value_or(0)));
    case JoinTokenState::UsedUp:
      return fmt::format("join token {} is used up ({} of {} uses)", token.id, token.uses,
                         token.max_uses.value_or(0));
  }
  return "";
}

std::string join_token_approver(const store::JoinTokenRecord& token) {
  return "join-token:" + token.id;
}

}  // namespace sw::studio
