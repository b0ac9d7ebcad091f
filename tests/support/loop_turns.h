#pragma once
// Runs an io_context in short turns until a condition holds, for unit tests whose collaborators
// (the outbox's writer thread, a fake link) post their answers to the loop. Header-only.

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>

namespace sw::testing {

// True once `done` holds; false when `timeout` passes first (which only guards a broken test:
// each turn runs at most one handler, so `done` is checked after every event).
inline bool run_loop_until(boost::asio::io_context& loop, const std::function<bool()>& done,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (loop.stopped()) loop.restart();
    loop.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace sw::testing
