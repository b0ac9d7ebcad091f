#include "engines/engine.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace sw::engines {

std::optional<std::string> program_unavailable(const std::filesystem::path& program) {
  if (::access(program.c_str(), X_OK) == 0) return std::nullopt;
  const int error = errno;
  return fmt::format("{} is no longer an executable file ({})", program.string(),
                     std::strerror(error));
}

proto::TaskKind result_kind(const TaskResult& result) {
  return static_cast<proto::TaskKind>(result.index());
}

Error cannot_serve(std::string_view engine, proto::TaskKind kind) {
  return Error::unsupported("{} engine cannot serve {} tasks", engine, proto::to_string(kind));
}

bool is_retryable(const Error& error) {
  return error.code != Code::Unsupported && error.code != Code::InvalidArgument;
}

transfer::ProgressFn DispatchRequest::download_progress() const {
  return [stop = stop, observer = observer](const transfer::DownloadProgress& progress) {
    if (observer) observer->download(progress.bytes_done, progress.bytes_total);
    return !stop.stop_requested();
  };
}

Error cancelled_error(std::string_view what) {
  return Error::make(Code::Cancelled, "{} cancelled", what);
}

}  // namespace sw::engines
