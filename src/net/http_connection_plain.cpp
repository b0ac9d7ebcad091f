// The plain-TCP instantiation of the connection templates (see http_connection.h).
#include "net/http_connection.h"

namespace sw::net::detail {

void spawn_plain_connection(tcp::socket socket, std::string remote,
                            std::shared_ptr<HttpServer::Impl> server) {
  spawn_connection(PlainStream(std::move(socket)), std::move(remote), std::move(server));
}

}  // namespace sw::net::detail
