#include <cstring>
#include <limits>

#include "media/encoders.h"

namespace sw::media {
namespace {

void put_u16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}

void put_u32(Bytes& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_tag(Bytes& out, const char (&tag)[5]) {
  out.insert(out.end(), tag, tag + 4);
}

}  // namespace

Result<Bytes> encode_wav_pcm16(std::span<const std::int16_t> samples, std::uint32_t sample_rate,
                               std::uint16_t channels) {
  if (channels == 0 || sample_rate == 0) {
    return fail(Error::invalid_argument("wav: {} channel(s) at {} Hz is not a valid format",
                                        channels, sample_rate));
  }
  if (samples.size() % channels != 0) {
    return fail(Error::invalid_argument("wav: {} samples do not divide into {} channels",
                                        samples.size(), channels));
  }
  const std::uint64_t data_bytes = static_cast<std::uint64_t>(samples.size()) * 2;
  if (data_bytes > std::numeric_limits<std::uint32_t>::max() - 36) {
    return fail(
        Error::invalid_argument("wav: {} bytes of audio exceed the 4 GiB RIFF limit", data_bytes));
  }
  Bytes out;
  out.reserve(44 + data_bytes);
  put_tag(out, "RIFF");
  put_u32(out, static_cast<std::uint32_t>(36 + data_bytes));
  put_tag(out, "WAVE");
  put_tag(out, "fmt ");
  put_u32(out, 16);  // PCM fmt chunk size
  put_u16(out, 1);   // WAVE_FORMAT_PCM
  put_u16(out, channels);
  put_u32(out, sample_rate);
  put_u32(out, sample_rate * channels * 2);                // byte rate
  put_u16(out, static_cast<std::uint16_t>(channels * 2));  // block align
  put_u16(out, 16);                                        // bits per sample
  put_tag(out, "data");
  put_u32(out, static_cast<std::uint32_t>(data_bytes));
  for (std::int16_t s : samples) put_u16(out, static_cast<std::uint16_t>(s));
  return out;
}

}  // namespace sw::media
