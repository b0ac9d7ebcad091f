#pragma once
// The sd-cpp engine (`modelSource.engine == "sd-cpp"`, advertises `image: ["sd-cpp:*"]`): one
// stable-diffusion.cpp `sd-cli` run per job (reference-worker.md §4.3) in a scratch directory that
// is always removed; its PNG is checked and re-encoded in the requested ext (webp or png).
// Thread-safe; dispatch() blocks.

#include <filesystem>
#include <memory>

#include "engines/engine.h"
#include "models/model_cache.h"

namespace sw::engines {

class SdCppEngine final : public Engine {
 public:
  SdCppEngine(std::filesystem::path sd_cli, std::shared_ptr<models::ModelCache> cache,
              std::filesystem::path scratch_root);

  std::string_view name() const override { return "sd-cpp"; }
  Capabilities capabilities() const override;
  Result<TaskResult> dispatch(const DispatchRequest& request) override;

 private:
  std::filesystem::path cli_;
  std::shared_ptr<models::ModelCache> cache_;
  std::filesystem::path scratch_root_;
};

}  // namespace sw::engines
