#pragma once
// The worker side of the protocol for tests, speaking real WebSocket and HTTP to a studio on
// 127.0.0.1: a blocking client whose every wait has a deadline (no sleeps), plus a small HTTP
// client for the client API, registration and multipart uploads. Not thread-safe: one per thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "proto/frames.h"

namespace sw::testing {

using namespace std::chrono_literals;

struct HttpReply {
  int status = 0;  // 0: no answer (connection refused, reset or timed out)
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
};

// One request per connection, `timeout` for the whole exchange.
HttpReply http_request(std::uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body = "", const std::string& bearer = "",
                       const std::string& content_type = "application/json",
                       std::chrono::milliseconds timeout = 10s,
                       const std::vector<std::pair<std::string, std::string>>& headers = {});

// A multipart/form-data body with the reference's parts (prompt, ext, image) and its boundary.
std::pair<std::string, std::string> result_form(const std::string& prompt, const std::string& ext,
                                                const std::string& bytes,
                                                const std::string& filename);

// A worker's WebSocket session.
class ProtocolClient {
 public:
  struct Options {
    std::string bearer;
    bool offer_subprotocol = true;
  };
  // Upgrades GET /graphics/api/workers/<id>/connect. On a refused upgrade the error's message
  // is "HTTP <status>: <body>".
  static Result<std::unique_ptr<ProtocolClient>> connect(std::uint16_t port,
                                                         const std::string& worker_id,
                                                         Options options);
  ~ProtocolClient();

  const std::string& subprotocol() const;
  void send_text(const std::string& text);
  void send(const proto::WorkerFrame& frame);
  void send_binary(const std::string& bytes);
  // The next text frame, or nullopt when none arrives within `timeout` or the socket closed.
  // A timeout ends the client (the read is cancelled, and Beast's stream is unusable after a
  // cancelled read): closed() turns true with no close code. Give waits room, never a poll slice.
  std::optional<std::string> next_text(std::chrono::milliseconds timeout = 10s);
  // The next frame decoded; a frame that does not decode fails the calling test.
  std::optional<proto::StudioFrame> next_frame(std::chrono::milliseconds timeout = 10s);
  // Skips heartbeatAcks; returns the next other frame.
  std::optional<proto::StudioFrame> next_non_ack(std::chrono::milliseconds timeout = 10s);
  // Reads until the studio closes the socket; its close code, or nullopt on timeout.
  std::optional<std::uint16_t> wait_closed(std::chrono::milliseconds timeout = 10s);
  bool closed() const;
  // Ends the session without a close handshake (as a killed process would).
  void drop();
  void close(std::uint16_t code = 1000);

 private:
  struct Impl;
  explicit ProtocolClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sw::testing
