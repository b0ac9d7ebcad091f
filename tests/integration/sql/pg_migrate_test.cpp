// Numbered migrations on a real PostgreSQL 15: the studio's schema applies on a fresh database,
// applying again changes nothing, a newer schema is refused, and processes starting together
// apply each step once.

#include <gtest/gtest.h>

#include <thread>

#include "sql/pg/migrate.h"
#include "studio/store/migrations.h"
#include "support/postgres_server.h"

namespace sw::sql::pg {
namespace {

using PgMigrate = sw::testing::PostgresTest;

std::int64_t count(Connection& conn, const std::string& sql) {
  auto rows = conn.exec(sql);
  EXPECT_TRUE(rows) << rows.error().describe();
  return rows ? rows->int64(0, 0) : -1;
}

TEST_F(PgMigrate, TheStudioSchemaAppliesOnAFreshDatabaseAndAgainAsANoOp) {
  auto conn = Connection::open(uri_);
  ASSERT_TRUE(conn);
  const auto studio = store::studio_migrations();
  ASSERT_TRUE(migrate(*conn, studio));
  EXPECT_EQ(schema_version(*conn).value_or(-1), newest_version(studio));
  const auto tables = count(*conn,
                            "SELECT count(*) FROM information_schema.tables WHERE "
                            "table_schema = 'public'");
  EXPECT_EQ(tables, 13);  // 12 of the studio's (join_tokens: issue 22) and schema_migrations
  // The translated schema holds what the studio writes: identity keys, 64-bit milliseconds,
  // the CHECKs.
  auto job = conn->exec(
      "INSERT INTO jobs(id, model, kind, task, model_source, vram_gb_estimate, game_id, "
      "asset_name, priority, max_attempts, status, created_at) VALUES ($1, 'm', 'llm', '{}', "
      "'{}', 1.5, '', '', 0, 3, 'queued', $2) RETURNING seq, former_workers, completions",
      {"j-1", std::int64_t{1'764'000'000'000}});
  ASSERT_TRUE(job) << job.error().describe();
  EXPECT_EQ(job->int64(0, 0), 1);
  EXPECT_EQ(job->text(0, 1), ",");
  EXPECT_EQ(job->int64(0, 2), 0);
  auto claimed_without_worker = conn->exec("UPDATE jobs SET status = 'claimed'");
  ASSERT_FALSE(claimed_without_worker);
  EXPECT_EQ(claimed_without_worker.error().code, Code::Conflict);

  ASSERT_TRUE(migrate(*conn, studio));  // again: nothing to do, nothing lost
  EXPECT_EQ(count(*conn, "SELECT count(*) FROM schema_migrations"),
            static_cast<std::int64_t>(store::studio_migrations().size()));
  EXPECT_EQ(count(*conn, "SELECT count(*) FROM jobs"), 1);
}

TEST_F(PgMigrate, ADatabaseFromANewerReleaseIsRefused) {
  auto conn = Connection::open(uri_);
  ASSERT_TRUE(conn);
  ASSERT_TRUE(migrate(*conn, store::studio_migrations()));
  ASSERT_TRUE(conn->exec("INSERT INTO schema_migrations(version) VALUES (999)"));
  auto refused = migrate(*conn, store::studio_migrations());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::Conflict);
  EXPECT_NE(refused.error().message.find("newer than this binary knows"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("999"), std::string::npos);
}

TEST_F(PgMigrate, AFailingStepLeavesTheSchemaAsItWas) {
  auto conn = Connection::open(uri_);
  ASSERT_TRUE(conn);
  constexpr Migration kSteps[] = {
      {1, "CREATE TABLE a (x INTEGER);", "CREATE TABLE a (x INTEGER);"},
      {2, "CREATE TABLE b (y INTEGER);", "CREATE TABLE b (y INTEGER); SELECT no_such_function();"},
  };
  auto failed = migrate(*conn, kSteps);
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("migration 2"), std::string::npos)
      << failed.error().message;
  EXPECT_EQ(schema_version(*conn).value_or(-1), 0);
  EXPECT_EQ(count(*conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'a'"),
            0);
  // A step with SQLite text only (the worker's outbox) is not applied to PostgreSQL.
  constexpr Migration kSqliteOnly[] = {{1, "CREATE TABLE c (z INTEGER);", {}}};
  auto unsupported = migrate(*conn, kSqliteOnly);
  ASSERT_FALSE(unsupported);
  EXPECT_EQ(unsupported.error().code, Code::Unsupported);
}

TEST_F(PgMigrate, ProcessesStartingTogetherApplyEachStepOnce) {
  Status results[4];
  std::vector<std::thread> starters;
  for (auto& result : results) {
    starters.emplace_back([this, &result] {
      auto conn = Connection::open(uri_);
      result = conn ? migrate(*conn, store::studio_migrations()) : fail(conn.error());
    });
  }
  for (auto& starter : starters) {
    starter.join();
  }
  for (const auto& result : results) {
    EXPECT_TRUE(result) << result.error().describe();
  }
  auto conn = Connection::open(uri_);
  ASSERT_TRUE(conn);
  EXPECT_EQ(count(*conn, "SELECT count(*) FROM schema_migrations"),
            static_cast<std::int64_t>(store::studio_migrations().size()));
}

}  // namespace
}  // namespace sw::sql::pg
