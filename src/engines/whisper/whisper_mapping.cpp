#include "engines/whisper/whisper_mapping.h"

#include "common/json_text.h"
#include "proto/mime.h"

namespace sw::engines::whisper {
namespace {

std::string trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

std::vector<std::string> server_args(const std::filesystem::path& model,
                                     const std::optional<std::filesystem::path>& vad_model) {
  // --print-progress: a line per few percent of a transcription, the sign of life the pool's
  // inference stall deadline watches (the answer itself comes only at the end).
  std::vector<std::string> args = {"--model", model.string(), "--host",          "127.0.0.1",
                                   "--port",  "{port}",       "--print-progress"};
  if (vad_model) {
    args.push_back("--vad-model");
    args.push_back(vad_model->string());
  }
  return args;
}

std::vector<transfer::FormField> inference_form(const proto::AudioSttParams& params,
                                                std::string wav) {
  std::vector<transfer::FormField> form;
  form.push_back({"file", std::move(wav), "audio.wav", proto::mime_for_ext("wav")});
  form.push_back({"response_format", "verbose_json", std::nullopt, std::nullopt});
  form.push_back({"temperature", "0.0", std::nullopt, std::nullopt});
  const std::string language =
      params.language && !params.language->empty() ? *params.language : std::string("auto");
  form.push_back({"language", language, std::nullopt, std::nullopt});
  // Language probabilities cost a second pass; they are only interesting when detecting.
  form.push_back({"no_language_probabilities", language == "auto" ? "false" : "true",
                  std::nullopt, std::nullopt});
  form.push_back({"translate", params.translate.value_or(false) ? "true" : "false", std::nullopt,
                  std::nullopt});
  if (params.prompt && !params.prompt->empty()) {
    form.push_back({"prompt", *params.prompt, std::nullopt, std::nullopt});
  }
  form.push_back({"vad", params.vad.value_or(false) ? "true" : "false", std::nullopt, std::nullopt});
  const bool words = params.timestamps == proto::SttTimestamps::Word;
  form.push_back({"token_timestamps", words ? "true" : "false", std::nullopt, std::nullopt});
  return form;
}

Result<nlohmann::json> transcript_result(std::string_view runner_body,
                                         const proto::AudioSttParams& params) {
  // A model server's answer is outside input too: bounded before it is parsed (issue 16).
  auto parsed = parse_json(runner_body, "whisper-server's answer");
  if (!parsed) return fail(Error::protocol("{}", parsed.error().message));
  auto& body = *parsed;
  if (body.is_object() && body.contains("error")) {
    return fail(Error::invalid_argument("whisper-server could not transcribe it: {}",
                                        body["error"].dump()));
  }
  if (!body.is_object() || !body.contains("text") || !body["text"].is_string()) {
    return fail(Error::protocol("whisper-server answered something that is not a transcript"));
  }
  const bool words = params.timestamps == proto::SttTimestamps::Word;
  nlohmann::json segments = nlohmann::json::array();
  if (body.contains("segments") && body["segments"].is_array()) {
    for (const auto& segment : body["segments"]) {
      if (!segment.is_object()) continue;
      nlohmann::json out = {{"start", segment.value("start", 0.0)},
                            {"end", segment.value("end", 0.0)},
                            {"text", segment.value("text", std::string())}};
      if (words && segment.contains("words") && segment["words"].is_array()) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& word : segment["words"]) {
          if (!word.is_object()) continue;
          list.push_back({{"word", word.value("word", std::string())},
                          {"start", word.value("start", 0.0)},
                          {"end", word.value("end", 0.0)}});
        }
        out["words"] = std::move(list);
      }
      segments.push_back(std::move(out));
    }
  }
  // The language asked for, in the caller's own spelling; else what whisper detected.
  std::string language = params.language && !params.language->empty() && *params.language != "auto"
                             ? *params.language
                             : body.value("language", std::string("unknown"));
  return nlohmann::json{{"text", trimmed(body["text"].get<std::string>())},
                        {"language", std::move(language)},
                        {"duration", body.value("duration", 0.0)},
                        {"segments", std::move(segments)}};
}

}  // namespace sw::engines::whisper
