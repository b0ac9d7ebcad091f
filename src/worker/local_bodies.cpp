#include "worker/local_bodies.h"

#include <nlohmann/json.hpp>

#include "common/json_text.h"
#include "proto/codec.h"

namespace sw::worker {

Result<GenerationBody> read_generation_body(std::string_view text, proto::TaskKind kind,
                                            std::size_t max_bytes) {
  using nlohmann::json;
  auto bad = [](std::string words) { return fail(Error::invalid_argument("{}", words)); };
  auto body = parse_json(text, "request body", JsonLimits{max_bytes, kJsonMaxDepth});
  if (!body) return bad("bad json: " + body.error().message);
  if (!body->is_object()) return bad("bad json: the body must be a JSON object");
  // The wire task (camelCase, `kind`), validated by the protocol codec.
  json task = {{"kind", proto::to_string(kind)}};
  GenerationBody out;
  for (const auto& [key, value] : body->items()) {
    if (key == "model") {
      if (!value.is_string()) return bad("bad input: model must be a string");
      out.model = value.get<std::string>();
    } else if (kind == proto::TaskKind::Llm) {
      if (key == "max_tokens") {
        task["maxTokens"] = value;
      } else if (key == "top_p") {
        task["topP"] = value;
      } else if (key == "chat_template_kwargs") {
        task["chatTemplateKwargs"] = value;
      } else if (key == "stream") {
        if (!value.is_boolean()) return bad("bad input: stream must be true or false");
        out.stream = value.get<bool>();
      } else if (key == "deadline_ms") {
        if (!value.is_number_unsigned()) return bad("bad input: deadline_ms");
        out.deadline_ms = value.get<std::int64_t>();
      } else {
        task[key] = value;
      }
    } else {
      task[key] = value;
    }
  }
  if (kind == proto::TaskKind::Video) {
    if (!task.contains("width")) task["width"] = 256;
    if (!task.contains("height")) task["height"] = 256;
  }
  auto decoded = proto::decode_task(task.dump());
  if (!decoded) return bad("bad input: " + decoded.error().message);
  out.task = std::move(*decoded);
  return out;
}

Result<RegisterBody> read_register_body(std::string_view text, std::size_t max_bytes) {
  auto bad = [](std::string words) { return fail(Error::invalid_argument("{}", words)); };
  auto body = parse_json(text, "request body", JsonLimits{max_bytes, kJsonMaxDepth});
  if (!body) return bad("bad json: " + body.error().message);
  if (!body->is_object()) return bad("bad json: the body must be a JSON object");
  RegisterBody out;
  for (const auto& [key, value] : body->items()) {
    if (key == "apiBaseUrl") {
      if (!value.is_string()) return bad("bad input: apiBaseUrl: must be a string");
      out.api_base_url = value.get<std::string>();
    } else if (key == "reset") {
      if (!value.is_boolean()) return bad("bad input: reset: must be true or false");
      out.reset = value.get<bool>();
    } else if (key == "joinToken") {
      if (!value.is_string()) return bad("bad input: joinToken: must be a string");
      out.join_token = value.get<std::string>();
    } else {
      return bad("bad input: " + key + ": unknown field (apiBaseUrl, reset, joinToken)");
    }
  }
  return out;
}

Result<PauseBody> read_pause_body(std::string_view text, std::size_t max_bytes) {
  auto bad = [](std::string words) { return fail(Error::invalid_argument("{}", words)); };
  auto body = parse_json(text, "request body", JsonLimits{max_bytes, kJsonMaxDepth});
  if (!body) return bad("bad json: " + body.error().message);
  if (!body->is_object()) return bad("bad json: the body must be a JSON object");
  PauseBody out;
  if (const auto it = body->find("unload"); it != body->end()) {
    if (!it->is_boolean()) return bad("bad input: unload: must be true or false");
    out.unload = it->get<bool>();
  }
  return out;
}

}  // namespace sw::worker
