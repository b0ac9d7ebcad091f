#pragma once
// The studio's JSON request bodies (studio-server.md "Client API"), read and validated without
// studio state: text in, a validated value or an Error naming the field out. The router supplies
// what needs state (model lookups); the fuzz target fuzz_studio_bodies drives these directly.
//
// Every body goes through sw::parse_json (common/json_text.h): size and nesting are checked
// before parsing, so a deep body is a 400 naming the depth, never a stack overflow.
// Errors are Code::InvalidArgument. Thread-safe (pure functions).

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "proto/types.h"
#include "studio/join_tokens.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

// Ids in paths and bodies: 1 to 200 of letters, digits, '-', '_', '.', ':'.
bool valid_id(std::string_view id);

// A JSON object body of at most `max_bytes` bytes; an empty body counts as {} when `empty_ok`.
// Errors: "request body exceeds N bytes…", "request body nests deeper than 64 levels at byte N",
// "request body is not JSON: …", "request body must be a JSON object".
Result<nlohmann::json> parse_object(std::string_view body, bool empty_ok, std::size_t max_bytes);

// Typed access to an optional member (absent or null → nullopt); errors name the field:
// "<name>: must be a string|boolean|number|an integer". T is std::string, bool, double or
// std::int64_t.
template <class T>
Result<std::optional<T>> field(const nlohmann::json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    return std::optional<T>();
  }
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) {
      return fail(Error::invalid_argument("{}: must be a string", name));
    }
    return std::optional<T>(it->template get<std::string>());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) {
      return fail(Error::invalid_argument("{}: must be a boolean", name));
    }
    return std::optional<T>(it->template get<bool>());
  } else if constexpr (std::is_same_v<T, double>) {
    if (!it->is_number()) {
      return fail(Error::invalid_argument("{}: must be a number", name));
    }
    return std::optional<T>(it->template get<double>());
  } else {
    static_assert(std::is_same_v<T, std::int64_t>);
    if (!it->is_number_integer()) {
      return fail(Error::invalid_argument("{}: must be an integer", name));
    }
    return std::optional<T>(it->template get<std::int64_t>());
  }
}

// POST /api/v1/keys and PATCH /api/v1/keys/:id (issue 20): `{name?, scope?, quota?}`. Members
// left out stay as they are (POST: name "", scope client, no quota); `quota: null` removes the
// quota. A quota is `{period?: "day"|"month" (default day), jobs?, tokens?, seconds?}` with at
// least one limit, each a non-negative integer. Unknown members are refused by name.
struct KeyBody {
  std::optional<std::string> name;
  std::optional<store::KeyScope> scope;
  std::optional<std::optional<store::KeyQuota>> quota;  // outer: given; inner: nullopt removes
};
Result<KeyBody> read_key_body(std::string_view text, std::size_t max_bytes);

// POST /api/v1/join-tokens (issue 22): {label?, ttlSeconds?, uses?}, every member optional (an
// empty body is {}). ttlSeconds: a whole number of seconds (60 to 366 days), or null for never;
// left out: a day. uses: 1 to 1,000,000; left out or null: unlimited. Unknown members are refused
// by name; the result passes check_join_token_options.
Result<JoinTokenOptions> read_join_token_body(std::string_view text, std::size_t max_bytes);

// POST /api/v1/models and PUT /api/v1/models/:id. `path_id` is the id in the path (PUT), which
// a body id must match. The record's timestamps are left 0 (the caller stamps them).
// `source.files` and `source.cliDefaults` (and any of its four numbers) may be left out: they read
// as [] and 0 (unset). The source must pass rules::check_model (rules/engine_rules.h).
struct ModelBody {
  store::ModelRecord record;
  proto::ModelSource source;
};
Result<ModelBody> read_model_body(std::string_view text, const std::optional<std::string>& path_id,
                                  std::size_t max_bytes);

// PATCH /api/v1/models/:id: the patch body (an object, RFC 7386 merge patch: a member replaces,
// null removes, objects merge, arrays replace) applied to `current` (the model as GET shows it);
// the merged text, to be read whole by read_model_body.
Result<std::string> merge_model_patch(const nlohmann::json& current, std::string_view patch,
                                      std::size_t max_bytes);

// POST /api/v1/jobs. A video task without `ext` gets rules::kDefaultVideoExt. `model_kind` looks
// the named model up: the kind it serves, or the error to report (unknown, disabled); it is called
// once the body names a model, before the task is read.
struct JobBody {
  std::string model;
  proto::Task task;
  std::optional<std::int64_t> priority = {};      // -1,000,000 … 1,000,000
  std::optional<std::int64_t> max_attempts = {};  // 1 … 100
  std::optional<std::string> idempotency_key = {};
  std::optional<std::string> game_id = {};
  std::optional<std::string> asset_name = {};
};
using ModelKindLookup = std::function<Result<proto::TaskKind>(const std::string& model_id)>;
Result<JobBody> read_job_body(std::string_view text, const ModelKindLookup& model_kind,
                              std::size_t max_bytes);

}  // namespace sw::studio
