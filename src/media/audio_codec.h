#pragma once
// Audio in and out of the formats Debian's libsndfile handles (WAV, FLAC, Ogg Vorbis, Opus, MP3),
// and the 16 kHz mono PCM16 that whisper.cpp wants. Thread-safe (no shared state); the input is
// untrusted and every failure is an error value naming the problem.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "media/image.h"

namespace sw::media {

struct DecodedAudio {
  std::uint32_t sample_rate = 0;
  std::uint32_t channels = 0;
  std::vector<float> samples;  // interleaved, -1..1
  double seconds() const {
    return sample_rate == 0 || channels == 0
               ? 0.0
               : static_cast<double>(samples.size()) / channels / sample_rate;
  }
};

// Decodes any container libsndfile reads, by content (not by name).
Result<DecodedAudio> decode_audio(std::span<const std::uint8_t> bytes);

// Mono (channel average), resampled by linear interpolation (what whisper.cpp's own reader does).
std::vector<float> to_mono_resampled(const DecodedAudio& audio, std::uint32_t rate);

// Whether `ext` names an audio format encode_audio() writes: wav, flac, ogg, opus, mp3.
bool can_encode_audio(std::string_view ext);
// Mono PCM16 samples in the container `ext` names. Unsupported ext: InvalidArgument listing them.
Result<Bytes> encode_audio(std::span<const std::int16_t> samples, std::uint32_t sample_rate,
                           std::string_view ext);

}  // namespace sw::media
