// The plain-TCP instantiation of the connection templates (see http_connection.h).
#include "net/http_connection.h"

namespace sw::net::detail {
namespace {

template <class Stream>
asio::awaitable<void> run_connection(std::shared_ptr<HttpConnection<Stream>> connection) {
  co_await HttpConnection<Stream>::run(std::move(connection));
}

}  // namespace

void spawn_plain_connection(tcp::socket socket, std::string remote,
                            std::shared_ptr<HttpServer::Impl> server) {
  auto connection = std::make_shared<HttpConnection<PlainStream>>(PlainStream(std::move(socket)),
                                                                  std::move(remote), server);
  server->track(connection);
  asio::co_spawn(server->executor, run_connection(std::move(connection)), asio::detached);
}

}  // namespace sw::net::detail
