#pragma once
// The JSON bodies of the worker's local generation routes (reference-worker.md §6.2: /image,
// /v1/chat/completions, /tts, /stt, /video), read and validated without the runtime: text in, the
// protocol task plus the route's own options out. LocalApi routes with it; the fuzz target
// fuzz_local_api_bodies drives it directly.
//
// The body goes through sw::parse_json (common/json_text.h), so size and nesting are checked
// before parsing: a deep body is refused, never copied or serialised recursively.
// Thread-safe (pure function).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "proto/types.h"

namespace sw::worker {

struct GenerationBody {
  proto::Task task;                         // validated by the protocol codec
  std::string model;                        // "" when the body names none
  bool stream = false;                      // chat only: answer as server-sent events
  std::optional<std::int64_t> deadline_ms;  // chat only
};

// `kind` is the route's. The body is a JSON object of at most `max_bytes` bytes whose members are
// the task's (camelCase as on the wire, plus the OpenAI spellings max_tokens, top_p,
// chat_template_kwargs for chat). Errors (Code::InvalidArgument) are the 400 answer's words:
//   "bad json: request body nests deeper than 64 levels at byte N" (or exceeds/is not JSON),
//   "bad json: the body must be a JSON object", "bad input: <field>: <problem>".
Result<GenerationBody> read_generation_body(std::string_view body, proto::TaskKind kind,
                                            std::size_t max_bytes);

// The body of POST /daemon/register (ours, issue 17: `studio-worker register` while the daemon
// runs): {"apiBaseUrl"?: string, "reset"?: bool}, nothing else. Through sw::parse_json like the
// generation bodies. Errors (Code::InvalidArgument): "bad json: …", "bad input: <field>: …".
struct RegisterBody {
  std::optional<std::string> api_base_url;
  bool reset = false;
  std::optional<std::string> join_token;  // issue 22; after the reset when both are given
};
Result<RegisterBody> read_register_body(std::string_view body, std::size_t max_bytes);

// POST /daemon/pause (optional body, ours, issue 19): {"unload"?: bool}; other keys are ignored
// (the reference's pause has no body). InvalidArgument for a body that is not a JSON object or an
// `unload` that is not a boolean.
struct PauseBody {
  bool unload = false;
};
Result<PauseBody> read_pause_body(std::string_view body, std::size_t max_bytes);

}  // namespace sw::worker
