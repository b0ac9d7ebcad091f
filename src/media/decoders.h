#pragma once
// Decoders for images the worker must read back (a runner's output). Input is untrusted: sizes are
// bounded and damage is an error value. Thread-safe. libpng is opened on the first call
// (media/codec_libraries.h); where it cannot be loaded, every call is NotFound naming its package.

#include <span>

#include "common/error.h"
#include "media/image.h"

namespace sw::media {

// 8-bit RGBA from any PNG libpng reads (palette, grey and 16-bit converted). ≤ 16384 px a side.
Result<RgbaImage> decode_png(std::span<const std::uint8_t> bytes);

}  // namespace sw::media
