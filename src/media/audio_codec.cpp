#include "media/audio_codec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>

#include "media/codec_libraries.h"
#include "media/encoders.h"

namespace sw::media {
namespace {

// libsndfile's virtual I/O over a byte buffer: reading from memory, or writing into a vector.
struct MemoryFile {
  std::span<const std::uint8_t> input;
  Bytes* output = nullptr;
  sf_count_t position = 0;

  sf_count_t length() const {
    return output != nullptr ? static_cast<sf_count_t>(output->size())
                             : static_cast<sf_count_t>(input.size());
  }
};

sf_count_t vio_length(void* user) { return static_cast<MemoryFile*>(user)->length(); }

sf_count_t vio_seek(sf_count_t offset, int whence, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  sf_count_t base = 0;
  if (whence == SEEK_CUR) base = file->position;
  if (whence == SEEK_END) base = file->length();
  const sf_count_t target = base + offset;
  if (target < 0) return -1;
  file->position = target;
  return target;
}

sf_count_t vio_read(void* destination, sf_count_t count, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  const sf_count_t available = std::max<sf_count_t>(0, file->length() - file->position);
  const sf_count_t n = std::min(count, available);
  if (n <= 0) return 0;
  const std::uint8_t* from = file->output != nullptr ? file->output->data() : file->input.data();
  std::memcpy(destination, from + file->position, static_cast<std::size_t>(n));
  file->position += n;
  return n;
}

sf_count_t vio_write(const void* source, sf_count_t count, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  if (file->output == nullptr) return 0;
  const auto end = static_cast<std::size_t>(file->position + count);
  if (file->output->size() < end) file->output->resize(end);
  std::memcpy(file->output->data() + file->position, source, static_cast<std::size_t>(count));
  file->position += count;
  return count;
}

sf_count_t vio_tell(void* user) { return static_cast<MemoryFile*>(user)->position; }

SF_VIRTUAL_IO memory_io() {
  return SF_VIRTUAL_IO{vio_length, vio_seek, vio_read, vio_write, vio_tell};
}

struct SndfileCloser {
  const SndfileApi* api;
  void operator()(SNDFILE* file) const { api->sf_close(file); }
};
using SndfileHandle = std::unique_ptr<SNDFILE, SndfileCloser>;

int format_for(std::string_view ext) {
  if (ext == "flac") return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
  if (ext == "ogg") return SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  if (ext == "opus") return SF_FORMAT_OGG | SF_FORMAT_OPUS;
  if (ext == "mp3") return SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
  return 0;
}

constexpr std::uint32_t kMaxChannels = 16;
constexpr double kMaxSeconds = 4.0 * 3600;  // longer than any job; bounds the allocation

}  // namespace

Result<DecodedAudio> decode_audio(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return fail(Error::invalid_argument("audio input is empty"));
  auto loaded = sndfile_api();
  if (!loaded) return fail(loaded.error());
  const SndfileApi* api = *loaded;
  MemoryFile file{bytes, nullptr, 0};
  SF_VIRTUAL_IO io = memory_io();
  SF_INFO info{};
  SndfileHandle handle(api->sf_open_virtual(&io, SFM_READ, &info, &file), SndfileCloser{api});
  if (!handle) {
    return fail(
        Error::invalid_argument("audio input is not in a format this worker reads "
                                "(WAV, FLAC, Ogg, Opus, MP3): {}",
                                api->sf_strerror(nullptr)));
  }
  if (info.channels <= 0 || static_cast<std::uint32_t>(info.channels) > kMaxChannels ||
      info.samplerate <= 0 || info.samplerate > 384000) {
    return fail(Error::invalid_argument("audio input has {} channels at {} Hz", info.channels,
                                        info.samplerate));
  }
  if (info.frames < 0 || static_cast<double>(info.frames) / info.samplerate > kMaxSeconds) {
    return fail(Error::invalid_argument("audio input is longer than {} hours",
                                        kMaxSeconds / 3600));
  }
  DecodedAudio audio;
  audio.sample_rate = static_cast<std::uint32_t>(info.samplerate);
  audio.channels = static_cast<std::uint32_t>(info.channels);
  // Read in blocks: `frames` is a header claim and may be wrong for streamed formats.
  std::vector<float> block(4096 * audio.channels);
  for (;;) {
    const sf_count_t got = api->sf_readf_float(handle.get(), block.data(), 4096);
    if (got <= 0) break;
    audio.samples.insert(audio.samples.end(), block.begin(),
                         block.begin() + static_cast<std::ptrdiff_t>(got * audio.channels));
    if (audio.seconds() > kMaxSeconds) {
      return fail(Error::invalid_argument("audio input is longer than {} hours",
                                          kMaxSeconds / 3600));
    }
  }
  if (audio.samples.empty()) return fail(Error::invalid_argument("audio input has no samples"));
  return audio;
}

Result<std::vector<float>> resample(std::span<const float> interleaved, std::uint32_t channels,
                                    std::uint32_t from_hz, std::uint32_t to_hz) {
  if (channels == 0 || from_hz == 0 || to_hz == 0) {
    return fail(Error::invalid_argument("cannot resample {} channel(s) from {} Hz to {} Hz",
                                        channels, from_hz, to_hz));
  }
  if (interleaved.size() % channels != 0) {
    return fail(Error::invalid_argument("{} samples do not divide into {} channels",
                                        interleaved.size(), channels));
  }
  if (from_hz == to_hz) return std::vector<float>(interleaved.begin(), interleaved.end());
  const std::size_t frames = interleaved.size() / channels;
  const auto out_frames = static_cast<std::size_t>(
      std::llround(static_cast<double>(frames) * to_hz / static_cast<double>(from_hz)));
  std::vector<float> out(out_frames * channels);
  if (frames == 0 || out_frames == 0) return out;
  auto loaded = soxr_api();
  if (!loaded) return fail(loaded.error());
  const SoxrApi* api = *loaded;
  const soxr_io_spec_t io = api->soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  // soxr_oneshot's own default is the low-quality recipe; ask for the high-quality one.
  const soxr_quality_spec_t quality = api->soxr_quality_spec(SOXR_HQ, 0);
  std::size_t done = 0;
  const soxr_error_t error =
      api->soxr_oneshot(from_hz, to_hz, channels, interleaved.data(), frames, nullptr, out.data(),
                        out_frames, &done, &io, &quality, nullptr);
  if (error != nullptr) {
    return fail(
        Error::internal("libsoxr cannot resample {} Hz to {} Hz: {}", from_hz, to_hz, error));
  }
  out.resize(done * channels);
  return out;
}

Result<std::vector<float>> to_mono_resampled(const DecodedAudio& audio, std::uint32_t rate) {
  if (audio.channels == 0) {
    return fail(Error::invalid_argument("audio with no channels cannot be made mono"));
  }
  const std::size_t frames = audio.samples.size() / audio.channels;
  std::vector<float> mono(frames);
  for (std::size_t i = 0; i < frames; ++i) {
    float sum = 0;
    for (std::uint32_t c = 0; c < audio.channels; ++c) sum += audio.samples[i * audio.channels + c];
    mono[i] = sum / static_cast<float>(audio.channels);
  }
  return resample(mono, 1, audio.sample_rate, rate);
}

std::uint32_t encoded_sample_rate(std::string_view ext, std::uint32_t rate) {
  static constexpr std::array<std::uint32_t, 5> kOpus = {8000, 12000, 16000, 24000, 48000};
  static constexpr std::array<std::uint32_t, 9> kMpeg = {8000,  11025, 12000, 16000, 22050,
                                                         24000, 32000, 44100, 48000};
  if (ext == "opus") {
    return std::find(kOpus.begin(), kOpus.end(), rate) != kOpus.end() ? rate : 48000;
  }
  if (ext == "mp3") {
    const auto up = std::lower_bound(kMpeg.begin(), kMpeg.end(), rate);
    return up == kMpeg.end() ? 48000 : *up;
  }
  return rate;
}

bool can_encode_audio(std::string_view ext) { return ext == "wav" || format_for(ext) != 0; }

Result<Bytes> encode_audio(std::span<const std::int16_t> samples, std::uint32_t sample_rate,
                           std::string_view ext) {
  if (!can_encode_audio(ext)) {
    return fail(Error::invalid_argument(
        "audio ext `{}` is not supported (wav, flac, ogg, opus, mp3)", ext));
  }
  if (sample_rate == 0) return fail(Error::invalid_argument("audio at 0 Hz cannot be encoded"));
  if (ext == "wav") return encode_wav_pcm16(samples, sample_rate, 1);  // any rate
  auto loaded = sndfile_api();
  if (!loaded) return fail(loaded.error());
  const SndfileApi* api = *loaded;
  const std::uint32_t rate = encoded_sample_rate(ext, sample_rate);
  std::vector<float> resampled;
  if (rate != sample_rate) {
    std::vector<float> input(samples.size());
    std::transform(samples.begin(), samples.end(), input.begin(),
                   [](std::int16_t s) { return static_cast<float>(s) / 32768.0f; });
    auto converted = resample(input, 1, sample_rate, rate);
    if (!converted) return fail(converted.error());
    resampled = std::move(*converted);
    // The filter may overshoot full scale a little next to a clipped input; the encoders expect
    // -1..1.
    for (float& s : resampled) s = std::clamp(s, -1.0f, 1.0f);
  }
  Bytes out;
  MemoryFile file{{}, &out, 0};
  SF_VIRTUAL_IO io = memory_io();
  SF_INFO info{};
  info.samplerate = static_cast<int>(rate);
  info.channels = 1;
  info.format = format_for(ext);
  {
    SndfileHandle handle(api->sf_open_virtual(&io, SFM_WRITE, &info, &file), SndfileCloser{api});
    if (!handle) {
      return fail(Error::internal("cannot write {} audio at {} Hz: {}", ext, rate,
                                  api->sf_strerror(nullptr)));
    }
    const std::size_t count = rate != sample_rate ? resampled.size() : samples.size();
    const sf_count_t written =
        rate != sample_rate
            ? api->sf_write_float(handle.get(), resampled.data(), static_cast<sf_count_t>(count))
            : api->sf_write_short(handle.get(), samples.data(), static_cast<sf_count_t>(count));
    if (written != static_cast<sf_count_t>(count)) {
      return fail(Error::internal("writing {} audio stopped after {} of {} samples: {}", ext,
                                  written, count, api->sf_strerror(handle.get())));
    }
  }  // sf_close flushes the encoder's last frames
  if (out.empty()) return fail(Error::internal("the {} encoder wrote nothing", ext));
  return out;
}

}  // namespace sw::media
