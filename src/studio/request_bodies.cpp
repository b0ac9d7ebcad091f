#include "studio/request_bodies.h"

#include <algorithm>
#include <cctype>

#include "common/json_text.h"
#include "proto/codec.h"
#include "proto/json_readers.h"
#include "rules/engine_rules.h"

namespace sw::studio {

namespace {

// Prints a merged document for storing (depth already bounded by parse_object).
std::string compact(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 200) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' ||
           c == ':';
  });
}

Result<nlohmann::json> parse_object(std::string_view body, bool empty_ok, std::size_t max_bytes) {
  if (body.empty() && empty_ok) {
    return nlohmann::json::object();
  }
  auto parsed = parse_json(body, "request body", JsonLimits{max_bytes, kJsonMaxDepth});
  if (!parsed) {
    return fail(std::move(parsed).error());
  }
  if (!parsed->is_object()) {
    return fail(Error::invalid_argument("request body must be a JSON object"));
  }
  return parsed;
}

Result<ModelBody> read_model_body(std::string_view text, const std::optional<std::string>& path_id,
                                  std::size_t max_bytes) {
  auto body = parse_object(text, false, max_bytes);
  if (!body) {
    return fail(std::move(body).error());
  }
  auto id = field<std::string>(*body, "id");
  auto kind = field<std::string>(*body, "kind");
  auto display = field<std::string>(*body, "displayName");
  auto vram = field<double>(*body, "vramGbEstimate");
  auto enabled = field<bool>(*body, "enabled");
  for (const auto* error : {id ? nullptr : &id.error(), kind ? nullptr : &kind.error(),
                            display ? nullptr : &display.error(), vram ? nullptr : &vram.error(),
                            enabled ? nullptr : &enabled.error()}) {
    if (error != nullptr) {
      return fail(*error);
    }
  }
  std::string model_id = path_id.value_or(id->value_or(""));
  if (path_id && *id && **id != *path_id) {
    return fail(Error::invalid_argument("id: does not match the path"));
  }
  if (!valid_id(model_id)) {
    return fail(Error::invalid_argument(
        "id: must be 1 to 200 characters of letters, digits, '-', '_', '.' or ':'"));
  }
  // A URL path cannot name them: clients (browsers included) resolve /models/.. as a parent.
  if (model_id == "." || model_id == "..") {
    return fail(Error::invalid_argument("id: must not be \".\" or \"..\""));
  }
  if (!*kind) {
    return fail(Error::invalid_argument("kind: missing required field"));
  }
  const auto task_kind = proto::parse_task_kind(**kind);
  if (!task_kind) {
    return fail(Error::invalid_argument("kind: unknown task kind \"{}\"", **kind));
  }
  if (*vram && (**vram < 0 || **vram > 4096)) {
    return fail(Error::invalid_argument("vramGbEstimate: must be between 0 and 4096"));
  }
  const auto source_it = body->find("source");
  if (source_it == body->end() || !source_it->is_object()) {
    return fail(Error::invalid_argument("source: missing required object"));
  }
  // What an engine does not use need not be written: no files (espeak-ng, synthetic) and no
  // cliDefaults, or only some of its four numbers (0 = unset for every engine). The stored source
  // always carries them, as the reference's workers require (reference-worker.md §1.8).
  auto source = proto::read_authored_model_source(*source_it, "source");
  if (!source) {
    return fail(Error::invalid_argument("{}", source.error().message));
  }
  // A model no worker could ever run would wait forever, and one whose files every worker refuses
  // would fail every job: say so when it is registered (rules/engine_rules.h).
  SW_TRY(rules::check_model(*task_kind, *source));
  ModelBody model;
  model.record.id = model_id;
  model.record.kind = *task_kind;
  model.record.display_name = display->value_or(model_id);
  model.record.vram_gb_estimate = vram->value_or(0);
  model.record.enabled = enabled->value_or(true);
  model.record.source_json = proto::encode(*source);
  model.source = std::move(*source);
  return model;
}

Result<std::string> merge_model_patch(const nlohmann::json& current, std::string_view patch,
                                      std::size_t max_bytes) {
  auto body = parse_object(patch, false, max_bytes);
  if (!body) {
    return fail(std::move(body).error());
  }
  nlohmann::json merged = current;
  merged.merge_patch(*body);
  return compact(merged);
}

Result<JobBody> read_job_body(std::string_view text, const ModelKindLookup& model_kind,
                              std::size_t max_bytes) {
  auto body = parse_object(text, false, max_bytes);
  if (!body) {
    return fail(std::move(body).error());
  }
  auto model_id = field<std::string>(*body, "model");
  if (!model_id) {
    return fail(std::move(model_id).error());
  }
  if (!*model_id || (*model_id)->empty()) {
    return fail(Error::invalid_argument("model: missing required field"));
  }
  auto serves = model_kind(**model_id);
  if (!serves) {
    return fail(std::move(serves).error());
  }
  const auto task_it = body->find("task");
  if (task_it == body->end() || !task_it->is_object()) {
    return fail(Error::invalid_argument("task: missing required object"));
  }
  auto task = proto::read_task(*task_it, "task");
  if (!task) {
    return fail(Error::invalid_argument("{}", task.error().message));
  }
  // A video job that names no container gets the one the engines produce (the wire default,
  // mp4, is one no engine here can write); a named one is checked by the engine rules.
  if (auto* video = std::get_if<proto::VideoParams>(&task->params);
      video != nullptr && (!task_it->contains("ext") || (*task_it)["ext"].is_null())) {
    video->ext = std::string(rules::kDefaultVideoExt);
  }
  if (task->kind() != *serves) {
    return fail(Error::invalid_argument("task.kind: model \"{}\" serves {}, not {}", **model_id,
                                        proto::to_string(*serves), proto::to_string(task->kind())));
  }
  auto priority = field<std::int64_t>(*body, "priority");
  auto max_attempts = field<std::int64_t>(*body, "maxAttempts");
  auto key = field<std::string>(*body, "idempotencyKey");
  auto game = field<std::string>(*body, "gameId");
  auto asset = field<std::string>(*body, "assetName");
  for (const auto* error :
       {priority ? nullptr : &priority.error(), max_attempts ? nullptr : &max_attempts.error(),
        key ? nullptr : &key.error(), game ? nullptr : &game.error(),
        asset ? nullptr : &asset.error()}) {
    if (error != nullptr) {
      return fail(*error);
    }
  }
  if (*priority && (**priority < -1'000'000 || **priority > 1'000'000)) {
    return fail(Error::invalid_argument("priority: must be between -1000000 and 1000000"));
  }
  if (*max_attempts && (**max_attempts < 1 || **max_attempts > 100)) {
    return fail(Error::invalid_argument("maxAttempts: must be between 1 and 100"));
  }
  if (*key && ((*key)->empty() || (*key)->size() > 200)) {
    return fail(Error::invalid_argument("idempotencyKey: must be 1 to 200 characters"));
  }
  for (const auto& [name, value] : {std::pair("gameId", &*game), std::pair("assetName", &*asset)}) {
    if (*value && (*value)->size() > 200) {
      return fail(Error::invalid_argument("{}: must be at most 200 characters", name));
    }
  }
  return JobBody{**model_id,      std::move(*task), *priority,        *max_attempts,
                 std::move(*key), std::move(*game), std::move(*asset)};
}

namespace {

Result<store::KeyQuota> read_quota(const nlohmann::json& object) {
  if (!object.is_object()) {
    return fail(Error::invalid_argument("quota: must be an object or null"));
  }
  for (const auto& [name, value] : object.items()) {
    if (name != "period" && name != "jobs" && name != "tokens" && name != "seconds") {
      return fail(Error::invalid_argument(
          "quota.{}: unknown member (known: period, jobs, tokens, seconds)", name));
    }
  }
  store::KeyQuota quota;
  auto period = field<std::string>(object, "period");
  if (!period) {
    return fail(Error::invalid_argument("quota.{}", period.error().message));
  }
  if (*period) {
    auto parsed = store::parse_quota_period(**period);
    if (!parsed) {
      return fail(Error::invalid_argument("quota.period: must be \"day\" or \"month\""));
    }
    quota.period = *parsed;
  }
  for (auto [name, limit] :
       {std::pair{"jobs", &store::KeyQuota::jobs}, std::pair{"tokens", &store::KeyQuota::tokens},
        std::pair{"seconds", &store::KeyQuota::seconds}}) {
    auto value = field<std::int64_t>(object, name);
    if (!value) {
      return fail(Error::invalid_argument("quota.{}", value.error().message));
    }
    if (*value && **value < 0) {
      return fail(Error::invalid_argument("quota.{}: must not be negative", name));
    }
    quota.*limit = *value;
  }
  if (!quota.jobs && !quota.tokens && !quota.seconds) {
    return fail(Error::invalid_argument(
        "quota: set at least one of jobs, tokens, seconds (or send null for no quota)"));
  }
  return quota;
}

}  // namespace

Result<KeyBody> read_key_body(std::string_view text, std::size_t max_bytes) {
  auto body = parse_object(text, true, max_bytes);
  if (!body) {
    return fail(std::move(body).error());
  }
  for (const auto& [name, value] : body->items()) {
    if (name != "name" && name != "scope" && name != "quota") {
      return fail(Error::invalid_argument("{}: unknown member (known: name, scope, quota)", name));
    }
  }
  KeyBody key;
  auto name = field<std::string>(*body, "name");
  if (!name) {
    return fail(std::move(name).error());
  }
  if (*name && (*name)->size() > 200) {
    return fail(Error::invalid_argument("name: must be at most 200 bytes of UTF-8"));
  }
  if (*name && std::any_of((*name)->begin(), (*name)->end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return fail(Error::invalid_argument("name: must not hold control characters"));
  }
  key.name = std::move(*name);
  auto scope = field<std::string>(*body, "scope");
  if (!scope) {
    return fail(std::move(scope).error());
  }
  if (*scope) {
    key.scope = store::parse_key_scope(**scope);
    if (!key.scope) {
      return fail(Error::invalid_argument("scope: must be \"inference\", \"client\" or \"admin\""));
    }
  }
  if (const auto it = body->find("quota"); it != body->end()) {
    if (it->is_null()) {
      key.quota = std::optional<store::KeyQuota>();
    } else {
      auto quota = read_quota(*it);
      if (!quota) {
        return fail(std::move(quota).error());
      }
      key.quota = std::optional<store::KeyQuota>(*quota);
    }
  }
  return key;
}

Result<JoinTokenOptions> read_join_token_body(std::string_view text, std::size_t max_bytes) {
  auto body = parse_object(text, true, max_bytes);
  if (!body) {
    return fail(std::move(body).error());
  }
  for (const auto& [name, value] : body->items()) {
    if (name != "label" && name != "ttlSeconds" && name != "uses") {
      return fail(
          Error::invalid_argument("{}: unknown member (known: label, ttlSeconds, uses)", name));
    }
  }
  JoinTokenOptions options;
  auto label = field<std::string>(*body, "label");
  if (!label) {
    return fail(std::move(label).error());
  }
  options.label = label->value_or("");
  if (const auto it = body->find("ttlSeconds"); it != body->end()) {
    if (it->is_null()) {
      options.ttl.reset();
    } else {
      auto ttl = field<std::int64_t>(*body, "ttlSeconds");
      if (!ttl) {
        return fail(std::move(ttl).error());
      }
      options.ttl = std::chrono::seconds(**ttl);
    }
  }
  auto uses = field<std::int64_t>(*body, "uses");
  if (!uses) {
    return fail(std::move(uses).error());
  }
  options.max_uses = *uses;
  if (options.ttl && (*options.ttl < kMinJoinTokenTtl || *options.ttl > kMaxJoinTokenTtl)) {
    return fail(Error::invalid_argument("ttlSeconds: must be {} to {}, or null for never",
                                        kMinJoinTokenTtl.count(), kMaxJoinTokenTtl.count()));
  }
  SW_TRY(check_join_token_options(options));
  return options;
}

}  // namespace sw::studio
