#include "engines/engine.h"

namespace sw::engines {

proto::TaskKind result_kind(const TaskResult& result) {
  return static_cast<proto::TaskKind>(result.index());
}

Error cannot_serve(std::string_view engine, proto::TaskKind kind) {
  return Error::unsupported("{} engine cannot serve {} tasks", engine, proto::to_string(kind));
}

bool is_retryable(const Error& error) {
  return error.code != Code::Unsupported && error.code != Code::InvalidArgument;
}

}  // namespace sw::engines
