#pragma once
// A real HTTP/1.1 server on 127.0.0.1:<ephemeral> for download tests, built on Boost.Beast, with
// per-path behaviours that misbehave on purpose: ignore Range, lie about Content-Range, answer
// 416, truncate the body under its Content-Length, stall mid-body, redirect, send the body
// chunked (no Content-Length), or hold the body
// behind a gate the test opens (to make two clients overlap). Thread per
// connection; stop() (or the destructor) closes everything and joins. Thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sw::testing {

struct Route {
  std::shared_ptr<const std::string> body = std::make_shared<const std::string>();
  int status = 200;
  bool honour_range = true;                   // false: always 200 with the whole body
  bool wrong_content_range = false;           // 206 whose Content-Range starts elsewhere
  bool always_416 = false;                    // every ranged request gets 416
  std::optional<std::string> redirect_to;     // 302 Location
  std::optional<std::size_t> truncate_after;  // close after this many body bytes
  std::optional<std::size_t> stall_after;     // stop sending after this many bytes until stop()
  bool chunked = false;  // Transfer-Encoding: chunked, no Content-Length (200 answers only)
  bool gated = false;    // send the headers, then hold the body until open_gate() (or stop())
};

// A route that serves `body` normally.
inline Route serving(std::shared_ptr<const std::string> body) {
  Route route;
  route.body = std::move(body);
  return route;
}

struct SeenRequest {
  std::string path;
  std::string range;  // the Range header, empty when absent
  std::string authorization;  // the Authorization header, empty when absent
};

class HttpTestServer {
 public:
  HttpTestServer();
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  void set_route(const std::string& path, Route route);
  std::string url(const std::string& path) const;  // http://127.0.0.1:<port><path>
  std::uint16_t port() const;
  std::vector<SeenRequest> requests() const;
  std::size_t request_count(const std::string& path) const;
  // Releases every gated body, held now or requested later.
  void open_gate();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A port on 127.0.0.1 with nothing listening (bound then closed), for "connection refused".
std::uint16_t unused_loopback_port();

}  // namespace sw::testing
