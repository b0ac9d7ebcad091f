#pragma once
// OpenAI's API shapes ↔ studio tasks and results (issue 20), as pure functions: request bodies
// of /v1/chat/completions, /v1/images/generations, /v1/audio/speech and the form fields of
// /v1/audio/transcriptions become proto tasks; a job's result becomes OpenAI's response object.
//
// Every request field OpenAI defines is honoured or refused by name ("unsupported parameter:
// tools"); none is dropped without a word. Shapes follow OpenAI's API reference
// (platform.openai.com/docs/api-reference, as the `openai` npm client's types read them):
// `chat.completion`, `chat.completion.chunk`, `{"created", "data": [{"b64_json"|"url"}]}`,
// `{"text"}` / verbose_json, and errors as `{"error": {"message", "type", "param", "code"}}`.
//
// Thread-safe (no state). Errors are InvalidArgument with the field's name first.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proto/results.h"
#include "proto/types.h"

namespace sw::studio::openai {

// ---- chat ----
struct ChatRequest {
  std::string model;
  proto::LlmParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk carries `usage`
};
Result<ChatRequest> read_chat_request(const nlohmann::json& body);

// The `chat.completion` for a finished llm job: the worker's result with OpenAI's `id`
// ("chatcmpl-<job id>"), `created` (seconds) and the requested model's id.
nlohmann::json chat_completion(const proto::ChatCompletion& result, std::string_view job_id,
                               std::string_view model, std::int64_t created_seconds);

// One `chat.completion.chunk`: `delta` holds role/content/reasoning_content as given; an empty
// finish_reason is null.
struct ChunkDelta {
  std::optional<std::string> role = {};
  std::optional<std::string> content = {};
  std::optional<std::string> reasoning_content = {};
};
nlohmann::json chat_chunk(std::string_view job_id, std::string_view model,
                          std::int64_t created_seconds, const ChunkDelta& delta,
                          std::string_view finish_reason = {});
// The last chunk of a stream with stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk(std::string_view job_id, std::string_view model,
                           std::int64_t created_seconds, const proto::ChatCompletionUsage& usage);

// ---- images ----
enum class ImageResponseFormat { B64Json, Url };
struct ImageRequest {
  std::string model;
  proto::ImageParams params;
  ImageResponseFormat response_format = ImageResponseFormat::B64Json;
};
Result<ImageRequest> read_image_request(const nlohmann::json& body);

// ---- speech ----
struct SpeechRequest {
  std::string model;
  proto::AudioTtsParams params;
};
Result<SpeechRequest> read_speech_request(const nlohmann::json& body);

// ---- transcriptions (multipart form fields; the file is stored as an upload first) ----
enum class TranscriptFormat { Json, Text, VerboseJson, Srt, Vtt };
struct TranscriptionRequest {
  std::string model;
  proto::AudioSttParams params;  // input_url is filled by the route once the file is stored
  TranscriptFormat format = TranscriptFormat::Json;
};
struct FormField {
  std::string name;
  std::string value;
};
// The form's fields other than `file`, in order (`timestamp_granularities[]` may repeat).
Result<TranscriptionRequest> read_transcription_request(const std::vector<FormField>& fields);
// The answer's body and Content-Type for `format`.
struct TextBody {
  std::string content_type;
  std::string body;
};
TextBody transcription_body(const proto::Transcript& transcript, TranscriptFormat format);

// ---- errors and models ----
// OpenAI's `type` for an HTTP status: 400 invalid_request_error, 401 authentication_error, 403
// permission_error, 404 not_found_error, 409 conflict_error, 413 invalid_request_error, 429
// rate_limit_error, others api_error.
std::string_view error_type_for(int status);
// `{"error": {"message", "type", "param", "code"}}`; `param` is the field named before the
// message's first ':' when the message starts with a field path, else null.
nlohmann::json error_json(int status, std::string_view code, std::string_view message);

}  // namespace sw::studio::openai
