#pragma once
// Assembles the composite engine from what this build and this machine provide.

#include <chrono>
#include <memory>

#include "engines/composite_engine.h"

namespace sw::engines {

// Today: the synthetic engine only. The real engines join here as they land (llama-cpp,
// sd-cpp, whisper-cpp, espeak-ng), each only when its runner is found.
struct EngineOptions {
  std::chrono::milliseconds synthetic_job_duration{0};  // see SyntheticEngine
};
std::unique_ptr<CompositeEngine> build_engine(const EngineOptions& options = {});

}  // namespace sw::engines
