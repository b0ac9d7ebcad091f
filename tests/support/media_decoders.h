#pragma once
// Decoders used by tests to check encoder output with the real libraries (libpng, libwebp and its
// demuxer, giflib, libsndfile), independently of the project's own encoders.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

namespace sw::testing {

struct DecodedImage {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::uint8_t> rgba;
};

struct DecodedAnimation {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::vector<std::uint8_t>> frames;  // full-canvas RGBA per frame
  std::vector<int> delays_ms;                     // per frame
  bool loops_forever = false;
};

struct DecodedAudio {
  int sample_rate = 0;
  int channels = 0;
  bool pcm16 = false;
  std::string format;  // decode_audio only: wav, flac, ogg/vorbis, ogg/opus, mp3 (else "other")
  std::vector<std::int16_t> samples;
  double seconds() const {
    return sample_rate > 0 ? static_cast<double>(samples.size()) / channels / sample_rate : 0;
  }
};

Result<DecodedImage> decode_png(std::span<const std::uint8_t> bytes);
Result<DecodedImage> decode_webp(std::span<const std::uint8_t> bytes);
Result<DecodedAnimation> decode_animated_webp(std::span<const std::uint8_t> bytes);
Result<DecodedAnimation> decode_gif(std::span<const std::uint8_t> bytes);
Result<DecodedAudio> decode_wav(std::span<const std::uint8_t> bytes);
// Any container libsndfile reads (by content), as PCM16; `format` names what it found.
Result<DecodedAudio> decode_audio(std::span<const std::uint8_t> bytes);

// Mean absolute difference per channel value between two equally sized RGBA buffers (0..255).
double mean_abs_diff(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b);
// Root mean square of PCM16 samples, normalised to 0..1.
double rms(const std::vector<std::int16_t>& samples);

}  // namespace sw::testing
