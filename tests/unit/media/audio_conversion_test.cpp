// Whisper's audio conversion (engines/whisper: whisper_ready_wav) and the resampler under it
// (media/audio_codec: to_mono_resampled): whatever the user uploads reaches whisper-server as a
// 16 kHz mono PCM16 WAV of the same length, with the same pitch. The output is read back with
// libsndfile (tests/support), not with the project's own decoder.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "engines/whisper/whisper_engine.h"
#include "media/audio_codec.h"
#include "media/encoders.h"
#include "support/media_decoders.h"

namespace sw {
namespace {

using ::testing::HasSubstr;

// `seconds` of a sine at `hz`, amplitude `amplitude`, as PCM16 frames of `channels` channels:
// channel c gets the sine times gains[c].
std::vector<std::int16_t> sine(double hz, std::uint32_t rate, double seconds, double amplitude,
                               std::vector<double> gains) {
  const auto frames = static_cast<std::size_t>(seconds * rate);
  std::vector<std::int16_t> pcm;
  pcm.reserve(frames * gains.size());
  for (std::size_t i = 0; i < frames; ++i) {
    const double v =
        amplitude * std::sin(2 * std::numbers::pi * hz * static_cast<double>(i) / rate);
    for (double gain : gains)
      pcm.push_back(static_cast<std::int16_t>(std::lround(v * gain * 32767)));
  }
  return pcm;
}

// The frequency of a clean mono sine, from its rising zero crossings (interpolated) over the
// whole signal.
double frequency_of(const std::vector<std::int16_t>& pcm, int rate) {
  std::vector<double> crossings;
  for (std::size_t i = 1; i < pcm.size(); ++i) {
    if (pcm[i - 1] < 0 && pcm[i] >= 0) {
      const double t = static_cast<double>(-pcm[i - 1]) / (pcm[i] - pcm[i - 1]);
      crossings.push_back(static_cast<double>(i - 1) + t);
    }
  }
  if (crossings.size() < 2) return 0;
  return (crossings.size() - 1) * static_cast<double>(rate) /
         (crossings.back() - crossings.front());
}

testing::DecodedAudio whisper_input(const media::Bytes& upload) {
  auto wav = engines::whisper_ready_wav(upload);
  EXPECT_TRUE(wav) << wav.error().message;
  if (!wav) return {};
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(wav->data()),
                                            wav->size());
  auto decoded = testing::decode_wav(bytes);
  EXPECT_TRUE(decoded) << decoded.error().message;
  return decoded ? *decoded : testing::DecodedAudio{};
}

TEST(WhisperAudio, StereoAt44kIsDownmixedAndResampledTo16kMonoKeepingLengthAndPitch) {
  auto upload = media::encode_wav_pcm16(sine(440, 44100, 1.5, 0.5, {1.0, 1.0}), 44100, 2);
  ASSERT_TRUE(upload);
  const auto out = whisper_input(*upload);
  EXPECT_EQ(out.sample_rate, 16000);
  EXPECT_EQ(out.channels, 1);
  EXPECT_TRUE(out.pcm16);
  EXPECT_NEAR(out.seconds(), 1.5, 1.0 / 16000 * 2);
  EXPECT_NEAR(frequency_of(out.samples, out.sample_rate), 440.0, 440.0 * 0.005);
  EXPECT_NEAR(testing::rms(out.samples), 0.5 / std::sqrt(2.0), 0.01) << "level kept";
}

TEST(WhisperAudio, FlacAt48kKeepsItsPitch) {
  const auto pcm = sine(1000, 48000, 1.0, 0.6, {1.0});
  auto upload = media::encode_audio(pcm, 48000, "flac");
  ASSERT_TRUE(upload) << upload.error().message;
  const auto out = whisper_input(*upload);
  EXPECT_EQ(out.sample_rate, 16000);
  EXPECT_EQ(out.channels, 1);
  EXPECT_NEAR(out.seconds(), 1.0, 1.0 / 16000 * 2);
  EXPECT_NEAR(frequency_of(out.samples, out.sample_rate), 1000.0, 1000.0 * 0.005);
}

TEST(WhisperAudio, UpsamplesAn8kRecording) {
  auto upload = media::encode_wav_pcm16(sine(300, 8000, 2.0, 0.5, {1.0}), 8000, 1);
  ASSERT_TRUE(upload);
  const auto out = whisper_input(*upload);
  EXPECT_EQ(out.sample_rate, 16000);
  EXPECT_NEAR(out.seconds(), 2.0, 1.0 / 16000 * 2);
  EXPECT_NEAR(frequency_of(out.samples, out.sample_rate), 300.0, 300.0 * 0.005);
}

TEST(WhisperAudio, DownmixAveragesTheChannels) {
  // Opposite phases cancel; one silent channel halves the level.
  auto cancel = media::encode_wav_pcm16(sine(440, 16000, 0.5, 0.5, {1.0, -1.0}), 16000, 2);
  ASSERT_TRUE(cancel);
  const auto silent = whisper_input(*cancel);
  ASSERT_EQ(silent.channels, 1);
  EXPECT_LT(testing::rms(silent.samples), 1e-4);
  auto one_side = media::encode_wav_pcm16(sine(440, 16000, 0.5, 0.8, {1.0, 0.0}), 16000, 2);
  ASSERT_TRUE(one_side);
  const auto half = whisper_input(*one_side);
  EXPECT_NEAR(testing::rms(half.samples), 0.4 / std::sqrt(2.0), 0.01);
}

TEST(WhisperAudio, AWavWhisperCanReadIsPassedThroughByteForByte) {
  auto upload = media::encode_wav_pcm16(sine(440, 16000, 0.25, 0.5, {1.0}), 16000, 1);
  ASSERT_TRUE(upload);
  auto wav = engines::whisper_ready_wav(*upload);
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(*wav, std::string(upload->begin(), upload->end()));
}

TEST(WhisperAudio, BytesThatAreNotAudioAreRefusedWithAReason) {
  const std::string text = "this is not audio, just some text that a user uploaded by mistake";
  auto wav = engines::whisper_ready_wav(
      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  ASSERT_FALSE(wav);
  EXPECT_FALSE(wav.error().message.empty());
}

TEST(Resampler, InterpolatesLinearlyBetweenFrames) {
  media::DecodedAudio audio{1, 1, {0.0f, 1.0f, 0.0f, -1.0f}};
  const auto up = media::to_mono_resampled(audio, 2);
  ASSERT_EQ(up.size(), 8u);
  const std::vector<float> expected{0.0f, 0.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_FLOAT_EQ(up[i], expected[i]) << i;
  media::DecodedAudio fast{4, 1, {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f}};
  EXPECT_THAT(
      media::to_mono_resampled(fast, 2),
      ::testing::Pointwise(::testing::FloatEq(), std::vector<float>{0.0f, 0.2f, 0.4f, 0.6f}));
}

TEST(Resampler, SameRateOnlyDownmixes) {
  media::DecodedAudio stereo{16000, 2, {1.0f, 0.0f, -0.5f, 0.5f, 0.25f, 0.75f}};
  EXPECT_THAT(media::to_mono_resampled(stereo, 16000),
              ::testing::Pointwise(::testing::FloatEq(), std::vector<float>{0.5f, 0.0f, 0.5f}));
  EXPECT_TRUE(media::to_mono_resampled(media::DecodedAudio{16000, 0, {}}, 16000).empty());
  EXPECT_TRUE(media::to_mono_resampled(media::DecodedAudio{44100, 2, {}}, 16000).empty());
}

}  // namespace
}  // namespace sw
