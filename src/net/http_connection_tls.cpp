// The TLS instantiation of the connection templates (see http_connection.h).
#include "net/http_connection.h"

namespace sw::net::detail {

void spawn_tls_connection(tcp::socket socket, std::string remote,
                          std::shared_ptr<HttpServer::Impl> server) {
  auto& context = *server->tls;
  spawn_connection(TlsStream(beast::tcp_stream(std::move(socket)), context), std::move(remote),
                   std::move(server));
}

}  // namespace sw::net::detail
