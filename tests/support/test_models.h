#pragma once
// Where the tiny real test models are: STUDIO_WORKER_TEST_MODELS, else the CMake
// cache path SW_TEST_MODELS_DIR. Never a hard-coded relative path.

#include <filesystem>
#include <optional>

namespace sw::testing {

std::optional<std::filesystem::path> test_models_dir();

}  // namespace sw::testing

// Skips the current test with one clear line when the models are not available.
#define SW_REQUIRE_TEST_MODELS(var)                                                   \
  auto var##_opt = ::sw::testing::test_models_dir();                                  \
  if (!var##_opt) {                                                                   \
    GTEST_SKIP() << "SKIPPED: test models not found (set STUDIO_WORKER_TEST_MODELS)"; \
  }                                                                                   \
  const std::filesystem::path var = *var##_opt
