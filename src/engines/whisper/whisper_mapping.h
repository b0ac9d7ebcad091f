#pragma once
// Pure mappings between our audio_stt task and whisper.cpp's whisper-server: argv, the /inference
// form fields, and the whisper-shaped result `{text, language, duration, segments:[{start, end,
// text}]}`. No I/O.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "proto/types.h"
#include "transfer/http_client.h"

namespace sw::engines::whisper {

// whisper-server argv ("{port}" filled in by the pool); the VAD model is a server-level option.
std::vector<std::string> server_args(const std::filesystem::path& model,
                                     const std::optional<std::filesystem::path>& vad_model);

// The multipart fields for one transcription of `wav` (16 kHz mono PCM16).
std::vector<transfer::FormField> inference_form(const proto::AudioSttParams& params,
                                                std::string wav);

// whisper-server's verbose_json → our shape. Segment text is kept as whisper wrote it; `text` is
// trimmed. With word timestamps each segment also carries `words:[{word, start, end}]`.
Result<nlohmann::json> transcript_result(std::string_view runner_body,
                                         const proto::AudioSttParams& params);

}  // namespace sw::engines::whisper
