#include "studio/api/key_routes.h"

#include <charconv>

#include "common/secrets.h"
#include "common/sha256.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/json_views.h"
#include "studio/quota.h"
#include "studio/request_bodies.h"
#include "studio/studio.h"

namespace sw::studio::api {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

namespace {

constexpr std::int64_t kDayMs = 86'400'000;
constexpr int kDefaultUsageDays = 31;
constexpr int kMostUsageDays = 400;

json quota_json(const std::optional<store::KeyQuota>& quota) {
  if (!quota) {
    return nullptr;
  }
  json out = {{"period", store::to_string(quota->period)}};
  if (quota->jobs) out["jobs"] = *quota->jobs;
  if (quota->tokens) out["tokens"] = *quota->tokens;
  if (quota->seconds) out["seconds"] = *quota->seconds;
  return out;
}

json key_json(const store::ApiKeyRecord& key) {
  return {{"id", key.id},
          {"name", key.name},
          {"scope", store::to_string(key.scope)},
          {"quota", quota_json(key.quota)},
          {"createdAt", iso_time(key.created_at)}};
}

json usage_json(const store::KeyUsage& usage) {
  return {{"jobs", usage.jobs},
          {"tokensIn", usage.tokens_in},
          {"tokensOut", usage.tokens_out},
          {"seconds", static_cast<double>(usage.run_ms) / 1000.0}};
}

// "2026-12-01" for a day count.
std::string day_text(std::int64_t day) {
  return iso_time(day * kDayMs).substr(0, 10);
}

// The answer of both usage routes: the days asked for, their total, and the quota's period so
// far (the days read reach back to its start).
json usage_answer(const store::ApiKeyRecord& key, const std::vector<store::KeyUsageDay>& days,
                  std::int64_t first_shown_day, std::int64_t now) {
  json list = json::array();
  store::KeyUsage total;
  for (const auto& day : days) {
    if (day.day < first_shown_day) {
      continue;
    }
    total += day.usage;
    auto row = usage_json(day.usage);
    row["date"] = day_text(day.day);
    list.push_back(std::move(row));
  }
  json out = {{"key", key_json(key)},
              {"from", day_text(first_shown_day)},
              {"total", usage_json(total)},
              {"days", std::move(list)}};
  if (key.quota) {
    const auto first = quota_period_first_day(key.quota->period, now);
    std::vector<store::KeyUsageDay> period;
    for (const auto& day : days) {
      if (day.day >= first) period.push_back(day);
    }
    const auto used = sum_usage(period);
    const auto refusal = judge_quota(*key.quota, used, now);
    out["quota"] = {{"period", store::to_string(key.quota->period)},
                    {"from", day_text(first)},
                    {"resetsAt", iso_time(quota_period_end(key.quota->period, now))},
                    {"used", usage_json(used)},
                    {"exhausted", refusal.has_value()}};
  }
  return out;
}

// Who acts, for the log: the acting key's id, or "admin" for the admin token.
std::string actor_of(const Studio& studio, const HttpRequest& request) {
  const auto token = request.bearer_token();
  return (token ? studio.registry().bearer_owner(*token) : std::nullopt).value_or("unknown");
}

}  // namespace

void KeyRoutes::handle(RouteId id, HttpRequest request, const std::vector<std::string>& p,
                       const net::Responder& responder) {
  switch (id) {
    case RouteId::KeysList: return list(responder);
    case RouteId::KeysCreate: return create(request, responder);
    case RouteId::KeyPatch: return patch(request, p[0], responder);
    case RouteId::KeyDelete: return remove(request, p[0], responder);
    case RouteId::KeyUsage: return usage(request, p[0], responder);
    case RouteId::OwnUsage: {
      const auto token = request.bearer_token();
      const auto owner = token ? s_.registry().bearer_owner(*token) : std::nullopt;
      if (!owner || *owner == "admin") {
        responder.send(invalid("invalid_request",
                               "the admin token has no usage of its own; see GET "
                               "/api/v1/keys/:id/usage for a key's"));
        return;
      }
      return usage(request, *owner, responder);
    }
    case RouteId::WhoAmI: return who_am_i(request, responder);
    default: break;
  }
  responder.send(refuse(Refusal::NotFound, "no route for " + request.path));
}

void KeyRoutes::who_am_i(const HttpRequest& request, const net::Responder& responder) {
  const auto token = request.bearer_token();
  const auto owner = token ? s_.registry().bearer_owner(*token) : std::nullopt;
  if (!owner) {  // the router admitted it a moment ago; a key deleted since
    responder.send(refuse(Refusal::Unauthorized, "an API key is required"));
    return;
  }
  if (*owner == "admin") {
    responder.send(ok_json({{"scope", "admin"}, {"keyId", nullptr}, {"name", "admin token"}}));
    return;
  }
  const auto* key = s_.registry().api_key(*owner);
  if (key == nullptr) {
    responder.send(refuse(Refusal::Unauthorized, "an API key is required"));
    return;
  }
  responder.send(
      ok_json({{"scope", store::to_string(key->scope)}, {"keyId", key->id}, {"name", key->name}}));
}

void KeyRoutes::list(const net::Responder& responder) {
  s_.database().call<std::vector<store::ApiKeyRecord>>(
      [](store::StudioStore& st) { return st.list_api_keys(); },
      [responder](Result<std::vector<store::ApiKeyRecord>> keys) {
        if (!keys) {
          responder.send(error_response(keys.error()));
          return;
        }
        json list = json::array();
        for (const auto& k : *keys) {
          list.push_back(key_json(k));
        }
        responder.send(ok_json({{"keys", std::move(list)}}));
      });
}

void KeyRoutes::create(const HttpRequest& request, const net::Responder& responder) {
  auto body = read_key_body(request.body, s_.config().json_body_limit);
  if (!body) {
    responder.send(invalid("invalid_request", body.error().message));
    return;
  }
  const std::string key = "sk-" + random_hex(24);
  store::ApiKeyRecord record{"key-" + random_uuid(), body->name.value_or(""), sha256_hex(key),
                             s_.unix_millis()};
  record.scope = body->scope.value_or(store::KeyScope::Client);
  record.quota = body->quota.value_or(std::nullopt);
  s_.database().call<bool>(
      [record](store::StudioStore& st) -> Result<bool> {
        SW_TRY(st.insert_api_key(record));
        return true;
      },
      [this, responder, record, key, by = actor_of(s_, request)](Result<bool> stored) {
        if (!stored) {
          responder.send(error_response(stored.error()));
          return;
        }
        s_.registry().add_api_key(record);
        logger().info("api_key.created", {{"key_id", record.id},
                                          {"scope", std::string(store::to_string(record.scope))},
                                          {"by", by}});
        auto answer = key_json(record);
        answer["key"] = key;  // the only time it is shown
        responder.send(ok_json(answer, 201));
      });
}

void KeyRoutes::patch(const HttpRequest& request, const std::string& id,
                      const net::Responder& responder) {
  // The quota merges into the key's (RFC 7386, as PATCH on a model: a member replaces, null
  // removes, `"quota": null` removes the quota); name and scope replace. The merged key is checked
  // whole, as POST checks a new one.
  auto object = parse_object(request.body, true, s_.config().json_body_limit);
  if (!object) {
    responder.send(invalid("invalid_request", object.error().message));
    return;
  }
  std::optional<json> quota_patch;
  if (const auto it = object->find("quota"); it != object->end()) {
    quota_patch = *it;
    object->erase(it);
  }
  auto body = read_key_body(object->dump(), s_.config().json_body_limit);
  if (!body) {
    responder.send(invalid("invalid_request", body.error().message));
    return;
  }
  const auto limit = s_.config().json_body_limit;
  s_.database().call<std::optional<store::ApiKeyRecord>>(
      [id, change = std::move(*body), quota_patch,
       limit](store::StudioStore& st) -> Result<std::optional<store::ApiKeyRecord>> {
        auto keys = st.list_api_keys();
        if (!keys) {
          return fail(std::move(keys).error());
        }
        auto it = std::find_if(keys->begin(), keys->end(),
                               [&](const store::ApiKeyRecord& k) { return k.id == id; });
        if (it == keys->end()) {
          return std::optional<store::ApiKeyRecord>();
        }
        auto key = *it;
        if (change.name) key.name = *change.name;
        if (change.scope) key.scope = *change.scope;
        if (quota_patch) {
          json merged = nullptr;
          if (!quota_patch->is_null()) {
            merged = key.quota ? quota_json(key.quota) : json::object();
            merged.merge_patch(*quota_patch);
          }
          auto quota = read_key_body(json{{"quota", merged}}.dump(), limit);
          if (!quota) {
            return fail(std::move(quota).error());
          }
          key.quota = quota->quota.value_or(std::nullopt);
        }
        auto updated = st.update_api_key(key);
        if (!updated) {
          return fail(std::move(updated).error());
        }
        return *updated ? std::optional(key) : std::nullopt;
      },
      [this, responder, id,
       by = actor_of(s_, request)](Result<std::optional<store::ApiKeyRecord>> key) {
        if (!key) {
          responder.send(key.error().code == Code::InvalidArgument
                             ? invalid("invalid_request", key.error().message)
                             : error_response(key.error()));
          return;
        }
        if (!*key) {
          responder.send(refuse(Refusal::NotFound, "no key " + id));
          return;
        }
        s_.registry().add_api_key(**key);
        logger().info(
            "api_key.changed",
            {{"key_id", id}, {"scope", std::string(store::to_string((*key)->scope))}, {"by", by}});
        responder.send(ok_json(key_json(**key)));
      });
}

void KeyRoutes::remove(const HttpRequest& request, const std::string& id,
                       const net::Responder& responder) {
  s_.database().call<bool>([id](store::StudioStore& st) { return st.delete_api_key(id); },
                           [this, responder, id, by = actor_of(s_, request)](Result<bool> deleted) {
                             if (!deleted) {
                               responder.send(error_response(deleted.error()));
                               return;
                             }
                             if (!*deleted) {
                               responder.send(refuse(Refusal::NotFound, "no key " + id));
                               return;
                             }
                             s_.registry().remove_api_key(id);
                             logger().info("api_key.deleted", {{"key_id", id}, {"by", by}});
                             responder.send(ok_json({{"deleted", id}}));
                           });
}

void KeyRoutes::usage(const HttpRequest& request, const std::string& id,
                      const net::Responder& responder) {
  int days = kDefaultUsageDays;
  if (auto text = request.query_param("days"); text && !text->empty()) {
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), days);
    if (ec != std::errc() || end != text->data() + text->size() || days < 1 ||
        days > kMostUsageDays) {
      responder.send(invalid("invalid_request",
                             fmt::format("days: must be an integer from 1 to {}", kMostUsageDays)));
      return;
    }
  }
  // A deleted key's usage stays readable (its jobs may have been billed): it answers as long as
  // usage rows remain, with `deleted: true`.
  const auto* known = s_.registry().api_key(id);
  if (known == nullptr && !valid_id(id)) {
    responder.send(refuse(Refusal::NotFound, "no key " + id));
    return;
  }
  store::ApiKeyRecord key;
  key.id = id;
  if (known != nullptr) {
    key = *known;
  }
  const auto now = s_.unix_millis();
  const auto first_shown = store::utc_day(now) - days + 1;
  auto from = first_shown;
  if (key.quota) {
    from = std::min(from, quota_period_first_day(key.quota->period, now));
  }
  s_.database().call<std::vector<store::KeyUsageDay>>(
      [id, from](store::StudioStore& st) { return st.key_usage(id, from); },
      [responder, key, deleted = known == nullptr, first_shown,
       now](Result<std::vector<store::KeyUsageDay>> rows) {
        if (!rows) {
          responder.send(error_response(rows.error()));
          return;
        }
        if (deleted && rows->empty()) {
          responder.send(refuse(Refusal::NotFound, "no key " + key.id));
          return;
        }
        auto answer = usage_answer(key, *rows, first_shown, now);
        if (deleted) {
          answer["key"] = {{"id", key.id}, {"deleted", true}};
        }
        responder.send(ok_json(answer));
      });
}

}  // namespace sw::studio::api
