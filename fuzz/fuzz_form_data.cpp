// The result upload's multipart parser: the first line is the Content-Type header value, the
// rest the body. Every part it returns must lie inside the body it was given, and feeding the
// body in pieces (as the upload route does while it streams) must give the same parts. The first
// line also goes through HttpRequest::accepts_encoding.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/http_types.h"

namespace {

class Concatenate : public sw::net::FormDataReader::Events {
 public:
  sw::Status on_part_begin(const sw::net::FormPartHead& head) override {
    parts.push_back({head.name, {}});
    return {};
  }
  sw::Status on_part_data(std::string_view bytes) override {
    parts.back().second.append(bytes);
    return {};
  }
  sw::Status on_part_end() override { return {}; }
  std::vector<std::pair<std::string, std::string>> parts;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const auto content_type = input.substr(0, newline);
  const auto body =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  // The first line is also read as an Accept-Encoding value (the dashboard's gzip choice): it
  // must not crash, and an explicit q=0 for gzip is never acceptance.
  sw::net::HttpRequest request;
  request.headers.push_back({"accept-encoding", std::string(content_type)});
  const bool gzip = request.accepts_encoding("gzip");
  request.headers.push_back({"accept-encoding", "gzip;q=0"});
  if (request.accepts_encoding("gzip")) std::abort();
  (void)gzip;
  auto parts = sw::net::parse_form_data(content_type, body);
  if (parts) {
    for (const auto& part : *parts) {
      if (!part.data.empty() && (part.data.data() < body.data() ||
                                 part.data.data() + part.data.size() > body.data() + body.size())) {
        std::abort();
      }
    }
  }
  auto reader = sw::net::FormDataReader::create(content_type);
  if (!reader) {
    return 0;
  }
  Concatenate pieces;
  bool ok = true;
  // Piece sizes 1..7 from the body's own bytes: every split point gets exercised.
  for (std::size_t at = 0; at < body.size() && ok;) {
    const std::size_t n = 1 + static_cast<unsigned char>(body[at]) % 7;
    ok = reader->feed(body.substr(at, n), pieces).has_value();
    at += n;
  }
  ok = ok && reader->finish().has_value();
  if (ok != parts.has_value()) {
    std::abort();
  }
  if (ok) {
    if (pieces.parts.size() != parts->size()) {
      std::abort();
    }
    for (std::size_t i = 0; i < parts->size(); ++i) {
      if (pieces.parts[i].first != (*parts)[i].name || pieces.parts[i].second != (*parts)[i].data) {
        std::abort();
      }
    }
  }
  return 0;
}
