#pragma once
// Encoders for result bytes. Every function is thread-safe (the only shared state is the codec
// library's table, loaded once: media/codec_libraries.h) and returns an error value, never a
// partial file. The first call of an encoder opens its library (libpng, libwebp + libwebpmux,
// giflib); where that library cannot be loaded, every call is NotFound naming its package.

#include <span>

#include "common/error.h"
#include "media/image.h"

namespace sw::media {

// PNG, 8-bit RGBA.
Result<Bytes> encode_png(const RgbaImage& image);

// Still WebP; quality 0..100 (lossy).
Result<Bytes> encode_webp(const RgbaImage& image, float quality = 90.0f);

// Animated WebP, one frame every 1/fps seconds, looping forever. All frames share one size.
Result<Bytes> encode_animated_webp(std::span<const RgbaImage> frames, std::uint32_t fps,
                                   float quality = 80.0f);

// Animated GIF through giflib with a fixed 6x7x6 colour cube palette and ordered dithering
// (deterministic, no quantisation pass), looping forever. Frame delay is rounded to 1/100 s.
Result<Bytes> encode_animated_gif(std::span<const RgbaImage> frames, std::uint32_t fps);

// RIFF/WAVE, PCM 16-bit little-endian, interleaved channels.
Result<Bytes> encode_wav_pcm16(std::span<const std::int16_t> samples, std::uint32_t sample_rate,
                               std::uint16_t channels);

}  // namespace sw::media
