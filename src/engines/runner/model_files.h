#pragma once
// Model files for the runner engines: every file of a ModelSource through the managed cache, and
// the pick of one file by role (reference-worker.md §1.8, §3.4).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "models/model_cache.h"

namespace sw::engines {

// The first file with `role` whose name ends with `extension` (either may be empty = any).
const models::CachedFile* find_file(const std::vector<models::CachedFile>& files,
                                    std::string_view role, std::string_view extension = {});

// The request's source, or the engine's standard complaint when it has none.
Result<const proto::ModelSource*> require_source(const std::optional<proto::ModelSource>& source,
                                                 std::string_view engine);

}  // namespace sw::engines
