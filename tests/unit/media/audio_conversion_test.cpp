// Whisper's audio conversion (engines/whisper: whisper_ready_wav) and the resampler under it
// (media/audio_codec: resample over libsoxr): whatever the user uploads reaches whisper-server as
// a 16 kHz mono PCM16 WAV of the same length, with the same pitch and nothing folded into it. The
// output is read back with libsndfile (tests/support), not with the project's own decoder.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
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

// Amplitude (0..1 of full scale) of the `hz` component of mono PCM16 `pcm`, by the Goertzel
// algorithm over a Hann window of the middle half (the ends are left out: a resampler's filter
// starts and stops there).
double amplitude_at(const std::vector<std::int16_t>& pcm, int rate, double hz) {
  const std::size_t begin = pcm.size() / 4;
  const std::size_t n = pcm.size() / 2;
  const double k = 2 * std::cos(2 * std::numbers::pi * hz / rate);
  double s1 = 0, s2 = 0, window_sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * static_cast<double>(i) /
                                          static_cast<double>(n - 1));
    window_sum += w;
    const double s0 = w * pcm[begin + i] / 32767.0 + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const double power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return 2 * std::sqrt(std::max(power, 0.0)) / window_sum;
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

// The rule (issue 17): no hand-written resampling. A real resampler low-passes before it drops
// the rate; linear interpolation folds everything above 8 kHz back into the band whisper
// listens to (an 11 kHz whistle in a 44.1 kHz upload came out as a 5 kHz tone at 0.8 of its level).
TEST(WhisperAudio, ATopAbove8kHzIsFilteredOutNotFoldedIntoTheSpeechBand) {
  std::vector<std::int16_t> pcm;
  for (int i = 0; i < 44100; ++i) {
    const double t = i / 44100.0;
    const double v = 0.3 * std::sin(2 * std::numbers::pi * 1000 * t) +
                     0.3 * std::sin(2 * std::numbers::pi * 11000 * t);
    const auto sample = static_cast<std::int16_t>(std::lround(v * 32767));
    pcm.push_back(sample);
    pcm.push_back(sample);
  }
  auto upload = media::encode_wav_pcm16(pcm, 44100, 2);
  ASSERT_TRUE(upload);
  const auto out = whisper_input(*upload);
  ASSERT_EQ(out.sample_rate, 16000);
  ASSERT_EQ(out.channels, 1);
  EXPECT_NEAR(static_cast<double>(out.samples.size()), 16000.0, 2.0);
  EXPECT_NEAR(amplitude_at(out.samples, 16000, 1000), 0.3, 0.01) << "the tone below 8 kHz is kept";
  EXPECT_LT(amplitude_at(out.samples, 16000, 5000), 0.003)
      << "the 11 kHz tone must not come back as a 5 kHz alias";
}

// Upsampling 8 kHz stereo (a phone recording) to 16 kHz: the 3 kHz tone keeps its pitch and level
// and no mirror image appears at 16 - 8 - 3 = 5 kHz (linear interpolation left one at 0.3 of it).
TEST(WhisperAudio, An8kStereoRecordingIsUpsampledWithoutImages) {
  auto upload = media::encode_wav_pcm16(sine(3000, 8000, 2.0, 0.5, {1.0, 1.0}), 8000, 2);
  ASSERT_TRUE(upload);
  const auto out = whisper_input(*upload);
  ASSERT_EQ(out.sample_rate, 16000);
  ASSERT_EQ(out.channels, 1);
  EXPECT_NEAR(static_cast<double>(out.samples.size()), 32000.0, 2.0);
  EXPECT_NEAR(frequency_of(out.samples, out.sample_rate), 3000.0, 3000.0 * 0.005);
  EXPECT_NEAR(amplitude_at(out.samples, 16000, 3000), 0.5, 0.015);
  EXPECT_LT(amplitude_at(out.samples, 16000, 5000), 0.005) << "no image of the tone at 5 kHz";
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

// media::resample (libsoxr) directly: lengths, alignment and errors.
TEST(Resampler, KeepsTheDurationAndTheTimingOfEveryRateChange) {
  // A click in the middle of a second of silence stays in the middle at every rate.
  for (const auto& [from, to] : std::vector<std::pair<std::uint32_t, std::uint32_t>>{
           {22050, 48000}, {44100, 16000}, {8000, 16000}, {48000, 8000}, {11025, 12000}}) {
    SCOPED_TRACE(std::to_string(from) + " -> " + std::to_string(to));
    std::vector<float> click(from, 0.0f);
    click[from / 2] = 1.0f;
    auto out = media::resample(click, 1, from, to);
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_EQ(out->size(), to);
    const auto peak = std::max_element(out->begin(), out->end(),
                                       [](float a, float b) { return std::abs(a) < std::abs(b); });
    EXPECT_NEAR(static_cast<double>(peak - out->begin()), to / 2.0, 1.0);
  }
}

TEST(Resampler, StereoStaysInterleavedAndTheSameRateIsACopy) {
  std::vector<float> stereo;
  for (int i = 0; i < 4410; ++i) {
    const auto v = static_cast<float>(0.5 * std::sin(2 * std::numbers::pi * 440 * i / 44100.0));
    stereo.push_back(v);
    stereo.push_back(-v);
  }
  auto out = media::resample(stereo, 2, 44100, 16000);
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 1600u * 2);
  for (std::size_t i = 0; i < out->size(); i += 2) EXPECT_FLOAT_EQ((*out)[i], -(*out)[i + 1]) << i;
  auto same = media::resample(stereo, 2, 44100, 44100);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, stereo);
}

TEST(Resampler, ImpossibleRequestsAreErrors) {
  const std::vector<float> three{0.1f, 0.2f, 0.3f};
  EXPECT_EQ(media::resample(three, 2, 16000, 8000).error().code, Code::InvalidArgument);
  EXPECT_EQ(media::resample(three, 1, 0, 8000).error().code, Code::InvalidArgument);
  EXPECT_EQ(media::resample(three, 0, 16000, 8000).error().code, Code::InvalidArgument);
  EXPECT_FALSE(media::to_mono_resampled(media::DecodedAudio{16000, 0, {}}, 16000));
  auto empty = media::to_mono_resampled(media::DecodedAudio{44100, 2, {}}, 16000);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(Resampler, SameRateOnlyDownmixes) {
  media::DecodedAudio stereo{16000, 2, {1.0f, 0.0f, -0.5f, 0.5f, 0.25f, 0.75f}};
  auto mono = media::to_mono_resampled(stereo, 16000);
  ASSERT_TRUE(mono);
  EXPECT_THAT(*mono,
              ::testing::Pointwise(::testing::FloatEq(), std::vector<float>{0.5f, 0.0f, 0.5f}));
}

// Formats with fixed rate sets get the audio resampled, the others keep its rate.
TEST(AudioEncoding, OpusAndMp3GetARateTheyCarryOthersKeepTheirs) {
  EXPECT_EQ(media::encoded_sample_rate("opus", 22050), 48000u);
  EXPECT_EQ(media::encoded_sample_rate("opus", 44100), 48000u);
  EXPECT_EQ(media::encoded_sample_rate("opus", 16000), 16000u);
  EXPECT_EQ(media::encoded_sample_rate("mp3", 22050), 22050u);
  EXPECT_EQ(media::encoded_sample_rate("mp3", 7000), 8000u);
  EXPECT_EQ(media::encoded_sample_rate("mp3", 30000), 32000u);
  EXPECT_EQ(media::encoded_sample_rate("mp3", 96000), 48000u);
  for (const char* ext : {"wav", "flac", "ogg"}) {
    EXPECT_EQ(media::encoded_sample_rate(ext, 22050), 22050u) << ext;
    EXPECT_EQ(media::encoded_sample_rate(ext, 96000), 96000u) << ext;
  }
  // 96 kHz to MP3 used to be refused by libsndfile; now it is a 48 kHz MP3 of the same length.
  const auto pcm = sine(1000, 96000, 1.0, 0.5, {1.0});
  auto mp3 = media::encode_audio(pcm, 96000, "mp3");
  ASSERT_TRUE(mp3) << mp3.error().message;
  auto back = testing::decode_audio(*mp3);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->format, "mp3");
  EXPECT_EQ(back->sample_rate, 48000);
  EXPECT_NEAR(back->seconds(), 1.0, 0.06);
  EXPECT_NEAR(frequency_of(back->samples, back->sample_rate), 1000.0, 1000.0 * 0.005);
  EXPECT_FALSE(media::encode_audio(pcm, 0, "flac"));
}

}  // namespace
}  // namespace sw
