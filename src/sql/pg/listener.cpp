#include "sql/pg/listener.h"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

namespace sw::sql::pg {

namespace asio = boost::asio;

struct Listener::Impl {
  Impl(asio::any_io_executor executor, Connection& c, int fd) : conn(c), socket(executor, fd) {}
  Connection& conn;
  asio::posix::stream_descriptor socket;
};

Listener::Listener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Listener::~Listener() = default;

Result<std::unique_ptr<Listener>> Listener::create(asio::any_io_executor executor,
                                                   Connection& conn) {
  if (conn.socket() < 0) {
    return fail(Error::unavailable("postgresql: cannot listen on a closed connection"));
  }
  // A duplicate: the descriptor object closes what it holds, and the socket is libpq's.
  const int fd = ::dup(conn.socket());
  if (fd < 0) {
    return fail(
        Error::io("postgresql: cannot watch the connection's socket: {}", std::strerror(errno)));
  }
  return std::unique_ptr<Listener>(
      new Listener(std::make_unique<Impl>(std::move(executor), conn, fd)));
}

asio::awaitable<Result<std::vector<Notification>>> Listener::wait() {
  while (true) {
    // Drain first: libpq may hold notifications read during an earlier exec, and whatever the
    // socket receives after this read shows up as readiness for the wait below (the loop's
    // reactor reports it only after the wait is queued).
    auto notes = impl_->conn.take_notifications();
    if (!notes || !notes->empty()) {
      co_return notes;
    }
    auto [ec] = co_await impl_->socket.async_wait(asio::posix::stream_descriptor::wait_read,
                                                  asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) {
      co_return fail(Error::make(Code::Cancelled, "postgresql: wait for notifications cancelled"));
    }
    if (ec) {
      co_return fail(Error::unavailable("postgresql: waiting on {}: {}", impl_->conn.describe(),
                                        ec.message()));
    }
  }
}

void Listener::cancel() {
  impl_->socket.cancel();
}

}  // namespace sw::sql::pg
