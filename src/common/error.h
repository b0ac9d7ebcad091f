#pragma once
// Errors as values (house style C.2 §3): every fallible call returns Result<T>.

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace sw {

// What kind of failure, independent of the message. Maps to HTTP statuses and to the protocol's
// `retryable` flag at the boundaries that need them.
enum class Code {
  InvalidArgument,  // the caller's input is wrong; retrying the same input cannot help
  NotFound,
  AlreadyExists,
  Unavailable,  // a dependency (network, runner, disk) is not there right now
  Timeout,
  Cancelled,
  Protocol,  // the peer broke the wire contract
  IoError,
  Conflict,
  Unsupported,  // this process cannot serve the request at all (missing engine, wrong kind)
  Internal,
};

std::string_view to_string(Code code);

// An error value: a code plus a message meant for an operator. Cheap to move, never thrown.
struct Error {
  Code code = Code::Internal;
  std::string message;

  template <class... Args>
  static Error make(Code code, fmt::format_string<Args...> format, Args&&... args) {
    return Error{code, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <class... Args>
  static Error invalid_argument(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::InvalidArgument, f, std::forward<Args>(a)...);
  }
  template <class... Args>
  static Error not_found(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::NotFound, f, std::forward<Args>(a)...);
  }
  template <class... Args>
  static Error unavailable(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::Unavailable, f, std::forward<Args>(a)...);
  }
  template <class... Args>
  static Error protocol(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::Protocol, f, std::forward<Args>(a)...);
  }
  template <class... Args>
  static Error io(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::IoError, f, std::forward<Args>(a)...);
  }
  template <class... Args>
  static Error unsupported(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::Unsupported, f, std::forward<Args>(a)...);
  }
  template <class... Args>
  static Error internal(fmt::format_string<Args...> f, Args&&... a) {
    return make(Code::Internal, f, std::forward<Args>(a)...);
  }

  // "<code>: <message>", for logs and test failure output.
  std::string describe() const;
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> fail(Error error) {
  return tl::unexpected<Error>(std::move(error));
}

}  // namespace sw

// Propagates the error of a Result-returning expression; the value, if any, is discarded.
#define SW_TRY(expr)                                        \
  do {                                                      \
    if (auto sw_try_result_ = (expr); !sw_try_result_) {    \
      return ::sw::fail(std::move(sw_try_result_).error()); \
    }                                                       \
  } while (false)
