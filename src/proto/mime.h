#pragma once
// The MIME type of a result extension (reference-worker.md §2.3): the worker names its upload part
// with it and the studio serves stored results with it. Thread-safe.

#include <string>
#include <string_view>

namespace sw::proto {

// png, webp, gif, wav, mp3, mp4; anything else application/octet-stream.
std::string mime_for_ext(std::string_view ext);

}  // namespace sw::proto
