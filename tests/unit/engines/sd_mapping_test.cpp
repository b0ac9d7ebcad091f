// stable-diffusion.cpp mappings checked against upstream facts: every flag the worker can put on
// sd-cli's or sd-server's command line must be in the option tables read from the pinned upstream
// source (tests/unit/engines/sdcpp/*.options), with the arity upstream gives it; and the sdapi
// request carries every task field the CLI path maps.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/base64.h"
#include "engines/sdcpp/sd_mapping.h"
#include "support/sd_option_table.h"

namespace sw::engines {
namespace {

using nlohmann::json;
using testing::OptionTable;

OptionTable table(const char* file) {
  std::string error;
  auto loaded = testing::load_option_table(testing::sdcpp_options_dir() / file, &error);
  EXPECT_TRUE(loaded) << error;
  return loaded ? *loaded : OptionTable{};
}

// The flags of an argv that upstream accepts; fails the test on one it would refuse.
std::set<std::string> accepted_flags(const OptionTable& options,
                                     const std::vector<std::string>& argv) {
  const auto parsed = testing::parse_with_table(options, argv);
  EXPECT_FALSE(parsed.error) << *parsed.error;
  std::set<std::string> flags;
  for (const auto& item : parsed.items) flags.insert(item.first);
  return flags;
}

// A task and model that use every role and every optional flag of the mapping.
struct EveryField {
  proto::ImageParams task;
  proto::ModelCliDefaults defaults;
  sdcpp::SdModelFiles files;
  EveryField() {
    task.prompt = "a fox";
    task.negative_prompt = "blur";
    task.width = 640;
    task.height = 384;
    task.steps = 6;
    task.seed = 7;
    task.cfg_scale = 2.5;
    task.denoise = 0.4;
    task.sampling_method = "euler_a";
    defaults.flow_shift = 3.0;
    defaults.zero_cond_t = true;
    defaults.offload_to_cpu = true;
    files.diffusion_model = "/m/z.gguf";
    files.vae = "/m/ae.safetensors";
    files.text_encoder = "/m/qwen.gguf";
    files.text_encoder_vision = "/m/qwen-vision.gguf";
    files.loras = {"/m/style.safetensors"};
  }
};

TEST(SdCliArgv, EveryFlagTheMappingEmitsIsOneUpstreamAccepts) {
  const auto cli = table("sd-cli.options");
  EveryField every;
  sdcpp::SdJobInputs img2img;
  img2img.init_image = "/s/init-image.png";
  img2img.mask = "/s/mask.png";
  auto flags = accepted_flags(
      cli, sdcpp::cli_args(every.task, every.defaults, every.files, img2img, "/s/out.png"));
  sdcpp::SdJobInputs reference;
  reference.ref_image = "/s/reference-image.webp";
  reference.mask = "/s/mask.png";
  sdcpp::SdModelFiles full;
  full.full_model = "/m/sd15.safetensors";
  flags.merge(accepted_flags(
      cli, sdcpp::cli_args(every.task, every.defaults, full, reference, "/s/out.png")));
  // Every flag cli_args has: if it grows one, this list (and the task above) must name it.
  const std::set<std::string> all = {"--diffusion-model",
                                     "--model",
                                     "--vae",
                                     "--llm",
                                     "--llm_vision",
                                     "--lora-model-dir",
                                     "-p",
                                     "--negative-prompt",
                                     "--init-img",
                                     "--strength",
                                     "--mask",
                                     "-r",
                                     "--cfg-scale",
                                     "--steps",
                                     "-W",
                                     "-H",
                                     "-o",
                                     "--seed",
                                     "--sampling-method",
                                     "--flow-shift",
                                     "--qwen-image-zero-cond-t",
                                     "--offload-to-cpu",
                                     "--diffusion-fa"};
  EXPECT_EQ(flags, all);
}

TEST(SdServerArgv, EveryFlagTheMappingEmitsIsOneUpstreamAccepts) {
  const auto server = table("sd-server.options");
  EveryField every;
  const auto args = sdcpp::server_args(every.files, every.defaults);
  auto flags = accepted_flags(server, args);
  sdcpp::SdModelFiles full;
  full.full_model = "/m/sd15.safetensors";
  flags.merge(accepted_flags(server, sdcpp::server_args(full, {})));
  const std::set<std::string> all = {"--listen-ip",
                                     "--listen-port",
                                     "--diffusion-model",
                                     "--model",
                                     "--vae",
                                     "--llm",
                                     "--llm_vision",
                                     "--lora-model-dir",
                                     "--flow-shift",
                                     "--qwen-image-zero-cond-t",
                                     "--offload-to-cpu",
                                     "--diffusion-fa"};
  EXPECT_EQ(flags, all);
  const std::vector<std::string> head(args.begin(), args.begin() + 4);
  EXPECT_EQ(head, (std::vector<std::string>{"--listen-ip", "127.0.0.1", "--listen-port", "{port}"}))
      << "loopback only; the pool fills in the port";
  // Per-job values travel in the request, never in the resident server's argv.
  for (const char* per_job : {"-p", "--seed", "-W", "-H", "--steps", "--cfg-scale", "-o"}) {
    EXPECT_EQ(std::find(args.begin(), args.end(), per_job), args.end()) << per_job;
  }
}

TEST(SdOptionTables, RefuseWhatUpstreamRefuses) {
  // The check itself can fail: a flag upstream never had, a value flag without its value, and the
  // server-only flags on sd-cli.
  const auto cli = table("sd-cli.options");
  EXPECT_EQ(*testing::parse_with_table(cli, {"--diffusion-model", "/m", "--no-such-flag"}).error,
            "error: unknown argument: --no-such-flag");
  EXPECT_EQ(*testing::parse_with_table(cli, {"--steps"}).error,
            "error: invalid parameter for argument: --steps");
  EXPECT_TRUE(testing::parse_with_table(cli, {"--listen-port", "1"}).error);
  EXPECT_TRUE(testing::parse_with_table(table("sd-server.options"), {"-o", "x.png"}).error)
      << "sd-server has no output flag";
}

TEST(SdapiRequest, Txt2imgCarriesEveryTaskField) {
  EveryField every;
  every.task.prompt = "a <lora:style:0.5> fox";
  auto request = sdcpp::sdapi_request(every.task, every.defaults, {"style.safetensors"}, {});
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->path, "/sdapi/v1/txt2img");
  EXPECT_EQ(request->body, json::parse(R"({
    "prompt":"a  fox","negative_prompt":"blur","width":640,"height":384,"steps":6,
    "cfg_scale":2.5,"seed":7,"batch_size":1,"sampler_name":"euler_a",
    "lora":[{"path":"style.safetensors","multiplier":0.5}]})"));
}

TEST(SdapiRequest, DefaultsMatchTheCliPath) {
  proto::ImageParams task;
  task.prompt = "fox";
  task.steps = 20;  // the wire default: unset
  proto::ModelCliDefaults defaults;
  defaults.cfg_scale = 1.0;
  defaults.steps = 8;
  defaults.width = 1024;
  defaults.height = 768;
  defaults.sampling_method = "euler";
  task.width = 0;
  task.height = 0;
  auto request = sdcpp::sdapi_request(task, defaults, {"a/b/style.safetensors"}, {});
  ASSERT_TRUE(request) << request.error().message;
  const json& body = request->body;
  EXPECT_EQ(body["width"], 1024);
  EXPECT_EQ(body["height"], 768);
  EXPECT_EQ(body["steps"], 8);
  EXPECT_EQ(body["cfg_scale"], 1.0);
  EXPECT_EQ(body["sampler_name"], "euler");
  EXPECT_EQ(body["seed"], 42) << "sd-cli's default seed, so both paths give the same image";
  EXPECT_FALSE(body.contains("negative_prompt"));
  EXPECT_EQ(body["lora"], json::parse(R"([{"path":"style.safetensors","multiplier":1.0}])"))
      << "a LoRA no tag names gets weight 1, as the CLI path appends <lora:stem:1>";
  task.sampling_method.reset();
  defaults.sampling_method.reset();
  EXPECT_FALSE(sdcpp::sdapi_request(task, defaults, {}, {})->body.contains("sampler_name"));
}

TEST(SdapiRequest, ImagesChooseTheRouteAndTheMode) {
  EveryField every;
  const media::Bytes init = {0x89, 'P', 'N', 'G', 1, 2, 3};
  const media::Bytes mask = {0x89, 'P', 'N', 'G', 9};
  const media::Bytes ref = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
  sdcpp::SdInputImages img2img;
  img2img.init_image = init;
  img2img.mask = mask;
  auto request = sdcpp::sdapi_request(every.task, every.defaults, {}, img2img);
  ASSERT_TRUE(request);
  EXPECT_EQ(request->path, "/sdapi/v1/img2img");
  EXPECT_EQ(*base64_decode(request->body["init_images"][0].get<std::string>()), init);
  EXPECT_EQ(*base64_decode(request->body["mask"].get<std::string>()), mask);
  EXPECT_EQ(request->body["denoising_strength"], 0.4);
  every.task.denoise.reset();
  EXPECT_EQ(
      sdcpp::sdapi_request(every.task, every.defaults, {}, img2img)->body["denoising_strength"],
      0.75);

  sdcpp::SdInputImages reference;
  reference.ref_image = ref;
  reference.mask = mask;
  request = sdcpp::sdapi_request(every.task, every.defaults, {}, reference);
  ASSERT_TRUE(request);
  EXPECT_EQ(request->path, "/sdapi/v1/img2img") << "the route that reads a mask";
  EXPECT_EQ(*base64_decode(request->body["extra_images"][0].get<std::string>()), ref);
  EXPECT_FALSE(request->body.contains("init_images"));
  EXPECT_FALSE(request->body.contains("denoising_strength")) << "reference mode has no strength";
  EXPECT_TRUE(request->body.contains("mask"));
}

TEST(SdapiRequest, RefusesWhatTheServerCannotTake) {
  EveryField every;
  every.task.seed = 1ull << 63;
  auto big = sdcpp::sdapi_request(every.task, every.defaults, {}, {});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Code::InvalidArgument);
  EXPECT_NE(big.error().message.find("9223372036854775808"), std::string::npos);

  every.task.seed = 1;
  every.task.prompt = "x <lora:missing:1>";
  auto unknown = sdcpp::sdapi_request(every.task, every.defaults, {"style.gguf"}, {});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::InvalidArgument);
  EXPECT_NE(unknown.error().message.find("`missing`"), std::string::npos);
  every.task.prompt = "x <lora:style:heavy>";
  EXPECT_FALSE(sdcpp::sdapi_request(every.task, every.defaults, {"style.gguf"}, {}));
}

TEST(SdapiAnswer, ImageAndErrorsInTheUpstreamShape) {
  const media::Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const json ok = {{"images", {base64_encode(png)}}, {"parameters", json::object()}, {"info", ""}};
  auto image = sdcpp::sdapi_image(ok.dump());
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(*image, png);
  EXPECT_FALSE(sdcpp::sdapi_image(R"({"images":[]})"));
  EXPECT_FALSE(sdcpp::sdapi_image(R"({"images":["not base64!"]})"));
  EXPECT_FALSE(sdcpp::sdapi_image("<html>"));

  const auto refused = sdcpp::sdapi_error(400, R"({"error":"prompt required"})");
  EXPECT_EQ(refused.code, Code::InvalidArgument);
  EXPECT_EQ(refused.message, "sd-server refused the request: prompt required");
  const auto failed = sdcpp::sdapi_error(500, R"({"error":"generate_image returned no results"})");
  EXPECT_EQ(failed.code, Code::Unavailable);
  EXPECT_EQ(failed.message, "sd-server answered 500: generate_image returned no results");
  const auto thrown =
      sdcpp::sdapi_error(500, R"({"error":"server_error","message":"parse error at byte 1"})");
  EXPECT_EQ(thrown.message, "sd-server answered 500: server_error: parse error at byte 1");
}

}  // namespace
}  // namespace sw::engines
