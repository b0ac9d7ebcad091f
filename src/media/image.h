#pragma once
// Pixel buffers handed to the encoders.

#include <cstdint>
#include <vector>

namespace sw::media {

// Tightly packed 8-bit RGBA, row-major, no padding. A value type; not synchronised.
struct RgbaImage {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::uint8_t> pixels;  // width * height * 4

  RgbaImage() = default;
  RgbaImage(std::uint32_t w, std::uint32_t h)
      : width(w), height(h), pixels(static_cast<std::size_t>(w) * h * 4, 0) {}
  std::uint8_t* row(std::uint32_t y) {
    return pixels.data() + static_cast<std::size_t>(y) * width * 4;
  }
  const std::uint8_t* row(std::uint32_t y) const {
    return pixels.data() + static_cast<std::size_t>(y) * width * 4;
  }
};

using Bytes = std::vector<std::uint8_t>;

}  // namespace sw::media
