#pragma once
// Wire types read from a JSON value a route has already parsed, for the studio's HTTP bodies
// that wrap one in an envelope of their own (POST /api/v1/jobs's `task`, POST /api/v1/models's
// `source`). The body is parsed once, through its route's guarded entry point (size and depth
// checked there), and the member is read by the same readers as the wire, not printed and
// parsed again. The one door through which nlohmann::json meets proto/ from outside; frames and
// whole documents go through codec.h.
//
// Errors as codec.h's (Code::Protocol), their path starting at `path`: read_task(v, "task")
// reports e.g. `task.kind: unknown task kind "paint"`. Never throws; any thread.

#include <nlohmann/json_fwd.hpp>

#include <string_view>

#include "common/error.h"
#include "proto/types.h"

namespace sw::proto {

Result<Task> read_task(const nlohmann::json& value, std::string_view path);
// As codec.h's decode_authored_model_source: files and cliDefaults may be left out.
Result<ModelSource> read_authored_model_source(const nlohmann::json& value, std::string_view path);

}  // namespace sw::proto
