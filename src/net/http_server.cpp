#include "net/http_connection.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "common/fd_limit.h"

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

HttpServer::Impl::~Impl() {
  if (reserve_fd >= 0) {
    ::close(reserve_fd);
  }
}

std::string HttpServer::Impl::over_cap(const std::string& address) const {
  if (open_count >= connection_limit) {
    return fmt::format("open connections at the limit of {}", connection_limit);
  }
  if (unauthenticated_count >= options.max_unauthenticated) {
    return fmt::format("unauthenticated connections at the limit of {}",
                       options.max_unauthenticated);
  }
  const auto it = unauthenticated_by_address.find(address);
  if (it != unauthenticated_by_address.end() &&
      it->second >= options.max_unauthenticated_per_address) {
    return fmt::format("unauthenticated connections from this address at the limit of {}",
                       options.max_unauthenticated_per_address);
  }
  return {};
}

void HttpServer::Impl::connection_opened(const std::string& address) {
  ++open_count;
  ++unauthenticated_count;
  ++unauthenticated_by_address[address];
}

void HttpServer::Impl::connection_authenticated(const std::string& address) {
  --unauthenticated_count;
  if (auto it = unauthenticated_by_address.find(address); it != unauthenticated_by_address.end()) {
    if (--it->second == 0) {
      unauthenticated_by_address.erase(it);
    }
  }
}

void HttpServer::Impl::connection_closed(const std::string& address, bool unauthenticated) {
  --open_count;
  if (unauthenticated) {
    connection_authenticated(address);
  }
}

void Admitter::decide(std::variant<Admission, HttpResponse> decision) const {
  if (auto connection = connection_.lock()) {
    connection->decide(std::move(decision));
  }
}

namespace {

// One log line per interval for an event that a flood would otherwise repeat thousands of times a
// second; the line carries how many were left out since the last one.
class RateLimitedLog {
 public:
  // True when a line is due; `suppressed` is then the count left out since the last line.
  bool due(std::chrono::seconds interval, std::uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < interval) {
      ++suppressed_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  bool logged_once_ = false;
  std::chrono::steady_clock::time_point last_;
  std::uint64_t suppressed_ = 0;
};

// Refuses an accepted socket without serving it: reads what the peer has already sent (so the
// close is less likely to become a reset that eats the answer), sends a canned 503 in one
// non-blocking send when the peer speaks plain HTTP, and closes. Never waits.
void refuse_socket(int fd, bool plain_http, const std::string& why, std::chrono::seconds retry,
                   const std::string& product) {
  std::array<char, 4096> scratch{};
  for (int i = 0; i < 4 && ::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT) > 0; ++i) {
  }
  if (plain_http) {
    const std::string body = fmt::format(R"({{"error":"unavailable","message":"{}"}})", why);
    const std::string response = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nServer: {}\r\nRetry-After: {}\r\n"
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        product, retry.count(), body.size(), body);
    [[maybe_unused]] const auto sent =
        ::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
  }
}

bool out_of_descriptors(const beast::error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec.value() == ENFILE;
}

asio::awaitable<void> accept_loop(std::shared_ptr<HttpServer::Impl> server) {
  RateLimitedLog failure_log;
  RateLimitedLog refusal_log;
  const auto& options = server->options;
  while (server->acceptor.is_open()) {
    auto [ec, socket] = co_await server->acceptor.async_accept(kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !server->acceptor.is_open()) {
        co_return;
      }
      ++server->accept_failures;
      // Out of descriptors: free the reserve to take the pending connection off the backlog and
      // refuse it, rather than leave every queued peer hanging until some socket closes.
      bool drained = false;
      if (out_of_descriptors(ec) && server->reserve_fd >= 0) {
        ::close(server->reserve_fd);
        const int fd = ::accept4(server->acceptor.native_handle(), nullptr, nullptr,
                                 SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
          refuse_socket(fd, !server->tls, "the server is out of file descriptors",
                        options.refused_retry_after, options.product);
          ::close(fd);
          drained = true;
        }
        server->reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
      if (std::uint64_t suppressed = 0; failure_log.due(options.limit_log_interval, suppressed)) {
        logger().warn("http.accept_failed", {{"error", ec.message()},
                                             {"open", server->open_count},
                                             {"refused_pending", drained},
                                             {"suppressed", suppressed},
                                             {"total", server->accept_failures}});
      }
      if (!drained) {
        // Nothing freed: wait for a socket to close instead of spinning on the same error.
        asio::steady_timer pause(server->executor, std::chrono::milliseconds(50));
        co_await pause.async_wait(kUseTuple);
      }
      continue;
    }
    if (server->handler == nullptr) {
      co_return;
    }
    beast::error_code endpoint_ec;
    const auto endpoint = socket.remote_endpoint(endpoint_ec);
    std::string remote = endpoint_ec ? std::string("unknown") : endpoint.address().to_string();
    if (const auto why = server->over_cap(remote); !why.empty()) {
      ++server->refused;
      refuse_socket(socket.native_handle(), !server->tls, why, options.refused_retry_after,
                    options.product);
      socket.close(endpoint_ec);
      if (std::uint64_t suppressed = 0; refusal_log.due(options.limit_log_interval, suppressed)) {
        logger().warn("http.connection_refused", {{"remote", remote},
                                                  {"reason", why},
                                                  {"suppressed", suppressed},
                                                  {"total", server->refused}});
      }
      continue;
    }
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
  // Non-blocking, so that the reserve-descriptor drain in the accept loop can never block it.
  impl->acceptor.non_blocking(true, ec);
  impl->reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const std::uint64_t fd_limit = current_fd_limit();
  // The reserve shrinks with a small limit (at most a quarter of it): under `ulimit -n 200` a
  // fixed 256 left a studio that took one connection at a time (found in review).
  const std::uint64_t reserve = std::min<std::uint64_t>(options.fd_reserve, fd_limit / 4);
  const std::uint64_t usable = fd_limit > reserve ? fd_limit - reserve : 1;
  impl->connection_limit =
      static_cast<std::size_t>(std::min<std::uint64_t>(options.max_connections, usable));
  const std::initializer_list<log::Field> limits = {
      {"max_connections", impl->connection_limit},
      {"max_unauthenticated", options.max_unauthenticated},
      {"max_unauthenticated_per_address", options.max_unauthenticated_per_address},
      {"fd_limit", fd_limit},
      {"port", impl->port}};
  if (impl->connection_limit < options.max_connections) {
    logger().warn("http.connection_limit_clamped", limits);
  } else {
    logger().info("http.connection_limits", limits);
  }
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

ConnectionStats HttpServer::stats() const {
  ConnectionStats out;
  out.open = impl_->open_count;
  out.unauthenticated = impl_->unauthenticated_count;
  out.limit = impl_->connection_limit;
  out.refused = impl_->refused;
  out.accept_failures = impl_->accept_failures;
  return out;
}

std::size_t HttpServer::open_connections() const {
  std::size_t count = 0;
  for (const auto& weak : impl_->connections) {
    count += weak.expired() ? 0 : 1;
  }
  return count;
}

}  // namespace sw::net
