#pragma once
// Numbered schema migrations shared by both SQL dialects (house style C.2 §10). A migration has
// one number and one text per dialect, so a schema reads the same on SQLite and PostgreSQL and a
// database of either kind records the same version in its `schema_migrations` table. The
// runners are sql::migrate (sqlite.h) and sql::pg::migrate (pg/migrate.h).

#include <cstdint>
#include <span>
#include <string_view>

#include "common/error.h"

namespace sw::sql {

enum class Dialect { Sqlite, Postgres };
std::string_view to_string(Dialect dialect);

// The step from version-1 to version. A schema that exists on one dialect only (the worker's
// outbox is SQLite-only) leaves the other text empty; its runner then refuses to apply it.
struct Migration {
  int version = 0;
  std::string_view sqlite;
  std::string_view postgres;

  std::string_view sql(Dialect dialect) const {
    return dialect == Dialect::Sqlite ? sqlite : postgres;
  }
};

// The highest version in `migrations` (0 when empty).
int newest_version(std::span<const Migration> migrations);

// Checks a database's recorded version against what this binary knows, and that every step it
// would apply has a text for `dialect`. A recorded version above the newest known means the
// database was written by a newer release: Code::Conflict, with a message that says "newer than
// this binary knows" and both numbers, so the operator upgrades instead of losing data.
Status check_migrations(std::int64_t current, std::span<const Migration> migrations,
                        Dialect dialect);

}  // namespace sw::sql
