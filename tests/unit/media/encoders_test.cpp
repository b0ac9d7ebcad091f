#include <gtest/gtest.h>

#include "media/encoders.h"
#include "support/media_decoders.h"

namespace sw::media {
namespace {

RgbaImage checkerboard(std::uint32_t w, std::uint32_t h, std::uint8_t shade) {
  RgbaImage image(w, h);
  for (std::uint32_t y = 0; y < h; ++y) {
    for (std::uint32_t x = 0; x < w; ++x) {
      std::uint8_t* px = image.row(y) + x * 4;
      bool on = ((x / 8) + (y / 8)) % 2 == 0;
      px[0] = on ? shade : 0;
      px[1] = on ? 255 : 40;
      px[2] = static_cast<std::uint8_t>(x);
      px[3] = 255;
    }
  }
  return image;
}

TEST(PngEncoder, LosslessRoundTrip) {
  RgbaImage image = checkerboard(70, 33, 200);
  auto png = encode_png(image);
  ASSERT_TRUE(png) << png.error().message;
  auto decoded = testing::decode_png(*png);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 70u);
  EXPECT_EQ(decoded->height, 33u);
  EXPECT_EQ(decoded->rgba, image.pixels);
}

TEST(PngEncoder, RejectsMismatchedBuffers) {
  RgbaImage image(4, 4);
  image.pixels.resize(10);
  EXPECT_FALSE(encode_png(image));
  EXPECT_FALSE(encode_png(RgbaImage()));
}

TEST(WebpEncoder, StillDecodesAtSize) {
  RgbaImage image = checkerboard(128, 64, 180);
  auto webp = encode_webp(image);
  ASSERT_TRUE(webp) << webp.error().message;
  auto decoded = testing::decode_webp(*webp);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 128u);
  EXPECT_EQ(decoded->height, 64u);
  EXPECT_LT(testing::mean_abs_diff(decoded->rgba, image.pixels), 12.0);
}

TEST(WebpEncoder, AnimationHasEveryFrameAndTiming) {
  std::vector<RgbaImage> frames{checkerboard(64, 64, 0), checkerboard(64, 64, 128),
                                checkerboard(64, 64, 255)};
  auto webp = encode_animated_webp(frames, 10);
  ASSERT_TRUE(webp) << webp.error().message;
  auto decoded = testing::decode_animated_webp(*webp);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->frames.size(), 3u);
  EXPECT_TRUE(decoded->loops_forever);
  for (int delay : decoded->delays_ms) EXPECT_EQ(delay, 100);
  EXPECT_FALSE(encode_animated_webp({}, 10));
  std::vector<RgbaImage> mixed{checkerboard(64, 64, 0), checkerboard(32, 64, 0)};
  EXPECT_FALSE(encode_animated_webp(mixed, 10));
}

TEST(GifEncoder, AnimationLoopsWithDelaysAndCloseColours) {
  std::vector<RgbaImage> frames{checkerboard(40, 24, 0), checkerboard(40, 24, 255)};
  auto gif = encode_animated_gif(frames, 4);
  ASSERT_TRUE(gif) << gif.error().message;
  auto decoded = testing::decode_gif(*gif);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->width, 40u);
  EXPECT_EQ(decoded->height, 24u);
  ASSERT_EQ(decoded->frames.size(), 2u);
  EXPECT_TRUE(decoded->loops_forever);
  EXPECT_EQ(decoded->delays_ms[0], 250);
  // A 252-colour cube with dithering stays within a fraction of one quantisation step on average.
  EXPECT_LT(testing::mean_abs_diff(decoded->frames[1], frames[1].pixels), 20.0);
}

TEST(WavEncoder, WritesPcm16ThatLibsndfileReads) {
  std::vector<std::int16_t> samples{0, 1000, -1000, 32767, -32768, 5, 6, 7};
  auto wav = encode_wav_pcm16(samples, 22050, 2);
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(wav->size(), 44u + samples.size() * 2);
  auto decoded = testing::decode_wav(*wav);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->sample_rate, 22050);
  EXPECT_EQ(decoded->channels, 2);
  EXPECT_TRUE(decoded->pcm16);
  EXPECT_EQ(decoded->samples, samples);
  EXPECT_FALSE(encode_wav_pcm16(samples, 22050, 3));  // 8 samples do not split into 3 channels
  EXPECT_FALSE(encode_wav_pcm16(samples, 0, 1));
}

}  // namespace
}  // namespace sw::media
