// The studio store on SQLite: the shared suite (studio_store_suite.h) and what only SQLite has
// (its file-level migrations and upgrade path, its read snapshots).

#include <gtest/gtest.h>

#include "studio/store/migrations.h"
#include "studio/store/studio_store.h"
#include "support/temp_dir.h"
#include "unit/store/studio_store_suite.h"

namespace sw::store {
namespace {

using suite::history;
using suite::new_job;
using suite::ok;

std::unique_ptr<SqliteStudioStore> open_memory() {
  return ok(SqliteStudioStore::open(":memory:"));
}

struct SqliteBackend {
  void SetUp() { store_ = open_memory(); }
  StudioStore* store() { return store_.get(); }
  bool raw(std::string_view sql) { return store_->db().exec(sql).has_value(); }
  std::unique_ptr<SqliteStudioStore> store_;
};

}  // namespace

namespace suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, StudioStoreSuite, SqliteBackend);
}  // namespace suite

namespace {

TEST(StudioStoreTest, MigrationsAreAppliedOnceAndNewerSchemasRefused) {
  auto store = open_memory();
  ASSERT_TRUE(migrate(store->db(), studio_migrations()));  // idempotent
  ASSERT_TRUE(store->db().exec("INSERT INTO schema_migrations(version) VALUES (999)"));
  auto again = migrate(store->db(), studio_migrations());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("newer than this binary"), std::string::npos);
}

TEST(StudioStoreTest, UpgradingGivesJobsClaimedAtThatMomentTheirOpenAttempt) {
  sw::testing::TempDir dir;
  {
    auto db = Db::open(dir.path() / "studio.db");
    ASSERT_TRUE(db);
    ASSERT_TRUE(migrate(*db, studio_migrations().first(2)));  // the schema before issue 14
    ASSERT_TRUE(db->exec(
        "INSERT INTO jobs(id, model, kind, task, model_source, vram_gb_estimate, game_id, "
        "asset_name, priority, max_attempts, status, worker_id, created_at, claimed_at, "
        "accepted_at) VALUES ('old', 'm', 'llm', '{}', '{}', 0, '', '', 0, 3, 'claimed', 'w9', "
        "100, 200, 300), ('queued', 'm', 'llm', '{}', '{}', 0, '', '', 0, 3, 'queued', NULL, "
        "100, NULL, NULL)"));
  }
  auto store = SqliteStudioStore::open(dir.path() / "studio.db");
  ASSERT_TRUE(store) << store.error().message;
  const auto attempts = history(**store, "old");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].worker_id, "w9");
  EXPECT_EQ(attempts[0].offered_at, 200);
  EXPECT_EQ(attempts[0].started_at, 300);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Running);
  EXPECT_TRUE(history(**store, "queued").empty());
  // The restarted studio's release closes it like any other.
  ASSERT_TRUE(*(*store)->release_job("old", "w9", 1, std::string("grace over"), false, 400,
                                     AttemptEnd{AttemptOutcome::Requeued, "grace over"}));
  EXPECT_EQ(history(**store, "old")[0].outcome, AttemptOutcome::Requeued);
}

// Regression: a cached SELECT left active after a read kept a stale snapshot open, so that once
// another process (the admin CLI) had committed, every later write of the server failed with
// "database is locked".
TEST(StudioStoreTest, AReadLeavesNoSnapshotThatBlocksWritesAfterAnotherWriter) {
  sw::testing::TempDir dir;
  auto server = SqliteStudioStore::open(dir.path() / "studio.db");
  auto cli = SqliteStudioStore::open(dir.path() / "studio.db");
  ASSERT_TRUE(server && cli);
  ASSERT_TRUE((*server)->set_setting("k", "v"));
  ASSERT_TRUE((*server)->setting("k"));  // a read that returns a row
  ASSERT_TRUE((*cli)->set_setting("k", "from the cli"));
  auto write = (*server)->set_setting("k2", "still writable");
  EXPECT_TRUE(write) << write.error().message;
  EXPECT_EQ((*server)->setting("k").value(), "from the cli");
}

}  // namespace
}  // namespace sw::store
