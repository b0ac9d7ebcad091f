#include "net/ws_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>

#include <deque>

#include "common/log.h"

namespace sw::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;

namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::net::ws_client");
  return instance;
}

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;
};

Result<ParsedUrl> parse_ws_url(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return fail(Error::invalid_argument("not a URL: {}", url));
  }
  ParsedUrl out;
  const std::string scheme(parsed->scheme());
  if (scheme == "wss") {
    out.tls = true;
  } else if (scheme != "ws") {
    return fail(Error::invalid_argument("websocket URL must be ws:// or wss://: {}", url));
  }
  out.host = std::string(parsed->host_address());
  if (out.host.empty()) {
    return fail(Error::invalid_argument("websocket URL has no host: {}", url));
  }
  out.port = parsed->has_port() ? std::string(parsed->port()) : (out.tls ? "443" : "80");
  out.target = std::string(parsed->encoded_path());
  if (out.target.empty()) out.target = "/";
  if (parsed->has_query()) out.target += "?" + std::string(parsed->encoded_query());
  return out;
}

std::string clip(std::string text, std::size_t limit) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  if (text.size() > limit) {
    text.resize(limit);
    text += "…";
  }
  return text;
}

WsConnectFailure connect_failure(Code code, std::string message) {
  return WsConnectFailure{Error{code, std::move(message)}, 0, {}};
}

// One queued outgoing frame; `waiter` (optional) is woken when it has been written or failed.
struct Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {
    timer.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer timer;
  bool done = false;
  Status status;
};

struct Outgoing {
  std::string text;
  std::shared_ptr<Waiter> waiter;
  bool close = false;
  websocket::close_reason reason;
};

template <class Stream>
class WsClientImpl final : public WsClient,
                           public std::enable_shared_from_this<WsClientImpl<Stream>> {
 public:
  WsClientImpl(Stream stream, std::shared_ptr<ssl::context> tls, std::string subprotocol,
               std::chrono::milliseconds close_timeout)
      : ws_(std::move(stream)),
        tls_(std::move(tls)),
        subprotocol_(std::move(subprotocol)),
        close_timeout_(close_timeout),
        wake_(ws_.get_executor()) {
    wake_.expires_at(asio::steady_timer::time_point::max());
  }

  void start_writer() {
    asio::co_spawn(ws_.get_executor(), writer_loop(this->shared_from_this()), asio::detached);
  }

  awaitable<Result<WsMessage>> read() override {
    if (!open_) {
      co_return fail(Error::unavailable("websocket is closed"));
    }
    buffer_.clear();
    auto [ec, bytes] = co_await ws_.async_read(buffer_, kUseTuple);
    (void)bytes;
    if (ec == websocket::error::closed) {
      open_ = false;
      const auto& reason = ws_.reason();
      WsMessage message;
      message.kind = WsMessage::Kind::Closed;
      message.close_code = static_cast<std::uint16_t>(reason.code);
      message.close_reason = std::string(reason.reason.c_str());
      co_return message;
    }
    if (ec == beast::error::timeout) {
      open_ = false;
      co_return fail(Error::make(Code::Timeout, "no frame from the peer within the idle limit"));
    }
    if (ec) {
      open_ = false;
      co_return fail(Error::unavailable("websocket read failed: {}", ec.message()));
    }
    WsMessage message;
    message.kind = ws_.got_text() ? WsMessage::Kind::Text : WsMessage::Kind::Binary;
    message.data = beast::buffers_to_string(buffer_.data());
    co_return message;
  }

  awaitable<Status> send_text(std::string text) override {
    if (!open_ || closing_) {
      co_return fail(Error::unavailable("websocket is closed"));
    }
    auto waiter = std::make_shared<Waiter>(ws_.get_executor());
    queue_.push_back(Outgoing{std::move(text), waiter, false, {}});
    wake_.cancel();
    while (!waiter->done) {
      co_await waiter->timer.async_wait(kUseTuple);
    }
    co_return waiter->status;
  }

  awaitable<void> close(std::uint16_t code, std::string reason) override {
    if (!open_ || closing_) {
      abort();
      co_return;
    }
    closing_ = true;
    auto waiter = std::make_shared<Waiter>(ws_.get_executor());
    waiter->timer.expires_after(close_timeout_);
    websocket::close_reason close_reason(code);
    close_reason.reason = reason;
    queue_.push_back(Outgoing{{}, waiter, true, close_reason});
    wake_.cancel();
    co_await waiter->timer.async_wait(kUseTuple);  // written, or the close timeout
    abort();
  }

  void abort() override {
    open_ = false;
    closing_ = true;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
    wake_.cancel();
  }

  bool is_open() const override { return open_ && !closing_; }
  const std::string& subprotocol() const override { return subprotocol_; }

 private:
  static awaitable<void> writer_loop(std::shared_ptr<WsClientImpl> self) {
    while (true) {
      while (self->queue_.empty()) {
        if (!self->open_) {
          co_return;
        }
        self->wake_.expires_at(asio::steady_timer::time_point::max());
        co_await self->wake_.async_wait(kUseTuple);
      }
      Outgoing next = std::move(self->queue_.front());
      self->queue_.pop_front();
      beast::error_code ec;
      if (!self->open_) {
        ec = asio::error::not_connected;
      } else if (next.close) {
        auto [close_ec] = co_await self->ws_.async_close(next.reason, kUseTuple);
        ec = close_ec;
      } else {
        self->ws_.text(true);
        auto [write_ec, written] = co_await self->ws_.async_write(asio::buffer(next.text), kUseTuple);
        (void)written;
        ec = write_ec;
      }
      if (ec && !next.close) {
        logger().debug("ws.write_failed", {{"error", ec.message()}});
        self->abort();
      }
      if (next.waiter) {
        next.waiter->done = true;
        if (ec) next.waiter->status = fail(Error::unavailable("websocket write failed: {}", ec.message()));
        next.waiter->timer.cancel();
      }
      if (!self->open_) {
        // Fail everything still queued.
        for (auto& left : self->queue_) {
          if (left.waiter) {
            left.waiter->done = true;
            left.waiter->status = fail(Error::unavailable("websocket is closed"));
            left.waiter->timer.cancel();
          }
        }
        self->queue_.clear();
        co_return;
      }
    }
  }

  Stream ws_;
  std::shared_ptr<ssl::context> tls_;  // must outlive the stream's SSL object
  std::string subprotocol_;
  std::chrono::milliseconds close_timeout_;
  beast::flat_buffer buffer_;
  std::deque<Outgoing> queue_;
  asio::steady_timer wake_;
  bool open_ = true;
  bool closing_ = false;
};

using PlainWs = websocket::stream<beast::tcp_stream>;
using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

template <class Ws>
awaitable<WsClient::ConnectResult> handshake(Ws ws, std::shared_ptr<ssl::context> tls,
                                             ParsedUrl url, WsClientOptions options,
                                             tcp::resolver::results_type endpoints,
                                             std::chrono::steady_clock::time_point deadline) {
  using Failure = tl::unexpected<WsConnectFailure>;
  auto& lowest = beast::get_lowest_layer(ws);
  lowest.expires_at(deadline);
  auto [connect_ec, endpoint] = co_await lowest.async_connect(endpoints, kUseTuple);
  (void)endpoint;
  if (connect_ec) {
    const bool timed_out = connect_ec == beast::error::timeout;
    co_return Failure(connect_failure(timed_out ? Code::Timeout : Code::Unavailable,
                                      fmt::format("connect to {}:{} failed: {}", url.host,
                                                  url.port, connect_ec.message())));
  }
  beast::error_code ignored;
  lowest.socket().set_option(tcp::no_delay(true), ignored);

  if constexpr (std::is_same_v<Ws, TlsWs>) {
    auto& tls_stream = ws.next_layer();
    beast::error_code ip_ec;
    asio::ip::make_address(url.host, ip_ec);
    // SSL_set_tlsext_host_name without the macro's C cast.
    if (ip_ec && SSL_ctrl(tls_stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                          TLSEXT_NAMETYPE_host_name, const_cast<char*>(url.host.c_str())) != 1) {
      co_return Failure(connect_failure(Code::Internal, "could not set TLS SNI"));
    }
    tls_stream.set_verify_callback(ssl::host_name_verification(url.host));
    auto [tls_ec] = co_await tls_stream.async_handshake(ssl::stream_base::client, kUseTuple);
    if (tls_ec) {
      const bool timed_out = tls_ec == beast::error::timeout;
      co_return Failure(connect_failure(timed_out ? Code::Timeout : Code::Unavailable,
                                        fmt::format("TLS handshake with {} failed: {}", url.host,
                                                    tls_ec.message())));
    }
  }

  // The upgrade: the TCP deadline still applies; Beast's own handshake timer is set to what is
  // left so that a peer that never answers cannot hold us past connect_timeout.
  lowest.expires_never();
  websocket::stream_base::timeout during{};
  during.handshake_timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::max(deadline - std::chrono::steady_clock::now(),
               std::chrono::steady_clock::duration(std::chrono::milliseconds(1))));
  during.idle_timeout = websocket::stream_base::none();
  during.keep_alive_pings = false;
  ws.set_option(during);
  ws.set_option(websocket::stream_base::decorator(
      [headers = options.headers, agent = options.user_agent,
       proto = options.subprotocol](websocket::request_type& req) {
        if (!agent.empty()) req.set(http::field::user_agent, agent);
        for (const auto& header : headers) req.set(header.name, header.value);
        if (proto) req.set(http::field::sec_websocket_protocol, *proto);
      }));
  ws.read_message_max(options.max_message_bytes);
  websocket::response_type response;
  const std::string host_header =
      (url.port == "80" || url.port == "443") ? url.host : url.host + ":" + url.port;
  auto [upgrade_ec] = co_await ws.async_handshake(response, host_header, url.target, kUseTuple);
  if (upgrade_ec) {
    const int status = static_cast<int>(response.result_int());
    if (upgrade_ec == websocket::error::upgrade_declined && status != 101) {
      WsConnectFailure failure;
      failure.http_status = status;
      failure.body = response.body();
      failure.error =
          status == 401
              ? Error::invalid_argument("401 on websocket upgrade")
              : Error::unavailable("HTTP {} on websocket upgrade: {}", status,
                                   clip(response.body(), 300));
      co_return Failure(std::move(failure));
    }
    const bool timed_out = upgrade_ec == beast::error::timeout;
    co_return Failure(connect_failure(
        timed_out ? Code::Timeout : Code::Unavailable,
        fmt::format("websocket upgrade failed: {}",
                    timed_out ? std::string("no answer in time") : upgrade_ec.message())));
  }
  std::string echoed(response[http::field::sec_websocket_protocol]);
  if (options.subprotocol && echoed != *options.subprotocol) {
    co_return Failure(connect_failure(
        Code::Protocol, fmt::format("the server did not accept sub-protocol {} (answered \"{}\")",
                                    *options.subprotocol, echoed)));
  }
  websocket::stream_base::timeout running{};
  running.handshake_timeout = options.close_timeout;
  running.idle_timeout = options.read_idle_timeout;
  running.keep_alive_pings = false;  // the protocol's own heartbeats keep the link busy
  ws.set_option(running);
  auto client = std::make_shared<WsClientImpl<Ws>>(std::move(ws), std::move(tls), echoed,
                                                   options.close_timeout);
  client->start_writer();
  co_return std::shared_ptr<WsClient>(std::move(client));
}

}  // namespace

awaitable<WsClient::ConnectResult> WsClient::connect(WsClientOptions options) {
  using Failure = tl::unexpected<WsConnectFailure>;
  using namespace asio::experimental::awaitable_operators;
  const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
  auto url = parse_ws_url(options.url);
  if (!url) {
    co_return Failure(WsConnectFailure{url.error(), 0, {}});
  }
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  asio::steady_timer resolve_deadline(executor, deadline);
  auto raced = co_await (resolver.async_resolve(url->host, url->port, kUseTuple) ||
                         resolve_deadline.async_wait(kUseTuple));
  if (raced.index() == 1) {
    co_return Failure(connect_failure(Code::Timeout, fmt::format("resolving {} timed out",
                                                                 url->host)));
  }
  auto [resolve_ec, endpoints] = std::get<0>(std::move(raced));
  if (resolve_ec) {
    co_return Failure(connect_failure(
        Code::Unavailable, fmt::format("cannot resolve {}: {}", url->host, resolve_ec.message())));
  }
  logger().debug("ws.connecting", {{"host", url->host}, {"port", url->port}});
  if (!url->tls) {
    PlainWs ws(executor);
    co_return co_await handshake(std::move(ws), nullptr, *url, std::move(options),
                                 std::move(endpoints), deadline);
  }
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  tls->set_default_verify_paths();
  tls->set_verify_mode(ssl::verify_peer);
  if (options.ca_file) {
    beast::error_code ec;
    tls->load_verify_file(*options.ca_file, ec);
    if (ec) {
      co_return Failure(connect_failure(
          Code::InvalidArgument,
          fmt::format("cannot load CA file {}: {}", *options.ca_file, ec.message())));
    }
  }
  TlsWs ws(executor, *tls);
  co_return co_await handshake(std::move(ws), tls, *url, std::move(options), std::move(endpoints),
                               deadline);
}

}  // namespace sw::net
