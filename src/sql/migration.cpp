#include "sql/migration.h"

#include <algorithm>

namespace sw::sql {

std::string_view to_string(Dialect dialect) {
  return dialect == Dialect::Sqlite ? "sqlite" : "postgresql";
}

int newest_version(std::span<const Migration> migrations) {
  int newest = 0;
  for (const auto& migration : migrations) {
    newest = std::max(newest, migration.version);
  }
  return newest;
}

Status check_migrations(std::int64_t current, std::span<const Migration> migrations,
                        Dialect dialect) {
  const int newest = newest_version(migrations);
  if (current > newest) {
    return fail(Error::make(Code::Conflict,
                            "database schema version {} is newer than this binary knows ({}); it "
                            "was written by a newer release: upgrade this program",
                            current, newest));
  }
  for (const auto& migration : migrations) {
    if (migration.version > current && migration.sql(dialect).empty()) {
      return fail(Error::unsupported("schema migration {} has no {} text", migration.version,
                                     to_string(dialect)));
    }
  }
  return {};
}

}  // namespace sw::sql
