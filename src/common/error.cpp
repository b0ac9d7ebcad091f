#include "common/error.h"

namespace sw {

std::string_view to_string(Code code) {
  switch (code) {
    case Code::InvalidArgument: return "invalid_argument";
    case Code::NotFound: return "not_found";
    case Code::AlreadyExists: return "already_exists";
    case Code::Unavailable: return "unavailable";
    case Code::Timeout: return "timeout";
    case Code::Cancelled: return "cancelled";
    case Code::Protocol: return "protocol";
    case Code::IoError: return "io_error";
    case Code::Conflict: return "conflict";
    case Code::Unsupported: return "unsupported";
    case Code::Internal: return "internal";
  }
  return "internal";
}

std::string Error::describe() const {
  return fmt::format("{}: {}", to_string(code), message);
}

}  // namespace sw
