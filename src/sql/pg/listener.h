#pragma once
// Waits for LISTEN/NOTIFY notifications on the event loop without blocking it: the connection's
// socket is watched by an Asio descriptor, and when it turns readable libpq reads what arrived
// (PQconsumeInput) and the notifications are handed back (PQnotifies). Notifications are a
// wake-up hint (delivered at the notifier's commit, lost while disconnected): the database stays
// the source of truth, so pair a wait with a timer and poll on wake-up or timeout.
//
// Thread-safety: loop-thread only, and the Connection must not be used elsewhere while a wait is
// pending (give a Listener a connection of its own, LISTENing). The Connection must outlive the
// Listener, which watches a duplicate of its socket and never closes libpq's.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <vector>

#include "common/error.h"
#include "sql/pg/connection.h"

namespace sw::sql::pg {

class Listener {
 public:
  // Fails (IoError) only if the socket cannot be watched; Unavailable for a closed connection.
  static Result<std::unique_ptr<Listener>> create(boost::asio::any_io_executor executor,
                                                  Connection& conn);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Completes with the notifications received (at least one; those already buffered come back
  // at once), Unavailable when the connection is lost, Cancelled after cancel(). One wait at a
  // time.
  boost::asio::awaitable<Result<std::vector<Notification>>> wait();
  // Ends a pending wait with Cancelled.
  void cancel();

 private:
  struct Impl;
  explicit Listener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sw::sql::pg
