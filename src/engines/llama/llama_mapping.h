#pragma once
// Pure mappings between our llm task and llama-server (tools/server): the runner's argv, the
// /v1/chat/completions request, the reference's chat.completion result (reference-worker.md §4.4)
// and the runner's errors. No I/O, so every rule is unit-tested.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "engines/runner/runner_settings.h"
#include "proto/types.h"

namespace sw::engines::llama {

// llama-server argv for one resident model ("{port}" is filled in by the runner pool): loopback
// only, Jinja chat templates, and `slots` request slots (`--parallel`), each holding the whole
// `context`: llama-server divides --ctx-size among its slots, so it is context × slots.
std::vector<std::string> server_args(const std::filesystem::path& gguf, std::uint32_t context,
                                     std::uint32_t slots = 1);

// The flags of an operator's per-model settings (runner_settings.h), in a fixed order, to append
// to server_args (contextSize is not among them: it replaces `context` above).
std::vector<std::string> settings_args(const RunnerSettings& settings);

// The request body. `model_kwargs` are the catalogue's `cliDefaults.chatTemplateKwargs`; the
// request's own `chatTemplateKwargs` override them key by key. `stream` asks for SSE chunks.
nlohmann::json chat_request(const proto::LlmParams& params,
                            const std::optional<proto::RawJson>& model_kwargs, bool stream);

// A leading `<think>…</think>` block, split off (whitespace after it trimmed).
struct SplitAnswer {
  std::optional<std::string> reasoning;
  std::string content;
};
SplitAnswer split_reasoning(std::string_view content);

// The runner's chat.completion → ours: `model` is our model id, real token counts, finish_reason
// `stop`|`length`, reasoning split out, `elapsed_ms`. Protocol error when the body is not one.
Result<nlohmann::json> completion_result(std::string_view runner_body, std::string_view model,
                                         std::int64_t elapsed_ms);

// A streamed answer (each `chat.completion.chunk` event's JSON, in order) gathered into the
// chat.completion that completion_result() reads: content deltas joined, the last finish_reason,
// the usage chunk's counts. dispatch() streams so that every token is progress for the stall
// deadline (runner_pool.h), then answers the job with the whole completion. Not thread-safe.
class StreamedCompletion {
 public:
  void add(const nlohmann::json& chunk);
  // The runner's in-stream error event (`{"error":…}`), if one came.
  const std::optional<nlohmann::json>& error() const { return error_; }
  nlohmann::json completion() const;

 private:
  std::string content_;
  std::string finish_reason_ = "stop";
  nlohmann::json usage_ = nlohmann::json::object();
  std::optional<nlohmann::json> error_;
};

// The text of one `chat.completion.chunk` event: its first choice's `delta.content` (empty when
// it has none), the same piece StreamedCompletion::add appends.
std::string_view chunk_content(const nlohmann::json& chunk);

// split_reasoning() as the answer streams (issue 20: the studio's `jobProgress` deltas): feed()
// takes each content piece and returns what of the final reasoning and content it settles, so
// that the pieces returned, joined, are exactly split_reasoning(whole answer). Text whose place is
// not settled yet (leading whitespace, a partial `<think>` or `</think>`, whitespace at the end
// of the reasoning) is held back until it is, or until finish(). Not thread-safe.
class StreamingSplit {
 public:
  struct Delta {
    std::string content;
    std::string reasoning;
    bool empty() const { return content.empty() && reasoning.empty(); }
  };
  Delta feed(std::string_view piece);
  // The answer ended: what was held back.
  Delta finish();

 private:
  Delta advance(const SplitAnswer& settled);
  std::string all_;
  std::size_t content_sent_ = 0;
  std::size_t reasoning_sent_ = 0;
};

// A non-2xx answer from the runner → our error. A prompt over the context becomes the reference's
// refusal (InvalidArgument, not retryable: it fails the same everywhere); other 4xx are
// InvalidArgument; 5xx Unavailable.
Error runner_error(long status, std::string_view body);

}  // namespace sw::engines::llama
