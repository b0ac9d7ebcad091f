#include "store/studio_store.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "store/migrations.h"
#include "support/temp_dir.h"

namespace sw::store {
namespace {

// The value of a Result the test goes on with. An error fails the test (gtest reports the
// exception with its message) instead of dereferencing an empty Result.
template <class T>
T ok(Result<T> result) {
  if (!result) throw std::runtime_error("unexpected error: " + result.error().describe());
  return std::move(*result);
}

std::unique_ptr<StudioStore> open_memory() {
  return ok(StudioStore::open(":memory:"));
}

JobRecord new_job(std::string id) {
  JobRecord job;
  job.id = std::move(id);
  job.model = "m";
  job.kind = proto::TaskKind::Llm;
  job.task_json = R"({"kind":"llm","messages":[]})";
  job.model_source_json = "{}";
  job.created_at = 1000;
  return job;
}

TEST(StudioStoreTest, MigrationsAreAppliedOnceAndNewerSchemasRefused) {
  auto store = open_memory();
  ASSERT_TRUE(migrate(store->db(), studio_migrations()));  // idempotent
  ASSERT_TRUE(store->db().exec("INSERT INTO schema_migrations(version) VALUES (999)"));
  auto again = migrate(store->db(), studio_migrations());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("newer than this binary"), std::string::npos);
}

TEST(StudioStoreTest, ClaimIsACompareAndSet) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  EXPECT_GT(job.seq, 0);
  EXPECT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  EXPECT_FALSE(ok(store->claim_job("j1", "w2", 2001))) << "already claimed";
  auto stored = ok(store->find_job("j1"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->status, JobStatus::Claimed);
  EXPECT_EQ(stored->worker_id, "w1");
}

TEST(StudioStoreTest, OnlyTheHolderCompletesOrReleases) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  EXPECT_FALSE(ok(store->complete_job_json("j1", "w2", "{}", std::nullopt, 3000)));
  EXPECT_FALSE(ok(store->release_job("j1", "w2", 1, std::string("x"), false, 3000)));
  EXPECT_TRUE(ok(store->release_job("j1", "w1", 1, std::string("lost"), false, 3000)));
  auto stored = ok(store->find_job("j1"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->status, JobStatus::Queued);
  EXPECT_EQ(stored->attempts, 1);
  EXPECT_EQ(stored->error, "lost");
  EXPECT_FALSE(stored->worker_id);
  EXPECT_EQ(stored->last_worker_id, "w1");
  ASSERT_TRUE(ok(store->claim_job("j1", "w2", 4000)));
  EXPECT_TRUE(ok(store->complete_job_json("j1", "w2", R"({"ok":1})", std::string("p"), 5000)));
  stored = ok(store->find_job("j1"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->status, JobStatus::Done);
  EXPECT_EQ(stored->result_json, R"({"ok":1})");
  EXPECT_EQ(stored->prompt, "p");
}

// ---- attempt history (issue 14) ----

std::vector<AttemptRecord> history(StudioStore& store, std::string_view id) {
  auto attempts = store.job_attempts(id);
  EXPECT_TRUE(attempts.has_value()) << attempts.error().message;
  return attempts ? *attempts : std::vector<AttemptRecord>{};
}

TEST(StudioStoreTest, EveryOfferIsAnAttemptThatEndsWithItsOutcome) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  EXPECT_TRUE(history(*store, "j1").empty());
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  auto attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].n, 1);
  EXPECT_EQ(attempts[0].worker_id, "w1");
  EXPECT_EQ(attempts[0].offered_at, 2000);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Offered);
  EXPECT_FALSE(attempts[0].started_at);
  EXPECT_FALSE(attempts[0].ended_at);

  ASSERT_TRUE(ok(store->mark_accepted("j1", "w1", 2100)));
  EXPECT_EQ(history(*store, "j1")[0].outcome, AttemptOutcome::Running);
  EXPECT_EQ(history(*store, "j1")[0].started_at, 2100);
  ASSERT_TRUE(ok(store->release_job(
      "j1", "w1", 0, std::string("rejected by w1: no llama-cpp engine in this worker"), false, 2200,
      AttemptEnd{AttemptOutcome::Rejected, "no llama-cpp engine in this worker"})));

  ASSERT_TRUE(ok(store->claim_job("j1", "w2", 3000)));
  ASSERT_TRUE(ok(store->complete_job_json("j1", "w2", "{}", std::nullopt, 3500)));
  attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Rejected);
  EXPECT_EQ(attempts[0].reason, "no llama-cpp engine in this worker");
  EXPECT_EQ(attempts[0].ended_at, 2200);
  EXPECT_EQ(attempts[1].n, 2);
  EXPECT_EQ(attempts[1].worker_id, "w2");
  EXPECT_EQ(attempts[1].offered_at, 3000);
  EXPECT_EQ(attempts[1].outcome, AttemptOutcome::Done);
  EXPECT_EQ(attempts[1].ended_at, 3500);
  EXPECT_FALSE(attempts[1].reason);
}

TEST(StudioStoreTest, AFailedAttemptKeepsTheWorkerAndItsError) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->mark_accepted("j1", "w1", 2050)));
  EXPECT_FALSE(ok(store->release_job("j1", "w2", 1, std::string("x"), true, 2100,
                                     AttemptEnd{AttemptOutcome::Failed, "x"})))
      << "not the holder: nothing changes";
  ASSERT_TRUE(ok(store->release_job("j1", "w1", 1, std::string("runner crashed"), true, 2100,
                                    AttemptEnd{AttemptOutcome::Failed, "runner crashed"})));
  const auto attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].worker_id, "w1");
  EXPECT_EQ(attempts[0].started_at, 2050);
  EXPECT_EQ(attempts[0].ended_at, 2100);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Failed);
  EXPECT_EQ(attempts[0].reason, "runner crashed");
  EXPECT_EQ(ok(store->find_job("j1")).value().status, JobStatus::Failed);
}

// Issue 18: a job failed by its run limit is completed by the first result of a worker that held
// it; a stranger cannot, and the second late result finds the job done.
TEST(StudioStoreTest, AFailedJobIsCompletedByTheFirstLateResultOfAFormerHolder) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->mark_accepted("j1", "w1", 2050)));
  ASSERT_TRUE(ok(store->release_job("j1", "w1", 1, std::string("no result within the run limit"),
                                    true, 2100, AttemptEnd{AttemptOutcome::Failed, "limit"})));
  EXPECT_FALSE(ok(store->complete_job_json("j1", "w9", R"({"x":9})", std::nullopt, 2200)))
      << "never held it";
  ASSERT_TRUE(ok(store->complete_job_json("j1", "w1", R"({"x":1})", std::nullopt, 2300)));
  EXPECT_FALSE(ok(store->complete_job_json("j1", "w1", R"({"x":2})", std::nullopt, 2400)))
      << "done: the first result stays";
  const auto done = ok(store->find_job("j1")).value();
  EXPECT_EQ(done.status, JobStatus::Done);
  EXPECT_EQ(done.result_json, R"({"x":1})");
  EXPECT_EQ(done.worker_id, "w1");
  EXPECT_FALSE(done.error);
  const auto attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Done);
  EXPECT_NE(attempts[0].reason.value_or("").find("after the attempt ended failed"),
            std::string::npos);
}

TEST(StudioStoreTest, ALateResultEndsItsAttemptDoneAndWithdrawsTheNewClaim) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->release_job("j1", "w1", 1, std::string("grace over"), false, 2500,
                                    AttemptEnd{AttemptOutcome::Requeued, "grace over"})));
  ASSERT_TRUE(ok(store->claim_job("j1", "w2", 3000)));
  ASSERT_TRUE(ok(store->complete_job_json("j1", "w1", "{}", std::nullopt, 3100)));
  const auto attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Done);
  EXPECT_EQ(attempts[0].ended_at, 3100);
  EXPECT_EQ(attempts[0].reason, "result arrived after the attempt ended requeued: grace over");
  EXPECT_EQ(attempts[1].worker_id, "w2");
  EXPECT_EQ(attempts[1].outcome, AttemptOutcome::Withdrawn);
  EXPECT_EQ(attempts[1].ended_at, 3100);
}

TEST(StudioStoreTest, CancellingEndsTheOpenAttempt) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->cancel_job("j1", 2300)));
  const auto attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Cancelled);
  EXPECT_EQ(attempts[0].ended_at, 2300);
}

TEST(StudioStoreTest, AnOpenAttemptCannotLackItsEndOrAClosedOneItsOutcome) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  EXPECT_FALSE(store->db().exec("UPDATE job_attempts SET outcome = 'done'"));
  EXPECT_FALSE(store->db().exec("UPDATE job_attempts SET outcome = 'teleported', ended_at = 1"));
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
  auto store = StudioStore::open(dir.path() / "studio.db");
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

TEST(StudioStoreTest, IdempotencyKeysAreUnique) {
  auto store = open_memory();
  auto first = new_job("j1");
  first.idempotency_key = "k";
  ASSERT_TRUE(store->insert_job(first));
  auto second = new_job("j2");
  second.idempotency_key = "k";
  auto inserted = store->insert_job(second);
  ASSERT_FALSE(inserted);
  EXPECT_EQ(inserted.error().code, Code::Conflict);
  EXPECT_EQ(ok(store->find_job_by_idempotency_key("k")).value().id, "j1");
}

TEST(StudioStoreTest, DoneNeedsAResultAndClaimedNeedsAHolder) {
  auto store = open_memory();
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  EXPECT_FALSE(store->db().exec("UPDATE jobs SET status = 'done' WHERE id = 'j1'"));
  EXPECT_FALSE(store->db().exec("UPDATE jobs SET status = 'claimed' WHERE id = 'j1'"));
}

TEST(StudioStoreTest, ListsPageNewestFirstWithFilters) {
  auto store = open_memory();
  for (int i = 0; i < 5; ++i) {
    auto job = new_job("j" + std::to_string(i));
    job.kind = i % 2 == 0 ? proto::TaskKind::Llm : proto::TaskKind::Image;
    ASSERT_TRUE(store->insert_job(job));
  }
  JobFilter filter;
  filter.limit = 2;
  auto page = ok(store->list_jobs(filter));
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "j4");
  filter.before_seq = page[1].seq;
  page = ok(store->list_jobs(filter));
  EXPECT_EQ(page[0].id, "j2");
  filter = JobFilter{};
  filter.kind = proto::TaskKind::Image;
  EXPECT_EQ(ok(store->list_jobs(filter)).size(), 2u);
  filter.status = JobStatus::Done;
  EXPECT_TRUE(ok(store->list_jobs(filter)).empty());
}

TEST(StudioStoreTest, WorkerLogsKeepOnlyTheNewestPerWorker) {
  auto store = open_memory();
  std::vector<proto::LogEntry> entries;
  for (int i = 0; i < 10; ++i) {
    entries.push_back(
        {"2026-01-01T00:00:00.000Z", "info", "ws", "line " + std::to_string(i), std::nullopt});
  }
  ASSERT_TRUE(store->insert_logs("w1", entries, 1, 4));
  ASSERT_TRUE(store->insert_logs("w2", entries, 1, 100));
  auto logs = ok(store->worker_logs("w1", 0, 100));
  ASSERT_EQ(logs.size(), 4u);
  EXPECT_EQ(logs.front().entry.message, "line 6");
  EXPECT_EQ(logs.back().entry.message, "line 9");
  EXPECT_EQ(ok(store->worker_logs("w2", 0, 100)).size(), 10u);
}

TEST(StudioStoreTest, RegistrationDecisionsHappenOnce) {
  auto store = open_memory();
  RegistrationRecord r;
  r.id = "rr-1";
  r.install_id = "i";
  r.secret_hash = "h";
  r.capabilities_json = "{}";
  r.created_at = 1;
  ASSERT_TRUE(store->insert_request(r));
  EXPECT_EQ(ok(store->find_pending_request("i")).value().id, "rr-1");
  EXPECT_TRUE(ok(store->decide_request("rr-1", RequestStatus::Rejected, "no", std::nullopt, 2)));
  EXPECT_FALSE(ok(store->decide_request("rr-1", RequestStatus::Approved, "", std::string("w"), 3)));
  EXPECT_FALSE(ok(store->find_pending_request("i")));
  EXPECT_EQ(ok(store->find_request("rr-1")).value().reason, "no");
}

}  // namespace
}  // namespace sw::store

namespace sw::store {
namespace {

// Regression: a cached SELECT left active after a read kept a stale snapshot open, so that once
// another process (the admin CLI) had committed, every later write of the server failed with
// "database is locked".
TEST(StudioStoreTest, AReadLeavesNoSnapshotThatBlocksWritesAfterAnotherWriter) {
  sw::testing::TempDir dir;
  auto server = StudioStore::open(dir.path() / "studio.db");
  auto cli = StudioStore::open(dir.path() / "studio.db");
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
