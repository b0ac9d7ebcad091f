// The sd-cpp engine end to end, in CI: real child processes (tests/fakes/fake_sd_cli and
// fake_sd_server, which read their argv with upstream's option tables and answer in upstream's
// shapes), model files through the real cache, input images over loopback HTTP, real PNG/WebP
// decoding of what comes back. No diffusion model fits here; what needs real pixels waits for a
// real sd-cli / sd-server.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/file_io.h"
#include "common/sha256.h"
#include "engines/sdcpp/sd_engine.h"
#include "media/encoders.h"
#include "support/http_test_server.h"
#include "support/media_decoders.h"
#include "support/temp_dir.h"

namespace sw::engines {
namespace {

using nlohmann::json;

media::Bytes png_of(std::uint32_t width, std::uint32_t height, std::uint8_t shade) {
  media::RgbaImage image(width, height);
  std::fill(image.pixels.begin(), image.pixels.end(), shade);
  return *media::encode_png(image);
}

std::string text_of(const media::Bytes& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

std::vector<json> read_json_lines(const std::filesystem::path& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::vector<std::filesystem::path> files_matching(const std::filesystem::path& dir,
                                                  std::string_view prefix,
                                                  std::string_view suffix) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(suffix)) out.push_back(entry.path());
  }
  return out;
}

// The value after `flag` in argv, or "(absent)".
std::string after(const json& argv, const std::string& flag) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "(absent)";
}

bool contains(const json& argv, const std::string& flag) {
  return std::find(argv.begin(), argv.end(), flag) != argv.end();
}

class SdEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "models";
    log_ = dir_.path() / "log";
    scratch_ = dir_.path() / "scratch";
    std::filesystem::create_directories(root_);
    std::filesystem::create_directories(log_);
    std::filesystem::create_directories(dir_.path() / "bin");
    models::CacheConfig config;
    config.root = root_;
    cache_ = std::make_shared<models::ModelCache>(config);
  }

  // A program named like the real one that runs the fake with its record directory set.
  std::filesystem::path wrapper(const std::string& name, const char* fake,
                                const std::string& extra_env = {}) {
    const auto path = dir_.path() / "bin" / name;
    std::ofstream(path) << "#!/bin/sh\nSW_FAKE_SD_LOG='" << log_.string() << "' " << extra_env
                        << " exec '" << fake << "' \"$@\"\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }

  std::unique_ptr<SdCppEngine> cli_engine() {
    SdCppPrograms programs;
    programs.cli = wrapper("sd-cli", SW_FAKE_SD_CLI_BIN);
    return std::make_unique<SdCppEngine>(programs, cache_, nullptr, scratch_);
  }

  std::unique_ptr<SdCppEngine> server_engine(double free_gib = 64.0,
                                             const std::string& server_env = {}) {
    RunnerPoolOptions options;
    options.free_memory_gib = [free_gib] { return std::optional<double>(free_gib); };
    pool_ = std::make_shared<RunnerPool>(options);
    SdCppPrograms programs;
    programs.server = wrapper("sd-server", SW_FAKE_SD_SERVER_BIN, server_env);
    programs.cli = wrapper("sd-cli", SW_FAKE_SD_CLI_BIN);  // present, but resident mode wins
    return std::make_unique<SdCppEngine>(programs, cache_, pool_, scratch_);
  }

  // A model file placed at the top of the cache root (reused by checksum, never downloaded).
  proto::ModelFile place(const std::string& filename, std::string role) {
    const std::string body = "weights of " + filename;
    write_file_atomically(root_ / filename, body, Durability::RenameOnly);
    proto::ModelFile file;
    file.role = std::move(role);
    file.url = "https://models.invalid/" + filename;  // never fetched
    file.filename = filename;
    file.approx_bytes = body.size();
    file.sha256 = sha256_hex(body);
    return file;
  }

  proto::ModelSource every_role() {
    proto::ModelSource source;
    source.engine = "sd-cpp";
    source.files = {
        place("z_image_turbo-Q4_K.gguf", "diffusion-model"), place("ae.safetensors", "vae"),
        place("Qwen3-4B-Instruct-2507-Q4_K_M.gguf", "text-encoder"),
        place("mmproj.gguf", "text-encoder-vision"), place("style.safetensors", "lora")};
    source.cli_defaults.cfg_scale = 1.0;
    source.cli_defaults.steps = 8;
    source.cli_defaults.width = 1024;
    source.cli_defaults.height = 1024;
    source.cli_defaults.sampling_method = "euler";
    source.cli_defaults.flow_shift = 3.0;
    return source;
  }

  DispatchRequest request(proto::ImageParams task, proto::ModelSource source,
                          std::string model = "z-image-turbo") {
    return DispatchRequest{std::move(model), proto::Task{std::move(task)}, std::move(source),
                           "job-sd"};
  }

  static proto::ImageParams small(std::string prompt, std::string ext = "webp") {
    proto::ImageParams task;
    task.prompt = std::move(prompt);
    task.width = 64;
    task.height = 48;
    task.steps = 4;
    task.seed = 1234;
    task.ext = std::move(ext);
    return task;
  }

  bool scratch_is_empty() const {
    return !std::filesystem::exists(scratch_) || std::filesystem::is_empty(scratch_);
  }

  json only_cli_record() {
    auto records = files_matching(log_, "sd-cli-", ".json");
    EXPECT_EQ(records.size(), 1u);
    return records.empty() ? json() : read_json(records.front());
  }

  // Each role of every_role() under its flag: the cached file of that name, present on disk.
  void expect_every_role(const json& argv) const {
    const std::pair<const char*, const char*> roles[] = {
        {"--diffusion-model", "z_image_turbo-Q4_K.gguf"},
        {"--vae", "ae.safetensors"},
        {"--llm", "Qwen3-4B-Instruct-2507-Q4_K_M.gguf"},
        {"--llm_vision", "mmproj.gguf"}};
    for (const auto& [flag, filename] : roles) {
      const std::filesystem::path path = after(argv, flag);
      EXPECT_EQ(path.filename(), filename) << flag;
      EXPECT_TRUE(path.string().starts_with(root_.string())) << path;
      EXPECT_TRUE(std::filesystem::is_regular_file(path)) << path;
    }
    const std::filesystem::path loras = after(argv, "--lora-model-dir");
    EXPECT_TRUE(std::filesystem::is_regular_file(loras / "style.safetensors")) << loras;
    EXPECT_FALSE(contains(argv, "--model")) << "a diffusion model wins over a full checkpoint";
  }

  testing::TempDir dir_;
  std::filesystem::path root_, log_, scratch_;
  std::shared_ptr<models::ModelCache> cache_;
  std::shared_ptr<RunnerPool> pool_;
};

// --- sd-cli, one run per job ---------------------------------------------------------------------

TEST_F(SdEngineTest, CliRunMapsEveryRoleAndReturnsTheAskedWebp) {
  auto engine = cli_engine();
  EXPECT_FALSE(engine->resident());
  auto task = small("a red fox");
  task.negative_prompt = "blur";
  task.sampling_method = "euler_a";
  auto result = engine->dispatch(request(task, every_role()));
  ASSERT_TRUE(result) << result.error().message;
  const auto& image = std::get<ImageResult>(*result);
  EXPECT_EQ(image.ext, "webp");
  auto decoded = testing::decode_webp(image.bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 64u);
  EXPECT_EQ(decoded->height, 48u);

  const json argv = only_cli_record()["argv"];
  expect_every_role(argv);
  EXPECT_EQ(after(argv, "-p"), "a red fox <lora:style:1>");
  EXPECT_EQ(after(argv, "--negative-prompt"), "blur");
  EXPECT_EQ(after(argv, "-W"), "64");
  EXPECT_EQ(after(argv, "-H"), "48");
  EXPECT_EQ(after(argv, "--steps"), "4");
  EXPECT_EQ(after(argv, "--cfg-scale"), "1");
  EXPECT_EQ(after(argv, "--seed"), "1234");
  EXPECT_EQ(after(argv, "--sampling-method"), "euler_a");
  EXPECT_EQ(after(argv, "--flow-shift"), "3");
  EXPECT_TRUE(contains(argv, "--diffusion-fa"));
  EXPECT_FALSE(contains(argv, "--init-img"));
  EXPECT_TRUE(scratch_is_empty()) << "the job's scratch directory is removed";
}

// Deadlines by progress: an sd-cli that falls silent is stopped after cli_stall (a retryable
// Timeout); one that prints its steps for longer than that in total is waited for.
TEST_F(SdEngineTest, ASilentCliRunIsStoppedAsARetryableTimeout) {
  const auto path = dir_.path() / "bin" / "sd-cli-silent";
  std::ofstream(path) << "#!/bin/sh\necho 'loading model'\nexec sleep 600\n";
  ::chmod(path.c_str(), 0755);
  SdCppPrograms programs;
  programs.cli = path;
  programs.cli_stall = std::chrono::milliseconds(300);
  SdCppEngine engine(programs, cache_, nullptr, scratch_);
  auto result = engine.dispatch(request(small("fox"), every_role()));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Timeout) << result.error().describe();
  EXPECT_TRUE(is_retryable(result.error()));
  EXPECT_TRUE(scratch_is_empty());
}

TEST_F(SdEngineTest, ASlowCliRunThatPrintsItsStepsIsWaitedFor) {
  const auto path = dir_.path() / "bin" / "sd-cli-slow";
  std::ofstream(path) << "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do "
                      << "printf '|==>  | %s/15\\r' $i; sleep 0.15; done\n"
                      << "SW_FAKE_SD_LOG='" << log_.string() << "' exec '" << SW_FAKE_SD_CLI_BIN
                      << "' \"$@\"\n";
  ::chmod(path.c_str(), 0755);
  SdCppPrograms programs;
  programs.cli = path;
  programs.cli_stall = std::chrono::milliseconds(1000);
  SdCppEngine engine(programs, cache_, nullptr, scratch_);
  auto result = engine.dispatch(request(small("fox", "png"), every_role()));
  ASSERT_TRUE(result) << result.error().describe();
}

TEST_F(SdEngineTest, CliPngStaysPng) {
  auto engine = cli_engine();
  auto result = engine->dispatch(request(small("fox", "png"), every_role()));
  ASSERT_TRUE(result) << result.error().message;
  const auto& image = std::get<ImageResult>(*result);
  EXPECT_EQ(image.ext, "png");
  auto decoded = testing::decode_png(image.bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 64u);
  EXPECT_EQ(decoded->height, 48u);
}

TEST_F(SdEngineTest, CliFailureIsRetryableWithTheLastLineAndLeavesNoScratch) {
  auto engine = cli_engine();
  auto result = engine->dispatch(
      request(small("fox [[fail:ggml_vulkan: out of device memory]]"), every_role()));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "sd-cli exited with exit code 1: ggml_vulkan: out of device memory");
  EXPECT_TRUE(is_retryable(result.error()));
  EXPECT_TRUE(scratch_is_empty());
}

TEST_F(SdEngineTest, CliOutputOfTheWrongSizeIsCaught) {
  auto engine = cli_engine();
  auto result = engine->dispatch(request(small("fox [[size:32x32]]"), every_role()));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "sd-cli made a 32x32 image; 64x48 was asked");
  // The same task makes the same size on every run: terminal, not run three times (issue 17).
  EXPECT_FALSE(is_retryable(result.error()));
  EXPECT_TRUE(scratch_is_empty());
}

// Issue 17: what only the worker can know fails once. sd-cli's own words for model files it cannot
// load, and for weights that do not fit this machine, make the failure terminal; any other exit
// stays retryable (CliFailureIsRetryableWithTheLastLineAndLeavesNoScratch).
TEST_F(SdEngineTest, CliFailuresThatNoRerunCanFixAreTerminal) {
  auto engine = cli_engine();
  auto rejected = engine->dispatch(request(
      small("fox [[fail:init model loader from file failed: '/models/m.gguf']]"), every_role()));
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, Code::InvalidArgument);
  EXPECT_FALSE(is_retryable(rejected.error()));
  EXPECT_NE(rejected.error().message.find("sd-cli exited with exit code 1: init model loader from "
                                          "file failed"),
            std::string::npos)
      << rejected.error().message;
  EXPECT_NE(rejected.error().message.find("cannot load the model's files"), std::string::npos)
      << rejected.error().message;

  auto too_big = engine->dispatch(
      request(small("fox [[fail:Diffusion model params buffer allocation failed]]"), every_role()));
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, Code::Unsupported);
  EXPECT_FALSE(is_retryable(too_big.error()));
  EXPECT_NE(too_big.error().message.find("does not fit this worker's memory"), std::string::npos)
      << too_big.error().message;
  EXPECT_TRUE(scratch_is_empty());
}

TEST_F(SdEngineTest, CliInitAndMaskAreFetchedOverLoopbackAndNamedByTheirBytes) {
  testing::HttpTestServer http;
  const auto init = png_of(64, 48, 200);
  const auto mask = png_of(64, 48, 255);
  // The names lie; the scratch files are named by what the bytes are.
  http.set_route("/init.jpg", testing::serving(std::make_shared<const std::string>(text_of(init))));
  http.set_route("/mask.webp",
                 testing::serving(std::make_shared<const std::string>(text_of(mask))));
  auto task = small("fox");
  task.init_image_url = http.url("/init.jpg");
  task.mask_url = http.url("/mask.webp");
  task.denoise = 0.3;
  auto result = cli_engine()->dispatch(request(task, every_role()));
  ASSERT_TRUE(result) << result.error().message;
  const json record = only_cli_record();
  const json& argv = record["argv"];
  EXPECT_TRUE(after(argv, "--init-img").ends_with("/init-image.png")) << after(argv, "--init-img");
  EXPECT_TRUE(after(argv, "--mask").ends_with("/mask.png")) << after(argv, "--mask");
  EXPECT_EQ(after(argv, "--strength"), "0.3");
  EXPECT_EQ(record["inputs"]["init"]["sha256"], sha256_hex(text_of(init)));
  EXPECT_EQ(record["inputs"]["mask"]["sha256"], sha256_hex(text_of(mask)));
  EXPECT_EQ(http.request_count("/init.jpg"), 1u);
  EXPECT_EQ(http.request_count("/mask.webp"), 1u);
  EXPECT_TRUE(scratch_is_empty());
}

TEST_F(SdEngineTest, CliReferenceImageWinsOverInitAndANonImageIsRefused) {
  testing::HttpTestServer http;
  const auto ref = png_of(8, 8, 10);
  http.set_route("/ref", testing::serving(std::make_shared<const std::string>(text_of(ref))));
  http.set_route("/init.png", testing::serving(std::make_shared<const std::string>(text_of(ref))));
  http.set_route("/notes.png", testing::serving(std::make_shared<const std::string>("just text")));
  auto task = small("fox");
  task.ref_image_url = http.url("/ref");
  task.init_image_url = http.url("/init.png");
  auto engine = cli_engine();
  auto result = engine->dispatch(request(task, every_role()));
  ASSERT_TRUE(result) << result.error().message;
  const json argv = only_cli_record()["argv"];
  EXPECT_TRUE(after(argv, "-r").ends_with("/reference-image.png"));
  EXPECT_FALSE(contains(argv, "--init-img"));
  EXPECT_FALSE(contains(argv, "--strength"));
  EXPECT_EQ(http.request_count("/init.png"), 0u)
      << "an init image beside a reference is not fetched";

  auto text = small("fox");
  text.init_image_url = http.url("/notes.png");
  auto refused = engine->dispatch(request(text, every_role()));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::InvalidArgument);
  EXPECT_EQ(refused.error().message, "init image is not an image (png, jpg, webp, bmp or gif)");
  EXPECT_TRUE(scratch_is_empty());
}

TEST_F(SdEngineTest, AModelWithoutABaseFileIsRefusedByName) {
  proto::ModelSource source;
  source.engine = "sd-cpp";
  source.files = {place("ae.safetensors", "vae")};
  auto result = cli_engine()->dispatch(request(small("fox"), source));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::InvalidArgument);
  EXPECT_EQ(result.error().message,
            "model `z-image-turbo` lists no file of role `diffusion-model` or `model` for sd-cpp");
}

// --- sd-server, resident per model
// -----------------------------------------------------------------

TEST_F(SdEngineTest, ServerStartsWithUpstreamArgvAndTheSecondJobReusesIt) {
  auto engine = server_engine();
  EXPECT_TRUE(engine->resident());
  auto first = engine->dispatch(request(small("a red fox"), every_role()));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(pool_->status().size(), 1u);
  const auto runner = pool_->status()[0];
  EXPECT_EQ(runner.program, "sd-server");

  const json argv = read_json(log_ / fmt::format("sd-server-{}.argv.json", runner.pid))["argv"];
  EXPECT_EQ(after(argv, "--listen-ip"), "127.0.0.1");
  EXPECT_EQ(after(argv, "--listen-port"), std::to_string(runner.port));
  expect_every_role(argv);
  EXPECT_EQ(after(argv, "--flow-shift"), "3");
  EXPECT_TRUE(contains(argv, "--diffusion-fa"));
  EXPECT_FALSE(contains(argv, "-p")) << "per-job values go in the request";

  auto second = engine->dispatch(request(small("a blue fox", "png"), every_role()));
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_EQ(pool_->status()[0].pid, runner.pid) << "the second job must not reload the model";
  EXPECT_EQ(pool_->status()[0].starts, 1);
  EXPECT_EQ(files_matching(log_, "sd-server-", ".argv.json").size(), 1u) << "one sd-server started";
  EXPECT_TRUE(files_matching(log_, "sd-cli-", ".json").empty()) << "no sd-cli run in resident mode";

  std::vector<std::string> generations;
  for (const json& line :
       read_json_lines(log_ / fmt::format("sd-server-{}.requests.jsonl", runner.pid))) {
    if (line["method"] == "POST") generations.push_back(line["body"]["prompt"]);
  }
  EXPECT_EQ(generations, (std::vector<std::string>{"a red fox", "a blue fox"}));

  auto decoded = testing::decode_png(std::get<ImageResult>(*second).bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 64u);
  EXPECT_EQ(decoded->height, 48u);
  auto webp = testing::decode_webp(std::get<ImageResult>(*first).bytes);
  ASSERT_TRUE(webp) << webp.error().message;
  EXPECT_EQ(webp->width, 64u);
}

TEST_F(SdEngineTest, ServerRequestCarriesEveryTaskField) {
  testing::HttpTestServer http;
  const auto init = png_of(64, 48, 120);
  const auto mask = png_of(64, 48, 255);
  http.set_route("/init", testing::serving(std::make_shared<const std::string>(text_of(init))));
  http.set_route("/mask", testing::serving(std::make_shared<const std::string>(text_of(mask))));
  auto task = small("a <lora:style:0.6> fox");
  task.negative_prompt = "blur";
  task.sampling_method = "euler_a";
  task.cfg_scale = 3.5;
  task.init_image_url = http.url("/init");
  task.mask_url = http.url("/mask");
  task.denoise = 0.45;
  auto engine = server_engine();
  auto result = engine->dispatch(request(task, every_role()));
  ASSERT_TRUE(result) << result.error().message;

  const auto lines =
      read_json_lines(log_ / fmt::format("sd-server-{}.requests.jsonl", pool_->status()[0].pid));
  std::vector<std::string> calls;
  json body;
  for (const json& line : lines) {
    calls.push_back(line["method"].get<std::string>() + " " + line["path"].get<std::string>());
    if (line["method"] == "POST") body = line["body"];
  }
  // Health probes first, then the sampler and LoRA lists, then the generation.
  ASSERT_GE(calls.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(calls.end() - 3, calls.end()),
            (std::vector<std::string>{"GET /sdapi/v1/samplers", "GET /sdapi/v1/loras",
                                      "POST /sdapi/v1/img2img"}));
  EXPECT_EQ(body["prompt"], "a  fox") << "the server ignores <lora:> tags: they go in `lora`";
  EXPECT_EQ(body["lora"], json::parse(R"([{"path":"style.safetensors","multiplier":0.6}])"));
  EXPECT_EQ(body["negative_prompt"], "blur");
  EXPECT_EQ(body["width"], 64);
  EXPECT_EQ(body["height"], 48);
  EXPECT_EQ(body["steps"], 4);
  EXPECT_EQ(body["cfg_scale"], 3.5);
  EXPECT_EQ(body["seed"], 1234);
  EXPECT_EQ(body["sampler_name"], "euler_a");
  EXPECT_EQ(body["denoising_strength"], 0.45);
  EXPECT_EQ(*base64_decode(body["init_images"][0].get<std::string>()), init);
  EXPECT_EQ(*base64_decode(body["mask"].get<std::string>()), mask);
  EXPECT_TRUE(scratch_is_empty());
}

TEST_F(SdEngineTest, AKilledServerIsStartedAgain) {
  auto engine = server_engine();
  ASSERT_TRUE(engine->dispatch(request(small("fox"), every_role())));
  const int pid = pool_->status()[0].pid;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto again = engine->dispatch(request(small("fox again"), every_role()));
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_NE(pool_->status()[0].pid, pid);
  EXPECT_EQ(pool_->status()[0].starts, 2);
  EXPECT_EQ(files_matching(log_, "sd-server-", ".argv.json").size(), 2u);
}

TEST_F(SdEngineTest, ServerFailuresKeepTheirMeaningAndTheServerStays) {
  auto engine = server_engine();
  auto failed = engine->dispatch(request(small("fox [[fail:cuda error]]"), every_role()));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message, "sd-server answered 500: generate_image returned no results");
  EXPECT_TRUE(is_retryable(failed.error()));
  const int pid = pool_->status()[0].pid;

  auto task = small("fox");
  task.sampling_method = "dpm++ 9000";
  auto sampler = engine->dispatch(request(task, every_role()));
  ASSERT_FALSE(sampler);
  EXPECT_EQ(sampler.error().code, Code::InvalidArgument);
  EXPECT_EQ(sampler.error().message, "sampling method `dpm++ 9000` is not one sd-server knows");

  auto wrong = engine->dispatch(request(small("fox [[size:16x16]]"), every_role()));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message, "sd-server made a 16x16 image; 64x48 was asked");

  auto tag = small("fox <lora:nowhere:1>");
  auto unknown = engine->dispatch(request(tag, every_role()));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::InvalidArgument);

  ASSERT_EQ(pool_->status().size(), 1u);
  EXPECT_EQ(pool_->status()[0].pid, pid)
      << "a refused or failed job does not cost the loaded model";
}

TEST_F(SdEngineTest, ServerRunnerIsAdmittedAgainstFreeMemory) {
  auto engine = server_engine(0.5);  // less than the 1 GiB reserve
  const auto source = every_role();
  auto refusal = engine->admission_refusal(request(small("fox"), source), 0.1);
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->find("insufficient memory"), std::string::npos) << *refusal;
  auto result = engine->dispatch(request(small("fox"), source));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unavailable);
  EXPECT_NE(result.error().message.find("insufficient memory"), std::string::npos);
  EXPECT_TRUE(pool_->status().empty());
  EXPECT_TRUE(files_matching(log_, "sd-server-", ".argv.json").empty()) << "nothing was started";
}

TEST_F(SdEngineTest, AServerThatCannotLoadTheModelSaysWhy) {
  auto engine = server_engine(64.0, "SW_FAKE_SD_FAIL_START='ggml_vulkan: no device found'");
  auto result = engine->dispatch(request(small("fox"), every_role()));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unavailable);
  EXPECT_NE(result.error().message.find("sd-server exited while starting (exit code 1)"),
            std::string::npos)
      << result.error().message;
  EXPECT_NE(result.error().message.find("ggml_vulkan: no device found"), std::string::npos)
      << result.error().message;
  EXPECT_TRUE(is_retryable(result.error()));
  EXPECT_TRUE(pool_->status().empty());
}

TEST_F(SdEngineTest, AServerThatCannotReadTheModelFilesFailsOnce) {
  auto engine = server_engine(
      64.0, "SW_FAKE_SD_FAIL_START=\"get sd version from file failed: '/models/m.gguf'\"");
  auto result = engine->dispatch(request(small("fox"), every_role()));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::InvalidArgument) << result.error().message;
  EXPECT_FALSE(is_retryable(result.error()));
  EXPECT_NE(result.error().message.find("get sd version from file failed"), std::string::npos)
      << result.error().message;
}

TEST_F(SdEngineTest, DifferentPerModelSwitchesAreDifferentServers) {
  auto engine = server_engine();
  auto plain = every_role();
  ASSERT_TRUE(engine->dispatch(request(small("fox"), plain)));
  auto offload = plain;
  offload.cli_defaults.offload_to_cpu = true;
  ASSERT_TRUE(engine->dispatch(request(small("fox"), offload)));
  ASSERT_EQ(pool_->status().size(), 2u);
  int with_offload = 0;
  for (const auto& path : files_matching(log_, "sd-server-", ".argv.json")) {
    if (contains(read_json(path)["argv"], "--offload-to-cpu")) ++with_offload;
  }
  EXPECT_EQ(with_offload, 1);
}

}  // namespace
}  // namespace sw::engines
