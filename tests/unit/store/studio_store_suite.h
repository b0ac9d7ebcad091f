#pragma once
// The studio store's behaviour, written once and run against every backend (issue 18): a gtest
// typed test suite. A binary instantiates it with a backend type that provides
//   void SetUp();                      // may skip or fail the current test (gtest macros)
//   StudioStore* store();              // the store under test, fresh and migrated
//   bool raw(std::string_view sql);    // runs SQL directly: whether the database accepted it
// SQLite: tests/unit/store/studio_store_test.cpp (sw_unit_tests). PostgreSQL:
// tests/integration/store/pg_studio_store_test.cpp (sw_pg_tests, one server per binary).

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "studio/store/studio_store.h"
#include "studio/transactions.h"

namespace sw::store::suite {

// The value of a Result the test goes on with. An error fails the test (gtest reports the
// exception with its message) instead of dereferencing an empty Result.
template <class T>
T ok(Result<T> result) {
  if (!result) throw std::runtime_error("unexpected error: " + result.error().describe());
  return std::move(*result);
}

inline JobRecord new_job(std::string id) {
  JobRecord job;
  job.id = std::move(id);
  job.model = "m";
  job.kind = proto::TaskKind::Llm;
  job.task_json = R"({"kind":"llm","messages":[]})";
  job.model_source_json = "{}";
  job.created_at = 1000;
  return job;
}

inline std::vector<AttemptRecord> history(StudioStore& store, std::string_view id) {
  auto attempts = store.job_attempts(id);
  EXPECT_TRUE(attempts.has_value()) << attempts.error().message;
  return attempts ? *attempts : std::vector<AttemptRecord>{};
}

template <class Backend>
class StudioStoreSuite : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_.SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    store_ = backend_.store();
    ASSERT_NE(store_, nullptr);
  }
  bool raw(std::string_view sql) { return backend_.raw(sql); }

  Backend backend_;
  StudioStore* store_ = nullptr;
};

TYPED_TEST_SUITE_P(StudioStoreSuite);

TYPED_TEST_P(StudioStoreSuite, ClaimIsACompareAndSet) {
  StudioStore* store = this->store_;
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

TYPED_TEST_P(StudioStoreSuite, OnlyTheHolderCompletesOrReleases) {
  StudioStore* store = this->store_;
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

TYPED_TEST_P(StudioStoreSuite, EveryOfferIsAnAttemptThatEndsWithItsOutcome) {
  StudioStore* store = this->store_;
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

TYPED_TEST_P(StudioStoreSuite, AFailedAttemptKeepsTheWorkerAndItsError) {
  StudioStore* store = this->store_;
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

// Issue 18: a result for a job no process holds in memory is judged from its row and taken in
// one transaction (tx::complete_settled), one rule for JSON and bytes: the first late result of
// a former holder is taken; the same result again is a repeat (the same JSON value, the same
// sha256); other bytes from it, or any result from a stranger, are not its result.
TYPED_TEST_P(StudioStoreSuite, ASettledJobTakesTheFirstLateResultOfEitherShapeOnce) {
  StudioStore* store = this->store_;
  const auto failed_after = [&](const std::string& id, const std::string& worker) {
    auto job = new_job(id);
    ASSERT_TRUE(store->insert_job(job));
    ASSERT_TRUE(ok(store->claim_job(id, worker, 2000)));
    ASSERT_TRUE(ok(store->mark_accepted(id, worker, 2050)));
    ASSERT_TRUE(ok(store->release_job(id, worker, 1, std::string("no result within the run limit"),
                                      true, 2100, AttemptEnd{AttemptOutcome::Failed, "limit"})));
  };
  using studio::jobs::Verdict;
  const auto json = [](std::string_view text) {
    return studio::tx::DeliveredResult(ok(proto::RawJson::parse(text)));
  };
  const auto settle = [&](const std::string& id, const std::string& worker,
                          const studio::tx::DeliveredResult& result) {
    return ok(studio::tx::complete_settled(*store, id, worker, result, std::nullopt, 2300));
  };

  failed_after("j1", "w1");
  EXPECT_EQ(settle("j1", "w9", json(R"({"x":9})")).verdict, Verdict::NotYours) << "a stranger";
  const auto taken = settle("j1", "w1", json(R"({"x":1,"y":[2]})"));
  EXPECT_EQ(taken.verdict, Verdict::Take);
  ASSERT_TRUE(taken.job);
  EXPECT_EQ(taken.job->status, JobStatus::Done) << "the row as it reads after the completion";
  EXPECT_EQ(settle("j1", "w1", json(R"({ "y" : [2], "x" : 1 })")).verdict, Verdict::Repeat);
  EXPECT_EQ(settle("j1", "w1", json(R"({"x":2})")).verdict, Verdict::NotYours);
  EXPECT_EQ(ok(store->find_job("j1")).value().result_json, R"({"x":1,"y":[2]})");

  failed_after("j2", "w2");
  const BinaryResult png{"ab12", "image/png", "png", 1234};
  EXPECT_EQ(settle("j2", "w2", png).verdict, Verdict::Take);
  EXPECT_EQ(settle("j2", "w2", png).verdict, Verdict::Repeat);
  EXPECT_EQ(settle("j2", "w2", BinaryResult{"cd34", "image/png", "png", 1234}).verdict,
            Verdict::NotYours);
  EXPECT_EQ(ok(store->find_job("j2")).value().result_binary->sha256, "ab12");
  EXPECT_EQ(settle("nope", "w2", png).verdict, Verdict::NotYours) << "no such job";
}

// Issue 18: a job failed by its run limit is completed by the first result of a worker that held
// it; a stranger cannot, and the second late result finds the job done.
TYPED_TEST_P(StudioStoreSuite, AFailedJobIsCompletedByTheFirstLateResultOfAFormerHolder) {
  StudioStore* store = this->store_;
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
  EXPECT_NE(attempts[0].reason.value_or("").find("after the attempt had ended as failed"),
            std::string::npos);
}

TYPED_TEST_P(StudioStoreSuite, ALateResultEndsItsAttemptDoneAndWithdrawsTheNewClaim) {
  StudioStore* store = this->store_;
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
  EXPECT_EQ(attempts[0].reason,
            "result arrived after the attempt had ended as requeued (grace over)");
  EXPECT_EQ(attempts[1].worker_id, "w2");
  EXPECT_EQ(attempts[1].outcome, AttemptOutcome::Withdrawn);
  EXPECT_EQ(attempts[1].ended_at, 3100);
}

TYPED_TEST_P(StudioStoreSuite, CancellingEndsTheOpenAttempt) {
  StudioStore* store = this->store_;
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->cancel_job("j1", 2300)));
  const auto attempts = history(*store, "j1");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::Cancelled);
  EXPECT_EQ(attempts[0].ended_at, 2300);
}

TYPED_TEST_P(StudioStoreSuite, AnOpenAttemptCannotLackItsEndOrAClosedOneItsOutcome) {
  StudioStore* store = this->store_;
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  EXPECT_FALSE(this->raw("UPDATE job_attempts SET outcome = 'done'"));
  EXPECT_FALSE(this->raw("UPDATE job_attempts SET outcome = 'teleported', ended_at = 1"));
}

TYPED_TEST_P(StudioStoreSuite, IdempotencyKeysAreUnique) {
  StudioStore* store = this->store_;
  auto first = new_job("j1");
  first.idempotency_key = "k";
  ASSERT_TRUE(store->insert_job(first));
  auto second = new_job("j2");
  second.idempotency_key = "k";
  auto inserted = store->insert_job(second);
  ASSERT_FALSE(inserted);
  EXPECT_EQ(inserted.error().code, Code::Conflict);
  EXPECT_EQ(ok(store->find_job_by_idempotency_key("k")).value().id, "j1");
  // Inside a batch (as the database thread runs it), a taken key leaves the transaction usable:
  // the studio re-reads the job that key names (two processes sent the same request at once).
  ASSERT_TRUE(store->begin_batch());
  ASSERT_TRUE(store->begin_op());
  auto third = new_job("j3");
  third.idempotency_key = "k";
  EXPECT_FALSE(store->insert_job(third));
  EXPECT_EQ(ok(store->find_job_by_idempotency_key("k")).value().id, "j1");
  ASSERT_TRUE(store->end_op(true));
  ASSERT_TRUE(store->commit_batch());
}

TYPED_TEST_P(StudioStoreSuite, DoneNeedsAResultAndClaimedNeedsAHolder) {
  StudioStore* store = this->store_;
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  EXPECT_FALSE(this->raw("UPDATE jobs SET status = 'done' WHERE id = 'j1'"));
  EXPECT_FALSE(this->raw("UPDATE jobs SET status = 'claimed' WHERE id = 'j1'"));
}

TYPED_TEST_P(StudioStoreSuite, ListsPageNewestFirstWithFilters) {
  StudioStore* store = this->store_;
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
  // By model (issue 21: the dashboard's filter), alone and with the others.
  ASSERT_TRUE(this->raw("UPDATE jobs SET model = 'other' WHERE id IN ('j1', 'j2')"));
  filter = JobFilter{};
  filter.model = "other";
  page = ok(store->list_jobs(filter));
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "j2");
  EXPECT_EQ(page[1].id, "j1");
  filter.kind = proto::TaskKind::Image;
  page = ok(store->list_jobs(filter));
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].id, "j1");
  filter.model = "nothing";
  EXPECT_TRUE(ok(store->list_jobs(filter)).empty());
}

TYPED_TEST_P(StudioStoreSuite, WorkerLogsKeepOnlyTheNewestPerWorker) {
  StudioStore* store = this->store_;
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

TYPED_TEST_P(StudioStoreSuite, RegistrationDecisionsHappenOnce) {
  StudioStore* store = this->store_;
  RegistrationRecord r;
  r.id = "rr-1";
  r.install_id = "i";
  r.secret_hash = "h";
  r.capabilities_json = "{}";
  r.created_at = 1;
  ASSERT_TRUE(store->insert_request(r));
  EXPECT_EQ(ok(store->find_pending_request("i")).value().id, "rr-1");
  EXPECT_TRUE(
      ok(store->decide_request("rr-1", RequestStatus::Rejected, "no", std::nullopt, 2, "cli")));
  EXPECT_FALSE(
      ok(store->decide_request("rr-1", RequestStatus::Approved, "", std::string("w"), 3, "cli")));
  EXPECT_FALSE(ok(store->find_pending_request("i")));
  EXPECT_EQ(ok(store->find_request("rr-1")).value().reason, "no");
  EXPECT_EQ(ok(store->find_request("rr-1")).value().decided_by, "cli");
  // The newest request with this install and secret, whatever its status (issue 22).
  EXPECT_EQ(ok(store->find_request_by_secret("i", "h")).value().id, "rr-1");
  EXPECT_FALSE(ok(store->find_request_by_secret("i", "other")));
}

// Issue 22: a join token's uses are counted by one conditional update each, up to its limit,
// only before it expires and until it is revoked; the row stays for the record.
TYPED_TEST_P(StudioStoreSuite, JoinTokensCountUsesUntilTheyEnd) {
  StudioStore* store = this->store_;
  JoinTokenRecord limited;
  limited.id = "jt-1";
  limited.token_hash = "hash-1";
  limited.label = "rack 3";
  limited.created_by = "cli";
  limited.created_at = 100;
  limited.expires_at = 1000;
  limited.max_uses = 2;
  ASSERT_TRUE(store->insert_join_token(limited));
  JoinTokenRecord open = limited;
  open.id = "jt-2";
  open.token_hash = "hash-2";
  open.created_at = 200;
  open.expires_at.reset();
  open.max_uses.reset();
  ASSERT_TRUE(store->insert_join_token(open));
  JoinTokenRecord same_hash = open;
  same_hash.id = "jt-3";
  EXPECT_FALSE(store->insert_join_token(same_hash)) << "one hash, one token";

  EXPECT_TRUE(ok(store->use_join_token("jt-1", 500)));
  EXPECT_TRUE(ok(store->use_join_token("jt-1", 600)));
  EXPECT_FALSE(ok(store->use_join_token("jt-1", 700))) << "used up";
  auto found = ok(store->find_join_token_by_hash("hash-1")).value();
  EXPECT_EQ(found.uses, 2);
  EXPECT_EQ(found.last_used_at, std::optional<Millis>(600));
  EXPECT_EQ(found.label, "rack 3");

  EXPECT_TRUE(ok(store->use_join_token("jt-2", 5'000'000)));
  EXPECT_TRUE(ok(store->revoke_join_token("jt-2", 5'000'001)));
  EXPECT_FALSE(ok(store->revoke_join_token("jt-2", 5'000'002))) << "revoked once";
  EXPECT_FALSE(ok(store->use_join_token("jt-2", 5'000'003))) << "revoked";
  EXPECT_FALSE(ok(store->revoke_join_token("jt-9", 1))) << "no such token";
  EXPECT_FALSE(ok(store->find_join_token_by_hash("hash-9")));

  JoinTokenRecord expiring = limited;
  expiring.id = "jt-4";
  expiring.token_hash = "hash-4";
  expiring.created_at = 300;
  expiring.max_uses.reset();
  ASSERT_TRUE(store->insert_join_token(expiring));
  EXPECT_FALSE(ok(store->use_join_token("jt-4", 1000))) << "expired at 1000";
  EXPECT_TRUE(ok(store->use_join_token("jt-4", 999)));

  const auto all = ok(store->list_join_tokens());
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, "jt-4") << "newest first";
  EXPECT_EQ(all[2].id, "jt-1");
  EXPECT_EQ(all[1].revoked_at, std::optional<Millis>(5'000'001));
  EXPECT_EQ(all[1].uses, 1);
}

TYPED_TEST_P(StudioStoreSuite, SettingsAreSetAndReplaced) {
  StudioStore* store = this->store_;
  EXPECT_FALSE(ok(store->setting("k")));
  ASSERT_TRUE(store->set_setting("k", "one"));
  ASSERT_TRUE(store->set_setting("k", "two"));
  EXPECT_EQ(ok(store->setting("k")), "two");
}

// The batch control the studio's database thread drives (DbWorker): one transaction, each op in
// a savepoint of its own. A failed op goes alone, the ops around it stay; a batch rolled back
// leaves nothing, and the next batch starts clean.
TYPED_TEST_P(StudioStoreSuite, ABatchKeepsItsOpsAndRollsBackAFailedOneAlone) {
  StudioStore* store = this->store_;
  auto op = [store](std::string_view key, bool keep) {
    ASSERT_TRUE(store->begin_op());
    ASSERT_TRUE(store->set_setting(key, "set"));
    ASSERT_TRUE(store->end_op(keep));
  };
  ASSERT_TRUE(store->begin_batch());
  op("a", true);
  op("b", true);
  op("c", false);  // failed: rolled back to its savepoint
  op("d", false);
  op("e", true);
  ASSERT_TRUE(store->commit_batch());
  EXPECT_EQ(ok(store->setting("a")), "set");
  EXPECT_EQ(ok(store->setting("b")), "set");
  EXPECT_FALSE(ok(store->setting("c")));
  EXPECT_FALSE(ok(store->setting("d")));
  EXPECT_EQ(ok(store->setting("e")), "set");

  ASSERT_TRUE(store->begin_batch());
  op("f", true);
  store->rollback_batch();
  EXPECT_FALSE(ok(store->setting("f")));

  ASSERT_TRUE(store->begin_batch());
  op("g", true);
  op("h", true);
  ASSERT_TRUE(store->commit_batch());
  EXPECT_EQ(ok(store->setting("g")), "set");
  EXPECT_EQ(ok(store->setting("h")), "set");
}

// The first admin token: of two processes starting at once, only one stores its hash.
TYPED_TEST_P(StudioStoreSuite, ASettingInsertedIfAbsentIsStoredOnce) {
  StudioStore* store = this->store_;
  EXPECT_TRUE(ok(store->insert_setting_if_absent("k", "first")));
  EXPECT_FALSE(ok(store->insert_setting_if_absent("k", "second")));
  EXPECT_EQ(ok(store->setting("k")), "first");
}

TYPED_TEST_P(StudioStoreSuite, WorkersAreRecordedHeartbeatAndDeleted) {
  StudioStore* store = this->store_;
  WorkerRecord w{"w-2",        "hash", "install",    R"({"gpus":[]})",
                 std::nullopt, 100,    std::nullopt, "join-token:jt-1"};
  ASSERT_TRUE(store->insert_worker(w));
  w.id = "w-1";
  ASSERT_TRUE(store->insert_worker(w));
  EXPECT_EQ(store->insert_worker(w).error().code, Code::Conflict);
  EXPECT_TRUE(ok(store->worker_exists("w-1")));
  EXPECT_FALSE(ok(store->worker_exists("w-9")));
  const auto workers = ok(store->list_workers());
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].id, "w-1");
  EXPECT_TRUE(ok(store->set_worker_token("w-1", "new")));
  EXPECT_FALSE(ok(store->set_worker_token("w-9", "new")));
  EXPECT_TRUE(ok(store->record_heartbeat("w-1", R"({"gpus":[1]})", std::string("j1"), 500)));
  EXPECT_FALSE(ok(store->record_heartbeat("w-9", "{}", std::nullopt, 500)));
  const auto found = ok(store->find_worker("w-1")).value();
  EXPECT_EQ(found.token_hash, "new");
  EXPECT_EQ(found.capabilities_json, R"({"gpus":[1]})");
  EXPECT_EQ(found.current_job_id, "j1");
  EXPECT_EQ(found.last_seen_at, 500);
  EXPECT_EQ(found.created_at, 100);
  EXPECT_EQ(found.approved_by, "join-token:jt-1");
  EXPECT_TRUE(ok(store->delete_worker("w-1")));
  EXPECT_FALSE(ok(store->delete_worker("w-1")));
  EXPECT_FALSE(ok(store->find_worker("w-1")));
}

TYPED_TEST_P(StudioStoreSuite, ModelsAreAddedUpdatedListedAndDeleted) {
  StudioStore* store = this->store_;
  ModelRecord m;
  m.id = "b-model";
  m.kind = proto::TaskKind::Image;
  m.display_name = "B";
  m.vram_gb_estimate = 3.25;
  m.source_json = R"({"url":"x"})";
  m.created_at = 1;
  m.updated_at = 1;
  ASSERT_TRUE(store->insert_model(m));
  EXPECT_EQ(store->insert_model(m).error().code, Code::Conflict);
  m.id = "a-model";
  ASSERT_TRUE(store->insert_model(m));
  m.display_name = "A";
  m.enabled = false;
  m.kind = proto::TaskKind::Llm;
  m.updated_at = 2;
  EXPECT_TRUE(ok(store->update_model(m)));
  const auto models = ok(store->list_models());
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].id, "a-model");
  EXPECT_EQ(models[0].display_name, "A");
  EXPECT_FALSE(models[0].enabled);
  EXPECT_EQ(models[0].kind, proto::TaskKind::Llm);
  EXPECT_EQ(models[0].updated_at, 2);
  EXPECT_DOUBLE_EQ(models[1].vram_gb_estimate, 3.25);
  EXPECT_TRUE(models[1].enabled);
  EXPECT_TRUE(ok(store->delete_model("a-model")));
  EXPECT_FALSE(ok(store->delete_model("a-model")));
  EXPECT_FALSE(ok(store->find_model("a-model")));
  EXPECT_EQ(ok(store->find_model("b-model")).value().source_json, R"({"url":"x"})");
}

TYPED_TEST_P(StudioStoreSuite, ApiKeysAreListedAndDeleted) {
  StudioStore* store = this->store_;
  ASSERT_TRUE(store->insert_api_key(ApiKeyRecord{"k-2", "two", "h2", 5}));
  ASSERT_TRUE(store->insert_api_key(ApiKeyRecord{"k-1", "one", "h1", 5}));
  auto keys = ok(store->list_api_keys());
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].id, "k-1");
  EXPECT_EQ(keys[0].key_hash, "h1");
  EXPECT_TRUE(ok(store->delete_api_key("k-1")));
  EXPECT_FALSE(ok(store->delete_api_key("k-1")));
  EXPECT_EQ(ok(store->list_api_keys()).size(), 1u);
}

// Issue 20: a key's scope and quota are stored, changed and read back as written.
TYPED_TEST_P(StudioStoreSuite, ApiKeysKeepTheirScopeAndQuota) {
  StudioStore* store = this->store_;
  ApiKeyRecord key{"k-1", "one", "h1", 5};
  key.scope = KeyScope::Inference;
  key.quota = KeyQuota{QuotaPeriod::Month, 10, std::nullopt, 3600};
  ASSERT_TRUE(store->insert_api_key(key));
  ASSERT_TRUE(store->insert_api_key(ApiKeyRecord{"k-2", "two", "h2", 6}));
  auto keys = ok(store->list_api_keys());
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].scope, KeyScope::Inference);
  EXPECT_EQ(keys[0].quota, key.quota);
  EXPECT_EQ(keys[1].scope, KeyScope::Client) << "the default, as keys were before scopes";
  EXPECT_FALSE(keys[1].quota);
  key.scope = KeyScope::Admin;
  key.quota.reset();
  key.name = "renamed";
  EXPECT_TRUE(ok(store->update_api_key(key)));
  keys = ok(store->list_api_keys());
  EXPECT_EQ(keys[0].scope, KeyScope::Admin);
  EXPECT_FALSE(keys[0].quota);
  EXPECT_EQ(keys[0].name, "renamed");
  EXPECT_EQ(keys[0].key_hash, "h1") << "the secret's hash never changes";
  key.id = "k-9";
  EXPECT_FALSE(ok(store->update_api_key(key)));
}

// Issue 20: a key's job is metered when it ends: the run time of every attempt (the requeued one
// too) and the tokens of an llm result. A late result completing the failed job adds its tokens
// and the time its attempt ran on until the result came (the attempt now ends then), not the
// whole run again. Jobs of the admin token and of no owner are not metered.
TYPED_TEST_P(StudioStoreSuite, AKeysJobIsMeteredOnceWhenItEnds) {
  StudioStore* store = this->store_;
  constexpr Millis kDay = 86'400'000;
  const Millis t0 = 20'001 * kDay - 10'000;  // 10 s before a UTC midnight
  auto job = new_job("j1");
  job.owner = "k-1";
  ASSERT_TRUE(store->insert_job(job));
  EXPECT_EQ(ok(store->find_job("j1"))->owner, "k-1");
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", t0)));
  ASSERT_TRUE(ok(store->mark_accepted("j1", "w1", t0 + 1000)));
  ASSERT_TRUE(ok(store->release_job("j1", "w1", 1, std::string("lost"), false, t0 + 3000,
                                    AttemptEnd{AttemptOutcome::Requeued, "lost"})));
  EXPECT_TRUE(ok(store->key_usage("k-1", 0)).empty()) << "not ended yet";
  ASSERT_TRUE(ok(store->claim_job("j1", "w2", t0 + 4000)));
  ASSERT_TRUE(ok(store->mark_accepted("j1", "w2", t0 + 4000)));
  ASSERT_TRUE(ok(store->release_job("j1", "w2", 2, std::string("limit"), true, t0 + 9000,
                                    AttemptEnd{AttemptOutcome::Failed, "limit"})));
  auto days = ok(store->key_usage("k-1", 0));
  ASSERT_EQ(days.size(), 1u);
  EXPECT_EQ(days[0].day, 20'000);
  EXPECT_EQ(days[0].usage, (KeyUsage{.run_ms = 2000 + 5000}));
  const std::string chat =
      R"({"object":"chat.completion","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}})";
  ASSERT_TRUE(ok(store->complete_job_json("j1", "w2", chat, std::nullopt, t0 + 11'000)));
  days = ok(store->key_usage("k-1", 0));
  ASSERT_EQ(days.size(), 2u);
  EXPECT_EQ(days[1].day, 20'001) << "metered on the day it ended";
  EXPECT_EQ(days[1].usage, (KeyUsage{.tokens_in = 12, .tokens_out = 30, .run_ms = 2000}))
      << "the attempt's first 5 s were metered when the job failed";
  ASSERT_TRUE(store->add_key_usage("k-1", 20'001, KeyUsage{.jobs = 1}));
  EXPECT_EQ(ok(store->key_usage("k-1", 20'001)).at(0).usage.jobs, 1);
  for (std::optional<std::string> owner :
       {std::optional<std::string>("admin"), std::optional<std::string>()}) {
    auto other = new_job(owner ? "j-admin" : "j-none");
    other.owner = owner;
    ASSERT_TRUE(store->insert_job(other));
    ASSERT_TRUE(ok(store->claim_job(other.id, "w1", t0)));
    ASSERT_TRUE(ok(store->mark_accepted(other.id, "w1", t0)));
    ASSERT_TRUE(ok(store->cancel_job(other.id, t0 + 500)));
  }
  auto cancelled = new_job("j2");
  cancelled.owner = "k-2";
  ASSERT_TRUE(store->insert_job(cancelled));
  ASSERT_TRUE(ok(store->claim_job("j2", "w1", t0)));
  ASSERT_TRUE(ok(store->mark_accepted("j2", "w1", t0 + 100)));
  ASSERT_TRUE(ok(store->cancel_job("j2", t0 + 600)));
  const auto totals = ok(store->key_usage_totals());
  ASSERT_EQ(totals.size(), 2u) << "admin's and owner-less jobs are not metered";
  EXPECT_EQ(totals.at("k-1"),
            (KeyUsage{.jobs = 1, .tokens_in = 12, .tokens_out = 30, .run_ms = 9000}));
  EXPECT_EQ(totals.at("k-2"), (KeyUsage{.run_ms = 500}));
}

TYPED_TEST_P(StudioStoreSuite, ABinaryResultIsRecordedAndJobsCountByStatus) {
  StudioStore* store = this->store_;
  for (const char* id : {"j1", "j2", "j3"}) {
    auto job = new_job(id);
    ASSERT_TRUE(store->insert_job(job));
  }
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->mark_accepted("j1", "w1", 2100)));
  ASSERT_TRUE(ok(store->mark_accepted("j1", "w1", 2150))) << "a repeated accept";
  EXPECT_EQ(ok(store->find_job("j1")).value().attempts, 1) << "counted once per claim";
  const BinaryResult png{"ab12", "image/png", "png", 1234};
  ASSERT_TRUE(ok(store->complete_job_binary("j1", "w1", png, std::string("a cat"), 3000)));
  ASSERT_TRUE(ok(store->claim_job("j2", "w2", 2000)));
  const auto done = ok(store->find_job("j1")).value();
  EXPECT_EQ(done.status, JobStatus::Done);
  ASSERT_TRUE(done.result_binary);
  EXPECT_EQ(done.result_binary->sha256, "ab12");
  EXPECT_EQ(done.result_binary->content_type, "image/png");
  EXPECT_EQ(done.result_binary->ext, "png");
  EXPECT_EQ(done.result_binary->bytes, 1234);
  EXPECT_EQ(done.prompt, "a cat");
  EXPECT_EQ(done.completions, 1);
  EXPECT_EQ(done.finished_at, 3000);
  const auto counts = ok(store->count_jobs_by_status());
  EXPECT_EQ(counts.at("done"), 1);
  EXPECT_EQ(counts.at("claimed"), 1);
  EXPECT_EQ(counts.at("queued"), 1);
  const auto active = ok(store->active_jobs());
  ASSERT_EQ(active.size(), 2u);
  EXPECT_EQ(active[0].id, "j2");
  EXPECT_EQ(active[1].id, "j3");
}

TYPED_TEST_P(StudioStoreSuite, ACancelledJobKeepsItsHolderUntilItLetsGo) {
  StudioStore* store = this->store_;
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  ASSERT_TRUE(ok(store->cancel_job("j1", 2100)));
  EXPECT_FALSE(ok(store->cancel_job("j1", 2200))) << "already cancelled";
  auto cancelled = ok(store->find_job("j1")).value();
  EXPECT_EQ(cancelled.status, JobStatus::Cancelled);
  EXPECT_EQ(cancelled.worker_id, "w1");
  EXPECT_EQ(cancelled.finished_at, 2100);
  EXPECT_TRUE(ok(store->mark_accepted("j1", "w1", 2150))) << "the holder may still accept";
  ASSERT_TRUE(store->clear_job_holder("j1"));
  EXPECT_FALSE(ok(store->find_job("j1")).value().worker_id);
  EXPECT_FALSE(ok(store->claim_job("j1", "w2", 2300)));
}

TYPED_TEST_P(StudioStoreSuite, RequestsAreListedByStatus) {
  StudioStore* store = this->store_;
  for (const char* id : {"rr-2", "rr-1"}) {
    RegistrationRecord r;
    r.id = id;
    r.install_id = std::string("i-") + id;
    r.secret_hash = "h";
    r.capabilities_json = "{}";
    r.user_agent = "ua";
    r.source_ip = "127.0.0.1:5";
    r.created_at = 1;
    ASSERT_TRUE(store->insert_request(r));
  }
  ASSERT_TRUE(ok(
      store->decide_request("rr-2", RequestStatus::Approved, "", std::string("w-1"), 9, "admin")));
  const auto all = ok(store->list_requests(std::nullopt));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "rr-1");
  const auto pending = ok(store->list_requests(RequestStatus::Pending));
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].source_ip, "127.0.0.1:5");
  const auto approved = ok(store->list_requests(RequestStatus::Approved));
  ASSERT_EQ(approved.size(), 1u);
  EXPECT_EQ(approved[0].worker_id, "w-1");
  EXPECT_EQ(approved[0].decided_at, 9);
}

// ---- several studio processes on one database (issue 18) ----

TYPED_TEST_P(StudioStoreSuite, AClaimRecordsItsProcessAndATakeOverMovesIt) {
  StudioStore* store = this->store_;
  store->set_process_id("sp-a");
  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  EXPECT_EQ(ok(store->find_job("j1"))->process_id, "sp-a");
  // The worker now reports the job to another process, which takes the claim over.
  store->set_process_id("sp-b");
  EXPECT_FALSE(ok(store->take_over_claim("j1", "w2"))) << "only the claim's worker moves it";
  EXPECT_TRUE(ok(store->take_over_claim("j1", "w1")));
  const auto moved = ok(store->find_job("j1"));
  EXPECT_EQ(moved->process_id, "sp-b");
  EXPECT_EQ(moved->status, JobStatus::Claimed);
  EXPECT_EQ(moved->worker_id, "w1");
  // A released job belongs to no process; a job no longer claimed cannot be taken over.
  ASSERT_TRUE(ok(store->release_job("j1", "w1", 1, std::nullopt, false, 3000)));
  EXPECT_EQ(ok(store->find_job("j1"))->process_id, std::nullopt);
  EXPECT_FALSE(ok(store->take_over_claim("j1", "w1")));
}

TYPED_TEST_P(StudioStoreSuite, QueuedAfterFindsNewAndRequeuedJobsInQueueOrder) {
  StudioStore* store = this->store_;
  for (const char* id : {"j1", "j2", "j3"}) {
    auto job = new_job(id);
    ASSERT_TRUE(store->insert_job(job));
  }
  auto all = ok(store->queued_after(0, 100));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, "j1");
  EXPECT_EQ(all[2].id, "j3");
  EXPECT_LT(all[0].queue_seq, all[1].queue_seq);
  const auto seen = all[2].queue_seq;
  EXPECT_TRUE(ok(store->queued_after(seen, 100)).empty()) << "nothing queued since";
  // A claim takes j1 out of the queue; its requeue puts it behind everything seen so far.
  ASSERT_TRUE(ok(store->claim_job("j1", "w1", 2000)));
  EXPECT_EQ(ok(store->queued_after(0, 100)).size(), 2u);
  ASSERT_TRUE(ok(store->release_job("j1", "w1", 1, std::nullopt, false, 3000)));
  auto newer = ok(store->queued_after(seen, 100));
  ASSERT_EQ(newer.size(), 1u);
  EXPECT_EQ(newer[0].id, "j1");
  EXPECT_GT(newer[0].queue_seq, seen);
  auto later = new_job("j4");
  ASSERT_TRUE(store->insert_job(later));
  EXPECT_GT(later.queue_seq, newer[0].queue_seq);
  EXPECT_EQ(ok(store->queued_after(seen, 1)).size(), 1u) << "the limit holds";
  EXPECT_EQ(ok(store->queued_after(seen, 100)).size(), 2u);
}

TYPED_TEST_P(StudioStoreSuite, ClaimsOfAProcessWhoseLeaseEndedAreAdoptedOnce) {
  StudioStore* store = this->store_;
  ASSERT_TRUE(store->register_process(ProcessRecord{"sp-a", "host", 1, 100, 10'000}));
  ASSERT_TRUE(store->register_process(ProcessRecord{"sp-b", "host", 2, 100, 10'000}));
  for (const char* id : {"ja", "jb", "jq"}) {
    auto job = new_job(id);
    ASSERT_TRUE(store->insert_job(job));
  }
  store->set_process_id("sp-a");
  ASSERT_TRUE(ok(store->claim_job("ja", "w1", 2000)));
  store->set_process_id("sp-b");
  ASSERT_TRUE(ok(store->claim_job("jb", "w2", 2000)));
  // Both leases hold: nothing is orphaned.
  EXPECT_TRUE(ok(store->adopt_orphaned_claims(9'000)).empty());
  // sp-b renews, sp-a does not: at 12 s sp-a's claim is orphaned and sp-b adopts it.
  EXPECT_TRUE(ok(store->renew_process_lease("sp-b", 20'000)));
  const auto adopted = ok(store->adopt_orphaned_claims(12'000));
  ASSERT_EQ(adopted.size(), 1u);
  EXPECT_EQ(adopted[0].id, "ja");
  EXPECT_EQ(adopted[0].process_id, "sp-b");
  EXPECT_EQ(adopted[0].worker_id, "w1") << "the claim stays its worker's";
  EXPECT_EQ(adopted[0].status, JobStatus::Claimed);
  EXPECT_TRUE(ok(store->adopt_orphaned_claims(12'000)).empty()) << "adopted once";
  // sp-a's row went with it: a late renewal tells sp-a it was taken for dead.
  EXPECT_FALSE(ok(store->renew_process_lease("sp-a", 30'000)));
  // A process that stops removes its row, and its claims are adopted at once.
  ASSERT_TRUE(store->register_process(ProcessRecord{"sp-c", "host", 3, 100, 50'000}));
  ASSERT_TRUE(store->remove_process("sp-b"));
  store->set_process_id("sp-c");
  const auto taken = ok(store->adopt_orphaned_claims(13'000));
  ASSERT_EQ(taken.size(), 2u);
  for (const auto& job : taken) {
    EXPECT_EQ(job.process_id, "sp-c");
  }
  EXPECT_EQ(ok(store->find_job("jq"))->status, JobStatus::Queued) << "queued jobs are nobody's";
}

TYPED_TEST_P(StudioStoreSuite, UploadsAreTakenByOneJobAndGoWhenItEndsOrUnusedAfterRetention) {
  StudioStore* store = this->store_;
  const auto upload = [](std::string id, Millis at) {
    return UploadRecord{std::move(id), "ab", 3, "audio/wav", "a.wav", "k-1", at, std::nullopt};
  };
  ASSERT_TRUE(store->insert_upload(upload("upl-1", 100)));
  ASSERT_TRUE(store->insert_upload(upload("upl-2", 200)));
  ASSERT_TRUE(store->insert_upload(upload("upl-3", 300)));
  EXPECT_FALSE(store->insert_upload(upload("upl-1", 400))) << "ids are unique";
  const auto found = ok(store->find_upload("upl-1")).value();
  EXPECT_EQ(found.sha256, "ab");
  EXPECT_EQ(found.bytes, 3);
  EXPECT_EQ(found.content_type, "audio/wav");
  EXPECT_EQ(found.filename, "a.wav");
  EXPECT_EQ(found.owner, "k-1");
  EXPECT_EQ(found.created_at, 100);
  EXPECT_FALSE(found.job_id);
  EXPECT_FALSE(ok(store->find_upload("upl-9")));

  auto job = new_job("j1");
  ASSERT_TRUE(store->insert_job(job));
  EXPECT_TRUE(ok(store->attach_upload("upl-1", "j1")));
  EXPECT_TRUE(ok(store->attach_upload("upl-1", "j1"))) << "the same job again";
  EXPECT_FALSE(ok(store->attach_upload("upl-1", "j2"))) << "another job's";
  EXPECT_FALSE(ok(store->attach_upload("upl-9", "j1"))) << "no such upload";
  EXPECT_EQ(ok(store->find_upload("upl-1")).value().job_id, "j1");
  EXPECT_EQ(ok(store->upload_job_status("upl-1")), JobStatus::Queued);
  EXPECT_FALSE(ok(store->upload_job_status("upl-2"))) << "no job took it";

  // Unattached ones go once created before the cut; an active job's stay.
  auto disposable = ok(store->disposable_uploads(250, 10));
  ASSERT_EQ(disposable.size(), 1u);
  EXPECT_EQ(disposable[0].id, "upl-2");
  // Its job ended: it goes whatever its age.
  ASSERT_TRUE(ok(store->cancel_job("j1", 500)));
  disposable = ok(store->disposable_uploads(0, 10));
  ASSERT_EQ(disposable.size(), 1u);
  EXPECT_EQ(disposable[0].id, "upl-1");
  EXPECT_EQ(ok(store->disposable_uploads(1000, 2)).size(), 2u) << "at most the limit";
  EXPECT_TRUE(ok(store->delete_upload("upl-1")));
  EXPECT_FALSE(ok(store->delete_upload("upl-1")));
  EXPECT_FALSE(ok(store->find_upload("upl-1")));
}

REGISTER_TYPED_TEST_SUITE_P(
    StudioStoreSuite, AClaimRecordsItsProcessAndATakeOverMovesIt,
    ABatchKeepsItsOpsAndRollsBackAFailedOneAlone, QueuedAfterFindsNewAndRequeuedJobsInQueueOrder,
    ClaimsOfAProcessWhoseLeaseEndedAreAdoptedOnce, SettingsAreSetAndReplaced,
    ASettingInsertedIfAbsentIsStoredOnce, WorkersAreRecordedHeartbeatAndDeleted,
    ModelsAreAddedUpdatedListedAndDeleted, ApiKeysAreListedAndDeleted,
    ApiKeysKeepTheirScopeAndQuota, AKeysJobIsMeteredOnceWhenItEnds,
    ABinaryResultIsRecordedAndJobsCountByStatus, ACancelledJobKeepsItsHolderUntilItLetsGo,
    RequestsAreListedByStatus, ClaimIsACompareAndSet, OnlyTheHolderCompletesOrReleases,
    EveryOfferIsAnAttemptThatEndsWithItsOutcome, AFailedAttemptKeepsTheWorkerAndItsError,
    AFailedJobIsCompletedByTheFirstLateResultOfAFormerHolder,
    ASettledJobTakesTheFirstLateResultOfEitherShapeOnce,
    ALateResultEndsItsAttemptDoneAndWithdrawsTheNewClaim, CancellingEndsTheOpenAttempt,
    AnOpenAttemptCannotLackItsEndOrAClosedOneItsOutcome, IdempotencyKeysAreUnique,
    DoneNeedsAResultAndClaimedNeedsAHolder, ListsPageNewestFirstWithFilters,
    WorkerLogsKeepOnlyTheNewestPerWorker, RegistrationDecisionsHappenOnce,
    JoinTokensCountUsesUntilTheyEnd, UploadsAreTakenByOneJobAndGoWhenItEndsOrUnusedAfterRetention);

}  // namespace sw::store::suite
