#include "support/http_test_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace sw::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpTestServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::uint16_t port = 0;
  std::thread accept_thread;
  mutable std::mutex mutex;
  std::condition_variable stopped_cv;
  bool stopped = false;
  bool gate_open = false;
  std::map<std::string, Route> routes;
  std::vector<SeenRequest> seen;
  std::vector<std::shared_ptr<tcp::socket>> sockets;
  std::vector<std::thread> connection_threads;

  void accept_loop() {
    for (;;) {
      auto socket = std::make_shared<tcp::socket>(io);
      beast::error_code ec;
      acceptor.accept(*socket, ec);
      if (ec) return;
      std::lock_guard lock(mutex);
      if (stopped) return;
      sockets.push_back(socket);
      connection_threads.emplace_back([this, socket] { serve(*socket); });
    }
  }

  void send_body_part(tcp::socket& socket, const std::string& body, std::size_t begin,
                      std::size_t length, const Route& route) {
    std::size_t limit = length;
    if (route.truncate_after) limit = std::min(limit, *route.truncate_after);
    if (route.stall_after) limit = std::min(limit, *route.stall_after);
    beast::error_code ec;
    asio::write(socket, asio::buffer(body.data() + begin, limit), ec);
    if (route.stall_after && limit < length) {
      std::unique_lock lock(mutex);
      stopped_cv.wait(lock, [this] { return stopped; });
    }
  }

  // The whole body in 64 KiB chunks, then the last chunk; stops quietly when the client hangs up.
  void send_chunked(tcp::socket& socket, const std::string& body) {
    constexpr std::size_t kChunk = 64 * 1024;
    beast::error_code ec;
    for (std::size_t at = 0; at < body.size() && !ec; at += kChunk) {
      const std::size_t n = std::min(kChunk, body.size() - at);
      asio::write(socket, http::make_chunk(asio::buffer(body.data() + at, n)), ec);
    }
    if (!ec) asio::write(socket, http::make_chunk_last(), ec);
  }

  void serve(tcp::socket& socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::empty_body> request;
      beast::error_code ec;
      http::read(socket, buffer, request, ec);
      if (ec) return;
      std::string path(request.target());
      std::string range(request[http::field::range]);
      Route route;
      bool found = false;
      {
        std::lock_guard lock(mutex);
        seen.push_back({path, range, std::string(request[http::field::authorization])});
        if (auto it = routes.find(path); it != routes.end()) {
          route = it->second;
          found = true;
        }
      }
      if (!found) route.status = 404;

      http::response<http::empty_body> head;
      head.version(11);
      head.keep_alive(request.keep_alive());
      const std::string& body = *route.body;
      std::size_t begin = 0;
      std::size_t length = body.size();

      if (route.redirect_to) {
        head.result(http::status::found);
        head.set(http::field::location, *route.redirect_to);
        head.content_length(0);
        length = 0;
      } else if (route.status != 200) {
        head.result(static_cast<http::status>(route.status));
        head.content_length(0);
        length = 0;
      } else if (!range.empty() && route.always_416) {
        head.result(http::status::range_not_satisfiable);
        head.set(http::field::content_range, "bytes */" + std::to_string(body.size()));
        head.content_length(0);
        length = 0;
      } else if (!range.empty() && route.honour_range && range.starts_with("bytes=")) {
        begin = std::stoull(range.substr(6));
        if (begin >= body.size()) {
          head.result(http::status::range_not_satisfiable);
          head.content_length(0);
          length = 0;
        } else {
          length = body.size() - begin;
          std::size_t claimed = route.wrong_content_range ? 0 : begin;
          head.result(http::status::partial_content);
          head.set(http::field::content_range, "bytes " + std::to_string(claimed) + "-" +
                                                   std::to_string(body.size() - 1) + "/" +
                                                   std::to_string(body.size()));
          head.content_length(length);
        }
      } else {
        head.result(http::status::ok);
        if (route.chunked)
          head.chunked(true);
        else
          head.content_length(length);
      }
      head.set(http::field::content_type, "application/octet-stream");
      http::response_serializer<http::empty_body> serializer(head);
      http::write_header(socket, serializer, ec);
      if (ec) return;
      if (route.gated) {
        std::unique_lock lock(mutex);
        stopped_cv.wait(lock, [this] { return stopped || gate_open; });
      }
      if (head.chunked()) {
        send_chunked(socket, body);
      } else if (length > 0) {
        send_body_part(socket, body, begin, length, route);
      }
      if (route.truncate_after || route.stall_after || !request.keep_alive()) {
        socket.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
    }
  }
};

HttpTestServer::HttpTestServer() : impl_(std::make_unique<Impl>()) {
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept_thread = std::thread([this] { impl_->accept_loop(); });
}

HttpTestServer::~HttpTestServer() {
  stop();
}

void HttpTestServer::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
    beast::error_code ec;
    impl_->acceptor.cancel(ec);
    impl_->acceptor.close(ec);
    for (auto& socket : impl_->sockets) {
      socket->shutdown(tcp::socket::shutdown_both, ec);
      socket->close(ec);
    }
    threads = std::move(impl_->connection_threads);
  }
  impl_->stopped_cv.notify_all();
  // Wake a blocking accept() by connecting to ourselves.
  {
    beast::error_code ec;
    tcp::socket poke(impl_->io);
    poke.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port()), ec);
  }
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  for (auto& thread : threads) thread.join();
}

void HttpTestServer::set_route(const std::string& path, Route route) {
  std::lock_guard lock(impl_->mutex);
  impl_->routes[path] = std::move(route);
}

void HttpTestServer::open_gate() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->gate_open = true;
  }
  impl_->stopped_cv.notify_all();
}

std::uint16_t HttpTestServer::port() const {
  return impl_->port;
}

std::string HttpTestServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port()) + path;
}

std::vector<SeenRequest> HttpTestServer::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->seen;
}

std::size_t HttpTestServer::request_count(const std::string& path) const {
  std::lock_guard lock(impl_->mutex);
  std::size_t n = 0;
  for (const auto& r : impl_->seen) n += r.path == path ? 1 : 0;
  return n;
}

std::uint16_t unused_loopback_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::uint16_t port = acceptor.local_endpoint().port();
  acceptor.close();
  return port;
}

}  // namespace sw::testing
