#pragma once
// An HTTP/1.1 + WebSocket server on one port (Boost.Beast over Asio, optional TLS), with Beast kept
// behind this header (pimpl). The server runs on the caller's io_context and calls its handler on
// that context's thread: loop-thread only, like everything it hands out.
//
// Per request the handler first sees the headers (HttpHandler::admit, or admit_later when the
// decision needs a database look-up) and chooses the body limit, or refuses at once, so that an
// oversize or unauthorised body is never read. A route may also take its body as a stream
// (Admission::sink) instead of having it buffered. Then the handler gets the request and answers
// through a Responder, now or later (after a database round-trip).
// A WebSocket upgrade goes to HttpHandler::upgrade, which accepts with a WebSocketHandler or
// refuses with an HTTP response.
//
// Hostile input and resource limits (issue 16):
// - Connections are capped at accept, before a byte is read: in total (bounded by the soft
//   RLIMIT_NOFILE minus a reserve), and, while unauthenticated, in total and per source address.
//   A connection is unauthenticated until a request on it is admitted with
//   Admission::authenticated or its WebSocket upgrade is accepted, so 10,000 worker sessions do
//   not use up the unauthenticated allowance. Over a cap, a plain-HTTP peer gets a canned
//   `503` with `Retry-After` in one non-blocking send and the socket is closed at once (no
//   coroutine, no timer: refusing costs nothing that a flood could pile up); a TLS peer is closed
//   at once, since anything but a handshake would be garbage to it. Accepting never stops.
// - When accept itself fails (EMFILE, ENFILE, ENOBUFS), one descriptor kept in reserve is freed
//   to accept the pending connection, which gets the same 503, so the backlog drains instead of
//   filling; the failures are logged once per interval with a count.
// - Request headers must arrive within header_timeout of the connection's first byte being
//   awaited (also the keep-alive idle limit); a body within the route's deadline
//   (Admission::body_timeout, else body_timeout), counted from the end of the headers. A
//   partial request still incomplete at its deadline is answered 408, an idle connection closed.
// - Malformed headers or body framing (a bad chunk, a bad Content-Length) are answered 400 with
//   Beast's description of the problem, then the connection is closed; never silence.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "common/error.h"
#include "net/http_types.h"

namespace sw::net {

class Connection;

// A server-sent-events (or any open-ended) response the handler keeps writing to.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Queues bytes; dropped silently once the client has gone.
  virtual void write(std::string chunk) = 0;
  virtual void close() = 0;
  virtual bool is_open() const = 0;
  // Runs `callback` once on the connection's executor when the stream ends: the client went
  // away, a write failed, or close() was called (at once when it has ended already). One
  // callback; a second call replaces the first.
  virtual void on_close(std::function<void()> callback) = 0;
};

// Answers one request, exactly once: send() a response, or start_stream() for SSE. Cheap to copy;
// a no-op after the connection is gone.
class Responder {
 public:
  explicit Responder(std::weak_ptr<Connection> connection) : connection_(std::move(connection)) {}
  void send(HttpResponse response) const;
  // Writes a 200 with `content_type` and no length; the returned stream writes the body.
  std::shared_ptr<EventStream> start_stream(std::string content_type) const;

 private:
  std::weak_ptr<Connection> connection_;
};

// One accepted WebSocket. Frames are queued and written in order; close() sends the close frame
// after everything queued before it.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  virtual void send_text(std::string text) = 0;
  virtual void send_binary(std::string bytes) = 0;
  virtual void close(std::uint16_t code, std::string reason) = 0;
  virtual const std::string& remote_address() const = 0;
  // Frames queued but not yet written, for back-pressure decisions.
  virtual std::size_t queued_frames() const = 0;
};

// Receives one WebSocket's events. on_closed is called exactly once, last.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  virtual void on_open(std::shared_ptr<WebSocket> socket) = 0;
  virtual void on_text(std::string text) = 0;
  virtual void on_binary(std::size_t bytes) = 0;
  virtual void on_closed() = 0;
};

struct Admission {
  // A constructor rather than an aggregate, so that `Admission{limit}` names no sink.
  explicit Admission(std::uint64_t limit = 1 << 20, std::shared_ptr<BodySink> body_sink = nullptr)
      : body_limit(limit), sink(std::move(body_sink)) {}
  std::uint64_t body_limit;
  // When set, the body goes to this sink as it is read, never buffered whole, and handle() gets
  // the sink back in HttpRequest::body_sink with an empty body. A body that ends early (the
  // client went away, the body timeout) drops the sink without handle() being called.
  std::shared_ptr<BodySink> sink;
  // The whole body must arrive within this long of the headers (a sender that trickles is
  // answered 408). Unset: ServerOptions::body_timeout.
  std::optional<std::chrono::seconds> body_timeout;
  // The route checked a credential: the connection leaves the unauthenticated pool for good.
  bool authenticated = false;
};

// Delivers the decision of HttpHandler::admit_later: call decide() once, on the loop thread, now
// or later. Cheap to copy; a no-op once the connection is gone.
class Admitter {
 public:
  explicit Admitter(std::weak_ptr<Connection> connection) : connection_(std::move(connection)) {}
  void decide(std::variant<Admission, HttpResponse> decision) const;

 private:
  std::weak_ptr<Connection> connection_;
};

struct UpgradeAccepted {
  std::shared_ptr<WebSocketHandler> handler;
  std::optional<std::string> subprotocol;  // echoed in Sec-WebSocket-Protocol
  std::uint64_t message_limit = 1 << 20;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Headers only (body empty): the body limit to read with, or a response sent instead
  // (the connection then closes if a body was announced).
  virtual std::variant<Admission, HttpResponse> admit(const HttpRequest& head) = 0;
  // The same for a decision that needs a look-up first: nothing of the body is read until
  // `admitter` decides (a connection waits at most five minutes). The default decides at once
  // with admit().
  virtual void admit_later(const HttpRequest& head, Admitter admitter) {
    admitter.decide(admit(head));
  }
  virtual void handle(HttpRequest request, Responder responder) = 0;
  // Before upgrade(), which answers at once: a look-up the decision needs first (a credential
  // another server process created a moment ago), delivered through `admitter` as admit_later's
  // is. An HttpResponse is sent instead of the upgrade; an Admission (its fields unused) goes on
  // to upgrade(). The default goes on at once.
  virtual void prepare_upgrade(const HttpRequest& head, Admitter admitter) {
    (void)head;
    admitter.decide(Admission{});
  }
  virtual std::variant<UpgradeAccepted, HttpResponse> upgrade(const HttpRequest& head) = 0;
};

struct ServerOptions {
  // The `Server` header of every response: which program answers (the worker's local API is
  // not the studio).
  std::string product = "studio-server/" SW_VERSION;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port, read back with HttpServer::port()
  std::optional<std::string> tls_cert_file;  // PEM; both or neither
  std::optional<std::string> tls_key_file;
  std::chrono::seconds header_timeout{60};  // idle keep-alive and whole header read
  std::chrono::seconds body_timeout{600};   // whole body, unless the admission sets its own
  std::chrono::seconds websocket_handshake_timeout{10};  // also bounds the close handshake
  std::chrono::seconds websocket_idle_timeout{60};       // with keep-alive pings at half of it
  // Connection caps (see the top of this file). The total is clamped at start to the soft
  // RLIMIT_NOFILE minus fd_reserve, or a quarter of a smaller limit (descriptors left for the
  // database, result files, runners).
  // Defaults leave room for 10,000 worker sessions plus clients.
  std::size_t max_connections = 16'384;
  std::size_t fd_reserve = 256;
  std::size_t max_unauthenticated = 4'096;
  // Generous for a NATed fleet reconnecting at once (the ones refused retry after Retry-After),
  // small next to the total so that one address cannot take every slot.
  std::size_t max_unauthenticated_per_address = 512;
  std::chrono::seconds refused_retry_after{5};  // the Retry-After of a refusal
  std::chrono::seconds limit_log_interval{10};  // at most one refused/accept-failure line per
                                                // interval, with a count of those left out
};

// Counters for metrics and tests. Loop-thread only, like the server.
struct ConnectionStats {
  std::size_t open = 0;               // connections being served (HTTP, streams, WebSockets)
  std::size_t unauthenticated = 0;    // of which not yet authenticated
  std::size_t limit = 0;              // the effective total cap
  std::uint64_t refused = 0;          // refused at accept for a cap, since start
  std::uint64_t accept_failures = 0;  // accept() errors (EMFILE and friends), since start
};

// Loop-thread only. Owns the acceptor and tracks its connections; the handler must outlive it.
class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(boost::asio::any_io_executor executor,
                                                   ServerOptions options, HttpHandler& handler);
  ~HttpServer();
  std::uint16_t port() const;
  bool tls() const;
  // Stops accepting and closes idle HTTP and event-stream connections. WebSockets are the
  // handler's to close (with its own code); the server does not touch them.
  void stop();
  std::size_t open_connections() const;
  ConnectionStats stats() const;

  struct Impl;  // shared with the accept loop and connections (defined in the .cpp)

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  // Shared with the accept loop and the connections, which may outlive this front object.
  std::shared_ptr<Impl> impl_;
};

}  // namespace sw::net
