#include "media/audio_codec.h"

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

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
  void operator()(SNDFILE* file) const { sf_close(file); }
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
  MemoryFile file{bytes, nullptr, 0};
  SF_VIRTUAL_IO io = memory_io();
  SF_INFO info{};
  SndfileHandle handle(sf_open_virtual(&io, SFM_READ, &info, &file));
  if (!handle) {
    return fail(Error::invalid_argument("audio input is not in a format this worker reads "
                                        "(WAV, FLAC, Ogg, Opus, MP3): {}",
                                        sf_strerror(nullptr)));
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
    const sf_count_t got = sf_readf_float(handle.get(), block.data(), 4096);
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

std::vector<float> to_mono_resampled(const DecodedAudio& audio, std::uint32_t rate) {
  const std::size_t frames = audio.channels == 0 ? 0 : audio.samples.size() / audio.channels;
  std::vector<float> mono(frames);
  for (std::size_t i = 0; i < frames; ++i) {
    float sum = 0;
    for (std::uint32_t c = 0; c < audio.channels; ++c) sum += audio.samples[i * audio.channels + c];
    mono[i] = sum / static_cast<float>(audio.channels);
  }
  if (audio.sample_rate == rate || frames == 0) return mono;
  const double step = static_cast<double>(audio.sample_rate) / rate;
  const auto out_frames = static_cast<std::size_t>(std::floor(static_cast<double>(frames) / step));
  std::vector<float> out(out_frames);
  for (std::size_t i = 0; i < out_frames; ++i) {
    const double at = static_cast<double>(i) * step;
    const auto left = static_cast<std::size_t>(at);
    const std::size_t right = std::min(left + 1, frames - 1);
    const auto t = static_cast<float>(at - static_cast<double>(left));
    out[i] = mono[left] * (1.0f - t) + mono[right] * t;
  }
  return out;
}

bool can_encode_audio(std::string_view ext) { return ext == "wav" || format_for(ext) != 0; }

Result<Bytes> encode_audio(std::span<const std::int16_t> samples, std::uint32_t sample_rate,
                           std::string_view ext) {
  if (ext == "wav") return encode_wav_pcm16(samples, sample_rate, 1);
  const int format = format_for(ext);
  if (format == 0) {
    return fail(Error::invalid_argument(
        "audio ext `{}` is not supported (wav, flac, ogg, opus, mp3)", ext));
  }
  Bytes out;
  MemoryFile file{{}, &out, 0};
  SF_VIRTUAL_IO io = memory_io();
  SF_INFO info{};
  info.samplerate = static_cast<int>(sample_rate);
  info.channels = 1;
  info.format = format;
  if (ext == "opus" && sample_rate != 48000 && sample_rate != 24000 && sample_rate != 16000 &&
      sample_rate != 12000 && sample_rate != 8000) {
    return fail(Error::invalid_argument("opus needs 8, 12, 16, 24 or 48 kHz audio, not {} Hz",
                                        sample_rate));
  }
  {
    SndfileHandle handle(sf_open_virtual(&io, SFM_WRITE, &info, &file));
    if (!handle) {
      return fail(Error::internal("cannot write {} audio: {}", ext, sf_strerror(nullptr)));
    }
    const auto written =
        sf_write_short(handle.get(), samples.data(), static_cast<sf_count_t>(samples.size()));
    if (written != static_cast<sf_count_t>(samples.size())) {
      return fail(Error::internal("writing {} audio stopped after {} of {} samples: {}", ext,
                                  written, samples.size(), sf_strerror(handle.get())));
    }
  }  // sf_close flushes the encoder's last frames
  if (out.empty()) return fail(Error::internal("the {} encoder wrote nothing", ext));
  return out;
}

}  // namespace sw::media
