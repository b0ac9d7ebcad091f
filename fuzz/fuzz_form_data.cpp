// The result upload's multipart parser: the first line is the Content-Type header value, the
// rest the body. Every part it returns must lie inside the body it was given.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/http_types.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const auto content_type = input.substr(0, newline);
  const auto body =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  if (auto parts = sw::net::parse_form_data(content_type, body)) {
    for (const auto& part : *parts) {
      if (part.data.data() < body.data() ||
          part.data.data() + part.data.size() > body.data() + body.size()) {
        std::abort();
      }
    }
  }
  return 0;
}
