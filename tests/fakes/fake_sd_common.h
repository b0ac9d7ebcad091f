#pragma once
// Pieces shared by the fake sd-cli and sd-server (tests only): the option table, the picture they
// "generate", the test-only prompt markers, and the record they leave for tests.
//
// Test-only behaviour, asked for through the prompt (upstream has none of this):
//   [[fail:MESSAGE]]  the generation fails (sd-cli: prints MESSAGE last and exits 1; sd-server:
//                     answers 500 {"error":"generate_image returned no results"} and logs MESSAGE)
//   [[size:WxH]]      the image comes out W×H whatever was asked (to prove the size check)
//   [[crash]]         sd-server dies (SIGKILL to itself) in the middle of the request
// and through the environment (a wrapper script sets it):
//   SW_FAKE_SD_LOG=DIR      write what the program received under DIR (argv, inputs, requests)
//   SW_FAKE_SD_LOAD_MS=N    sd-server "loads the model" for N ms before binding its port
//   SW_FAKE_SD_FAIL_START=M sd-server cannot load the model: prints M, "new_sd_ctx_t failed", exits
//   1

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "common/sha256.h"
#include "media/encoders.h"
#include "support/sd_option_table.h"

namespace sw::fakes {

inline std::optional<std::string> marker(const std::string& prompt, const std::string& name) {
  const std::regex pattern("\\[\\[" + name + "(?::([^\\]]*))?\\]\\]");
  std::smatch match;
  if (!std::regex_search(prompt, match, pattern)) return std::nullopt;
  return match[1].str();
}

// W×H from "[[size:WxH]]", if the prompt asks for a wrong size.
inline std::optional<std::pair<int, int>> size_override(const std::string& prompt) {
  auto text = marker(prompt, "size");
  if (!text) return std::nullopt;
  int w = 0, h = 0;
  if (std::sscanf(text->c_str(), "%dx%d", &w, &h) != 2) return std::nullopt;
  return std::make_pair(w, h);
}

// A picture that differs by seed: a gradient tinted by the seed's low bytes.
inline media::Bytes picture_png(int width, int height, std::int64_t seed) {
  media::RgbaImage image(static_cast<std::uint32_t>(width), static_cast<std::uint32_t>(height));
  const auto tint = static_cast<std::uint64_t>(seed);
  for (std::uint32_t y = 0; y < image.height; ++y) {
    std::uint8_t* row = image.row(y);
    for (std::uint32_t x = 0; x < image.width; ++x) {
      row[x * 4 + 0] = static_cast<std::uint8_t>((x * 255) / std::max(1u, image.width));
      row[x * 4 + 1] = static_cast<std::uint8_t>((y * 255) / std::max(1u, image.height));
      row[x * 4 + 2] = static_cast<std::uint8_t>(tint & 0xff);
      row[x * 4 + 3] = 255;
    }
  }
  auto png = media::encode_png(image);
  return png ? *png : media::Bytes{};
}

// What stb_image would accept, by magic number (the fakes never trust a name).
inline bool looks_like_image(const std::vector<std::uint8_t>& bytes) {
  auto starts = [&](std::string_view magic) {
    return bytes.size() >= magic.size() &&
           std::equal(magic.begin(), magic.end(), bytes.begin(),
                      [](char a, std::uint8_t b) { return static_cast<std::uint8_t>(a) == b; });
  };
  return starts("\x89PNG\r\n\x1a\n") || starts("\xff\xd8\xff") || starts("GIF8") || starts("BM") ||
         (bytes.size() >= 12 && starts("RIFF") && bytes[8] == 'W' && bytes[9] == 'E' &&
          bytes[10] == 'B' && bytes[11] == 'P');
}

inline std::optional<std::filesystem::path> log_dir() {
  const char* dir = std::getenv("SW_FAKE_SD_LOG");
  if (dir == nullptr || *dir == '\0') return std::nullopt;
  return std::filesystem::path(dir);
}

// Writes `json` to DIR/NAME whole (tmp + rename, so a reader never sees half a file).
inline void record(const std::string& name, const nlohmann::json& json) {
  auto dir = log_dir();
  if (!dir) return;
  const auto path = *dir / name;
  const auto tmp = *dir / (name + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path);
}

// Appends one JSON line to DIR/NAME.
inline void append_line(const std::string& name, const nlohmann::json& json) {
  auto dir = log_dir();
  if (!dir) return;
  std::ofstream out(*dir / name, std::ios::app);
  out << json.dump() << "\n";
}

inline sw::testing::OptionTable load_table_or_exit(const char* file) {
  std::string error;
  auto table = sw::testing::load_option_table(sw::testing::sdcpp_options_dir() / file, &error);
  if (!table) {
    std::fprintf(stderr, "fake: %s\n", error.c_str());
    std::exit(2);
  }
  return *table;
}

}  // namespace sw::fakes
