// A stand-in for stable-diffusion.cpp's sd-server (tests only; no diffusion model fits CI),
// implementing what the worker uses exactly as the upstream source defines it at commit
// 2d40a8b2adcdf8b5b0ca0535f3bb7801b6ba13e5 (release master-669-2d40a8b):
//
//  argv (examples/server/main.cpp, runtime.cpp): the server table plus the CLI's context and
//    generation tables, parsed with upstream's rules (support/sd_option_table.h; an unknown flag is
//    refused and the program exits 1); a model flag is required; the model is "loaded" (files must
//    exist, else "new_sd_ctx_t failed", exit 1) BEFORE the port is bound, so the first answer means
//    ready. --listen-ip (default 127.0.0.1), --listen-port (default 1234).
//  routes (routes_index.cpp, routes_openai.cpp, routes_sdapi.cpp):
//    GET  /                          "Stable Diffusion Server is running" (text/html)
//    GET  /v1/models {"data":[{"id":"sd-cpp-local","object":"model","owned_by":"local"}]} POST
//    /sdapi/v1/txt2img|img2img  reads prompt, negative_prompt, width, height, steps, cfg_scale,
//                                    seed, batch_size, sampler_name, lora[{path,multiplier}],
//                                    extra_images; img2img also init_images[0], mask,
//                                    denoising_strength. 200 {"images":[<base64 PNG>…],
//                                    "parameters":<request>,"info":""}; 400 {"error":"empty body"|
//                                    "prompt required"|"width and height must be positive"|
//                                    "lora.path required"|"invalid lora path: P"|"invalid params"};
//                                    500 {"error":"generate_image returned no results"}; a body
//                                    that is not JSON: 500 {"error":"server_error","message":…}.
//                                    An unknown sampler_name is ignored (the default is used), as
//                                    upstream does; an image that does not decode is ignored too.
//    GET  /sdapi/v1/loras            rescans --lora-model-dir (.gguf .pt .pth .safetensors,
//                                    recursively) into the list lora paths resolve against; before
//                                    the first call that list is empty, as upstream's is.
//    GET  /sdapi/v1/samplers         [{"name","aliases":[name],"options":{}}] for "default" and
//    each
//                                    sampling method name of src/stable-diffusion.cpp.
//    GET  /sdapi/v1/options          {"samples_format":"png","sd_model_checkpoint":<model stem>}
//  anything else: 404 with an empty body (cpp-httplib's answer).
// The generated image is a real PNG of the resolved size (the request's width/height, else the init
// image's, else 512). Test-only markers and the record it writes: fake_sd_common.h; the record is
// DIR/sd-server-<pid>.argv.json and one line per request in DIR/sd-server-<pid>.requests.jsonl
// ({"method","path","body":<JSON or the raw text>}).

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include "common/base64.h"
#include "fakes/fake_sd_common.h"
#include "media/decoders.h"
#include "net/http_server.h"

namespace {

using nlohmann::json;
namespace net = sw::net;

// src/stable-diffusion.cpp sample_method_to_str[] at the pinned commit.
const char* const kSamplers[] = {
    "euler",         "euler_a", "heun",    "dpm2",         "dpm++2s_a",      "dpm++2m",
    "dpm++2mv2",     "ipndm",   "ipndm_v", "lcm",          "ddim_trailing",  "tcd",
    "res_multistep", "res_2s",  "er_sde",  "euler_cfg_pp", "euler_a_cfg_pp", "euler_ge"};

struct LoraEntry {
  std::string name;
  std::string path;  // relative to the lora dir, '/'-separated
  std::string fullpath;
};

// The image a base64 (or data URL) field decodes to, when it does (upstream: decode_base64_image).
std::optional<sw::media::Bytes> decode_image_field(std::string text) {
  if (auto comma = text.find(','); comma != std::string::npos) text = text.substr(comma + 1);
  auto bytes = sw::base64_decode(text);
  if (!bytes || bytes->empty() || !sw::fakes::looks_like_image(*bytes)) return std::nullopt;
  return *bytes;
}

class FakeSdServer final : public net::HttpHandler {
 public:
  FakeSdServer(std::string model_path, std::string lora_dir, int default_steps, float default_cfg)
      : model_path_(std::move(model_path)),
        lora_dir_(std::move(lora_dir)),
        default_steps_(default_steps),
        default_cfg_(default_cfg) {}

  std::variant<net::Admission, net::HttpResponse> admit(const net::HttpRequest&) override {
    return net::Admission{256ull << 20};
  }
  std::variant<net::UpgradeAccepted, net::HttpResponse> upgrade(const net::HttpRequest&) override {
    return net::HttpResponse::text(404, "");
  }

  void handle(net::HttpRequest request, net::Responder responder) override {
    json logged_body = json::parse(request.body, nullptr, false);
    if (logged_body.is_discarded()) logged_body = request.body;
    sw::fakes::append_line(
        requests_log_, {{"method", request.method}, {"path", request.path}, {"body", logged_body}});
    responder.send(route(request));
  }

  std::string requests_log_;

 private:
  net::HttpResponse route(const net::HttpRequest& request) {
    const bool get = request.method == "GET";
    const bool post = request.method == "POST";
    if (get && request.path == "/") {
      return net::HttpResponse::text(200, "Stable Diffusion Server is running", "text/html");
    }
    if (get && request.path == "/v1/models") {
      return net::HttpResponse::json(
          200, R"({"data":[{"id":"sd-cpp-local","object":"model","owned_by":"local"}]})");
    }
    if (post && (request.path == "/sdapi/v1/txt2img" || request.path == "/sdapi/v1/img2img")) {
      return any2img(request.body, request.path == "/sdapi/v1/img2img");
    }
    if (get && request.path == "/sdapi/v1/loras") {
      refresh_loras();
      json out = json::array();
      for (const auto& entry : loras_) out.push_back({{"name", entry.name}, {"path", entry.path}});
      return net::HttpResponse::json(200, out.dump());
    }
    if (get && request.path == "/sdapi/v1/samplers") {
      json out = json::array();
      out.push_back({{"name", "default"}, {"aliases", {"default"}}, {"options", json::object()}});
      for (const char* name : kSamplers) {
        out.push_back({{"name", name}, {"aliases", {name}}, {"options", json::object()}});
      }
      return net::HttpResponse::json(200, out.dump());
    }
    if (get && request.path == "/sdapi/v1/options") {
      json out = {{"samples_format", "png"},
                  {"sd_model_checkpoint", std::filesystem::path(model_path_).stem().string()}};
      return net::HttpResponse::json(200, out.dump());
    }
    return net::HttpResponse::text(404, "");
  }

  static net::HttpResponse error(int status, const std::string& message) {
    return net::HttpResponse::json(status, json({{"error", message}}).dump());
  }

  void refresh_loras() {
    loras_.clear();
    std::error_code ec;
    if (lora_dir_.empty() || !std::filesystem::is_directory(lora_dir_, ec)) return;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(lora_dir_, ec)) {
      if (!entry.is_regular_file()) continue;
      std::string ext = entry.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
      if (ext != ".gguf" && ext != ".pt" && ext != ".pth" && ext != ".safetensors") continue;
      loras_.push_back({entry.path().stem().string(),
                        entry.path().lexically_relative(lora_dir_).generic_string(),
                        entry.path().string()});
    }
    std::sort(loras_.begin(), loras_.end(),
              [](const LoraEntry& a, const LoraEntry& b) { return a.path < b.path; });
  }

  net::HttpResponse any2img(const std::string& body, bool img2img) {
    if (body.empty()) return error(400, "empty body");
    json j;
    try {
      j = json::parse(body);
    } catch (const std::exception& e) {
      return net::HttpResponse::json(
          500, json({{"error", "server_error"}, {"message", e.what()}}).dump());
    }
    try {
      const std::string prompt = j.value("prompt", "");
      if (j.value("width", 512) <= 0 || j.value("height", 512) <= 0) {
        return error(400, "width and height must be positive");
      }
      if (prompt.empty()) return error(400, "prompt required");
      int width = j.value("width", -1);
      int height = j.value("height", -1);
      const int steps = j.value("steps", default_steps_);
      const float cfg = j.value("cfg_scale", default_cfg_);
      std::int64_t seed = j.value("seed", std::int64_t{-1});
      const int batch = j.value("batch_size", 1);
      if (j.contains("lora") && j["lora"].is_array()) {
        for (const auto& item : j["lora"]) {
          if (!item.is_object()) continue;
          const std::string path = item.value("path", "");
          if (path.empty()) return error(400, "lora.path required");
          const bool known = std::any_of(loras_.begin(), loras_.end(),
                                         [&](const LoraEntry& e) { return e.path == path; });
          if (!known) return error(400, "invalid lora path: " + path);
        }
      }
      if (img2img && j.contains("init_images") && j["init_images"].is_array() &&
          !j["init_images"].empty()) {
        if (auto image = decode_image_field(j["init_images"][0].get<std::string>())) {
          if (!(width > 0 && height > 0)) {
            if (auto png = sw::media::decode_png(*image)) {
              width = static_cast<int>(png->width);
              height = static_cast<int>(png->height);
            }
          }
        }
      }
      // resolve_and_validate: steps > 0, cfg >= 0, batch > 0, strength in [0, 1] (clamped above).
      if (steps <= 0 || cfg < 0 || batch <= 0) return error(400, "invalid params");
      if (seed < 0) seed = static_cast<std::int64_t>(std::random_device{}() & 0x7fffffff);

      if (sw::fakes::marker(prompt, "crash")) {
        std::fprintf(stderr, "fake-sd-server: crashing mid-request (as asked)\n");
        std::fflush(stderr);
        ::kill(::getpid(), SIGKILL);
      }
      if (auto message = sw::fakes::marker(prompt, "fail")) {
        std::fprintf(stderr, "%s\n", message->c_str());
        return error(500, "generate_image returned no results");
      }
      if (auto forced = sw::fakes::size_override(prompt)) std::tie(width, height) = *forced;
      width = width > 0 ? width : 512;
      height = height > 0 ? height : 512;
      json out;
      out["images"] = json::array();
      for (int i = 0; i < batch; ++i) {
        out["images"].push_back(sw::base64_encode(sw::fakes::picture_png(width, height, seed + i)));
      }
      out["parameters"] = j;
      out["info"] = "";
      std::fprintf(stderr, "fake-sd-server: generated %d image(s) %dx%d\n", batch, width, height);
      return net::HttpResponse::json(200, out.dump());
    } catch (const std::exception& e) {
      return net::HttpResponse::json(
          500, json({{"error", "server_error"}, {"message", e.what()}}).dump());
    }
  }

  std::string model_path_;
  std::string lora_dir_;
  int default_steps_;
  float default_cfg_;
  std::vector<LoraEntry> loras_;  // empty until GET /sdapi/v1/loras, as upstream
};

}  // namespace

int main(int argc, char** argv) {
  using namespace sw::fakes;
  const auto table = load_table_or_exit("sd-server.options");
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto parsed = sw::testing::parse_with_table(table, args);
  if (parsed.error) {
    std::fprintf(stderr, "%s\n", parsed.error->c_str());
    return 1;
  }
  record("sd-server-" + std::to_string(::getpid()) + ".argv.json", {{"argv", args}});
  if (auto problem = sw::testing::check_model_files(parsed, "fake-sd-server")) {
    std::fprintf(stderr, "%s\n", problem->c_str());
    return 1;
  }
  if (const char* refuse = std::getenv("SW_FAKE_SD_FAIL_START"); refuse != nullptr) {
    std::fprintf(stderr, "%s\nnew_sd_ctx_t failed\n", refuse);
    return 1;
  }
  if (const char* load = std::getenv("SW_FAKE_SD_LOAD_MS"); load != nullptr) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(load)));
  }
  const std::string ip = parsed.value({"-l", "--listen-ip"}).value_or("127.0.0.1");
  const int port = std::stoi(parsed.value({"--listen-port"}).value_or("1234"));
  // check_model_files made sure one of the two is there.
  const auto model = parsed.value({"-m", "--model"});
  FakeSdServer server(model ? *model : *parsed.value({"--diffusion-model"}), parsed.value({"--lora-model-dir"}).value_or(""),
                      std::stoi(parsed.value({"--steps"}).value_or("20")),
                      std::stof(parsed.value({"--cfg-scale"}).value_or("7.0")));
  server.requests_log_ = "sd-server-" + std::to_string(::getpid()) + ".requests.jsonl";

  boost::asio::io_context io;
  net::ServerOptions options;
  options.host = ip;
  options.port = static_cast<std::uint16_t>(port);
  auto http = net::HttpServer::start(io.get_executor(), options, server);
  if (!http) {
    std::fprintf(stderr, "fake-sd-server: %s\n", http.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "[INFO ] listening on: http://%s:%d\n", ip.c_str(), port);
  io.run();
  return 0;
}
