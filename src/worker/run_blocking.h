#pragma once
// Worker-private: runs blocking work (an engine dispatch, a libcurl call) on the pool and resumes
// the awaiting coroutine on its own executor with the result, so that the I/O thread never
// blocks. Included by .cpp files only (it pulls in Asio's machinery).

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>

namespace sw::worker {

template <class R>
boost::asio::awaitable<R> run_blocking(boost::asio::any_io_executor pool,
                                       std::function<R()> work) {
  namespace asio = boost::asio;
  auto initiation = [pool](auto handler, std::function<R()> fn) {
    auto guard = asio::make_work_guard(asio::get_associated_executor(handler));
    asio::post(pool, [handler = std::move(handler), fn = std::move(fn),
                      guard = std::move(guard)]() mutable {
      // The work (and what it captured, e.g. a job's gate ticket) is gone before the caller
      // resumes: a slot it freed is free when the caller answers.
      R result = [&fn] {
        auto job = std::move(fn);
        return job();
      }();
      auto home = guard.get_executor();
      asio::dispatch(home, [handler = std::move(handler), result = std::move(result),
                            guard = std::move(guard)]() mutable {
        std::move(handler)(std::move(result));
      });
    });
  };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(R)>(
      initiation, asio::use_awaitable, std::move(work));
}

}  // namespace sw::worker
