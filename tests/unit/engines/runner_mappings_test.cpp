// The pure mappings of the runner engines: llama-server, whisper-server and sd-cli.

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engines/llama/llama_mapping.h"
#include "engines/runner/input_fetch.h"
#include "engines/sdcpp/sd_mapping.h"
#include "engines/whisper/whisper_mapping.h"

namespace sw::engines {
namespace {

using nlohmann::json;

TEST(LlamaMapping, RequestPrependsSystemMergesKwargsAndPassesConstraints) {
  proto::LlmParams params;
  params.messages = {{"user", "hi"}};
  params.system = "be brief";
  params.max_tokens = 0;
  params.temperature = 0.2;
  params.top_p = 0.9;
  params.stop = std::vector<std::string>{"\n\n"};
  auto schema = proto::RawJson::parse(R"({"type":"object"})");
  auto kwargs = proto::RawJson::parse(R"({"enable_thinking":true,"x":1})");
  const auto model_kwargs = proto::RawJson::parse(R"({"enable_thinking":false,"y":2})");
  ASSERT_TRUE(schema && kwargs && model_kwargs);
  params.json_schema = *schema;
  params.chat_template_kwargs = *kwargs;
  const json body = llama::chat_request(params, *model_kwargs, false);
  EXPECT_EQ(
      body["messages"],
      json::parse(R"([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}])"));
  EXPECT_EQ(body["max_tokens"], 1) << "a budget of 0 still asks for one token";
  EXPECT_EQ(body["temperature"], 0.2);
  EXPECT_EQ(body["top_p"], 0.9);
  EXPECT_EQ(body["stop"], json::parse(R"(["\n\n"])"));
  EXPECT_EQ(body["json_schema"], json::parse(R"({"type":"object"})"));
  EXPECT_EQ(body["chat_template_kwargs"], json::parse(R"({"enable_thinking":true,"x":1,"y":2})"))
      << "the request overrides the catalogue key by key";
  EXPECT_EQ(body["reasoning_format"], "none");
  EXPECT_FALSE(body["stream"].get<bool>());
  EXPECT_FALSE(body.contains("stream_options"));
  EXPECT_TRUE(llama::chat_request(params, std::nullopt, true)["stream_options"]["include_usage"]);
}

TEST(LlamaMapping, ServerArgsAreLoopbackOneSlotWithTheContext) {
  const auto args = llama::server_args("/m/a.gguf", 4096);
  const std::vector<std::string> expected = {
      "--model",           "/m/a.gguf", "--host",     "127.0.0.1", "--port",  "{port}",
      "--ctx-size",        "4096",      "--parallel", "1",         "--jinja", "--no-webui",
      "--no-context-shift"};
  EXPECT_EQ(args, expected);
  // Two slots, each with the whole context: llama-server divides --ctx-size among them.
  const auto two = llama::server_args("/m/a.gguf", 4096, 2);
  EXPECT_EQ(two[7], "8192");
  EXPECT_EQ(two[9], "2");
}

TEST(LlamaMapping, SplitsALeadingThinkBlock) {
  auto split = llama::split_reasoning("  <think>\nweighing it\n</think>\n\nThe answer.");
  ASSERT_TRUE(split.reasoning);
  EXPECT_EQ(*split.reasoning, "weighing it");
  EXPECT_EQ(split.content, "The answer.");
  EXPECT_FALSE(llama::split_reasoning("no <think>here</think>").reasoning);
  auto cut = llama::split_reasoning("<think>still going");
  ASSERT_TRUE(cut.reasoning);
  EXPECT_EQ(*cut.reasoning, "still going");
  EXPECT_EQ(cut.content, "");
}

TEST(LlamaMapping, ResultHasTheReferenceShape) {
  const std::string runner =
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":"<think>hm</think>Hi!"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12},"model":"gpt-3.5-turbo","timings":{}})";
  auto result = llama::completion_result(runner, "qwen", 42);
  ASSERT_TRUE(result);
  EXPECT_EQ(
      *result,
      json::parse(
          R"({"object":"chat.completion","model":"qwen","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","reasoning_content":"hm"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12},"elapsed_ms":42})"));
  EXPECT_FALSE(llama::completion_result("<html>", "m", 1));
  EXPECT_FALSE(llama::completion_result(R"({"choices":[]})", "m", 1));
}

// dispatch() streams (each token is progress for the stall deadline) and answers with the whole
// completion: the chunks llama-server sends, gathered, give the same result as its plain answer.
TEST(LlamaMapping, AStreamedAnswerGathersIntoTheSameResult) {
  llama::StreamedCompletion streamed;
  for (
      const char* chunk :
      {R"({"choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}],"object":"chat.completion.chunk"})",
       R"({"choices":[{"index":0,"delta":{"content":"<think>hm"},"finish_reason":null}],"object":"chat.completion.chunk"})",
       R"({"choices":[{"index":0,"delta":{"content":"</think>Hi"},"finish_reason":null}],"object":"chat.completion.chunk"})",
       R"({"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":null}],"object":"chat.completion.chunk"})",
       R"({"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"object":"chat.completion.chunk"})",
       R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12},"object":"chat.completion.chunk"})"}) {
    streamed.add(json::parse(chunk));
  }
  EXPECT_FALSE(streamed.error());
  auto result = llama::completion_result(streamed.completion().dump(), "qwen", 42);
  ASSERT_TRUE(result);
  EXPECT_EQ(
      *result,
      json::parse(
          R"({"object":"chat.completion","model":"qwen","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","reasoning_content":"hm"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12},"elapsed_ms":42})"));

  llama::StreamedCompletion failed;
  failed.add(json::parse(R"({"error":{"code":500,"message":"boom","type":"server_error"}})"));
  ASSERT_TRUE(failed.error());
  EXPECT_EQ(llama::runner_error(500, failed.error()->dump()).code, Code::Unavailable);
}

// Issue 20: the deltas a studio streams, joined, are the result's content and reasoning exactly,
// however the answer was cut into tokens.
TEST(LlamaMapping, StreamedDeltasJoinIntoTheSplitAnswer) {
  const std::vector<std::string> answers = {
      "Plain answer, no reasoning.",
      "  \n leading whitespace is kept without a think block",
      "<think>\nweighing it\n</think>\n\nThe answer.",
      "  <think> a </thin k> </think>x",
      "<think>cut off while thinking  \n",
      "<think>ends with a partial close </thi",
      "<thinking>is not a think block",
      "<thi",
      "   ",
      "",
      "<think></think>",
      "<think>  \n</think>   ",
      "<think>r</think>  content with </think> inside",
  };
  for (const auto& answer : answers) {
    const auto whole = llama::split_reasoning(answer);
    for (std::size_t size :
         {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, answer.size() + 1}) {
      llama::StreamingSplit split;
      std::string content;
      std::string reasoning;
      for (std::size_t at = 0; at < answer.size(); at += size) {
        auto delta = split.feed(std::string_view(answer).substr(at, size));
        content += delta.content;
        reasoning += delta.reasoning;
      }
      auto rest = split.finish();
      content += rest.content;
      reasoning += rest.reasoning;
      EXPECT_EQ(content, whole.content) << "answer: " << answer << " pieces of " << size;
      EXPECT_EQ(reasoning, whole.reasoning.value_or(""))
          << "answer: " << answer << " pieces of " << size;
    }
  }
  // Text comes out as soon as its place is certain, not only at the end.
  llama::StreamingSplit split;
  EXPECT_TRUE(split.feed("  ").empty());
  EXPECT_EQ(split.feed("<think>ab").reasoning, "ab");
  EXPECT_EQ(split.feed(" c </th").reasoning, " c");
  auto closed = split.feed("ink>\n Hi");
  EXPECT_EQ(closed.reasoning, "");
  EXPECT_EQ(closed.content, "Hi");
  EXPECT_EQ(llama::chunk_content(json::parse(
                R"({"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]})")),
            "tok");
  EXPECT_EQ(llama::chunk_content(json::parse(R"({"choices":[],"usage":{}})")), "");
}

TEST(LlamaMapping, RunnerErrorsKeepTheirMeaning) {
  const auto too_long = llama::runner_error(
      400,
      R"({"error":{"code":400,"message":"request (900 tokens) exceeds the available context size (512 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":900,"n_ctx":512}})");
  EXPECT_EQ(too_long.code, Code::InvalidArgument);
  EXPECT_EQ(
      too_long.message,
      "prompt is 900 tokens but the context holds 512; raise contextSize or shorten the prompt");
  const auto bad = llama::runner_error(400, R"({"error":{"message":"bad grammar"}})");
  EXPECT_EQ(bad.code, Code::InvalidArgument);
  EXPECT_NE(bad.message.find("bad grammar"), std::string::npos);
  EXPECT_EQ(llama::runner_error(503, "Loading model").code, Code::Unavailable);
}

TEST(WhisperMapping, FormAndResult) {
  proto::AudioSttParams params;
  params.input_url = "https://x/a.wav";
  params.language = "nl";
  params.translate = true;
  params.prompt = "names: Jan";
  params.vad = true;
  params.timestamps = proto::SttTimestamps::Word;
  const auto form = whisper::inference_form(params, "RIFF");
  auto field = [&](const std::string& name) -> std::string {
    for (const auto& f : form) {
      if (f.name == name) return f.data;
    }
    return "(absent)";
  };
  EXPECT_EQ(field("file"), "RIFF");
  EXPECT_EQ(field("response_format"), "verbose_json");
  EXPECT_EQ(field("language"), "nl");
  EXPECT_EQ(field("translate"), "true");
  EXPECT_EQ(field("prompt"), "names: Jan");
  EXPECT_EQ(field("vad"), "true");
  EXPECT_EQ(field("token_timestamps"), "true");
  proto::AudioSttParams plain;
  EXPECT_EQ(whisper::inference_form(plain, "")[3].data, "auto");

  const std::string runner =
      R"({"task":"transcribe","language":"dutch","duration":2.5,"text":" Hallo wereld. ","segments":[{"id":0,"text":" Hallo wereld.","start":0.0,"end":2.1,"words":[{"word":" Hallo","start":0.0,"end":0.9,"probability":0.9}],"tokens":[1]}]})";
  auto result = whisper::transcript_result(runner, params);
  ASSERT_TRUE(result);
  EXPECT_EQ(
      *result,
      json::parse(
          R"({"text":"Hallo wereld.","language":"nl","duration":2.5,"segments":[{"start":0.0,"end":2.1,"text":" Hallo wereld.","words":[{"word":" Hallo","start":0.0,"end":0.9}]}]})"));
  auto plain_result = whisper::transcript_result(runner, plain);
  ASSERT_TRUE(plain_result);
  EXPECT_EQ(plain_result->at("language"), "dutch");
  ASSERT_EQ(plain_result->at("segments").size(), 1u);
  EXPECT_FALSE(plain_result->at("segments").at(0).contains("words"));
  EXPECT_FALSE(whisper::transcript_result(R"({"error":"x"})", plain));
  const auto args = whisper::server_args("/m/w.bin", std::filesystem::path("/m/vad.bin"));
  EXPECT_EQ(args.back(), "/m/vad.bin");
  // Its progress lines are the sign of life the stall deadline watches during a transcription.
  EXPECT_NE(std::find(args.begin(), args.end(), "--print-progress"), args.end());
}

TEST(SdMapping, PrecedenceTaskThenDefaultsThenFallbacks) {
  proto::ImageParams task;
  task.prompt = "fox";
  proto::ModelCliDefaults defaults;
  defaults.cfg_scale = 4.5;
  defaults.steps = 8;
  defaults.width = 1024;
  defaults.height = 768;
  defaults.sampling_method = "euler";
  task.width = 0;
  task.height = 640;
  task.steps = 20;  // the wire default: "unset"
  auto settings = sdcpp::resolve_settings(task, defaults);
  EXPECT_EQ(settings.width, 1024u);
  EXPECT_EQ(settings.height, 640u);
  EXPECT_EQ(settings.steps, 8u);
  EXPECT_EQ(settings.cfg_scale, 4.5);
  EXPECT_EQ(settings.sampling_method, std::optional<std::string>("euler"));
  task.steps = 30;
  task.cfg_scale = 7.0;
  task.sampling_method = "dpm++2m";
  settings = sdcpp::resolve_settings(task, defaults);
  EXPECT_EQ(settings.steps, 30u);
  EXPECT_EQ(settings.cfg_scale, 7.0);
  EXPECT_EQ(*settings.sampling_method, "dpm++2m");
  proto::ImageParams bare;
  bare.prompt = "x";
  bare.width = 0;
  bare.height = 0;
  bare.steps = 0;
  settings = sdcpp::resolve_settings(bare, {});
  EXPECT_EQ(settings.width, 1024u);
  EXPECT_EQ(settings.steps, 8u);
  EXPECT_EQ(settings.cfg_scale, 1.0);
  EXPECT_FALSE(settings.sampling_method);
}

TEST(SdMapping, ArgvOrderRolesAndModes) {
  proto::ImageParams task;
  task.prompt = "a fox";
  task.negative_prompt = "blur";
  task.width = 512;
  task.height = 512;
  task.steps = 4;
  task.seed = 42;
  proto::ModelCliDefaults defaults;
  defaults.cfg_scale = 1.0;
  defaults.flow_shift = 3.0;
  defaults.zero_cond_t = true;
  defaults.offload_to_cpu = true;
  sdcpp::SdModelFiles files;
  files.diffusion_model = "/m/z.gguf";
  files.full_model = "/m/ignored.safetensors";
  files.vae = "/m/ae.safetensors";
  files.text_encoder = "/m/qwen.gguf";
  files.loras = {"/m/loras/style.safetensors"};
  sdcpp::SdJobInputs inputs;
  inputs.init_image = "/s/init.png";
  inputs.mask = "/s/mask.png";
  const auto args = sdcpp::cli_args(task, defaults, files, inputs, "/s/out.png");
  const std::vector<std::string> expected = {"--diffusion-model",
                                             "/m/z.gguf",
                                             "--vae",
                                             "/m/ae.safetensors",
                                             "--llm",
                                             "/m/qwen.gguf",
                                             "--lora-model-dir",
                                             "/m/loras",
                                             "-p",
                                             "a fox <lora:style:1>",
                                             "--negative-prompt",
                                             "blur",
                                             "--init-img",
                                             "/s/init.png",
                                             "--strength",
                                             "0.75",
                                             "--mask",
                                             "/s/mask.png",
                                             "--cfg-scale",
                                             "1",
                                             "--steps",
                                             "4",
                                             "-W",
                                             "512",
                                             "-H",
                                             "512",
                                             "-o",
                                             "/s/out.png",
                                             "--seed",
                                             "42",
                                             "--flow-shift",
                                             "3",
                                             "--qwen-image-zero-cond-t",
                                             "--offload-to-cpu",
                                             "--diffusion-fa"};
  EXPECT_EQ(args, expected);

  sdcpp::SdJobInputs reference;
  reference.ref_image = "/s/ref.webp";
  reference.mask = "/s/mask.png";
  sdcpp::SdModelFiles full;
  full.full_model = "/m/sd15.safetensors";
  const auto ref_args = sdcpp::cli_args(task, {}, full, reference, "/s/o.png");
  EXPECT_EQ(ref_args[0], "--model");
  const auto r = std::find(ref_args.begin(), ref_args.end(), "-r");
  ASSERT_NE(r, ref_args.end());
  EXPECT_EQ(*(r + 1), "/s/ref.webp");
  EXPECT_EQ(*(r + 2), "--mask");
  EXPECT_EQ(std::find(ref_args.begin(), ref_args.end(), "--strength"), ref_args.end());
  EXPECT_EQ(sdcpp::prompt_with_loras("x <lora:style:0.5>", files.loras), "x <lora:style:0.5>");
}

TEST(InputFetch, SniffsByMagicAndRefusesDataUrlsFromStudioJobs) {
  const std::vector<std::uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0};
  EXPECT_EQ(sniff_extension(png), "png");
  const std::vector<std::uint8_t> webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
  EXPECT_EQ(sniff_extension(webp), "webp");
  EXPECT_EQ(sniff_extension(std::vector<std::uint8_t>{'h', 'i'}), "");

  auto studio = fetch_input("data:image/png;base64,aGk=", {false, 1024, "init image"});
  ASSERT_FALSE(studio);
  EXPECT_NE(studio.error().message.find("local API only"), std::string::npos);
  auto local = fetch_input("data:image/png;base64,aGk=", {true, 1024, "init image"});
  ASSERT_TRUE(local) << local.error().message;
  EXPECT_EQ(std::string(local->begin(), local->end()), "hi");
  EXPECT_FALSE(fetch_input("data:image/png,raw", {true, 1024, "x"}));
  EXPECT_FALSE(fetch_input("data:image/png;base64,!!!!", {true, 1024, "x"}));
  EXPECT_FALSE(fetch_input("http://example.com/a.png", {false, 1024, "x"}))
      << "plain http only to loopback";
}

// Issue 20: only the studio's own uploads route gets the worker's token. Issue 18: an upload's
// URL names the address the client used (another studio process on the same database, or one the
// worker cannot reach); the worker fetches it from its own studio, so the token never goes
// anywhere else and the upload is found whichever process the client used.
TEST(InputFetch, StudioUploadsAreFetchedFromTheWorkersOwnStudioOnly) {
  const StudioAccess studio{"http://studio.lan:8080/", "secret", std::nullopt};
  const std::string own = "http://studio.lan:8080/graphics/api/uploads/upl-1";
  EXPECT_EQ(studio_upload_url(own, studio), own);
  EXPECT_EQ(studio_upload_url("http://127.0.0.1:19790/graphics/api/uploads/upl-1", studio), own)
      << "another studio process";
  EXPECT_EQ(studio_upload_url("https://lb.example/graphics/api/uploads/upl-1?x=1#f", studio), own);
  EXPECT_EQ(studio_upload_url("http://studio.lan.evil:8080/graphics/api/uploads/upl-1", studio),
            own)
      << "the token goes to the worker's studio, never to the URL's host";
  EXPECT_EQ(studio_upload_url("http://studio.lan:8080/graphics/api/uploads/", studio),
            std::nullopt);
  EXPECT_EQ(studio_upload_url("http://studio.lan:8080/graphics/api/jobs/j-1", studio),
            std::nullopt);
  EXPECT_EQ(studio_upload_url("http://studio.lan:8080/graphics/api/uploads/../workers", studio),
            std::nullopt);
  EXPECT_EQ(studio_upload_url("http://studio.lan:8080/graphics/api/uploads/a/b", studio),
            std::nullopt);
  EXPECT_EQ(studio_upload_url("http://studio.lan:8080/graphics/api/uploads/a%2Fb", studio),
            std::nullopt);
  EXPECT_EQ(studio_upload_url("http://evil/x?u=/graphics/api/uploads/upl-1", studio), std::nullopt)
      << "the route in a query is not the path";
  EXPECT_EQ(studio_upload_url("not a url", studio), std::nullopt);
  const StudioAccess prefixed{"https://host/studio", "secret", std::nullopt};
  EXPECT_EQ(studio_upload_url("https://host/graphics/api/uploads/u-2", prefixed),
            "https://host/studio/graphics/api/uploads/u-2");
  EXPECT_EQ(studio_upload_url("https://other/studio/graphics/api/uploads/u-2", prefixed),
            "https://host/studio/graphics/api/uploads/u-2");
  const StudioAccess no_base{"", "secret", std::nullopt};
  EXPECT_EQ(studio_upload_url(own, no_base), std::nullopt);
}

}  // namespace
}  // namespace sw::engines
