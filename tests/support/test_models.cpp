#include "support/test_models.h"

#include <cstdlib>

namespace sw::testing {

std::optional<std::filesystem::path> test_models_dir() {
  std::error_code ec;
  if (const char* env = std::getenv("STUDIO_WORKER_TEST_MODELS"); env != nullptr && *env != '\0') {
    if (std::filesystem::is_directory(env, ec)) return std::filesystem::path(env);
  }
  std::filesystem::path configured = SW_TEST_MODELS_DIR;
  if (!configured.empty() && std::filesystem::is_directory(configured, ec)) return configured;
  return std::nullopt;
}

}  // namespace sw::testing
