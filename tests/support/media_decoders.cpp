#include "support/media_decoders.h"

#include <gif_lib.h>
#include <png.h>
#include <sndfile.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include <cmath>
#include <cstring>
#include <memory>

namespace sw::testing {

Result<DecodedImage> decode_png(std::span<const std::uint8_t> bytes) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    return fail(Error::invalid_argument("png: {}", image.message));
  }
  image.format = PNG_FORMAT_RGBA;
  DecodedImage out;
  out.width = image.width;
  out.height = image.height;
  out.rgba.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.rgba.data(), 0, nullptr)) {
    std::string message = image.message;
    png_image_free(&image);
    return fail(Error::invalid_argument("png: {}", message));
  }
  return out;
}

Result<DecodedImage> decode_webp(std::span<const std::uint8_t> bytes) {
  int width = 0, height = 0;
  std::uint8_t* pixels = WebPDecodeRGBA(bytes.data(), bytes.size(), &width, &height);
  if (pixels == nullptr) return fail(Error::invalid_argument("webp: not a decodable still image"));
  DecodedImage out;
  out.width = static_cast<std::uint32_t>(width);
  out.height = static_cast<std::uint32_t>(height);
  out.rgba.assign(pixels, pixels + static_cast<std::size_t>(width) * height * 4);
  WebPFree(pixels);
  return out;
}

Result<DecodedAnimation> decode_animated_webp(std::span<const std::uint8_t> bytes) {
  WebPData data{bytes.data(), bytes.size()};
  WebPAnimDecoderOptions options;
  WebPAnimDecoderOptionsInit(&options);
  options.color_mode = MODE_RGBA;
  std::unique_ptr<WebPAnimDecoder, decltype(&WebPAnimDecoderDelete)> decoder(
      WebPAnimDecoderNew(&data, &options), &WebPAnimDecoderDelete);
  if (!decoder) return fail(Error::invalid_argument("webp: not a decodable animation"));
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(decoder.get(), &info)) {
    return fail(Error::invalid_argument("webp: no animation info"));
  }
  DecodedAnimation out;
  out.width = info.canvas_width;
  out.height = info.canvas_height;
  out.loops_forever = info.loop_count == 0;
  int previous = 0;
  while (WebPAnimDecoderHasMoreFrames(decoder.get())) {
    std::uint8_t* frame = nullptr;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(decoder.get(), &frame, &timestamp)) {
      return fail(Error::invalid_argument("webp: frame {} failed to decode", out.frames.size()));
    }
    out.frames.emplace_back(frame, frame + static_cast<std::size_t>(out.width) * out.height * 4);
    out.delays_ms.push_back(timestamp - previous);  // timestamp is the frame's end time
    previous = timestamp;
  }
  return out;
}

namespace {
struct GifSource {
  std::span<const std::uint8_t> bytes;
  std::size_t offset = 0;
};
int read_gif(GifFileType* gif, GifByteType* buffer, int length) {
  auto* source = static_cast<GifSource*>(gif->UserData);
  std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(length),
                                        source->bytes.size() - source->offset);
  std::memcpy(buffer, source->bytes.data() + source->offset, n);
  source->offset += n;
  return static_cast<int>(n);
}
bool is_netscape_loop(const ExtensionBlock* blocks, int count) {
  for (int i = 0; i < count; ++i) {
    if (blocks[i].Function == APPLICATION_EXT_FUNC_CODE && blocks[i].ByteCount == 11 &&
        std::memcmp(blocks[i].Bytes, "NETSCAPE2.0", 11) == 0 && i + 1 < count &&
        blocks[i + 1].ByteCount == 3 && blocks[i + 1].Bytes[0] == 1 &&
        blocks[i + 1].Bytes[1] == 0 && blocks[i + 1].Bytes[2] == 0) {
      return true;
    }
  }
  return false;
}
}  // namespace

Result<DecodedAnimation> decode_gif(std::span<const std::uint8_t> bytes) {
  GifSource source{bytes};
  int error = 0;
  GifFileType* raw = DGifOpen(&source, read_gif, &error);
  if (raw == nullptr) return fail(Error::invalid_argument("gif: {}", GifErrorString(error)));
  auto closer = [](GifFileType* g) {
    int e = 0;
    DGifCloseFile(g, &e);
  };
  std::unique_ptr<GifFileType, decltype(closer)> gif(raw, closer);
  if (DGifSlurp(gif.get()) != GIF_OK) {
    return fail(Error::invalid_argument("gif: {}", GifErrorString(gif->Error)));
  }
  DecodedAnimation out;
  out.width = static_cast<std::uint32_t>(gif->SWidth);
  out.height = static_cast<std::uint32_t>(gif->SHeight);
  out.loops_forever = is_netscape_loop(gif->ExtensionBlocks, gif->ExtensionBlockCount);
  for (int i = 0; i < gif->ImageCount; ++i) {
    const SavedImage& image = gif->SavedImages[i];
    out.loops_forever =
        out.loops_forever || is_netscape_loop(image.ExtensionBlocks, image.ExtensionBlockCount);
    const ColorMapObject* map =
        image.ImageDesc.ColorMap ? image.ImageDesc.ColorMap : gif->SColorMap;
    if (map == nullptr || image.ImageDesc.Width != gif->SWidth ||
        image.ImageDesc.Height != gif->SHeight) {
      return fail(Error::invalid_argument("gif: frame {} is not a full-canvas frame", i));
    }
    std::vector<std::uint8_t> rgba(static_cast<std::size_t>(out.width) * out.height * 4);
    for (std::size_t p = 0; p < static_cast<std::size_t>(out.width) * out.height; ++p) {
      const GifColorType& c = map->Colors[image.RasterBits[p]];
      rgba[p * 4] = c.Red;
      rgba[p * 4 + 1] = c.Green;
      rgba[p * 4 + 2] = c.Blue;
      rgba[p * 4 + 3] = 255;
    }
    out.frames.push_back(std::move(rgba));
    GraphicsControlBlock gcb{};
    if (DGifSavedExtensionToGCB(gif.get(), i, &gcb) == GIF_OK) {
      out.delays_ms.push_back(gcb.DelayTime * 10);
    } else {
      out.delays_ms.push_back(0);
    }
  }
  return out;
}

namespace {
struct MemoryFile {
  std::span<const std::uint8_t> bytes;
  sf_count_t offset = 0;
};
sf_count_t vio_length(void* user) {
  return static_cast<sf_count_t>(static_cast<MemoryFile*>(user)->bytes.size());
}
sf_count_t vio_seek(sf_count_t offset, int whence, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  sf_count_t base = whence == SEEK_SET   ? 0
                    : whence == SEEK_CUR ? file->offset
                                         : static_cast<sf_count_t>(file->bytes.size());
  file->offset =
      std::clamp<sf_count_t>(base + offset, 0, static_cast<sf_count_t>(file->bytes.size()));
  return file->offset;
}
sf_count_t vio_read(void* ptr, sf_count_t count, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  sf_count_t n =
      std::min<sf_count_t>(count, static_cast<sf_count_t>(file->bytes.size()) - file->offset);
  std::memcpy(ptr, file->bytes.data() + file->offset, static_cast<std::size_t>(n));
  file->offset += n;
  return n;
}
sf_count_t vio_write(const void*, sf_count_t, void*) {
  return 0;
}
sf_count_t vio_tell(void* user) {
  return static_cast<MemoryFile*>(user)->offset;
}
}  // namespace

Result<DecodedAudio> decode_wav(std::span<const std::uint8_t> bytes) {
  MemoryFile file{bytes};
  SF_VIRTUAL_IO io{vio_length, vio_seek, vio_read, vio_write, vio_tell};
  SF_INFO info{};
  std::unique_ptr<SNDFILE, decltype(&sf_close)> sf(sf_open_virtual(&io, SFM_READ, &info, &file),
                                                   &sf_close);
  if (!sf) return fail(Error::invalid_argument("wav: {}", sf_strerror(nullptr)));
  if ((info.format & SF_FORMAT_TYPEMASK) != SF_FORMAT_WAV) {
    return fail(Error::invalid_argument("wav: not a RIFF/WAVE file"));
  }
  DecodedAudio out;
  out.sample_rate = info.samplerate;
  out.channels = info.channels;
  out.pcm16 = (info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16;
  out.samples.resize(static_cast<std::size_t>(info.frames * info.channels));
  sf_count_t read =
      sf_read_short(sf.get(), out.samples.data(), static_cast<sf_count_t>(out.samples.size()));
  if (read != static_cast<sf_count_t>(out.samples.size())) {
    return fail(Error::invalid_argument("wav: read {} of {} samples", read, out.samples.size()));
  }
  return out;
}

Result<DecodedAudio> decode_audio(std::span<const std::uint8_t> bytes) {
  MemoryFile file{bytes};
  SF_VIRTUAL_IO io{vio_length, vio_seek, vio_read, vio_write, vio_tell};
  SF_INFO info{};
  std::unique_ptr<SNDFILE, decltype(&sf_close)> sf(sf_open_virtual(&io, SFM_READ, &info, &file),
                                                   &sf_close);
  if (!sf) return fail(Error::invalid_argument("audio: {}", sf_strerror(nullptr)));
  DecodedAudio out;
  out.sample_rate = info.samplerate;
  out.channels = info.channels;
  out.pcm16 = (info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16;
  const int type = info.format & SF_FORMAT_TYPEMASK;
  const int sub = info.format & SF_FORMAT_SUBMASK;
  out.format = type == SF_FORMAT_WAV                              ? "wav"
               : type == SF_FORMAT_FLAC                           ? "flac"
               : type == SF_FORMAT_OGG && sub == SF_FORMAT_VORBIS ? "ogg/vorbis"
               : type == SF_FORMAT_OGG && sub == SF_FORMAT_OPUS   ? "ogg/opus"
               : type == SF_FORMAT_MPEG                           ? "mp3"
                                                                  : "other";
  if (info.channels <= 0) return fail(Error::invalid_argument("audio: no channels"));
  // Block reads: the frame count is a header claim for streamed formats.
  std::vector<std::int16_t> block(4096 * static_cast<std::size_t>(info.channels));
  for (;;) {
    const sf_count_t got = sf_readf_short(sf.get(), block.data(), 4096);
    if (got <= 0) break;
    out.samples.insert(out.samples.end(), block.begin(),
                       block.begin() + static_cast<std::ptrdiff_t>(got * info.channels));
  }
  return out;
}

double mean_abs_diff(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  if (a.size() != b.size() || a.empty()) return 255.0;
  double total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) total += std::abs(int(a[i]) - int(b[i]));
  return total / static_cast<double>(a.size());
}

double rms(const std::vector<std::int16_t>& samples) {
  if (samples.empty()) return 0;
  double sum = 0;
  for (std::int16_t s : samples) sum += (s / 32768.0) * (s / 32768.0);
  return std::sqrt(sum / static_cast<double>(samples.size()));
}

}  // namespace sw::testing
