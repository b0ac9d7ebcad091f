#pragma once
// The one way JSON text from outside this process becomes a value: request bodies of both
// servers, the studio's answers to the worker, runner (llama-server, whisper-server, sd-server)
// answers, catalogs and manifests read from disk, and the protocol codec's frames.
//
// nlohmann's parser is iterative, but copying, comparing and dumping a value recurse once per
// nesting level: 100,000 nested arrays (a 200 KB body) overflow the stack (issue 16). So size and
// depth are checked on the raw text first, by a linear scan that keeps one counter (no recursion
// a deep input can blow), and only then is the text parsed. The depth limit is the protocol
// codec's (64 levels), which every value that is later encoded must fit anyway.
//
// Thread-safe (no shared state).

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <string_view>

#include "common/error.h"

namespace sw {

// The deepest nesting any JSON we accept may have: `[[…]]` with 64 brackets is accepted, 65 are
// refused. Shared with the protocol codec (proto/codec.cpp), so a value that passes here can be
// re-encoded and decoded again.
inline constexpr std::size_t kJsonMaxDepth = 64;

struct JsonLimits {
  std::size_t max_bytes = 16u << 20;  // the text's size in bytes
  std::size_t max_depth = kJsonMaxDepth;
};

// Checks size and nesting depth without parsing. Depth counts `[` and `{` outside strings (a
// backslash inside a string escapes the next byte, as in JSON). `what` names the text in errors:
//   "<what> exceeds <max_bytes> bytes (it has <size>)"
//   "<what> nests deeper than <max_depth> levels at byte <offset of the first bracket too deep>"
// Both are Code::InvalidArgument. Text that is not JSON may pass; parse_json finds that.
Status check_json_text(std::string_view text, std::string_view what, const JsonLimits& limits = {});

// check_json_text, then nlohmann's parser (strict RFC 8259: no comments, no trailing text).
// Errors as above, plus "<what> is not JSON: <the parser's words, with line and column>"
// (Code::InvalidArgument). Never throws.
Result<nlohmann::json> parse_json(std::string_view text, std::string_view what,
                                  const JsonLimits& limits = {});

}  // namespace sw
