#include "media/codec_libraries.h"
#include "media/decoders.h"

namespace sw::media {

Result<RgbaImage> decode_png(std::span<const std::uint8_t> bytes) {
  constexpr std::uint32_t kMaxSide = 16384;
  auto loaded = png_api();
  if (!loaded) return fail(loaded.error());
  const PngApi* api = *loaded;
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (api->png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) == 0) {
    return fail(Error::invalid_argument("not a PNG image: {}", image.message));
  }
  if (image.width == 0 || image.height == 0 || image.width > kMaxSide || image.height > kMaxSide) {
    api->png_image_free(&image);
    return fail(Error::invalid_argument("PNG image is {}x{} (limit {} per side)", image.width,
                                        image.height, kMaxSide));
  }
  image.format = PNG_FORMAT_RGBA;
  RgbaImage out(image.width, image.height);
  if (api->png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr) == 0) {
    const std::string message = image.message;
    api->png_image_free(&image);
    return fail(Error::invalid_argument("PNG image is damaged: {}", message));
  }
  return out;
}

}  // namespace sw::media
