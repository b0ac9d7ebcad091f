// The TLS instantiation of the connection templates (see http_connection.h).
#include "net/http_connection.h"

namespace sw::net::detail {
namespace {

template <class Stream>
asio::awaitable<void> run_connection(std::shared_ptr<HttpConnection<Stream>> connection) {
  co_await HttpConnection<Stream>::run(std::move(connection));
}

}  // namespace

void spawn_tls_connection(tcp::socket socket, std::string remote,
                          std::shared_ptr<HttpServer::Impl> server) {
  auto connection = std::make_shared<HttpConnection<TlsStream>>(
      TlsStream(beast::tcp_stream(std::move(socket)), *server->tls), std::move(remote), server);
  server->track(connection);
  asio::co_spawn(server->executor, run_connection(std::move(connection)), asio::detached);
}

}  // namespace sw::net::detail
