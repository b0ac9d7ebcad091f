// The studio store on a real PostgreSQL 15 (issue 18): the same suite as SQLite's
// (unit/store/studio_store_suite.h), plus what only a shared server can show: claims from two
// connections at once, and a newer schema refused.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "sql/pg/migrate.h"
#include "studio/store/migrations.h"
#include "studio/store/pg_studio_store.h"
#include "support/postgres_server.h"
#include "unit/store/studio_store_suite.h"

namespace sw::store {
namespace {

using suite::new_job;
using suite::ok;

struct PgBackend {
  void SetUp() {
    sw::testing::open_test_database(&server_, &uri_);
    if (uri_.empty()) {
      return;  // skipped or failed
    }
    auto opened = PgStudioStore::open(uri_);
    ASSERT_TRUE(opened) << opened.error().describe();
    store_ = std::move(*opened);
  }
  StudioStore* store() { return store_.get(); }
  bool raw(std::string_view sql) { return store_->connection().exec(sql).has_value(); }

  sw::testing::PostgresServer* server_ = nullptr;
  std::string uri_;
  std::unique_ptr<PgStudioStore> store_;
};

}  // namespace

namespace suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Pg, StudioStoreSuite, PgBackend);
}  // namespace suite

namespace {

using PgStudioStoreTest = sw::testing::PostgresTest;

// Two studio processes offering the same job at the same moment: exactly one claim wins and the
// job has exactly one attempt.
TEST_F(PgStudioStoreTest, OfTwoConnectionsClaimingOneJobExactlyOneWins) {
  auto first = PgStudioStore::open(uri_);
  auto second = PgStudioStore::open(uri_);
  ASSERT_TRUE(first && second);
  constexpr int kJobs = 50;
  for (int i = 0; i < kJobs; ++i) {
    auto job = new_job("j" + std::to_string(i));
    ASSERT_TRUE((*first)->insert_job(job));
  }
  std::atomic<int> wins{0};
  std::atomic<int> errors{0};
  auto claim_all = [&](PgStudioStore& store, const char* worker) {
    for (int i = 0; i < kJobs; ++i) {
      auto claimed = store.claim_job("j" + std::to_string(i), worker, 2000);
      if (!claimed) {
        ++errors;
      } else if (*claimed) {
        ++wins;
      }
    }
  };
  std::thread a(claim_all, std::ref(**first), "w1");
  std::thread b(claim_all, std::ref(**second), "w2");
  a.join();
  b.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wins.load(), kJobs);
  for (int i = 0; i < kJobs; ++i) {
    const auto id = "j" + std::to_string(i);
    const auto attempts = ok((*first)->job_attempts(id));
    ASSERT_EQ(attempts.size(), 1u) << id;
    EXPECT_EQ(ok((*first)->find_job(id)).value().worker_id, attempts[0].worker_id);
  }
}

// Other processes hear of a job's change from a notification sent in the change's own
// transaction: delivered once it commits, never for a write that was rolled back.
TEST_F(PgStudioStoreTest, JobChangesNotifyOtherProcessesAtCommitOnly) {
  auto store = PgStudioStore::open(uri_);
  auto listener = sql::pg::Connection::open(uri_);
  ASSERT_TRUE(store && listener);
  ASSERT_TRUE(listener->listen(kJobsChannel));
  ASSERT_TRUE(listener->listen(kCacheChannel));
  (*store)->set_process_id("sp-a");
  // Notifications arrive over the socket: read until the expected count (bounded).
  auto receive = [&](std::size_t count) {
    std::vector<sql::pg::Notification> got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto more = listener->take_notifications();
      EXPECT_TRUE(more);
      if (!more) break;
      got.insert(got.end(), more->begin(), more->end());
      if (got.size() < count) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return got;
  };
  {
    auto tx = sql::pg::Transaction::begin((*store)->connection());
    ASSERT_TRUE(tx);
    auto dropped = new_job("rolled-back");
    ASSERT_TRUE((*store)->insert_job(dropped));
  }  // rolled back
  auto job = new_job("j1");
  ASSERT_TRUE((*store)->insert_job(job));
  ASSERT_TRUE(ok((*store)->claim_job("j1", "w1", 2000)));  // a claim is not announced
  ASSERT_TRUE(ok((*store)->cancel_job("j1", 3000)));
  ASSERT_TRUE((*store)->insert_api_key(ApiKeyRecord{"k1", "n", "hash", 1}));
  const auto got = receive(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].channel, kJobsChannel);
  EXPECT_EQ(got[0].payload, "j1\tsp-a") << "the insert, not the rolled-back one";
  EXPECT_EQ(got[1].payload, "j1\tsp-a") << "the cancel";
  EXPECT_EQ(got[2].channel, kCacheChannel);
  EXPECT_EQ(got[2].payload, "keys");
}

// A job of an API key ends in one process (its usage metered) while another process creates a
// job for the same key (the quota check holds the key's usage): neither batch waits for the
// other in the opposite order, so both commit. Every writer of a key's usage takes the key's
// lock before its row; before, the meter took the row alone, and the two batches deadlocked
// (PostgreSQL failed one after a second: a 503 and a stalled database thread in each process).
TEST_F(PgStudioStoreTest, AKeysMeteringAndItsQuotaCheckInTwoProcessesNeverDeadlock) {
  auto ending = PgStudioStore::open(uri_);
  auto creating = PgStudioStore::open(uri_);
  auto watcher = sql::pg::Connection::open(uri_);
  ASSERT_TRUE(ending && creating && watcher);
  const std::string key = "k-raced";
  const std::int64_t day = 20'000;
  auto pid = (*creating)->connection().exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid);
  const auto creating_pid = pid->int64(0, 0);

  // The first process's batch: a job of the key ended (metered).
  ASSERT_TRUE((*ending)->begin_batch());
  ASSERT_TRUE((*ending)->add_key_usage(key, day, KeyUsage{.run_ms = 5}));
  // The second's: a quota check and its job's count, as tx::create_job does them.
  Status created;
  std::thread second([&] {
    created = [&]() -> Status {
      SW_TRY((*creating)->begin_batch());
      SW_TRY((*creating)->hold_key_usage(key));
      SW_TRY((*creating)->key_usage(key, day));
      SW_TRY((*creating)->add_key_usage(key, day, KeyUsage{.jobs = 1}));
      return (*creating)->commit_batch();
    }();
    if (!created) (*creating)->rollback_batch();
  });
  // Once the second waits on a lock (polled from a third connection: another backend's state)…
  bool waiting = false;
  for (const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       !waiting && std::chrono::steady_clock::now() < give_up;) {
    auto row = watcher->exec(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
        {creating_pid});
    waiting = row && row->int64(0, 0) == 1;
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(waiting) << "the second process never waited for the first";
  // …the first creates a job for the key too, and commits.
  const Status first = [&]() -> Status {
    SW_TRY((*ending)->hold_key_usage(key));
    SW_TRY((*ending)->add_key_usage(key, day, KeyUsage{.jobs = 1}));
    return (*ending)->commit_batch();
  }();
  if (!first) (*ending)->rollback_batch();
  second.join();
  EXPECT_TRUE(first) << first.error().message;
  EXPECT_TRUE(created) << created.error().message;
  const auto usage = ok((*ending)->key_usage(key, day));
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].usage.jobs, 2);
  EXPECT_EQ(usage[0].usage.run_ms, 5);
}

TEST_F(PgStudioStoreTest, ADatabaseFromANewerReleaseIsRefused) {
  ASSERT_TRUE(PgStudioStore::open(uri_));
  auto conn = sql::pg::Connection::open(uri_);
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->exec("INSERT INTO schema_migrations(version) VALUES (999)"));
  auto refused = PgStudioStore::open(uri_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::Conflict);
}

}  // namespace
}  // namespace sw::store
