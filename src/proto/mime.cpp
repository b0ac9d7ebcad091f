#include "proto/mime.h"

#include <algorithm>
#include <cctype>

namespace sw::proto {

std::string mime_for_ext(std::string_view ext) {
  struct Entry {
    std::string_view ext;
    std::string_view mime;
  };
  static constexpr Entry kTable[] = {
      // images (sd-cpp, synthetic; animated webp and gif are video results too)
      {"png", "image/png"},
      {"webp", "image/webp"},
      {"gif", "image/gif"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      // audio (espeak-ng, synthetic)
      {"wav", "audio/wav"},
      {"mp3", "audio/mpeg"},
      {"flac", "audio/flac"},
      {"ogg", "audio/ogg"},
      {"opus", "audio/ogg"},  // Ogg Opus: RFC 7845 §9
      // video containers
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      // llm and stt results
      {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
  };
  std::string lower(ext);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const Entry& entry : kTable) {
    if (entry.ext == lower) return std::string(entry.mime);
  }
  return "application/octet-stream";
}

}  // namespace sw::proto
