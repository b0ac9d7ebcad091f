#pragma once
// Audio in and out of the formats Debian's libsndfile handles (WAV, FLAC, Ogg Vorbis, Opus, MP3),
// the 16 kHz mono PCM16 that whisper.cpp wants, and sample-rate conversion with libsoxr.
// Thread-safe (the only shared state is each library's table, loaded once); the input is untrusted
// and every failure is an error value naming the problem. libsndfile and libsoxr are opened when
// first needed (media/codec_libraries.h); where one cannot be loaded, a call that needs it is
// NotFound naming its package.
//
// Units: sample rates in Hz; samples interleaved by channel; float samples full scale at -1..1,
// int16 samples at -32768..32767. Lengths in frames (one sample per channel).

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

// Decodes any container libsndfile reads, by content (not by name). Errors: InvalidArgument for
// empty, unreadable, over-long (4 h) or implausible (channels, rate) input.
Result<DecodedAudio> decode_audio(std::span<const std::uint8_t> bytes);

// Converts interleaved `channels`-channel audio from `from_hz` to `to_hz` with libsoxr's "high
// quality" linear-phase recipe (SOXR_HQ: 20-bit precision, flat to 91 % of the lower rate's
// Nyquist frequency, everything above that Nyquist frequency filtered out, so nothing aliases on
// the way down or images on the way up). The result has round(frames × to_hz / from_hz) frames,
// time-aligned with the input (the filter's delay is compensated). The same rate returns a copy.
// Errors: InvalidArgument for a zero rate or channel count, or a sample count that is not a
// multiple of `channels`; Internal when libsoxr fails.
Result<std::vector<float>> resample(std::span<const float> interleaved, std::uint32_t channels,
                                    std::uint32_t from_hz, std::uint32_t to_hz);

// Mono (the channel average) at `rate` Hz, resampled with resample(). Errors as resample().
Result<std::vector<float>> to_mono_resampled(const DecodedAudio& audio, std::uint32_t rate);

// Whether `ext` names an audio format encode_audio() writes: wav, flac, ogg, opus, mp3.
bool can_encode_audio(std::string_view ext);

// The sample rate encode_audio() writes `ext` at, for input at `rate` Hz. Most formats carry any
// rate and keep it. Opus carries only 8, 12, 16, 24 and 48 kHz (RFC 6716 §2; libsndfile refuses
// others): any other rate goes to 48 kHz, the rate Opus decoders play at (RFC 7845 §5.1). MP3
// carries only MPEG-1/2/2.5's nine rates (8 to 48 kHz): another rate goes to the next of them up,
// 48 kHz at most.
std::uint32_t encoded_sample_rate(std::string_view ext, std::uint32_t rate);

// Mono PCM16 samples at `sample_rate` Hz in the container `ext` names, at
// encoded_sample_rate(ext, sample_rate) (resampled with resample() where that differs).
// Errors: InvalidArgument for an unsupported ext (the message lists them) or a zero rate;
// Internal when the encoder fails.
Result<Bytes> encode_audio(std::span<const std::int16_t> samples, std::uint32_t sample_rate,
                           std::string_view ext);

}  // namespace sw::media
