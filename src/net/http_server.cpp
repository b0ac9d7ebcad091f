#include "net/http_connection.h"

namespace sw::net {

using detail::kUseTuple;
using detail::logger;

void Responder::send(HttpResponse response) const {
  if (auto connection = connection_.lock()) {
    connection->deliver(std::move(response));
  }
}

std::shared_ptr<EventStream> Responder::start_stream(std::string content_type) const {
  if (auto connection = connection_.lock()) {
    return connection->open_stream(std::move(content_type));
  }
  return nullptr;
}

void Admitter::decide(std::variant<Admission, HttpResponse> decision) const {
  if (auto connection = connection_.lock()) {
    connection->decide(std::move(decision));
  }
}

namespace {

asio::awaitable<void> accept_loop(std::shared_ptr<HttpServer::Impl> server) {
  while (server->acceptor.is_open()) {
    auto [ec, socket] = co_await server->acceptor.async_accept(kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !server->acceptor.is_open()) {
        co_return;
      }
      // EMFILE and friends: log and keep serving the connections we have.
      logger().warn("http.accept_failed", {{"error", ec.message()}});
      asio::steady_timer pause(server->executor, std::chrono::milliseconds(50));
      co_await pause.async_wait(kUseTuple);
      continue;
    }
    if (server->handler == nullptr) {
      co_return;
    }
    beast::error_code endpoint_ec;
    const auto endpoint = socket.remote_endpoint(endpoint_ec);
    std::string remote = endpoint_ec ? std::string("unknown") : endpoint.address().to_string();
    socket.set_option(tcp::no_delay(true), endpoint_ec);
    if (server->tls) {
      detail::spawn_tls_connection(std::move(socket), std::move(remote), server);
    } else {
      detail::spawn_plain_connection(std::move(socket), std::move(remote), server);
    }
  }
}

}  // namespace

HttpServer::~HttpServer() {
  stop();
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(asio::any_io_executor executor,
                                                      ServerOptions options, HttpHandler& handler) {
  auto impl = std::make_shared<Impl>(executor, options);
  impl->handler = &handler;
  if (options.tls_cert_file.has_value() != options.tls_key_file.has_value()) {
    return fail(Error::invalid_argument("--tls-cert and --tls-key must be given together"));
  }
  if (options.tls_cert_file) {
    impl->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                               ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                               ssl::context::no_tlsv1_1,
                           ec);
    impl->tls->use_certificate_chain_file(*options.tls_cert_file, ec);
    if (ec) {
      return fail(Error::invalid_argument("cannot load TLS certificate {}: {}",
                                          *options.tls_cert_file, ec.message()));
    }
    impl->tls->use_private_key_file(*options.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      return fail(Error::invalid_argument("cannot load TLS key {}: {}", *options.tls_key_file,
                                          ec.message()));
    }
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (ec) {
    return fail(
        Error::invalid_argument("listen address \"{}\" is not an IP address", options.host));
  }
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    impl->acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return fail(
        Error::unavailable("cannot listen on {}:{}: {}", options.host, options.port, ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  asio::co_spawn(executor, accept_loop(impl), asio::detached);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::uint16_t HttpServer::port() const {
  return impl_->port;
}
bool HttpServer::tls() const {
  return impl_->tls.has_value();
}

void HttpServer::stop() {
  if (!impl_ || impl_->handler == nullptr) {
    return;
  }
  impl_->handler = nullptr;
  beast::error_code ec;
  impl_->acceptor.close(ec);
  for (auto& weak : impl_->connections) {
    if (auto connection = weak.lock()) {
      connection->shut();
    }
  }
  impl_->connections.clear();
}

std::size_t HttpServer::open_connections() const {
  std::size_t count = 0;
  for (const auto& weak : impl_->connections) {
    count += weak.expired() ? 0 : 1;
  }
  return count;
}

}  // namespace sw::net
