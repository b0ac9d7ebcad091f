// config.toml as an operator may leave it: parse, validate, and whatever is accepted must format
// to a config.toml and a state.toml that parse back to the same config.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto config = sw::worker::parse_config(text, "fuzz.toml")) {
    // config.toml keeps the settings; the state keys a reference-style file holds go to
    // state.toml, whose text must read back the same.
    sw::worker::WorkerConfig settings = *config;
    settings.state() = {};
    auto again = sw::worker::parse_config(sw::worker::format_config(*config), "formatted.toml");
    if (!again || !(*again == settings)) std::abort();
    auto state = sw::worker::parse_state(sw::worker::format_state(config->state()), "state.toml");
    if (!state || !(*state == config->state())) std::abort();
  }
  return 0;
}
