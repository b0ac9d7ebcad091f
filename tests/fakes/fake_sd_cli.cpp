// A stand-in for stable-diffusion.cpp's sd-cli (tests only; no diffusion model fits CI). It reads
// its argv with upstream's option table and rules (support/sd_option_table.h: an unknown flag is
// refused as upstream refuses it), checks what upstream checks before generating (a model flag;
// model files that load; input images that load), and writes a real PNG of the asked -W × -H to -o,
// as `sd-cli` does in img_gen mode (examples/cli/main.cpp at the pinned commit, see the fixture).
//
// Upstream's words on failure, which the worker passes on: "error: unknown argument: X",
// "error: the following arguments are required: model_path/diffusion_model", "new_sd_ctx_t failed",
// "load image from 'PATH' failed"; all exit 1. Test-only markers: fake_sd_common.h.
// With SW_FAKE_SD_LOG set it writes DIR/sd-cli-<pid>.json: {"argv":[…], "inputs":{"init"|"mask"|
// "ref":{path, bytes, sha256}}} before generating, so a test can check what it was given even after
// the worker removed the scratch directory.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "fakes/fake_sd_common.h"

namespace {

std::optional<std::vector<std::uint8_t>> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sw::fakes;
  const auto table = load_table_or_exit("sd-cli.options");
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto parsed = sw::testing::parse_with_table(table, args);
  std::fprintf(stdout, "fake-sd-cli: %zu arguments\n", args.size());
  std::fflush(stdout);
  if (parsed.error) {
    std::fprintf(stderr, "%s\n", parsed.error->c_str());
    return 1;
  }
  nlohmann::json log = {{"argv", args}, {"inputs", nlohmann::json::object()}};
  if (auto problem = sw::testing::check_model_files(parsed, "fake-sd-cli")) {
    std::fprintf(stderr, "%s\n", problem->c_str());
    return 1;
  }
  struct ImageFlag {
    const char* key;
    std::string_view short_name;
    std::string_view long_name;
  };
  const ImageFlag images[] = {
      {"init", "-i", "--init-img"}, {"mask", "--mask", "--mask"}, {"ref", "-r", "--ref-image"}};
  for (const ImageFlag& flag : images) {
    const char* key = flag.key;
    auto path = parsed.value({flag.short_name, flag.long_name});
    if (!path) continue;
    auto bytes = read_all(*path);
    if (!bytes || !looks_like_image(*bytes)) {
      std::fprintf(stderr, "load image from '%s' failed\n", path->c_str());
      return 1;
    }
    log["inputs"][key] = {
        {"path", *path},
        {"bytes", bytes->size()},
        {"sha256", sw::sha256_hex(std::string_view(reinterpret_cast<const char*>(bytes->data()),
                                                   bytes->size()))}};
  }
  record("sd-cli-" + std::to_string(::getpid()) + ".json", log);

  const std::string prompt = parsed.value({"-p", "--prompt"}).value_or("");
  if (auto message = marker(prompt, "fail")) {
    std::fprintf(stdout, "[INFO ] sampling using euler method\n");
    std::fflush(stdout);  // one pipe for both streams: keep the order they were written in
    std::fprintf(stderr, "%s\n", message->c_str());
    return 1;
  }
  int width = std::stoi(parsed.value({"-W", "--width"}).value_or("512"));
  int height = std::stoi(parsed.value({"-H", "--height"}).value_or("512"));
  if (auto forced = size_override(prompt)) std::tie(width, height) = *forced;
  const std::int64_t seed = std::stoll(parsed.value({"-s", "--seed"}).value_or("42"));
  const auto png = picture_png(width, height, seed);
  const std::string output = parsed.value({"-o", "--output"}).value_or("./output.png");
  std::ofstream out(output, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  if (!out) {
    std::fprintf(stderr, "save result image to '%s' failed\n", output.c_str());
    return 1;
  }
  std::fprintf(stdout, "save result image 0 to '%s' (success)\n", output.c_str());
  return 0;
}
