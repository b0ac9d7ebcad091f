#pragma once
// JSON result shapes carried by completeJson: the OpenAI chat.completion (llm, §4.4) and the
// whisper transcript (audio_stt). Keys are snake_case on the wire, as OpenAI and whisper define.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sw::proto {

struct ChatCompletionMessage {
  std::string role = "assistant";
  std::string content;
  std::optional<std::string> reasoning_content;  // only when a <think> block was present
  bool operator==(const ChatCompletionMessage&) const = default;
};

struct ChatCompletionChoice {
  std::uint32_t index = 0;
  ChatCompletionMessage message;
  std::string finish_reason = "stop";  // "stop" | "length"
  bool operator==(const ChatCompletionChoice&) const = default;
};

struct ChatCompletionUsage {
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
  std::uint64_t total_tokens = 0;
  bool operator==(const ChatCompletionUsage&) const = default;
};

struct ChatCompletion {
  std::string object = "chat.completion";
  std::string model;
  std::vector<ChatCompletionChoice> choices;
  ChatCompletionUsage usage;
  std::optional<std::uint64_t> elapsed_ms;
  bool operator==(const ChatCompletion&) const = default;
};

struct TranscriptSegment {
  double start = 0;
  double end = 0;
  std::string text;
  bool operator==(const TranscriptSegment&) const = default;
};

struct Transcript {
  std::string text;
  std::string language;
  double duration = 0;  // seconds of input audio
  std::optional<std::vector<TranscriptSegment>> segments;
  bool operator==(const Transcript&) const = default;
};

}  // namespace sw::proto
