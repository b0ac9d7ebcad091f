#pragma once
// The worker's outbound WebSocket (ws:// or wss://), Beast kept behind this header.
//
// connect() runs TCP connect, TLS (SNI + hostname verification against the system roots and an
// optional extra CA file) and the upgrade under one deadline. A refused upgrade reports the HTTP
// status and body, so that the caller can tell 401 (stop for good) from anything else (retry).
// Reads time out when no frame of any kind has arrived for read_idle_timeout: a half-open
// connection is noticed instead of hanging forever. Writes are queued and written in order by one
// writer (Beast allows one outstanding write).
//
// Loop-thread only: every member must be called on the executor the client was connected on.
// Owned by its caller through shared_ptr; the writer holds a reference until close() or abort().

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/http_types.h"

namespace sw::net {

struct WsClientOptions {
  std::string url;  // ws://host[:port]/path or wss://…
  std::vector<Header> headers;  // added to the upgrade request (e.g. authorization)
  std::optional<std::string> subprotocol;  // requested, and required in the 101 answer
  std::chrono::milliseconds connect_timeout{15000};  // TCP + TLS + upgrade
  std::chrono::milliseconds read_idle_timeout{20000};
  std::chrono::milliseconds close_timeout{5000};
  std::uint64_t max_message_bytes = 64ull << 20;
  std::optional<std::string> ca_file;  // PEM, trusted in addition to the system roots
  std::string user_agent;
};

// Why connect() failed. http_status is the answer to the upgrade when there was one (401, 503…),
// 0 for transport, TLS, timeout or URL errors.
struct WsConnectFailure {
  Error error;
  int http_status = 0;
  std::string body;  // of a refused upgrade, as sent
};

struct WsMessage {
  enum class Kind { Text, Binary, Closed };
  Kind kind = Kind::Text;
  std::string data;  // text or binary payload
  std::uint16_t close_code = 0;  // Closed: the peer's close code (1005 when it sent none)
  std::string close_reason;
};

class WsClient {
 public:
  using ConnectResult = tl::expected<std::shared_ptr<WsClient>, WsConnectFailure>;
  // Connects on the calling coroutine's executor.
  static boost::asio::awaitable<ConnectResult> connect(WsClientOptions options);

  virtual ~WsClient() = default;
  // The next message. Errors: Code::Timeout after read_idle_timeout without a frame,
  // Code::Unavailable when the transport failed or the client was aborted. One reader at a time.
  virtual boost::asio::awaitable<Result<WsMessage>> read() = 0;
  // Queues a text frame and waits until it is written (or the write failed).
  virtual boost::asio::awaitable<Status> send_text(std::string text) = 0;
  // Sends a close frame after the queued frames and waits up to close_timeout for it to go out,
  // then shuts the transport down. Idempotent.
  virtual boost::asio::awaitable<void> close(std::uint16_t code, std::string reason) = 0;
  // Drops the transport at once (pending reads and writes fail). Idempotent.
  virtual void abort() = 0;
  virtual bool is_open() const = 0;
  // The sub-protocol the server echoed ("" when none).
  virtual const std::string& subprotocol() const = 0;
};

}  // namespace sw::net
