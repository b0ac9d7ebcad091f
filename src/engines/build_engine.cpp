#include "engines/build_engine.h"

#include "engines/synthetic/synthetic_engine.h"

namespace sw::engines {

std::unique_ptr<CompositeEngine> build_engine(const EngineOptions& options) {
  std::vector<EnginePtr> members;
  members.push_back(std::make_unique<SyntheticEngine>(options.synthetic_job_duration));  // always present, always last
  return std::make_unique<CompositeEngine>(std::move(members));
}

}  // namespace sw::engines
