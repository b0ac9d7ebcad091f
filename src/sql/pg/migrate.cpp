#include "sql/pg/migrate.h"

namespace sw::sql::pg {
namespace {

// pg_advisory_xact_lock key for migrations: "swmigr" in ASCII, any constant would do as long
// as every release uses the same one.
constexpr std::int64_t kMigrationLock = 0x73776d696772;

}  // namespace

Result<std::int64_t> schema_version(Connection& conn) {
  auto exists = conn.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists) {
    return fail(std::move(exists).error());
  }
  if (!exists->boolean(0, 0)) {
    return 0;
  }
  auto version = conn.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!version) {
    return fail(std::move(version).error());
  }
  return version->int64(0, 0);
}

Status migrate(Connection& conn, std::span<const Migration> migrations) {
  auto tx = Transaction::begin(conn);
  if (!tx) {
    return fail(std::move(tx).error());
  }
  if (auto locked = conn.exec("SELECT pg_advisory_xact_lock($1)", {kMigrationLock}); !locked) {
    return fail(std::move(locked).error());
  }
  SW_TRY(
      conn.exec_script("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                       "KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"));
  auto current = schema_version(conn);
  if (!current) {
    return fail(std::move(current).error());
  }
  SW_TRY(check_migrations(*current, migrations, Dialect::Postgres));
  for (const auto& migration : migrations) {
    if (migration.version <= *current) {
      continue;
    }
    if (auto applied = conn.exec_script(migration.postgres); !applied) {
      return fail(Error::make(applied.error().code, "migration {} failed: {}", migration.version,
                              applied.error().message));
    }
    auto recorded =
        conn.exec("INSERT INTO schema_migrations(version) VALUES ($1)", {migration.version});
    if (!recorded) {
      return fail(std::move(recorded).error());
    }
  }
  return tx->commit();
}

}  // namespace sw::sql::pg
