#pragma once
// A file built into the program (cmake/EmbedFiles.cmake): its bytes as they are, gzip-compressed
// (level 9, for `Content-Encoding: gzip`) and the sha256 of the bytes (an ETag that changes when
// they do). Static storage: the views stay valid for the program's life. Immutable, so any thread
// may read them.

#include <string_view>

namespace sw {

struct EmbeddedFile {
  std::string_view path;    // relative to the embedded folder, '/'-separated, e.g. "app.js"
  std::string_view bytes;   // the file as it is
  std::string_view gzip;    // RFC 1952 gzip of `bytes`
  std::string_view sha256;  // hex of `bytes`
};

}  // namespace sw
