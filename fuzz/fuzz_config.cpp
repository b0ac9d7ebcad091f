// config.toml as an operator (or a crash mid-write) may leave it: parse, validate, and whatever
// is accepted must format to a file that parses back to the same config.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto config = sw::worker::parse_config(text, "fuzz.toml")) {
    auto again = sw::worker::parse_config(sw::worker::format_config(*config), "formatted.toml");
    if (!again || !(*again == *config)) std::abort();
  }
  return 0;
}
