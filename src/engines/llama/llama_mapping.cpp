#include "engines/llama/llama_mapping.h"

#include <algorithm>

#include "common/json_text.h"

namespace sw::engines::llama {
namespace {

std::string_view trim_left(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\n' || text.front() == '\r' ||
                           text.front() == '\t')) {
    text.remove_prefix(1);
  }
  return text;
}

// The most useful message in a llama-server error body (its `error.message`), else the body.
std::string error_message(const nlohmann::json& body, std::string_view raw) {
  if (body.is_object() && body.contains("error")) {
    const auto& error = body["error"];
    if (error.is_object() && error.contains("message") && error["message"].is_string()) {
      return error["message"].get<std::string>();
    }
    if (error.is_string()) return error.get<std::string>();
  }
  std::string text(raw.substr(0, 300));
  return text.empty() ? std::string("(empty body)") : text;
}

}  // namespace

std::vector<std::string> server_args(const std::filesystem::path& gguf, std::uint32_t context,
                                     std::uint32_t slots) {
  slots = std::max<std::uint32_t>(slots, 1);
  return {"--model",
          gguf.string(),
          "--host",
          "127.0.0.1",
          "--port",
          "{port}",
          "--ctx-size",
          std::to_string(static_cast<std::uint64_t>(context) * slots),
          "--parallel",
          std::to_string(slots),
          "--jinja",
          "--no-webui",
          "--no-context-shift"};
}

std::vector<std::string> settings_args(const RunnerSettings& settings) {
  std::vector<std::string> args;
  if (settings.gpu_layers) args.insert(args.end(), {"--n-gpu-layers", *settings.gpu_layers});
  if (settings.threads) args.insert(args.end(), {"--threads", std::to_string(*settings.threads)});
  if (settings.flash_attention)
    args.insert(args.end(), {"--flash-attn", *settings.flash_attention});
  if (!settings.tensor_split.empty()) {
    std::string split;
    for (double part : settings.tensor_split) {
      split += (split.empty() ? "" : ",") + fmt::format("{}", part);
    }
    args.insert(args.end(), {"--tensor-split", split});
  }
  args.insert(args.end(), settings.extra_args.begin(), settings.extra_args.end());
  return args;
}

nlohmann::json chat_request(const proto::LlmParams& params,
                            const std::optional<proto::RawJson>& model_kwargs, bool stream) {
  nlohmann::json messages = nlohmann::json::array();
  if (params.system && !params.system->empty()) {
    messages.push_back({{"role", "system"}, {"content", *params.system}});
  }
  for (const proto::ChatMessage& message : params.messages) {
    messages.push_back({{"role", message.role}, {"content", message.content}});
  }
  nlohmann::json body = {
      {"messages", std::move(messages)},
      {"max_tokens", std::max<std::uint32_t>(params.max_tokens, 1)},
      {"temperature", params.temperature},
      {"stream", stream},
      // The raw text comes back; we split a leading <think> block ourselves (§4.4), the same way
      // whatever template the model carries.
      {"reasoning_format", "none"},
      {"cache_prompt", true},
  };
  if (params.top_p) body["top_p"] = *params.top_p;
  if (params.seed) body["seed"] = *params.seed;
  if (params.stop && !params.stop->empty()) body["stop"] = *params.stop;
  if (params.json_schema) {
    // llama-server turns a JSON schema into a grammar that constrains sampling.
    // RawJson passed the codec's guard already; parse_json keeps this from ever throwing.
    if (auto schema = parse_json(params.json_schema->text(), "jsonSchema")) {
      body["json_schema"] = std::move(*schema);
    }
  }
  nlohmann::json kwargs = nlohmann::json::object();
  for (const auto* source : {&model_kwargs, &params.chat_template_kwargs}) {
    if (!*source) continue;
    auto parsed = parse_json((*source)->text(), "chatTemplateKwargs");
    if (parsed && parsed->is_object()) {
      for (auto& [key, value] : parsed->items()) kwargs[key] = value;
    }
  }
  if (!kwargs.empty()) body["chat_template_kwargs"] = std::move(kwargs);
  if (stream) body["stream_options"] = {{"include_usage", true}};
  return body;
}

SplitAnswer split_reasoning(std::string_view content) {
  constexpr std::string_view kOpen = "<think>";
  constexpr std::string_view kClose = "</think>";
  const std::string_view leading = trim_left(content);
  if (leading.substr(0, kOpen.size()) != kOpen) return {std::nullopt, std::string(content)};
  const auto close = leading.find(kClose);
  if (close == std::string_view::npos) {
    // Cut off while still thinking (finish_reason "length"): all of it is reasoning.
    return {std::string(trim_left(leading.substr(kOpen.size()))), std::string()};
  }
  std::string_view reasoning = leading.substr(kOpen.size(), close - kOpen.size());
  reasoning = trim_left(reasoning);
  while (!reasoning.empty() && (reasoning.back() == '\n' || reasoning.back() == ' ')) {
    reasoning.remove_suffix(1);
  }
  return {std::string(reasoning), std::string(trim_left(leading.substr(close + kClose.size())))};
}

Result<nlohmann::json> completion_result(std::string_view runner_body, std::string_view model,
                                         std::int64_t elapsed_ms) {
  // A model server's answer is outside input too: bounded before it is parsed (issue 16).
  auto parsed = parse_json(runner_body, "llama-server's answer");
  if (!parsed) return fail(Error::protocol("{}", parsed.error().message));
  auto& body = *parsed;
  if (!body.is_object() || !body.contains("choices") || !body["choices"].is_array() ||
      body["choices"].empty()) {
    return fail(Error::protocol("llama-server answered something that is not a chat completion"));
  }
  const auto& choice = body["choices"][0];
  std::string content;
  if (choice.contains("message") && choice["message"].is_object()) {
    const auto& text = choice["message"].value("content", nlohmann::json());
    if (text.is_string()) content = text.get<std::string>();
  }
  std::string finish = choice.value("finish_reason", std::string("stop"));
  if (finish != "length") finish = "stop";
  const auto& usage = body.value("usage", nlohmann::json::object());
  const std::int64_t prompt_tokens = usage.value("prompt_tokens", std::int64_t{0});
  const std::int64_t completion_tokens = usage.value("completion_tokens", std::int64_t{0});

  SplitAnswer split = split_reasoning(content);
  nlohmann::json message = {{"role", "assistant"}, {"content", split.content}};
  if (split.reasoning) message["reasoning_content"] = *split.reasoning;
  return nlohmann::json{
      {"object", "chat.completion"},
      {"model", model},
      {"choices",
       nlohmann::json::array(
           {{{"index", 0}, {"message", std::move(message)}, {"finish_reason", finish}}})},
      {"usage",
       {{"prompt_tokens", prompt_tokens},
        {"completion_tokens", completion_tokens},
        {"total_tokens", prompt_tokens + completion_tokens}}},
      {"elapsed_ms", elapsed_ms},
  };
}

void StreamedCompletion::add(const nlohmann::json& chunk) {
  if (!chunk.is_object()) return;
  if (auto error = chunk.find("error"); error != chunk.end()) {
    if (!error_) error_ = chunk;
    return;
  }
  if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
    usage_ = *usage;
  }
  auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty()) return;
  const auto& choice = (*choices)[0];
  if (!choice.is_object()) return;
  if (auto delta = choice.find("delta"); delta != choice.end() && delta->is_object()) {
    if (auto text = delta->find("content"); text != delta->end() && text->is_string()) {
      content_ += text->get_ref<const std::string&>();
    }
  }
  if (auto finish = choice.find("finish_reason"); finish != choice.end() && finish->is_string()) {
    finish_reason_ = finish->get<std::string>();
  }
}

nlohmann::json StreamedCompletion::completion() const {
  return nlohmann::json{
      {"object", "chat.completion"},
      {"choices",
       nlohmann::json::array({{{"index", 0},
                               {"message", {{"role", "assistant"}, {"content", content_}}},
                               {"finish_reason", finish_reason_}}})},
      {"usage", usage_},
  };
}

std::string_view chunk_content(const nlohmann::json& chunk) {
  if (!chunk.is_object()) return {};
  auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty()) return {};
  const auto& choice = (*choices)[0];
  if (!choice.is_object()) return {};
  auto delta = choice.find("delta");
  if (delta == choice.end() || !delta->is_object()) return {};
  auto text = delta->find("content");
  if (text == delta->end() || !text->is_string()) return {};
  return text->get_ref<const std::string&>();
}

namespace {

// What of split_reasoning(all + anything after) is already certain from `all`.
SplitAnswer settled_part(std::string_view all) {
  constexpr std::string_view kOpen = "<think>";
  constexpr std::string_view kClose = "</think>";
  const std::string_view leading = trim_left(all);
  // Only whitespace, or the start of `<think>`: either shape may still come.
  if (leading.empty()) return {std::nullopt, std::string()};
  if (leading.size() < kOpen.size() && kOpen.starts_with(leading)) {
    return {std::nullopt, std::string()};
  }
  if (!leading.starts_with(kOpen)) return {std::nullopt, std::string(all)};  // no reasoning
  const std::string_view rest = leading.substr(kOpen.size());
  if (rest.find(kClose) != std::string_view::npos) return split_reasoning(all);
  // Still thinking: hold back a tail that may start `</think>`, and the whitespace before it
  // (trimmed if the close follows).
  std::string_view reasoning = trim_left(rest);
  for (std::size_t n = std::min(reasoning.size(), kClose.size() - 1); n > 0; --n) {
    if (kClose.starts_with(reasoning.substr(reasoning.size() - n))) {
      reasoning.remove_suffix(n);
      break;
    }
  }
  while (!reasoning.empty() && (reasoning.back() == '\n' || reasoning.back() == ' ')) {
    reasoning.remove_suffix(1);
  }
  return {std::string(reasoning), std::string()};
}

}  // namespace

StreamingSplit::Delta StreamingSplit::advance(const SplitAnswer& settled) {
  Delta delta;
  const std::string reasoning = settled.reasoning.value_or(std::string());
  // Settled text only grows: what was sent is a prefix of it.
  if (reasoning.size() > reasoning_sent_) {
    delta.reasoning = reasoning.substr(reasoning_sent_);
    reasoning_sent_ = reasoning.size();
  }
  if (settled.content.size() > content_sent_) {
    delta.content = settled.content.substr(content_sent_);
    content_sent_ = settled.content.size();
  }
  return delta;
}

StreamingSplit::Delta StreamingSplit::feed(std::string_view piece) {
  if (piece.empty()) return {};
  all_ += piece;
  return advance(settled_part(all_));
}

StreamingSplit::Delta StreamingSplit::finish() {
  return advance(split_reasoning(all_));
}

Error runner_error(long status, std::string_view body) {
  auto answer = parse_json(body, "llama-server's error");
  const auto parsed = answer ? std::move(*answer) : nlohmann::json();
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const auto& error = parsed["error"];
    if (error.value("type", std::string()) == "exceed_context_size_error") {
      return Error::invalid_argument(
          "prompt is {} tokens but the context holds {}; raise contextSize or shorten the prompt",
          error.value("n_prompt_tokens", 0), error.value("n_ctx", 0));
    }
  }
  const std::string message = error_message(parsed, body);
  if (status >= 400 && status < 500) {
    return Error::invalid_argument("llama-server refused the request ({}): {}", status, message);
  }
  return Error::unavailable("llama-server failed ({}): {}", status, message);
}

}  // namespace sw::engines::llama
