#include <csetjmp>

#include "media/codec_libraries.h"
#include "media/encoders.h"

namespace sw::media {
namespace {

void append_bytes(png_structp png, png_bytep data, png_size_t length) {
  // libpng calls this from inside encode_png, which loaded the table: png_api() returns it.
  const PngApi* api = *png_api();
  auto* out = static_cast<Bytes*>(api->png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}

void no_flush(png_structp) {}

}  // namespace

Result<Bytes> encode_png(const RgbaImage& image) {
  if (image.width == 0 || image.height == 0 ||
      image.pixels.size() != static_cast<std::size_t>(image.width) * image.height * 4) {
    return fail(Error::invalid_argument("png: image buffer does not match {}x{} RGBA", image.width,
                                        image.height));
  }
  auto loaded = png_api();
  if (!loaded) return fail(loaded.error());
  const PngApi* api = *loaded;
  png_structp png = api->png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return fail(Error::internal("png: png_create_write_struct failed"));
  png_infop info = api->png_create_info_struct(png);
  if (info == nullptr) {
    api->png_destroy_write_struct(&png, nullptr);
    return fail(Error::internal("png: png_create_info_struct failed"));
  }
  // libpng reports errors by longjmp; nothing with a destructor may live between here and the
  // calls below except `out`, which is declared before setjmp and only appended to.
  Bytes out;
  out.reserve(static_cast<std::size_t>(image.width) * image.height);
  // png_jmpbuf(png), spelled through the table.
  if (setjmp(*api->png_set_longjmp_fn(png, longjmp, sizeof(jmp_buf)))) {
    api->png_destroy_write_struct(&png, &info);
    return fail(Error::internal("png: libpng failed while encoding"));
  }
  api->png_set_write_fn(png, &out, append_bytes, no_flush);
  api->png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB_ALPHA,
                    PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  api->png_set_compression_level(png, 6);
  api->png_write_info(png, info);
  for (std::uint32_t y = 0; y < image.height; ++y) {
    api->png_write_row(png, const_cast<png_bytep>(image.row(y)));
  }
  api->png_write_end(png, nullptr);
  api->png_destroy_write_struct(&png, &info);
  return out;
}

}  // namespace sw::media
