// The SQLite migration runner with per-dialect texts: steps apply in order once, a newer schema
// and a step without SQLite text are refused before anything changes.

#include <gtest/gtest.h>

#include "sql/sqlite.h"

namespace sw::sql {
namespace {

std::int64_t version(Db& db) {
  auto stmt = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  EXPECT_TRUE(stmt);
  EXPECT_TRUE(stmt->step().value_or(false));
  return stmt->int64(0);
}

TEST(SqliteMigrate, AppliesTheSqliteTextOfEachStepOnce) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db);
  constexpr Migration kSteps[] = {
      {1, "CREATE TABLE a (x INTEGER);", "this is not run on SQLite"},
      {2, "INSERT INTO a VALUES (7);", "nor this"},
  };
  ASSERT_TRUE(migrate(*db, kSteps));
  ASSERT_TRUE(migrate(*db, kSteps));  // a no-op: the row is inserted once
  EXPECT_EQ(version(*db), 2);
  auto rows = db->prepare("SELECT count(*) FROM a");
  ASSERT_TRUE(rows && rows->step().value_or(false));
  EXPECT_EQ(rows->int64(0), 1);
}

TEST(SqliteMigrate, RefusesANewerSchemaAndAStepWithoutSqliteText) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db);
  constexpr Migration kOne[] = {{1, "CREATE TABLE a (x INTEGER);", {}}};
  ASSERT_TRUE(migrate(*db, kOne));
  ASSERT_TRUE(db->exec("INSERT INTO schema_migrations(version) VALUES (5)"));
  auto newer = migrate(*db, kOne);
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code, Code::Conflict);
  EXPECT_NE(newer.error().message.find("version 5 is newer than this binary knows (1)"),
            std::string::npos)
      << newer.error().message;

  auto fresh = Db::open(":memory:");
  ASSERT_TRUE(fresh);
  constexpr Migration kPostgresOnly[] = {{1, {}, "CREATE TABLE b (y BIGINT);"}};
  auto unsupported = migrate(*fresh, kPostgresOnly);
  ASSERT_FALSE(unsupported);
  EXPECT_EQ(unsupported.error().code, Code::Unsupported);
  EXPECT_EQ(version(*fresh), 0);
}

}  // namespace
}  // namespace sw::sql
