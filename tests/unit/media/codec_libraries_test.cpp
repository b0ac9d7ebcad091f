// The codec libraries are opened with dlopen on first use (media/codec_libraries.h). The encoder
// and decoder tests exercise the tables through the codecs; these check the loaders themselves:
// every entry point bound, the load reported, and a library that cannot be used named with the
// package that installs it.
#include "media/codec_libraries.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/log.h"

namespace sw::media {
namespace {

using ::testing::HasSubstr;

#define SW_EXPECT_BOUND(fn) EXPECT_NE(table->fn, nullptr) << #fn;

TEST(CodecLibraries, EachLoaderBindsEveryEntryPointOfItsLibrary) {
  auto png = png_api();
  ASSERT_TRUE(png) << png.error().message;
  {
    const PngApi* table = *png;
    SW_PNG_ENTRY_POINTS(SW_EXPECT_BOUND)
  }
  auto gif = gif_api();
  ASSERT_TRUE(gif) << gif.error().message;
  {
    const GifApi* table = *gif;
    SW_GIF_ENTRY_POINTS(SW_EXPECT_BOUND)
  }
  auto webp = webp_api();
  ASSERT_TRUE(webp) << webp.error().message;
  {
    const WebpApi* table = *webp;
    SW_WEBP_ENTRY_POINTS(SW_EXPECT_BOUND)
  }
  auto webpmux = webpmux_api();
  ASSERT_TRUE(webpmux) << webpmux.error().message;
  {
    const WebpMuxApi* table = *webpmux;
    SW_WEBPMUX_ENTRY_POINTS(SW_EXPECT_BOUND)
  }
  auto sndfile = sndfile_api();
  ASSERT_TRUE(sndfile) << sndfile.error().message;
  {
    const SndfileApi* table = *sndfile;
    SW_SNDFILE_ENTRY_POINTS(SW_EXPECT_BOUND)
  }
  auto soxr = soxr_api();
  ASSERT_TRUE(soxr) << soxr.error().message;
  {
    const SoxrApi* table = *soxr;
    SW_SOXR_ENTRY_POINTS(SW_EXPECT_BOUND)
  }
}

TEST(CodecLibraries, TheFirstLoadServesEveryLaterCall) {
  auto first = soxr_api();
  ASSERT_TRUE(first) << first.error().message;
  auto again = soxr_api();
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*first, *again);
}

TEST(CodecLibraries, ALoadIsLoggedWithTheLibraryItOpened) {
  log::Capture capture(log::Level::Info);
  auto soxr = detail::load_soxr_api("libsoxr.so.0");
  ASSERT_TRUE(soxr) << soxr.error().message;
  auto sndfile = detail::load_sndfile_api("libsndfile.so.1");
  ASSERT_TRUE(sndfile) << sndfile.error().message;

  auto loaded = capture.find("media.library_loaded");
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].level, log::Level::Info);
  EXPECT_EQ(loaded[0].target, "studio_worker::media");
  ASSERT_NE(loaded[0].field("library"), nullptr);
  EXPECT_EQ(*loaded[0].field("library"), "libsoxr.so.0");
  ASSERT_NE(loaded[1].field("library"), nullptr);
  EXPECT_EQ(*loaded[1].field("library"), "libsndfile.so.1");
}

// NotFound, naming the file that could not be used and the Debian package that installs it.
template <class Api>
void expect_unusable(const Result<Api>& loaded, const std::string& file,
                     const std::string& package) {
  ASSERT_FALSE(loaded) << file << " loaded";
  EXPECT_EQ(loaded.error().code, Code::NotFound) << loaded.error().message;
  EXPECT_THAT(loaded.error().message, HasSubstr(file));
  EXPECT_THAT(loaded.error().message, HasSubstr("not available here"));
  EXPECT_THAT(loaded.error().message, HasSubstr("(install " + package + ")"));
}

TEST(CodecLibraries, AMissingLibraryIsNotFoundNamingItAndItsPackage) {
  const std::string missing = "libsw-no-such-codec.so.0";
  expect_unusable(detail::load_png_api(missing), missing, "libpng16-16");
  expect_unusable(detail::load_gif_api(missing), missing, "libgif7");
  expect_unusable(detail::load_webp_api(missing), missing, "libwebp7");
  expect_unusable(detail::load_webpmux_api(missing), missing, "libwebpmux3");
  expect_unusable(detail::load_sndfile_api(missing), missing, "libsndfile1");
  expect_unusable(detail::load_soxr_api(missing), missing, "libsoxr0");

  auto png = detail::load_png_api(missing);
  ASSERT_FALSE(png);
  EXPECT_THAT(png.error().message, HasSubstr("PNG encoding and decoding is not available here"));
}

TEST(CodecLibraries, ALibraryWithoutAnEntryPointIsNotFoundNamingTheEntryPoint) {
  // libsoxr opens, but has none of libpng's functions: the first one in the table is named.
  auto png = detail::load_png_api("libsoxr.so.0");
  expect_unusable(png, "libsoxr.so.0", "libpng16-16");
  EXPECT_THAT(png.error().message, HasSubstr("`png_create_write_struct`"));

  // libwebp has the still-image encoder but not the animation encoder of libwebpmux.
  auto mux = detail::load_webpmux_api("libwebp.so.7");
  expect_unusable(mux, "libwebp.so.7", "libwebpmux3");
  EXPECT_THAT(mux.error().message, HasSubstr("`WebPAnimEncoderOptionsInitInternal`"));
}

}  // namespace
}  // namespace sw::media
