#pragma once
// The numbered-migration runner for PostgreSQL: the twin of sql::migrate (sqlite.h), with the
// same `schema_migrations` table and the same numbers (migration.h).

#include <span>

#include "common/error.h"
#include "sql/migration.h"
#include "sql/pg/connection.h"

namespace sw::sql::pg {

// Applies every migration above the recorded version (its PostgreSQL text) and records each in
// `schema_migrations`, all in one transaction under an advisory lock, so several processes
// starting together apply them once and a failure leaves the schema as it was (PostgreSQL's DDL
// is transactional). Refuses a database whose version is newer than this binary knows
// (Code::Conflict) and a step without PostgreSQL text (Code::Unsupported). Blocking.
Status migrate(Connection& conn, std::span<const Migration> migrations);

// The version recorded in `schema_migrations` (0 for a database without the table).
Result<std::int64_t> schema_version(Connection& conn);

}  // namespace sw::sql::pg
