// The GGUF header reader on arbitrary files: a model file is untrusted input (a download, a file
// an operator placed). It reads from a path, so each input goes through an in-memory file.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "models/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const int fd = ::memfd_create("gguf-fuzz", 0);
  if (fd < 0) return 0;
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    return 0;
  }
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (auto info = sw::models::read_gguf(path)) {
    (void)sw::models::estimate_memory_bytes(*info, sw::models::pick_context(*info, std::nullopt));
  }
  return 0;
}
