#include "studio/openai/openai_mapping.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

// Binds `name` to the value of a Result-returning expression, or returns its error.
#define SW_ASSIGN(name, expr)                             \
  auto name##_result_ = (expr);                           \
  if (!name##_result_) {                                  \
    return ::sw::fail(std::move(name##_result_).error()); \
  }                                                       \
  auto name = std::move(*name##_result_)

namespace sw::studio::openai {

using nlohmann::json;

namespace {

Error bad(std::string_view field, std::string_view problem) {
  return Error::invalid_argument("{}: {}", field, problem);
}

// Every key of `body` must be one the route reads or one it may ignore (they change nothing the
// client gets); anything else is refused by name.
Status check_keys(const json& body, const std::set<std::string_view>& known) {
  for (const auto& [key, value] : body.items()) {
    if (!known.contains(key)) {
      return fail(Error::invalid_argument("{}: unsupported parameter", key));
    }
  }
  return {};
}

Result<std::string> required_string(const json& body, std::string_view key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    return fail(bad(key, "required"));
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return fail(bad(key, "must be a non-empty string"));
  }
  return it->get<std::string>();
}

// A number in [lo, hi], or nullopt when absent or null.
Result<std::optional<double>> number_in(const json& body, std::string_view key, double lo,
                                        double hi) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    return std::optional<double>{};
  }
  if (!it->is_number()) {
    return fail(bad(key, "must be a number"));
  }
  const double value = it->get<double>();
  if (!std::isfinite(value) || value < lo || value > hi) {
    return fail(Error::invalid_argument("{}: must be from {} to {}", key, lo, hi));
  }
  return std::optional<double>{value};
}

Result<std::optional<std::uint64_t>> integer_in(const json& body, std::string_view key,
                                                std::uint64_t lo, std::uint64_t hi) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    return std::optional<std::uint64_t>{};
  }
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
    const auto value = it->get<std::uint64_t>();
    if (value >= lo && value <= hi) {
      return std::optional<std::uint64_t>{value};
    }
  }
  return fail(Error::invalid_argument("{}: must be an integer from {} to {}", key, lo, hi));
}

Result<std::optional<bool>> boolean(const json& body, std::string_view key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    return std::optional<bool>{};
  }
  if (!it->is_boolean()) {
    return fail(bad(key, "must be true or false"));
  }
  return std::optional<bool>{it->get<bool>()};
}

// `n`: one choice or image per request; the studio runs one job per request.
Status only_one(const json& body, std::string_view key) {
  SW_ASSIGN(n, integer_in(body, key, 1, 1000));
  if (n && *n != 1) {
    return fail(Error::invalid_argument("{}: only 1 is supported (send one request per {})", key,
                                        key == "n" ? "result" : "item"));
  }
  return {};
}

// A parameter that is accepted only at its neutral value (what leaving it out means).
Status neutral_only(const json& body, std::string_view key, const json& neutral) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null() || *it == neutral) {
    return {};
  }
  return fail(Error::invalid_argument("{}: not supported by this studio (leave it out)", key));
}

Result<std::string> message_text(const json& content, std::size_t index) {
  if (content.is_string()) {
    return content.get<std::string>();
  }
  if (content.is_null()) {
    return std::string();
  }
  if (!content.is_array()) {
    return fail(
        Error::invalid_argument("messages[{}].content: must be a string or an array of "
                                "content parts",
                                index));
  }
  std::string text;
  for (std::size_t part = 0; part < content.size(); ++part) {
    const auto& p = content[part];
    const auto type = p.is_object() ? p.find("type") : p.end();
    if (!p.is_object() || type == p.end() || !type->is_string()) {
      return fail(
          Error::invalid_argument("messages[{}].content[{}]: must be a content part with "
                                  "a `type`",
                                  index, part));
    }
    if (*type != "text") {
      return fail(Error::invalid_argument(
          "messages[{}].content[{}].type: \"{}\" parts are not supported (text only)", index, part,
          type->get<std::string>()));
    }
    const auto t = p.find("text");
    if (t == p.end() || !t->is_string()) {
      return fail(
          Error::invalid_argument("messages[{}].content[{}].text: must be a string", index, part));
    }
    text += t->get<std::string>();
  }
  return text;
}

Result<std::vector<proto::ChatMessage>> read_messages(const json& body) {
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    return fail(bad("messages", "must be a non-empty array"));
  }
  std::vector<proto::ChatMessage> messages;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    if (!m.is_object()) {
      return fail(Error::invalid_argument("messages[{}]: must be an object", i));
    }
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return fail(Error::invalid_argument("messages[{}].role: required", i));
    }
    std::string name = role->get<std::string>();
    if (name == "developer") {
      name = "system";  // OpenAI's newer name for the system message
    }
    if (name != "system" && name != "user" && name != "assistant") {
      return fail(Error::invalid_argument(
          "messages[{}].role: \"{}\" is not supported (system, developer, user, assistant)", i,
          name));
    }
    for (const auto& [key, value] : m.items()) {
      // An assistant message as OpenAI's clients hand it back (`refusal: null`, `parsed: null`,
      // `tool_calls: []`, …) carries these empty; anything in them is a feature not served here.
      const bool empty = value.is_null() || (value.is_array() && value.empty());
      const bool client_field = key == "refusal" || key == "parsed" || key == "tool_calls" ||
                                key == "audio" || key == "function_call" || key == "annotations";
      if (key != "role" && key != "content" && key != "name" && !(client_field && empty)) {
        return fail(Error::invalid_argument("messages[{}].{}: unsupported parameter", i, key));
      }
    }
    const auto content = m.find("content");
    SW_ASSIGN(text, message_text(content == m.end() ? json() : *content, i));
    messages.push_back({std::move(name), std::move(text)});
  }
  return messages;
}

Result<std::optional<std::vector<std::string>>> read_stop(const json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) {
    return std::optional<std::vector<std::string>>{};
  }
  std::vector<std::string> stop;
  if (it->is_string()) {
    stop.push_back(it->get<std::string>());
  } else if (it->is_array() && it->size() <= 4 &&
             std::all_of(it->begin(), it->end(), [](const json& s) { return s.is_string(); })) {
    for (const auto& s : *it) stop.push_back(s.get<std::string>());
  } else {
    return fail(bad("stop", "must be a string or an array of up to 4 strings"));
  }
  return std::optional<std::vector<std::string>>{std::move(stop)};
}

Result<std::optional<proto::RawJson>> read_response_format(const json& body) {
  const auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) {
    return std::optional<proto::RawJson>{};
  }
  const auto type = it->is_object() ? it->find("type") : it->end();
  if (!it->is_object() || type == it->end() || !type->is_string()) {
    return fail(bad("response_format", "must be an object with a `type`"));
  }
  if (*type == "text") {
    return std::optional<proto::RawJson>{};
  }
  if (*type == "json_object") {
    return std::optional<proto::RawJson>{proto::RawJson::parse(R"({"type":"object"})").value()};
  }
  if (*type == "json_schema") {
    const auto spec = it->find("json_schema");
    if (spec == it->end() || !spec->is_object() || !spec->contains("schema") ||
        !(*spec)["schema"].is_object()) {
      return fail(bad("response_format.json_schema.schema", "must be a JSON Schema object"));
    }
    const auto schema = spec->find("schema");
    auto raw = proto::RawJson::parse(schema->dump());
    if (!raw) {
      return fail(bad("response_format.json_schema.schema", raw.error().message));
    }
    return std::optional<proto::RawJson>{std::move(*raw)};
  }
  return fail(Error::invalid_argument(
      "response_format.type: \"{}\" is not supported (text, json_object, json_schema)",
      type->get<std::string>()));
}

Result<std::pair<std::uint32_t, std::uint32_t>> read_size(const json& body) {
  const auto it = body.find("size");
  if (it == body.end() || it->is_null() || *it == "auto") {
    return std::pair<std::uint32_t, std::uint32_t>{0, 0};  // the model's default
  }
  if (!it->is_string()) {
    return fail(bad("size", "must be a string such as \"512x512\""));
  }
  const auto& text = it->get_ref<const std::string&>();
  const auto x = text.find('x');
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (x == std::string::npos || std::from_chars(begin, begin + x, width).ptr != begin + x ||
      std::from_chars(begin + x + 1, end, height).ptr != end || width < 64 || height < 64 ||
      width > 4096 || height > 4096) {
    return fail(Error::invalid_argument(
        "size: \"{}\" is not WIDTHxHEIGHT with each from 64 to 4096", text));
  }
  return std::pair{width, height};
}

}  // namespace

// ---- chat ----

Result<ChatRequest> read_chat_request(const json& body) {
  if (!body.is_object()) {
    return fail(Error::invalid_argument("body: must be a JSON object"));
  }
  // Read: model, messages, max_tokens/max_completion_tokens, temperature, top_p, stop, seed,
  // response_format, stream, stream_options, n. Ignored (they change nothing in the answer):
  // user, metadata, store, service_tier. Accepted at their neutral value only: the rest.
  SW_TRY(check_keys(body, {"model",
                           "messages",
                           "max_tokens",
                           "max_completion_tokens",
                           "temperature",
                           "top_p",
                           "stop",
                           "seed",
                           "response_format",
                           "stream",
                           "stream_options",
                           "n",
                           "user",
                           "metadata",
                           "store",
                           "service_tier",
                           "presence_penalty",
                           "frequency_penalty",
                           "logprobs",
                           "top_logprobs",
                           "logit_bias",
                           "tools",
                           "tool_choice",
                           "parallel_tool_calls",
                           "reasoning_effort",
                           "modalities"}));
  SW_TRY(neutral_only(body, "presence_penalty", 0));
  SW_TRY(neutral_only(body, "frequency_penalty", 0));
  SW_TRY(neutral_only(body, "logprobs", false));
  SW_TRY(neutral_only(body, "top_logprobs", 0));
  SW_TRY(neutral_only(body, "logit_bias", json::object()));
  SW_TRY(neutral_only(body, "tools", json::array()));
  SW_TRY(neutral_only(body, "tool_choice", "none"));
  SW_TRY(neutral_only(body, "modalities", json::array({"text"})));
  SW_TRY(only_one(body, "n"));
  ChatRequest request;
  SW_ASSIGN(model, required_string(body, "model"));
  request.model = std::move(model);
  SW_ASSIGN(messages, read_messages(body));
  request.params.messages = std::move(messages);
  SW_ASSIGN(max_tokens, integer_in(body, "max_tokens", 1, 1'000'000));
  SW_ASSIGN(max_completion, integer_in(body, "max_completion_tokens", 1, 1'000'000));
  if (max_tokens && max_completion && *max_tokens != *max_completion) {
    return fail(Error::invalid_argument(
        "max_completion_tokens: differs from max_tokens; send one of them"));
  }
  if (max_completion) {
    request.params.max_tokens = static_cast<std::uint32_t>(*max_completion);
  } else if (max_tokens) {
    request.params.max_tokens = static_cast<std::uint32_t>(*max_tokens);
  }
  SW_ASSIGN(temperature, number_in(body, "temperature", 0, 2));
  if (temperature) {
    request.params.temperature = *temperature;
  } else {
    request.params.temperature = 1.0;  // OpenAI's default, not the native API's 0.7
  }
  SW_ASSIGN(top_p, number_in(body, "top_p", 0, 1));
  request.params.top_p = top_p;
  SW_ASSIGN(seed, integer_in(body, "seed", 0, 0xFFFF'FFFFull));
  request.params.seed = seed;
  SW_ASSIGN(stop, read_stop(body));
  request.params.stop = std::move(stop);
  SW_ASSIGN(schema, read_response_format(body));
  request.params.json_schema = std::move(schema);
  if (const auto effort = body.find("reasoning_effort");
      effort != body.end() && !effort->is_null()) {
    if (!effort->is_string()) {
      return fail(bad("reasoning_effort", "must be a string"));
    }
    if (*effort != "minimal" && *effort != "low" && *effort != "medium" && *effort != "high") {
      return fail(bad("reasoning_effort", "must be \"minimal\", \"low\", \"medium\" or \"high\""));
    }
    request.params.reasoning = effort->get<std::string>();
  }
  SW_ASSIGN(stream, boolean(body, "stream"));
  request.stream = stream.value_or(false);
  if (const auto options = body.find("stream_options");
      options != body.end() && !options->is_null()) {
    if (!options->is_object()) {
      return fail(bad("stream_options", "must be an object"));
    }
    if (!request.stream) {
      return fail(bad("stream_options", "only with stream: true"));
    }
    for (const auto& [key, value] : options->items()) {
      if (key != "include_usage") {
        return fail(Error::invalid_argument("stream_options.{}: unsupported parameter", key));
      }
    }
    SW_ASSIGN(usage, boolean(*options, "include_usage"));
    request.include_usage = usage.value_or(false);
  }
  return request;
}

json chat_completion(const proto::ChatCompletion& result, std::string_view job_id,
                     std::string_view model, std::int64_t created_seconds) {
  json choices = json::array();
  for (const auto& choice : result.choices) {
    json message = {{"role", choice.message.role}, {"content", choice.message.content}};
    if (choice.message.reasoning_content) {
      message["reasoning_content"] = *choice.message.reasoning_content;
    }
    choices.push_back({{"index", choice.index},
                       {"message", std::move(message)},
                       {"logprobs", nullptr},
                       {"finish_reason", choice.finish_reason}});
  }
  return {{"id", fmt::format("chatcmpl-{}", job_id)},
          {"object", "chat.completion"},
          {"created", created_seconds},
          {"model", model},
          {"choices", std::move(choices)},
          {"usage",
           {{"prompt_tokens", result.usage.prompt_tokens},
            {"completion_tokens", result.usage.completion_tokens},
            {"total_tokens", result.usage.total_tokens}}}};
}

json chat_chunk(std::string_view job_id, std::string_view model, std::int64_t created_seconds,
                const ChunkDelta& delta, std::string_view finish_reason) {
  json d = json::object();
  if (delta.role) d["role"] = *delta.role;
  if (delta.content) d["content"] = *delta.content;
  if (delta.reasoning_content) d["reasoning_content"] = *delta.reasoning_content;
  return {
      {"id", fmt::format("chatcmpl-{}", job_id)},
      {"object", "chat.completion.chunk"},
      {"created", created_seconds},
      {"model", model},
      {"choices",
       json::array({{{"index", 0},
                     {"delta", std::move(d)},
                     {"logprobs", nullptr},
                     {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}}})}};
}

json usage_chunk(std::string_view job_id, std::string_view model, std::int64_t created_seconds,
                 const proto::ChatCompletionUsage& usage) {
  return {{"id", fmt::format("chatcmpl-{}", job_id)},
          {"object", "chat.completion.chunk"},
          {"created", created_seconds},
          {"model", model},
          {"choices", json::array()},
          {"usage",
           {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.total_tokens}}}};
}

// ---- images ----

Result<ImageRequest> read_image_request(const json& body) {
  if (!body.is_object()) {
    return fail(Error::invalid_argument("body: must be a JSON object"));
  }
  // negative_prompt, steps, cfg_scale and seed are ours (as LocalAI and others extend it).
  SW_TRY(
      check_keys(body, {"model", "prompt", "n", "size", "response_format", "output_format", "user",
                        "quality", "style", "negative_prompt", "steps", "cfg_scale", "seed"}));
  SW_TRY(only_one(body, "n"));
  SW_TRY(neutral_only(body, "quality", "auto"));
  SW_TRY(neutral_only(body, "style", "vivid"));
  ImageRequest request;
  SW_ASSIGN(model, required_string(body, "model"));
  request.model = std::move(model);
  SW_ASSIGN(prompt, required_string(body, "prompt"));
  request.params.prompt = std::move(prompt);
  SW_ASSIGN(size, read_size(body));
  if (size.first != 0) {
    request.params.width = size.first;
    request.params.height = size.second;
  }
  if (const auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    if (*it == "b64_json") {
      request.response_format = ImageResponseFormat::B64Json;
    } else if (*it == "url") {
      request.response_format = ImageResponseFormat::Url;
    } else {
      return fail(bad("response_format", "must be \"b64_json\" or \"url\""));
    }
  }
  request.params.ext = "png";  // OpenAI's default output
  if (const auto it = body.find("output_format"); it != body.end() && !it->is_null()) {
    if (*it == "png" || *it == "webp") {
      request.params.ext = it->get<std::string>();
    } else {
      return fail(bad("output_format", "must be \"png\" or \"webp\""));
    }
  }
  if (const auto it = body.find("negative_prompt"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return fail(bad("negative_prompt", "must be a string"));
    request.params.negative_prompt = it->get<std::string>();
  }
  SW_ASSIGN(steps, integer_in(body, "steps", 1, 200));
  if (steps) request.params.steps = static_cast<std::uint32_t>(*steps);
  SW_ASSIGN(cfg, number_in(body, "cfg_scale", 0, 50));
  request.params.cfg_scale = cfg;
  SW_ASSIGN(seed, integer_in(body, "seed", 0, 0xFFFF'FFFF'FFFF'FFFFull));
  request.params.seed = seed;
  return request;
}

// ---- speech ----

Result<SpeechRequest> read_speech_request(const json& body) {
  if (!body.is_object()) {
    return fail(Error::invalid_argument("body: must be a JSON object"));
  }
  SW_TRY(check_keys(body, {"model", "input", "voice", "response_format", "speed", "instructions",
                           "stream_format"}));
  SW_TRY(neutral_only(body, "instructions", ""));
  SW_TRY(neutral_only(body, "stream_format", "audio"));
  SpeechRequest request;
  SW_ASSIGN(model, required_string(body, "model"));
  request.model = std::move(model);
  SW_ASSIGN(input, required_string(body, "input"));
  request.params.text = std::move(input);
  if (const auto it = body.find("voice"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return fail(bad("voice", "must be a non-empty string"));
    }
    request.params.voice = it->get<std::string>();
  }
  SW_ASSIGN(speed, number_in(body, "speed", 0.25, 4.0));
  request.params.speed = speed;
  request.params.ext = "mp3";  // OpenAI's default
  if (const auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    static const std::set<std::string> kFormats = {"mp3", "opus", "flac", "wav"};
    if (!it->is_string() || !kFormats.contains(it->get<std::string>())) {
      return fail(Error::invalid_argument(
          "response_format: {} is not supported (mp3, opus, flac, wav)", it->dump()));
    }
    request.params.ext = it->get<std::string>();
  }
  return request;
}

// ---- transcriptions ----

Result<TranscriptionRequest> read_transcription_request(const std::vector<FormField>& fields) {
  TranscriptionRequest request;
  bool word = false;
  for (const auto& field : fields) {
    const auto& name = field.name;
    const auto& value = field.value;
    if (name == "model") {
      request.model = value;
    } else if (name == "language") {
      if (!value.empty()) request.params.language = value;
    } else if (name == "prompt") {
      if (!value.empty()) request.params.prompt = value;
    } else if (name == "response_format") {
      if (value == "json")
        request.format = TranscriptFormat::Json;
      else if (value == "text")
        request.format = TranscriptFormat::Text;
      else if (value == "verbose_json")
        request.format = TranscriptFormat::VerboseJson;
      else if (value == "srt")
        request.format = TranscriptFormat::Srt;
      else if (value == "vtt")
        request.format = TranscriptFormat::Vtt;
      else {
        return fail(Error::invalid_argument(
            "response_format: \"{}\" is not supported (json, text, verbose_json, srt, vtt)",
            value));
      }
    } else if (name == "temperature") {
      if (value != "0" && value != "0.0" && !value.empty()) {
        return fail(bad("temperature", "not supported by this studio (leave it out or send 0)"));
      }
    } else if (name == "timestamp_granularities[]" || name == "timestamp_granularities") {
      if (value == "word") {
        word = true;
      } else if (value != "segment") {
        return fail(Error::invalid_argument(
            "timestamp_granularities: \"{}\" is not supported (segment, word)", value));
      }
    } else if (name == "stream") {
      if (value != "false") {
        return fail(bad("stream", "streamed transcriptions are not supported"));
      }
    } else {
      return fail(Error::invalid_argument("{}: unsupported parameter", name));
    }
  }
  if (request.model.empty()) {
    return fail(bad("model", "required"));
  }
  const bool timed = request.format == TranscriptFormat::VerboseJson ||
                     request.format == TranscriptFormat::Srt ||
                     request.format == TranscriptFormat::Vtt;
  if (word) {
    request.params.timestamps = proto::SttTimestamps::Word;
  } else if (timed) {
    request.params.timestamps = proto::SttTimestamps::Segment;
  }
  return request;
}

namespace {

std::string clock_text(double seconds, char fraction_separator) {
  const auto total_ms = static_cast<std::int64_t>(std::llround(std::max(0.0, seconds) * 1000));
  return fmt::format("{:02}:{:02}:{:02}{}{:03}", total_ms / 3'600'000, total_ms / 60'000 % 60,
                     total_ms / 1000 % 60, fraction_separator, total_ms % 1000);
}

}  // namespace

TextBody transcription_body(const proto::Transcript& transcript, TranscriptFormat format) {
  const auto segments = transcript.segments.value_or(std::vector<proto::TranscriptSegment>{});
  switch (format) {
    case TranscriptFormat::Json:
      return {"application/json", json({{"text", transcript.text}}).dump()};
    case TranscriptFormat::Text: return {"text/plain; charset=utf-8", transcript.text + "\n"};
    case TranscriptFormat::VerboseJson: {
      json list = json::array();
      for (std::size_t i = 0; i < segments.size(); ++i) {
        list.push_back({{"id", i},
                        {"start", segments[i].start},
                        {"end", segments[i].end},
                        {"text", segments[i].text}});
      }
      return {"application/json", json({{"task", "transcribe"},
                                        {"language", transcript.language},
                                        {"duration", transcript.duration},
                                        {"text", transcript.text},
                                        {"segments", std::move(list)}})
                                      .dump()};
    }
    case TranscriptFormat::Srt: {
      std::string out;
      for (std::size_t i = 0; i < segments.size(); ++i) {
        out += fmt::format("{}\n{} --> {}\n{}\n\n", i + 1, clock_text(segments[i].start, ','),
                           clock_text(segments[i].end, ','), segments[i].text);
      }
      return {"application/x-subrip", out};
    }
    case TranscriptFormat::Vtt: {
      std::string out = "WEBVTT\n\n";
      for (const auto& s : segments) {
        out += fmt::format("{} --> {}\n{}\n\n", clock_text(s.start, '.'), clock_text(s.end, '.'),
                           s.text);
      }
      return {"text/vtt", out};
    }
  }
  return {"application/json", json({{"text", transcript.text}}).dump()};
}

// ---- errors ----

std::string_view error_type_for(int status) {
  switch (status) {
    case 400:
    case 413:
    case 415: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 429: return "rate_limit_error";
    default: return "api_error";
  }
}

json error_json(int status, std::string_view code, std::string_view message) {
  json param = nullptr;
  // "max_tokens: must be …" names the parameter; a sentence ("job … failed: …") does not.
  if (const auto colon = message.find(':'); colon != std::string_view::npos && colon > 0) {
    const auto head = message.substr(0, colon);
    if (head.find(' ') == std::string_view::npos) {
      param = std::string(head);
    }
  }
  return {
      {"error",
       {{"message", message}, {"type", error_type_for(status)}, {"param", param}, {"code", code}}}};
}

}  // namespace sw::studio::openai
