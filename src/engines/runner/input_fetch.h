#pragma once
// Inputs a job names by URL (init/mask/reference images, audio to transcribe): https anywhere,
// http only to loopback, or a `data:<mime>;base64,` URL when the request came from the local API.
// Size-capped; the bytes are untrusted. Blocking; thread-safe.

#include <cstdint>
#include <span>
#include <string_view>

#include "common/error.h"
#include "media/image.h"

namespace sw::engines {

struct InputFetchOptions {
  bool allow_data_urls = false;  // local API requests only
  std::uint64_t max_bytes = 64ull << 20;
  std::string_view what = "input";  // for messages: "init image", "audio input", …
};

Result<media::Bytes> fetch_input(std::string_view url, const InputFetchOptions& options);

// The file extension the bytes' magic numbers say (png, jpg, webp, gif, bmp, wav, flac, ogg, mp3),
// or empty when unknown. Never trusts a name or a declared type.
std::string_view sniff_extension(std::span<const std::uint8_t> bytes);

}  // namespace sw::engines
