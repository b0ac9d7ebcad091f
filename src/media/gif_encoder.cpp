#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "media/codec_libraries.h"
#include "media/encoders.h"

namespace sw::media {
namespace {

// 6 levels of red, 7 of green (the eye is most sensitive to it), 6 of blue: 252 colours.
constexpr int kRedLevels = 6;
constexpr int kGreenLevels = 7;
constexpr int kBlueLevels = 6;

// 4x4 Bayer matrix, values 0..15: ordered dithering keeps gradients smooth and is deterministic.
constexpr std::array<std::array<int, 4>, 4> kBayer{{
    {0, 8, 2, 10},
    {12, 4, 14, 6},
    {3, 11, 1, 9},
    {15, 7, 13, 5},
}};

int quantise(int value, int levels, int threshold) {
  // Map 0..255 to 0..levels-1 with a dither offset in [-0.5, 0.5) of one step.
  const double step = 255.0 / (levels - 1);
  double scaled = value / step + (threshold + 0.5) / 16.0 - 0.5;
  return std::clamp(static_cast<int>(scaled + 0.5), 0, levels - 1);
}

int write_bytes(GifFileType* gif, const GifByteType* data, int length) {
  auto* out = static_cast<Bytes*>(gif->UserData);
  out->insert(out->end(), data, data + length);
  return length;
}

struct GifCloser {
  const GifApi* api;
  void operator()(GifFileType* gif) const {
    int error = 0;
    api->EGifCloseFile(gif, &error);
  }
};

std::string gif_error(const GifApi* api, int code) {
  const char* text = api->GifErrorString(code);
  return text != nullptr ? text : "unknown giflib error";
}

}  // namespace

Result<Bytes> encode_animated_gif(std::span<const RgbaImage> frames, std::uint32_t fps) {
  if (frames.empty()) return fail(Error::invalid_argument("gif: an animation needs frames"));
  if (fps == 0) return fail(Error::invalid_argument("gif: fps must be at least 1"));
  const std::uint32_t width = frames.front().width;
  const std::uint32_t height = frames.front().height;
  if (width == 0 || height == 0 || width > 65535 || height > 65535) {
    return fail(Error::invalid_argument("gif: {}x{} is not a valid GIF size", width, height));
  }
  for (const RgbaImage& frame : frames) {
    if (frame.width != width || frame.height != height ||
        frame.pixels.size() != static_cast<std::size_t>(width) * height * 4) {
      return fail(Error::invalid_argument("gif: every frame must be {}x{} RGBA", width, height));
    }
  }

  auto loaded = gif_api();
  if (!loaded) return fail(loaded.error());
  const GifApi* api = *loaded;

  std::array<GifColorType, 256> colours{};
  int index = 0;
  for (int r = 0; r < kRedLevels; ++r) {
    for (int g = 0; g < kGreenLevels; ++g) {
      for (int b = 0; b < kBlueLevels; ++b) {
        colours[index].Red = static_cast<GifByteType>(r * 255 / (kRedLevels - 1));
        colours[index].Green = static_cast<GifByteType>(g * 255 / (kGreenLevels - 1));
        colours[index].Blue = static_cast<GifByteType>(b * 255 / (kBlueLevels - 1));
        ++index;
      }
    }
  }
  std::unique_ptr<ColorMapObject, decltype(api->GifFreeMapObject)> palette(
      api->GifMakeMapObject(256, colours.data()), api->GifFreeMapObject);
  if (!palette) return fail(Error::internal("gif: GifMakeMapObject failed"));

  Bytes out;
  int error = 0;
  std::unique_ptr<GifFileType, GifCloser> gif(api->EGifOpen(&out, write_bytes, &error),
                                              GifCloser{api});
  if (!gif) return fail(Error::internal("gif: EGifOpen failed: {}", gif_error(api, error)));
  api->EGifSetGifVersion(gif.get(), true);  // GIF89a: needed for delays and looping

  if (api->EGifPutScreenDesc(gif.get(), static_cast<int>(width), static_cast<int>(height), 8, 0,
                             palette.get()) == GIF_ERROR) {
    return fail(Error::internal("gif: writing the screen descriptor failed: {}",
                                gif_error(api, gif->Error)));
  }
  // NETSCAPE2.0 application extension: loop forever.
  const GifByteType netscape[] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
  const GifByteType loop[] = {1, 0, 0};
  if (api->EGifPutExtensionLeader(gif.get(), APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
      api->EGifPutExtensionBlock(gif.get(), sizeof(netscape), netscape) == GIF_ERROR ||
      api->EGifPutExtensionBlock(gif.get(), sizeof(loop), loop) == GIF_ERROR ||
      api->EGifPutExtensionTrailer(gif.get()) == GIF_ERROR) {
    return fail(
        Error::internal("gif: writing the loop extension failed: {}", gif_error(api, gif->Error)));
  }

  const int delay_cs = std::max(1, static_cast<int>(100.0 / fps + 0.5));
  std::vector<GifPixelType> line(width);
  for (const RgbaImage& frame : frames) {
    GraphicsControlBlock gcb{};
    gcb.DisposalMode = DISPOSE_DO_NOT;
    gcb.UserInputFlag = false;
    gcb.DelayTime = delay_cs;
    gcb.TransparentColor = NO_TRANSPARENT_COLOR;
    GifByteType gcb_bytes[4];
    api->EGifGCBToExtension(&gcb, gcb_bytes);
    if (api->EGifPutExtension(gif.get(), GRAPHICS_EXT_FUNC_CODE, sizeof(gcb_bytes), gcb_bytes) ==
            GIF_ERROR ||
        api->EGifPutImageDesc(gif.get(), 0, 0, static_cast<int>(width), static_cast<int>(height),
                              false, nullptr) == GIF_ERROR) {
      return fail(
          Error::internal("gif: writing a frame header failed: {}", gif_error(api, gif->Error)));
    }
    for (std::uint32_t y = 0; y < height; ++y) {
      const std::uint8_t* px = frame.row(y);
      for (std::uint32_t x = 0; x < width; ++x, px += 4) {
        int threshold = kBayer[y & 3][x & 3];
        int r = quantise(px[0], kRedLevels, threshold);
        int g = quantise(px[1], kGreenLevels, threshold);
        int b = quantise(px[2], kBlueLevels, threshold);
        line[x] = static_cast<GifPixelType>((r * kGreenLevels + g) * kBlueLevels + b);
      }
      if (api->EGifPutLine(gif.get(), line.data(), static_cast<int>(width)) == GIF_ERROR) {
        return fail(Error::internal("gif: writing pixels failed: {}", gif_error(api, gif->Error)));
      }
    }
  }
  GifFileType* raw = gif.release();
  if (api->EGifCloseFile(raw, &error) == GIF_ERROR) {
    return fail(Error::internal("gif: closing the stream failed: {}", gif_error(api, error)));
  }
  return out;
}

}  // namespace sw::media
