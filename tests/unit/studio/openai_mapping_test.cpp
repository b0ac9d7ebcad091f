// OpenAI request bodies → studio tasks and results → OpenAI shapes
// (studio/openai/openai_mapping.h): every field is honoured or refused by name.

#include "studio/openai/openai_mapping.h"

#include <gtest/gtest.h>

namespace sw::studio::openai {
namespace {

using nlohmann::json;

json chat_body() {
  return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
}

TEST(OpenAiMapping, ChatFieldsReachTheTask) {
  auto body = chat_body();
  body["messages"] = {
      {{"role", "developer"}, {"content", "be brief"}},
      {{"role", "user"},
       {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}}};
  body["max_tokens"] = 5;
  body["temperature"] = 0.3;
  body["top_p"] = 0.9;
  body["stop"] = "END";
  body["seed"] = 42;
  body["response_format"] = {{"type", "json_schema"},
                             {"json_schema", {{"name", "x"}, {"schema", {{"type", "object"}}}}}};
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto request = read_chat_request(body);
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->model, "m");
  ASSERT_EQ(request->params.messages.size(), 2u);
  EXPECT_EQ(request->params.messages[0].role, "system");
  EXPECT_EQ(request->params.messages[1].content, "ab");
  EXPECT_EQ(request->params.max_tokens, 5u);
  EXPECT_DOUBLE_EQ(request->params.temperature, 0.3);
  EXPECT_EQ(request->params.top_p, 0.9);
  EXPECT_EQ(request->params.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(request->params.seed, 42u);
  ASSERT_TRUE(request->params.json_schema);
  EXPECT_TRUE(request->stream);
  EXPECT_TRUE(request->include_usage);
}

TEST(OpenAiMapping, MaxCompletionTokensIsTheNewNameOfMaxTokens) {
  auto body = chat_body();
  body["max_completion_tokens"] = 9;
  EXPECT_EQ(read_chat_request(body)->params.max_tokens, 9u);
  body["max_tokens"] = 8;
  const auto both = read_chat_request(body);
  ASSERT_FALSE(both);
  EXPECT_TRUE(both.error().message.starts_with("max_completion_tokens:")) << both.error().message;
}

TEST(OpenAiMapping, UnsupportedFieldsAreRefusedByName) {
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, json>>{{"tools", json::array({{{"type", "function"}}})},
                                                 {"logprobs", true},
                                                 {"frequency_penalty", 1},
                                                 {"n", 3},
                                                 {"whatever", 1},
                                                 {"temperature", 3}}) {
    auto body = chat_body();
    body[field] = value;
    const auto request = read_chat_request(body);
    ASSERT_FALSE(request) << field;
    EXPECT_TRUE(request.error().message.starts_with(field + ":")) << request.error().message;
    EXPECT_EQ(error_json(400, "invalid_request", request.error().message)["error"]["param"], field);
  }
  // Neutral values of unsupported features are accepted: they ask for nothing.
  auto body = chat_body();
  body["n"] = 1;
  body["logprobs"] = false;
  body["frequency_penalty"] = 0;
  body["user"] = "someone";
  body["parallel_tool_calls"] = true;
  body["modalities"] = {"text"};
  EXPECT_TRUE(read_chat_request(body));
  // A reply handed back as the client's helpers return it.
  body["messages"].push_back({{"role", "assistant"},
                              {"content", "hello"},
                              {"refusal", nullptr},
                              {"parsed", nullptr},
                              {"tool_calls", json::array()}});
  EXPECT_TRUE(read_chat_request(body)) << read_chat_request(body).error().message;
  body["messages"].back()["tool_calls"] = {{{"id", "x"}}};
  EXPECT_FALSE(read_chat_request(body));
}

TEST(OpenAiMapping, ImageAndSpeechRequests) {
  const auto image = read_image_request(
      {{"model", "sd"}, {"prompt", "a fox"}, {"size", "256x128"}, {"response_format", "url"}});
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->params.width, 256u);
  EXPECT_EQ(image->params.height, 128u);
  EXPECT_EQ(image->params.ext, "png");
  EXPECT_EQ(image->response_format, ImageResponseFormat::Url);
  EXPECT_FALSE(read_image_request({{"model", "sd"}, {"prompt", "x"}, {"size", "big"}}));
  EXPECT_FALSE(read_image_request({{"model", "sd"}, {"prompt", "x"}, {"n", 2}}));

  const auto speech = read_speech_request({{"model", "tts"}, {"input", "hello"}, {"voice", "en"}});
  ASSERT_TRUE(speech);
  EXPECT_EQ(speech->params.ext, "mp3");  // OpenAI's default
  EXPECT_EQ(speech->params.voice, "en");
  const auto aac =
      read_speech_request({{"model", "tts"}, {"input", "hello"}, {"response_format", "aac"}});
  ASSERT_FALSE(aac);
  EXPECT_TRUE(aac.error().message.starts_with("response_format:"));
}

TEST(OpenAiMapping, TranscriptionFormsAndAnswers) {
  const auto request = read_transcription_request(
      {{"model", "whisper"}, {"language", "en"}, {"response_format", "srt"}});
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->params.language, "en");
  EXPECT_EQ(request->params.timestamps, proto::SttTimestamps::Segment);
  EXPECT_FALSE(read_transcription_request({{"language", "en"}}));  // no model
  EXPECT_FALSE(read_transcription_request({{"model", "w"}, {"temperature", "0.5"}}));

  proto::Transcript transcript{
      "hello world", "en", 2.5,
      std::vector<proto::TranscriptSegment>{{0, 1.25, "hello"}, {1.25, 2.5, "world"}}};
  EXPECT_EQ(
      transcription_body(transcript, TranscriptFormat::Srt).body,
      "1\n00:00:00,000 --> 00:00:01,250\nhello\n\n2\n00:00:01,250 --> 00:00:02,500\nworld\n\n");
  EXPECT_EQ(json::parse(transcription_body(transcript, TranscriptFormat::Json).body),
            json({{"text", "hello world"}}));
  const auto verbose =
      json::parse(transcription_body(transcript, TranscriptFormat::VerboseJson).body);
  EXPECT_EQ(verbose["segments"].size(), 2u);
  EXPECT_EQ(verbose["duration"], 2.5);
}

TEST(OpenAiMapping, ChunksAndErrorsHaveOpenAisShape) {
  const auto chunk = chat_chunk("job-1", "m", 100, {.content = "he"});
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["id"], "chatcmpl-job-1");
  EXPECT_EQ(chunk["choices"][0]["delta"], json({{"content", "he"}}));
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chat_chunk("job-1", "m", 100, {}, "stop")["choices"][0]["finish_reason"], "stop");
  const auto error = error_json(503, "no_worker", "job x cannot run: waiting: no worker");
  EXPECT_EQ(error["error"]["type"], "api_error");
  EXPECT_TRUE(error["error"]["param"].is_null());
  EXPECT_EQ(error_json(401, "unauthorized", "unknown API key")["error"]["type"],
            "authentication_error");
}

}  // namespace
}  // namespace sw::studio::openai
