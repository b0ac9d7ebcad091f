#include <memory>

#include "media/codec_libraries.h"
#include "media/encoders.h"

namespace sw::media {
namespace {

struct AnimEncoderDeleter {
  const WebpMuxApi* mux;
  void operator()(WebPAnimEncoder* enc) const { mux->WebPAnimEncoderDelete(enc); }
};
struct PictureGuard {
  const WebpApi* api;
  WebPPicture picture;
  // WebPPictureInit(&picture), spelled through the table: its header's inline wrapper.
  explicit PictureGuard(const WebpApi* webp) : api(webp) {
    api->WebPPictureInitInternal(&picture, WEBP_ENCODER_ABI_VERSION);
  }
  ~PictureGuard() { api->WebPPictureFree(&picture); }
  PictureGuard(const PictureGuard&) = delete;
  PictureGuard& operator=(const PictureGuard&) = delete;
};
struct WebPDataGuard {
  const WebpApi* api;
  WebPData data;
  explicit WebPDataGuard(const WebpApi* webp) : api(webp) { WebPDataInit(&data); }
  // WebPDataClear(&data), spelled through the table: its header's inline wrapper calls WebPFree.
  ~WebPDataGuard() { api->WebPFree(const_cast<std::uint8_t*>(data.bytes)); }
  WebPDataGuard(const WebPDataGuard&) = delete;
  WebPDataGuard& operator=(const WebPDataGuard&) = delete;
};

bool valid(const RgbaImage& image) {
  return image.width > 0 && image.height > 0 && image.width <= WEBP_MAX_DIMENSION &&
         image.height <= WEBP_MAX_DIMENSION &&
         image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * 4;
}

}  // namespace

Result<Bytes> encode_webp(const RgbaImage& image, float quality) {
  if (!valid(image)) {
    return fail(Error::invalid_argument("webp: image buffer does not match {}x{} RGBA (max {})",
                                        image.width, image.height, WEBP_MAX_DIMENSION));
  }
  auto webp = webp_api();
  if (!webp) return fail(webp.error());
  const WebpApi* api = *webp;
  std::uint8_t* output = nullptr;
  std::size_t size = api->WebPEncodeRGBA(image.pixels.data(), static_cast<int>(image.width),
                                         static_cast<int>(image.height),
                                         static_cast<int>(image.width * 4), quality, &output);
  std::unique_ptr<std::uint8_t, decltype(api->WebPFree)> guard(output, api->WebPFree);
  if (size == 0 || output == nullptr) return fail(Error::internal("webp: WebPEncodeRGBA failed"));
  return Bytes(output, output + size);
}

Result<Bytes> encode_animated_webp(std::span<const RgbaImage> frames, std::uint32_t fps,
                                   float quality) {
  if (frames.empty()) return fail(Error::invalid_argument("webp: an animation needs frames"));
  if (fps == 0) return fail(Error::invalid_argument("webp: fps must be at least 1"));
  const std::uint32_t width = frames.front().width;
  const std::uint32_t height = frames.front().height;
  for (const RgbaImage& frame : frames) {
    if (!valid(frame) || frame.width != width || frame.height != height) {
      return fail(Error::invalid_argument("webp: every frame must be {}x{} RGBA", width, height));
    }
  }

  auto webp = webp_api();
  if (!webp) return fail(webp.error());
  const WebpApi* api = *webp;
  auto webpmux = webpmux_api();
  if (!webpmux) return fail(webpmux.error());
  const WebpMuxApi* mux = *webpmux;

  // The header's inline wrappers WebPAnimEncoderOptionsInit, WebPAnimEncoderNew and
  // WebPConfigInit, spelled through the tables with the ABI versions they pass.
  WebPAnimEncoderOptions options;
  if (!mux->WebPAnimEncoderOptionsInitInternal(&options, WEBP_MUX_ABI_VERSION)) {
    return fail(Error::internal("webp: libwebp version mismatch"));
  }
  options.anim_params.loop_count = 0;  // forever
  std::unique_ptr<WebPAnimEncoder, AnimEncoderDeleter> encoder(
      mux->WebPAnimEncoderNewInternal(static_cast<int>(width), static_cast<int>(height), &options,
                                      WEBP_MUX_ABI_VERSION),
      AnimEncoderDeleter{mux});
  if (!encoder) return fail(Error::internal("webp: WebPAnimEncoderNew failed"));

  WebPConfig config;
  if (!api->WebPConfigInitInternal(&config, WEBP_PRESET_DEFAULT, 75.f, WEBP_ENCODER_ABI_VERSION)) {
    return fail(Error::internal("webp: libwebp version mismatch"));
  }
  config.quality = quality;
  config.method = 2;  // speed over the last percent of size: synthetic frames are large

  const double frame_ms = 1000.0 / fps;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    PictureGuard pic(api);
    pic.picture.width = static_cast<int>(width);
    pic.picture.height = static_cast<int>(height);
    pic.picture.use_argb = 1;
    if (!api->WebPPictureImportRGBA(&pic.picture, frames[i].pixels.data(),
                                    static_cast<int>(width * 4))) {
      return fail(Error::internal("webp: WebPPictureImportRGBA failed"));
    }
    int timestamp = static_cast<int>(static_cast<double>(i) * frame_ms + 0.5);
    if (!mux->WebPAnimEncoderAdd(encoder.get(), &pic.picture, timestamp, &config)) {
      return fail(Error::internal("webp: adding frame {} failed: {}", i,
                                  mux->WebPAnimEncoderGetError(encoder.get())));
    }
  }
  int end_timestamp = static_cast<int>(static_cast<double>(frames.size()) * frame_ms + 0.5);
  if (!mux->WebPAnimEncoderAdd(encoder.get(), nullptr, end_timestamp, nullptr)) {
    return fail(Error::internal("webp: finishing the animation failed: {}",
                                mux->WebPAnimEncoderGetError(encoder.get())));
  }
  WebPDataGuard out(api);
  if (!mux->WebPAnimEncoderAssemble(encoder.get(), &out.data)) {
    return fail(Error::internal("webp: assembling the animation failed: {}",
                                mux->WebPAnimEncoderGetError(encoder.get())));
  }
  return Bytes(out.data.bytes, out.data.bytes + out.data.size);
}

}  // namespace sw::media
