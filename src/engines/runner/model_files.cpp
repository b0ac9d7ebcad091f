#include "engines/runner/model_files.h"

namespace sw::engines {

const models::CachedFile* find_file(const std::vector<models::CachedFile>& files,
                                    std::string_view role, std::string_view extension) {
  for (const models::CachedFile& file : files) {
    if (!role.empty() && file.role != role) continue;
    if (!extension.empty() && !file.path.filename().string().ends_with(extension)) continue;
    return &file;
  }
  return nullptr;
}

Result<const proto::ModelSource*> require_source(const std::optional<proto::ModelSource>& source,
                                                 std::string_view engine) {
  if (!source) {
    return fail(Error::invalid_argument(
        "the {} engine needs the model's source (its files); a studio offer carries it, a local "
        "request names a model of the local catalogue (models.json)",
        engine));
  }
  return &*source;
}

}  // namespace sw::engines
