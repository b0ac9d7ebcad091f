#pragma once
// Net-internal: the connection templates behind HttpServer, shared by http_server.cpp and the two
// TUs that instantiate them (plain and TLS), so that the heaviest Beast code compiles in parallel.
// Loop-thread only, like HttpServer.

#include "net/http_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <unordered_map>

#include "common/log.h"
#include "common/strings.h"

namespace sw::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace detail {

inline const log::Logger& logger() {
  static const log::Logger instance("studio_worker::net::http");
  return instance;
}

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
constexpr auto kResponseDeadline = std::chrono::minutes(5);
constexpr auto kEventStreamKeepAlive = std::chrono::seconds(15);
// A 400/408/413 is written under this deadline: a peer that does not read its error answer does
// not get to hold the socket for a body deadline.
constexpr auto kErrorWriteDeadline = std::chrono::seconds(10);

// Room for a request body's reads in the connection's buffer, while the body is read. Beast sizes
// each read by the buffer's free capacity, at least 512 bytes (boost/beast/core/impl/
// read_size.hpp); a buffer sized for the headers made a 64 KiB upload 129 reads of 512 bytes,
// and as many writes to the file behind it. Room is made only for an authenticated request
// whose body is still to come (an anonymous peer holds no more than before: what it sent), when
// the body is larger than what the buffer has free: up to the route's limit, the bytes left to
// read (all up to 64 KiB when chunked) and 64 KiB. The room goes again afterwards, so that a
// keep-alive connection waiting for its next request holds no more than before.
class BodyReadRoom {
 public:
  static constexpr std::size_t kMaxRoom = 64 * 1024;

  BodyReadRoom(beast::flat_buffer& buffer, boost::optional<std::uint64_t> remaining,
               std::uint64_t limit)
      : buffer_(buffer) {
    const std::uint64_t wanted =
        std::min<std::uint64_t>({remaining.value_or(kMaxRoom), limit, kMaxRoom});
    if (wanted > buffer.capacity() - buffer.size()) {
      buffer.reserve(buffer.size() + static_cast<std::size_t>(wanted));
      widened_ = true;
    }
  }
  ~BodyReadRoom() {
    if (widened_) {
      buffer_.shrink_to_fit();  // keeps what is buffered (a pipelined next request)
    }
  }
  BodyReadRoom(const BodyReadRoom&) = delete;
  BodyReadRoom& operator=(const BodyReadRoom&) = delete;

 private:
  beast::flat_buffer& buffer_;
  bool widened_ = false;
};

// How often a passed read deadline cancels the read again, in case it fired between two reads of
// a composed operation (when there was nothing to cancel).
constexpr auto kDeadlineRecheck = std::chrono::milliseconds(50);

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <class Body>
HttpRequest to_request(const http::request<Body>& req, const std::string& remote) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  const auto question = out.target.find('?');
  out.path = out.target.substr(0, question);
  if (question != std::string::npos) {
    out.query = out.target.substr(question + 1);
  }
  for (const auto& field : req) {
    out.headers.push_back(Header{ascii_lower(field.name_string()), std::string(field.value())});
  }
  out.remote_address = remote;
  return out;
}

template <class Response>
void apply_headers(Response& res, const HttpResponse& response, bool keep_alive,
                   const std::string& product) {
  res.set(http::field::server, product);
  res.set(http::field::content_type, response.content_type);
  for (const auto& header : response.headers) {
    res.set(header.name, header.value);
  }
  res.keep_alive(keep_alive);
}

}  // namespace detail

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  virtual ~Connection() = default;
  virtual void deliver(HttpResponse response) = 0;
  virtual void decide(std::variant<Admission, HttpResponse> decision) = 0;
  virtual std::shared_ptr<EventStream> open_stream(std::string content_type) = 0;
  virtual void shut() = 0;
};

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  asio::any_io_executor executor;
  ServerOptions options;
  HttpHandler* handler = nullptr;  // null once stopped: late events are dropped
  tcp::acceptor acceptor;
  std::optional<ssl::context> tls;
  std::list<std::weak_ptr<Connection>> connections;
  std::uint16_t port = 0;

  // Connection accounting (http_server.cpp). Counted by HttpConnection's lifetime, which spans a
  // WebSocket session started from it.
  std::size_t connection_limit = 0;  // max_connections clamped to the fd limit
  std::size_t open_count = 0;
  std::size_t unauthenticated_count = 0;
  std::unordered_map<std::string, std::size_t> unauthenticated_by_address;
  std::uint64_t refused = 0;
  std::uint64_t accept_failures = 0;
  int reserve_fd = -1;  // freed to accept (and refuse) one connection when accept hits EMFILE

  Impl(asio::any_io_executor ex, ServerOptions opts)
      : executor(ex), options(std::move(opts)), acceptor(ex) {}
  ~Impl();

  void track(const std::shared_ptr<Connection>& connection) {
    connections.remove_if([](const auto& weak) { return weak.expired(); });
    connections.push_back(connection);
  }
  // Why a new connection from `address` would exceed a cap; empty when it fits.
  std::string over_cap(const std::string& address) const;
  void connection_opened(const std::string& address);
  void connection_authenticated(const std::string& address);
  void connection_closed(const std::string& address, bool unauthenticated);
};

namespace detail {

// Queue + wake-up timer shared by the WebSocket writer and the event-stream writer: one writer
// coroutine drains it (Beast allows one outstanding write per stream).
class WriteQueue {
 public:
  explicit WriteQueue(asio::any_io_executor ex) : signal_(ex) {
    signal_.expires_at(asio::steady_timer::time_point::max());
  }
  void push(std::string item) {
    items_.push_back(std::move(item));
    signal_.cancel();
  }
  void wake() { signal_.cancel(); }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  std::string pop() {
    std::string item = std::move(items_.front());
    items_.pop_front();
    return item;
  }
  // Waits until woken or `timeout` passes; true when woken.
  asio::awaitable<bool> wait(std::chrono::steady_clock::duration timeout) {
    signal_.expires_after(timeout);
    auto [ec] = co_await signal_.async_wait(kUseTuple);
    co_return ec == asio::error::operation_aborted;
  }

 private:
  asio::steady_timer signal_;
  std::deque<std::string> items_;
};

template <class Stream>
class WsSession : public WebSocket, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(Stream stream, std::string remote, std::shared_ptr<WebSocketHandler> handler)
      : ws_(std::move(stream)),
        remote_(std::move(remote)),
        handler_(std::move(handler)),
        queue_(ws_.get_executor()) {}

  void send_text(std::string text) override {
    if (!closing_ && !closed_) {
      binary_.push_back(false);
      queue_.push(std::move(text));
    }
  }
  void send_binary(std::string bytes) override {
    if (!closing_ && !closed_) {
      binary_.push_back(true);
      queue_.push(std::move(bytes));
    }
  }
  void close(std::uint16_t code, std::string reason) override {
    if (closing_ || closed_) {
      return;
    }
    closing_ = true;
    websocket::close_reason why(code);
    why.reason.assign(reason.data(), std::min<std::size_t>(reason.size(), why.reason.max_size()));
    close_reason_ = why;
    queue_.wake();
  }
  const std::string& remote_address() const override { return remote_; }
  std::size_t queued_frames() const override { return queue_.size(); }

  static asio::awaitable<void> run(std::shared_ptr<WsSession> self,
                                   http::request<http::string_body> request,
                                   UpgradeAccepted accepted, ServerOptions options) {
    auto& ws = self->ws_;
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options.websocket_handshake_timeout;
    timeouts.idle_timeout = options.websocket_idle_timeout;
    timeouts.keep_alive_pings = true;
    beast::get_lowest_layer(ws).expires_never();
    ws.set_option(timeouts);
    ws.read_message_max(accepted.message_limit);
    if (accepted.subprotocol) {
      ws.set_option(websocket::stream_base::decorator(
          [protocol = *accepted.subprotocol](websocket::response_type& res) {
            res.set(http::field::sec_websocket_protocol, protocol);
          }));
    }
    auto [accept_ec] = co_await ws.async_accept(request, kUseTuple);
    if (accept_ec) {
      logger().debug("ws.accept_failed",
                     {{"remote", self->remote_}, {"error", accept_ec.message()}});
      co_return;
    }
    self->handler_->on_open(self);
    asio::co_spawn(ws.get_executor(), writer(self), asio::detached);
    beast::flat_buffer buffer;
    while (true) {
      auto [ec, bytes] = co_await ws.async_read(buffer, kUseTuple);
      if (ec) {
        if (ec == websocket::error::message_too_big) {
          logger().warn("ws.frame_too_big",
                        {{"remote", self->remote_}, {"limit", accepted.message_limit}});
        }
        break;
      }
      if (ws.got_text()) {
        self->handler_->on_text(beast::buffers_to_string(buffer.data()));
      } else {
        self->handler_->on_binary(bytes);
      }
      buffer.consume(buffer.size());
    }
    self->closed_ = true;
    self->queue_.wake();
    self->handler_->on_closed();
  }

 private:
  static asio::awaitable<void> writer(std::shared_ptr<WsSession> self) {
    auto& ws = self->ws_;
    while (!self->closed_) {
      while (!self->queue_.empty() && !self->closed_) {
        const std::string frame = self->queue_.pop();
        ws.binary(self->binary_.front());
        self->binary_.pop_front();
        auto [ec, written] = co_await ws.async_write(asio::buffer(frame), kUseTuple);
        if (ec) {
          self->closed_ = true;
          beast::get_lowest_layer(ws).close();
          co_return;
        }
      }
      if (self->closed_) {
        break;
      }
      if (self->close_reason_) {
        auto [ec] = co_await ws.async_close(*self->close_reason_, kUseTuple);
        if (ec) {
          beast::get_lowest_layer(ws).close();
        }
        co_return;
      }
      co_await self->queue_.wait(std::chrono::hours(24));
    }
  }

  websocket::stream<Stream> ws_;
  std::string remote_;
  std::shared_ptr<WebSocketHandler> handler_;
  WriteQueue queue_;
  std::deque<bool> binary_;  // per queued frame: sent as a binary frame
  std::optional<websocket::close_reason> close_reason_;
  bool closing_ = false;
  bool closed_ = false;
};

// A Beast body type that hands each run of body bytes to the admission's BodySink as the parser
// produces it, so that nothing of the body is held here. A refusal from the sink stops the read
// and waits in `refusal` for the connection to send it.
struct SinkBody {
  struct value_type {
    std::shared_ptr<BodySink> sink;
    std::optional<HttpResponse> refusal;
  };
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>& /*head*/, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>& /*length*/, beast::error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      std::size_t used = 0;
      for (const auto buffer : beast::buffers_range_ref(buffers)) {
        auto refusal = body_.sink->write(
            std::string_view(static_cast<const char*>(buffer.data()), buffer.size()));
        if (refusal) {
          body_.refusal = std::move(refusal);
          ec = asio::error::operation_aborted;
          return used;
        }
        used += buffer.size();
      }
      ec = {};
      return used;
    }
    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

template <class Stream>
class HttpConnection;

// The body writer of a streamed response (SSE). Holds the connection weakly.
template <class Stream>
class StreamWriter : public EventStream {
 public:
  explicit StreamWriter(std::shared_ptr<HttpConnection<Stream>> connection)
      : connection_(connection) {}
  void write(std::string chunk) override {
    if (auto c = connection_.lock()) {
      c->stream_write(std::move(chunk));
    }
  }
  void close() override {
    if (auto c = connection_.lock()) {
      c->stream_close();
    }
  }
  bool is_open() const override {
    auto c = connection_.lock();
    return c && c->stream_is_open();
  }
  void on_close(std::function<void()> callback) override {
    if (auto c = connection_.lock(); c && !c->stream_ended()) {
      c->stream_on_close(std::move(callback));
    } else if (callback) {
      callback();
    }
  }

 private:
  std::weak_ptr<HttpConnection<Stream>> connection_;
};

template <class Stream>
class HttpConnection : public Connection {
 public:
  HttpConnection(Stream stream, std::string remote, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(stream)),
        remote_(std::move(remote)),
        server_(std::move(server)),
        response_signal_(stream_.get_executor()),
        stream_queue_(stream_.get_executor()),
        deadline_(stream_.get_executor()) {
    server_->connection_opened(remote_);
  }
  ~HttpConnection() override { server_->connection_closed(remote_, unauthenticated_); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  void deliver(HttpResponse response) override {
    if (!response_ && !streaming_) {
      response_ = std::move(response);
      response_signal_.cancel();
    }
  }

  void decide(std::variant<Admission, HttpResponse> decision) override {
    if (!admission_) {
      admission_ = std::move(decision);
      response_signal_.cancel();
    }
  }

  std::shared_ptr<EventStream> open_stream(std::string content_type) override {
    if (response_ || streaming_) {
      return nullptr;
    }
    streaming_ = true;
    stream_content_type_ = std::move(content_type);
    response_signal_.cancel();
    auto self = std::static_pointer_cast<HttpConnection>(shared_from_this());
    return std::make_shared<StreamWriter<Stream>>(self);
  }

  void shut() override {
    if (!upgraded_) {
      stream_closed_ = true;
      stream_queue_.wake();
      beast::get_lowest_layer(stream_).close();
    }
  }

  void stream_write(std::string chunk) {
    if (!stream_closed_) {
      stream_queue_.push(std::move(chunk));
    }
  }
  // The handler is done: what it queued is still written, then the connection closes.
  void stream_close() {
    stream_closing_ = true;
    stream_queue_.wake();
  }
  bool stream_is_open() const { return !stream_closed_ && !stream_closing_; }
  bool stream_ended() const { return stream_ended_; }
  void stream_on_close(std::function<void()> callback) {
    stream_close_callback_ = std::move(callback);
  }

  static asio::awaitable<void> run(std::shared_ptr<HttpConnection> self) { co_await self->serve(); }

 private:
  HttpHandler* handler() const { return server_->handler; }

  void authenticated() {
    if (unauthenticated_) {
      unauthenticated_ = false;
      server_->connection_authenticated(remote_);
    }
  }

  // A whole-read deadline. When it passes, the pending read is cancelled rather than the socket
  // closed (which Beast's own expiry does), so that a 408 can still be written; and again every
  // kDeadlineRecheck until disarmed, in case it fired between two reads of a composed operation.
  void arm_deadline(std::chrono::steady_clock::duration timeout) {
    deadline_passed_ = false;
    deadline_.expires_after(timeout);
    deadline_.async_wait(std::bind_front(&HttpConnection::on_deadline, weak_from_this()));
  }
  void disarm_deadline() { deadline_.cancel(); }
  static void on_deadline(const std::weak_ptr<Connection>& weak, beast::error_code ec) {
    auto connection = weak.lock();
    if (ec || !connection) {
      return;  // disarmed, or the connection is gone
    }
    auto* self = static_cast<HttpConnection*>(connection.get());
    self->deadline_passed_ = true;
    beast::error_code ignored;
    beast::get_lowest_layer(self->stream_).socket().cancel(ignored);
    self->deadline_.expires_after(kDeadlineRecheck);
    self->deadline_.async_wait(std::bind_front(&HttpConnection::on_deadline, weak));
  }

  asio::awaitable<void> serve() {
    const auto& options = server_->options;
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      auto& lowest = beast::get_lowest_layer(stream_);
      lowest.expires_after(options.header_timeout);
      auto [ec] = co_await stream_.async_handshake(ssl::stream_base::server, kUseTuple);
      if (ec) {
        logger().debug("tls.handshake_failed", {{"remote", remote_}, {"error", ec.message()}});
        co_return;
      }
      lowest.expires_never();  // the requests that follow have their own deadlines
    }
    beast::flat_buffer buffer;
    while (handler() != nullptr) {
      head_only_ = false;
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      // No limit while the headers are read (Beast would check Content-Length against its 1 MiB
      // default there); the route's own limit is set once admit() has chosen it.
      parser.body_limit(boost::none);
      arm_deadline(options.header_timeout);
      auto [ec, unused] = co_await http::async_read_header(stream_, buffer, parser, kUseTuple);
      disarm_deadline();
      if (ec) {
        if (deadline_passed_) {
          // Bytes of a request in the buffer: it was being sent too slowly. None: an idle
          // keep-alive (or a connection that never spoke), closed without a word.
          if (buffer.size() > 0) {
            HttpResponse slow =
                HttpResponse::error(408, "request_timeout",
                                    fmt::format("request headers not complete within {} s",
                                                options.header_timeout.count()));
            co_await write(std::move(slow), false, kErrorWriteDeadline);
          }
        } else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                   ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                   ec != asio::error::eof && ec != http::error::partial_message) {
          // Named, not a temporary: GCC 12 mishandles temporaries in co_await expressions.
          HttpResponse bad =
              HttpResponse::error(400, "bad_request", "malformed request head: " + ec.message());
          co_await write(std::move(bad), false, kErrorWriteDeadline);
        }
        break;
      }
      if (handler() == nullptr) {
        break;
      }
      HttpRequest head = to_request(parser.get(), remote_);
      // RFC 9110 §9.3.2: the answer to HEAD is GET's without its content (routed as GET by
      // the handler; every answer to it, refusals included, is written without a body).
      head_only_ = head.method == "HEAD";
      if (!remote_port_) {
        // Asked once per connection, not per request: getpeername is a system call.
        beast::error_code endpoint_ec;
        const auto peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(endpoint_ec);
        remote_port_ = endpoint_ec ? std::uint16_t{0} : peer.port();
      }
      head.remote_port = *remote_port_;
      if (websocket::is_upgrade(parser.get())) {
        co_await upgrade(parser.release(), head);
        co_return;
      }
      auto admission = co_await admit(head);
      if (handler() == nullptr) {
        break;  // stopped while the handler was deciding
      }
      if (auto* refusal = std::get_if<HttpResponse>(&admission)) {
        const bool body_pending = !parser.is_done();
        const bool keep = !body_pending && parser.get().keep_alive();
        if (co_await write(std::move(*refusal), keep) && body_pending) {
          co_await linger_after_refusal(buffer);
        }
        if (!keep) {
          break;
        }
        continue;
      }
      auto admitted = std::get<Admission>(std::move(admission));
      if (admitted.authenticated) {
        authenticated();
      }
      const auto limit = admitted.body_limit;
      const auto body_timeout = admitted.body_timeout.value_or(options.body_timeout);
      if (const auto length = parser.content_length(); length && *length > limit) {
        HttpResponse too_large = HttpResponse::error(
            413, "payload_too_large",
            fmt::format("body of {} bytes exceeds the limit of {} bytes for this route", *length,
                        limit));
        co_await write(std::move(too_large), false, kErrorWriteDeadline);
        break;
      }
      parser.body_limit(limit);
      if (const auto expect = parser.get()[http::field::expect];
          beast::iequals(expect, "100-continue")) {
        http::response<http::empty_body> interim{http::status::continue_, 11};
        beast::get_lowest_layer(stream_).expires_after(kErrorWriteDeadline);
        auto [continue_ec, n] = co_await http::async_write(stream_, interim, kUseTuple);
        beast::get_lowest_layer(stream_).expires_never();
        if (continue_ec) {
          break;
        }
      }
      HttpRequest full = std::move(head);
      bool keep_alive = false;
      arm_deadline(body_timeout);
      std::optional<BodyReadRoom> room;
      if (admitted.authenticated && !parser.is_done()) {
        room.emplace(buffer, parser.content_length_remaining(), limit);
      }
      if (admitted.sink) {
        full.body_sink = admitted.sink;
        const bool read = co_await read_body_to_sink(buffer, parser, std::move(admitted.sink),
                                                     limit, body_timeout, keep_alive);
        disarm_deadline();
        if (!read) {
          break;
        }
      } else {
        auto [body_ec, body_bytes] = co_await http::async_read(stream_, buffer, parser, kUseTuple);
        disarm_deadline();
        if (body_ec) {
          co_await answer_body_error(body_ec, limit, body_timeout);
          break;
        }
        auto request = parser.release();
        keep_alive = request.keep_alive();
        full.body = std::move(request.body());
      }
      room.reset();
      const std::string target = full.target;
      response_.reset();
      streaming_ = false;
      if (handler() == nullptr) {
        break;
      }
      handler()->handle(std::move(full), Responder(weak_from_this()));
      if (!response_ && !streaming_) {
        response_signal_.expires_after(kResponseDeadline);
        co_await response_signal_.async_wait(kUseTuple);
      }
      if (streaming_) {
        co_await serve_stream();
        co_return;
      }
      if (!response_) {
        logger().error("http.no_response", {{"path", target}});
        response_ = HttpResponse::error(500, "internal_error", "the handler did not answer");
      }
      const bool keep = keep_alive && handler() != nullptr;
      HttpResponse answer = std::move(*response_);
      if (!co_await write(std::move(answer), keep) || !keep) {
        break;
      }
    }
    graceful_close();
  }

  // The handler's decision on a request's headers, now (admit) or after its look-up (admit_later);
  // for a WebSocket upgrade, its prepare_upgrade.
  asio::awaitable<std::variant<Admission, HttpResponse>> admit(const HttpRequest& head,
                                                               bool upgrading = false) {
    admission_.reset();
    if (upgrading) {
      handler()->prepare_upgrade(head, Admitter(weak_from_this()));
    } else {
      handler()->admit_later(head, Admitter(weak_from_this()));
    }
    if (!admission_) {
      response_signal_.expires_after(kResponseDeadline);
      co_await response_signal_.async_wait(kUseTuple);
    }
    if (!admission_) {
      logger().error("http.no_admission", {{"path", head.path}});
      admission_ = HttpResponse::error(503, "unavailable", "the request could not be admitted");
    }
    auto decision = std::move(*admission_);
    admission_.reset();
    co_return decision;
  }

  // Reads the body into `sink` as it arrives (SinkBody): nothing is buffered here beyond what one
  // read returns. False when the connection is done: a refusal or a limit was answered, or the
  // client went away (then the sink is dropped unfinished).
  asio::awaitable<bool> read_body_to_sink(beast::flat_buffer& buffer,
                                          http::request_parser<http::string_body>& head_parser,
                                          std::shared_ptr<BodySink> sink, std::uint64_t limit,
                                          std::chrono::seconds timeout, bool& keep_alive) {
    http::request_parser<SinkBody> parser(std::move(head_parser));
    parser.body_limit(limit);
    parser.get().body().sink = std::move(sink);
    auto [ec, n] = co_await http::async_read(stream_, buffer, parser, kUseTuple);
    disarm_deadline();  // the deadline covers the read; what follows has its own bounds
    if (auto& refusal = parser.get().body().refusal) {
      HttpResponse answer = std::move(*refusal);
      if (co_await write(std::move(answer), false, kErrorWriteDeadline)) {
        co_await linger_after_refusal(buffer);
      }
      co_return false;
    }
    if (ec) {
      co_await answer_body_error(ec, limit, timeout);
      co_return false;
    }
    keep_alive = parser.get().keep_alive();
    co_return true;
  }

  // After answering a request whose body was not read (a refusal from its headers), keeps reading
  // and discarding for a little while before the close, so that a client still sending reads the
  // answer instead of a reset (unread data makes close() send RST; libcurl stops sending once it
  // sees an error answer). Bounded in time and bytes: the body itself is never read whole.
  asio::awaitable<void> linger_after_refusal(beast::flat_buffer& buffer) {
    constexpr auto kLingerTime = std::chrono::seconds(5);
    constexpr std::size_t kLingerBytes = 16 << 20;
    buffer.consume(buffer.size());
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.expires_after(kLingerTime);
    std::array<char, 16 * 1024> scratch{};
    std::size_t discarded = 0;
    while (discarded < kLingerBytes) {
      auto [ec, n] = co_await stream_.async_read_some(asio::buffer(scratch), kUseTuple);
      if (ec) {
        break;
      }
      discarded += n;
    }
    lowest.expires_never();
  }

  void graceful_close() {
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    } else {
      beast::get_lowest_layer(stream_).close();
    }
  }

  // A body read failed: say why when the peer is still there to hear it.
  asio::awaitable<void> answer_body_error(beast::error_code ec, std::uint64_t limit,
                                          std::chrono::seconds timeout) {
    std::optional<HttpResponse> answer;
    if (ec == http::error::body_limit) {
      answer = HttpResponse::error(
          413, "payload_too_large",
          fmt::format("body exceeds the limit of {} bytes for this route", limit));
    } else if (deadline_passed_) {
      answer = HttpResponse::error(
          408, "request_timeout",
          fmt::format("request body not complete within {} s", timeout.count()));
    } else if (ec != asio::error::eof && ec != asio::error::connection_reset &&
               ec != asio::error::operation_aborted && ec != http::error::partial_message &&
               ec != beast::error::timeout && ec != http::error::end_of_stream) {
      answer = HttpResponse::error(400, "bad_request", "malformed request body: " + ec.message());
    }
    if (answer) {
      logger().debug("http.body_refused",
                     {{"remote", remote_}, {"status", answer->status}, {"error", ec.message()}});
      co_await write(std::move(*answer), false, kErrorWriteDeadline);
    }
  }

  // Writes one response under `timeout` (default: body_timeout); false on a write error.
  asio::awaitable<bool> write(HttpResponse response, bool keep_alive,
                              std::optional<std::chrono::seconds> timeout = std::nullopt) {
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.expires_after(timeout.value_or(server_->options.body_timeout));
    if (head_only_) {
      co_return co_await write_head_only(std::move(response), keep_alive);
    }
    if (response.file) {
      http::file_body::value_type file;
      beast::error_code open_ec;
      file.open(response.file->c_str(), beast::file_mode::scan, open_ec);
      if (open_ec) {
        response = HttpResponse::error(500, "internal_error",
                                       "stored result file is unreadable: " + open_ec.message());
      } else {
        http::response<http::file_body> res{static_cast<http::status>(response.status), 11};
        apply_headers(res, response, keep_alive, server_->options.product);
        res.body() = std::move(file);
        res.prepare_payload();
        auto [ec, n] = co_await http::async_write(stream_, res, kUseTuple);
        lowest.expires_never();
        co_return !ec;
      }
    }
    http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
    apply_headers(res, response, keep_alive, server_->options.product);
    res.body() = std::move(response.body);
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream_, res, kUseTuple);
    lowest.expires_never();
    co_return !ec;
  }

  // The header an answer would have, with its Content-Length, and no body (a HEAD request).
  asio::awaitable<bool> write_head_only(HttpResponse response, bool keep_alive) {
    auto& lowest = beast::get_lowest_layer(stream_);
    std::uint64_t length = response.body.size();
    if (response.file) {
      std::error_code size_ec;
      const auto size = std::filesystem::file_size(*response.file, size_ec);
      length = size_ec ? 0 : size;
    }
    http::response<http::empty_body> res{static_cast<http::status>(response.status), 11};
    apply_headers(res, response, keep_alive, server_->options.product);
    res.content_length(length);
    auto [ec, n] = co_await http::async_write(stream_, res, kUseTuple);
    lowest.expires_never();
    co_return !ec;
  }

  asio::awaitable<void> upgrade(http::request<http::string_body> request, HttpRequest head) {
    auto prepared = co_await admit(head, true);
    if (auto* refusal = std::get_if<HttpResponse>(&prepared)) {
      co_await write(std::move(*refusal), false);
      graceful_close();
      co_return;
    }
    if (handler() == nullptr) co_return;  // the server stopped while the look-up ran
    auto decision = handler()->upgrade(head);
    if (auto* refusal = std::get_if<HttpResponse>(&decision)) {
      co_await write(std::move(*refusal), false);
      graceful_close();
      co_return;
    }
    auto accepted = std::get<UpgradeAccepted>(std::move(decision));
    authenticated();  // an accepted upgrade has passed the handler's credential check
    upgraded_ = true;
    auto session =
        std::make_shared<WsSession<Stream>>(std::move(stream_), remote_, accepted.handler);
    co_await WsSession<Stream>::run(session, std::move(request), std::move(accepted),
                                    server_->options);
  }

  asio::awaitable<void> serve_stream() {
    http::response<http::empty_body> head{http::status::ok, 11};
    head.set(http::field::server, server_->options.product);
    head.set(http::field::content_type, stream_content_type_);
    head.set(http::field::cache_control, "no-cache");
    head.keep_alive(false);
    http::response_serializer<http::empty_body> serializer{head};
    auto [head_ec, n] = co_await http::async_write_header(stream_, serializer, kUseTuple);
    if (head_ec) {
      end_stream();
      co_return;
    }
    auto self = std::static_pointer_cast<HttpConnection>(shared_from_this());
    asio::co_spawn(stream_.get_executor(), watch_client(self), asio::detached);
    while (!stream_closed_) {
      while (!stream_queue_.empty() && !stream_closed_) {
        const std::string chunk = stream_queue_.pop();
        auto [ec, written] = co_await asio::async_write(stream_, asio::buffer(chunk), kUseTuple);
        if (ec) {
          stream_closed_ = true;
        }
      }
      if (stream_closed_ || stream_closing_) {
        break;
      }
      if (!co_await stream_queue_.wait(kEventStreamKeepAlive)) {
        stream_queue_.push(": keep-alive\n\n");  // also finds clients that vanished
      }
    }
    beast::get_lowest_layer(stream_).close();
    end_stream();
  }

  void end_stream() {
    stream_closed_ = true;
    stream_ended_ = true;
    if (auto callback = std::exchange(stream_close_callback_, nullptr)) {
      callback();
    }
  }

  // Reads (and discards) until the client goes away, then ends the stream.
  static asio::awaitable<void> watch_client(std::shared_ptr<HttpConnection> self) {
    std::array<char, 512> scratch{};
    while (!self->stream_closed_) {
      auto [ec, n] = co_await self->stream_.async_read_some(asio::buffer(scratch), kUseTuple);
      if (ec) {
        // The client went away: nothing more is written.
        self->stream_closed_ = true;
        self->stream_queue_.wake();
      }
    }
  }

  Stream stream_;
  std::string remote_;
  std::optional<std::uint16_t> remote_port_;  // the peer's TCP port, once asked (0: unknown)
  std::shared_ptr<HttpServer::Impl> server_;
  asio::steady_timer response_signal_;
  std::optional<HttpResponse> response_;
  std::optional<std::variant<Admission, HttpResponse>> admission_;
  bool streaming_ = false;
  bool head_only_ = false;  // the request being answered is HEAD: no body is written
  bool upgraded_ = false;
  std::string stream_content_type_;
  WriteQueue stream_queue_;
  bool stream_closed_ = false;
  bool stream_closing_ = false;  // close() asked: write what is queued, then close
  bool stream_ended_ = false;    // serve_stream returned: the socket is closed
  std::function<void()> stream_close_callback_;
  asio::steady_timer deadline_;
  bool deadline_passed_ = false;
  bool unauthenticated_ = true;
};

// Serves an accepted, wrapped stream on the server's executor until it closes.
template <class Stream>
void spawn_connection(Stream stream, std::string remote, std::shared_ptr<HttpServer::Impl> server) {
  auto connection =
      std::make_shared<HttpConnection<Stream>>(std::move(stream), std::move(remote), server);
  server->track(connection);
  asio::co_spawn(server->executor, HttpConnection<Stream>::run(std::move(connection)),
                 asio::detached);
}

// Starts serving an accepted socket. Each is defined in its own TU (http_connection_plain.cpp,
// http_connection_tls.cpp), which is where the templates above get instantiated.
void spawn_plain_connection(tcp::socket socket, std::string remote,
                            std::shared_ptr<HttpServer::Impl> server);
void spawn_tls_connection(tcp::socket socket, std::string remote,
                          std::shared_ptr<HttpServer::Impl> server);

}  // namespace detail
}  // namespace sw::net
