// The job book's verdicts, one transition or rule per test, with made-up rows and times.

#include "studio/jobs/job_book.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sw::studio::jobs {
namespace {

using namespace std::chrono_literals;
using store::AttemptOutcome;
using store::JobStatus;

store::JobRecord row(JobStatus status, std::optional<std::string> holder = std::nullopt,
                     std::string former = ",") {
  store::JobRecord job;
  job.id = "j1";
  job.status = status;
  job.worker_id = holder;
  job.last_worker_id = holder;
  job.former_workers = std::move(former);
  return job;
}

ActiveView view(Phase phase, std::string_view holder, const store::JobRecord& record,
                bool cancelled = false) {
  return ActiveView{.phase = phase, .holder = holder, .cancelled = cancelled, .record = &record};
}

TEST(JobBookTest, TheHolderStandsAsHolderWhileOfferedRunningOrDetached) {
  const auto record = row(JobStatus::Claimed, "w1");
  for (const auto phase : {Phase::Offered, Phase::Running, Phase::Detached}) {
    EXPECT_EQ(standing(view(phase, "w1", record), "w1"), Standing::Holder) << to_string(phase);
    EXPECT_EQ(standing(view(phase, "w1", record), "w2"), Standing::Unknown) << to_string(phase);
  }
}

TEST(JobBookTest, AJobBeingClaimedOrFinishedIsBusyForItsWorkersOnly) {
  const auto record = row(JobStatus::Claimed, "w1", ",w0,");
  for (const auto phase : {Phase::Claiming, Phase::Finishing}) {
    EXPECT_EQ(standing(view(phase, "w1", record), "w1"), Standing::Busy);
    EXPECT_EQ(standing(view(phase, "w1", record), "w0"), Standing::Busy);
    EXPECT_EQ(standing(view(phase, "w1", record), "w2"), Standing::Unknown);
  }
}

TEST(JobBookTest, AFormerHolderOfAJobNotOverStandsAsFormer) {
  const auto requeued = row(JobStatus::Queued, std::nullopt, ",w0,");
  EXPECT_EQ(standing(view(Phase::Queued, "", requeued), "w0"), Standing::Former);
  const auto reclaimed = row(JobStatus::Claimed, "w1", ",w0,");
  EXPECT_EQ(standing(view(Phase::Running, "w1", reclaimed), "w0"), Standing::Former);
  EXPECT_EQ(standing(view(Phase::Queued, "", requeued), "w1"), Standing::Unknown);
}

TEST(JobBookTest, TheHolderAndAFormerHolderTakeTheResultOfAnActiveJob) {
  const auto record = row(JobStatus::Claimed, "w1", ",w0,");
  const auto job = view(Phase::Running, "w1", record);
  EXPECT_EQ(judge_active(&job, "w1").verdict, Verdict::Take);
  const auto late = judge_active(&job, "w0");
  EXPECT_EQ(late.verdict, Verdict::Take) << "the newer claim is withdrawn";
  EXPECT_FALSE(late.release_holder);
}

TEST(JobBookTest, AResultForACancelledJobIsDroppedAndTheHolderLetsGo) {
  const auto record = row(JobStatus::Cancelled, "w1", ",w0,");
  const auto job = view(Phase::Running, "w1", record, true);
  const auto holder = judge_active(&job, "w1");
  EXPECT_EQ(holder.verdict, Verdict::Drop);
  EXPECT_TRUE(holder.release_holder);
  const auto former = judge_active(&job, "w0");
  EXPECT_EQ(former.verdict, Verdict::Drop);
  EXPECT_FALSE(former.release_holder) << "only the holder's result ends its claim";
}

TEST(JobBookTest, ActiveJobsAnswerBusyNotYoursOrAskTheStore) {
  const auto record = row(JobStatus::Claimed, "w1");
  const auto finishing = view(Phase::Finishing, "w1", record);
  EXPECT_EQ(judge_active(&finishing, "w1").verdict, Verdict::Busy);
  const auto running = view(Phase::Running, "w1", record);
  EXPECT_EQ(judge_active(&running, "w2").verdict, Verdict::NotYours);
  EXPECT_EQ(judge_active(nullptr, "w2").verdict, Verdict::AskStore);
}

TEST(JobBookTest, AFailedJobIsTakenByAWorkerThatHeldItAndNoOtherIssue18) {
  const auto failed = row(JobStatus::Failed, std::nullopt, ",w1,w2,");
  EXPECT_EQ(judge_settled(failed, "w1", false), Verdict::Take);
  EXPECT_EQ(judge_settled(failed, "w2", false), Verdict::Take);
  EXPECT_EQ(judge_settled(failed, "w3", false), Verdict::NotYours);
}

TEST(JobBookTest, ADoneJobRepeatsForItsCompleterAndDropsOtherHolders) {
  auto done = row(JobStatus::Done, "w1", ",w1,w2,");
  EXPECT_EQ(judge_settled(done, "w1", true), Verdict::Repeat);
  EXPECT_EQ(judge_settled(done, "w1", false), Verdict::NotYours) << "other bytes: not a repeat";
  EXPECT_EQ(judge_settled(done, "w2", false), Verdict::Drop);
  EXPECT_EQ(judge_settled(done, "w3", false), Verdict::NotYours);
}

TEST(JobBookTest, ACancelledJobStaysCancelled) {
  const auto cancelled = row(JobStatus::Cancelled, "w1");
  EXPECT_EQ(judge_settled(cancelled, "w1", false), Verdict::Drop);
  EXPECT_EQ(judge_settled(cancelled, "w2", false), Verdict::NotYours);
}

TEST(JobBookTest, UnknownOrStillActiveRowsAreNotYoursOrBusy) {
  EXPECT_EQ(judge_settled(std::nullopt, "w1", true), Verdict::NotYours);
  EXPECT_EQ(judge_settled(row(JobStatus::Claimed, "w1"), "w1", true), Verdict::Busy);
  EXPECT_EQ(judge_settled(row(JobStatus::Queued), "w1", true), Verdict::NotYours);
}

TEST(JobBookTest, ARunThatEndsWithoutAResultUsesUpTheJobOnlyAtMaxAttempts) {
  auto job = row(JobStatus::Claimed, "w1");
  job.max_attempts = 2;
  job.attempts = 1;
  job.accepted_at = 100;
  auto outcome = judge_release(job, AttemptOutcome::Requeued, true, false);
  EXPECT_FALSE(outcome.fail);
  EXPECT_EQ(outcome.attempt, AttemptOutcome::Requeued);
  job.attempts = 2;
  outcome = judge_release(job, AttemptOutcome::Requeued, true, false);
  EXPECT_TRUE(outcome.fail);
  EXPECT_EQ(outcome.attempt, AttemptOutcome::Failed) << "the lapse used up the job";
  outcome = judge_release(job, AttemptOutcome::Rejected, false, false);
  EXPECT_FALSE(outcome.fail) << "a busy reject or the operator's removal counts no run";
}

TEST(JobBookTest, AnOfferThatNeverStartedNeverFailsTheJobButAFatalFailDoes) {
  auto job = row(JobStatus::Claimed, "w1");
  job.max_attempts = 1;
  job.attempts = 1;  // runs before this offer
  EXPECT_FALSE(judge_release(job, AttemptOutcome::Requeued, true, false).fail)
      << "offer timeout: no run started in this claim";
  const auto fatal = judge_release(job, AttemptOutcome::Failed, true, true);
  EXPECT_TRUE(fatal.fail);
  EXPECT_EQ(fatal.attempt, AttemptOutcome::Failed);
}

TEST(JobBookTest, AnAcceptStartsTheRunOnlyForTheOfferOnTheHoldersSession) {
  const auto record = row(JobStatus::Claimed, "w1");
  const auto offered = view(Phase::Offered, "w1", record);
  EXPECT_EQ(judge_accept(&offered, true), Answer::Start);
  EXPECT_EQ(judge_accept(&offered, false), Answer::AskHeld) << "another session's accept";
  const auto running = view(Phase::Running, "w1", record);
  EXPECT_EQ(judge_accept(&running, true), Answer::Repeat);
  const auto detached = view(Phase::Detached, "w1", record);
  EXPECT_EQ(judge_accept(&detached, false), Answer::AskHeld);
  EXPECT_EQ(judge_accept(nullptr, false), Answer::AskHeld) << "lapsed or never held: ask";
}

TEST(JobBookTest, ARejectReleasesOnlyAnOpenOffer) {
  const auto record = row(JobStatus::Claimed, "w1");
  const auto offered = view(Phase::Offered, "w1", record);
  EXPECT_EQ(judge_reject(&offered, true), Answer::Release);
  EXPECT_EQ(judge_reject(&offered, false), Answer::AskHeld);
  const auto running = view(Phase::Running, "w1", record);
  EXPECT_EQ(judge_reject(&running, true), Answer::AskHeld) << "a run is ended by fail";
  EXPECT_EQ(judge_reject(nullptr, true), Answer::AskHeld);
}

TEST(JobBookTest, ABusyRejectRestsTheWorkerAndAPlainOneExcludesTheJob) {
  const auto busy = judge_reject_outcome(true, false);
  EXPECT_TRUE(busy.hold_off_worker);
  EXPECT_FALSE(busy.exclude_job);
  EXPECT_FALSE(busy.count_attempt);
  const auto plain = judge_reject_outcome(false, false);
  EXPECT_FALSE(plain.hold_off_worker);
  EXPECT_TRUE(plain.exclude_job);
  EXPECT_TRUE(plain.count_attempt);
  const auto no_engine = judge_reject_outcome(false, true);
  EXPECT_TRUE(no_engine.exclude_job);
  EXPECT_FALSE(no_engine.count_attempt) << "routing chose wrong, the job is not at fault";
}

TEST(JobBookTest, ABusyRejectBesideOtherJobsWaitsForRoomInsteadOfRestingTheWorker) {
  const auto no_room = judge_reject_outcome(true, false, /*no_room_beside_others=*/true);
  EXPECT_FALSE(no_room.hold_off_worker) << "a smaller job may still fit";
  EXPECT_TRUE(no_room.exclude_job);
  EXPECT_TRUE(no_room.until_room);
  EXPECT_FALSE(no_room.count_attempt);
}

TEST(JobBookTest, ACancelUnqueuesMarksAHeldJobOrLeavesItToTheRow) {
  const auto queued_row = row(JobStatus::Queued);
  const auto queued = view(Phase::Queued, "", queued_row);
  EXPECT_EQ(judge_cancel(&queued), Cancel::Unqueue);
  const auto held_row = row(JobStatus::Claimed, "w1");
  for (const auto phase : {Phase::Claiming, Phase::Offered, Phase::Running, Phase::Detached}) {
    const auto held = view(phase, "w1", held_row);
    EXPECT_EQ(judge_cancel(&held), Cancel::MarkHeld) << to_string(phase);
  }
  const auto finishing = view(Phase::Finishing, "w1", held_row);
  EXPECT_EQ(judge_cancel(&finishing), Cancel::AskStore) << "being settled: the row answers";
  const auto cancelled = view(Phase::Running, "w1", held_row, true);
  EXPECT_EQ(judge_cancel(&cancelled), Cancel::AskStore) << "cancelling twice is harmless";
  EXPECT_EQ(judge_cancel(nullptr), Cancel::AskStore);
}

TEST(JobBookTest, TheRunLimitIsKeptThroughAReattach) {
  const SteadyTime start{10s};
  const auto first = run_deadline(std::nullopt, start, 60s);
  EXPECT_EQ(first, start + 60s);
  const SteadyTime later{40s};
  EXPECT_EQ(run_deadline(first, later, 60s), first) << "a reattach does not restart the limit";
  EXPECT_EQ(time_left(first, later), 30s);
  EXPECT_EQ(time_left(first, SteadyTime{90s}), 0ms) << "never negative";
}

// Issue 18: what a process does with a row another process may have changed.
TEST(JobBookTest, ARowChangedByAnotherProcessIsMirroredForgottenGivenUpOrCancelledHere) {
  auto claimed_by = [](std::string worker, std::optional<std::string> process) {
    auto r = row(JobStatus::Claimed, std::move(worker));
    r.process_id = std::move(process);
    return r;
  };
  const auto queued = row(JobStatus::Queued);
  // Not in this process's book: a queued row is offered here too; anything else is not ours.
  EXPECT_EQ(judge_row(nullptr, queued, "p1").change, RowChange::Mirror);
  EXPECT_EQ(judge_row(nullptr, claimed_by("w1", "p2"), "p1").change, RowChange::Nothing);
  EXPECT_EQ(judge_row(nullptr, std::nullopt, "p1").change, RowChange::Nothing);

  // Queued here: kept while queued there, forgotten once another process claimed it.
  const auto mine_queued = view(Phase::Queued, "", queued);
  EXPECT_EQ(judge_row(&mine_queued, queued, "p1").change, RowChange::Nothing);
  EXPECT_EQ(judge_row(&mine_queued, claimed_by("w9", "p2"), "p1").change, RowChange::Forget);
  EXPECT_EQ(judge_row(&mine_queued, std::nullopt, "p1").change, RowChange::Forget);

  // Held here by w1 (any held phase).
  const auto record = claimed_by("w1", "p1");
  for (const auto phase : {Phase::Offered, Phase::Running, Phase::Detached}) {
    const auto held = view(phase, "w1", record);
    EXPECT_EQ(judge_row(&held, claimed_by("w1", "p1"), "p1").change, RowChange::Nothing);
    const auto taken = judge_row(&held, claimed_by("w1", "p2"), "p1");
    EXPECT_EQ(taken.change, RowChange::GiveUp) << to_string(phase);
    EXPECT_EQ(taken.why, "another studio process took the claim over");
    EXPECT_EQ(judge_row(&held, claimed_by("w2", "p1"), "p1").change, RowChange::GiveUp)
        << "another worker holds it now";
    const auto requeued = judge_row(&held, queued, "p1");
    EXPECT_EQ(requeued.change, RowChange::GiveUpAndMirror);
    EXPECT_EQ(requeued.why, "it is queued through another studio process");
    const auto done = judge_row(&held, row(JobStatus::Done, "w2"), "p1");
    EXPECT_EQ(done.change, RowChange::GiveUp);
    EXPECT_TRUE(done.stop_holder) << "its work is of no use any more";
    const auto failed = judge_row(&held, row(JobStatus::Failed), "p1");
    EXPECT_EQ(failed.why, "it is failed through another studio process");
    EXPECT_FALSE(failed.stop_holder) << "its late result is still taken";
    EXPECT_FALSE(taken.stop_holder) << "the worker moved to the other process";
    EXPECT_FALSE(requeued.stop_holder);
    EXPECT_EQ(judge_row(&held, std::nullopt, "p1").why, "its row is gone");
    EXPECT_TRUE(judge_row(&held, std::nullopt, "p1").stop_holder);
    EXPECT_EQ(judge_row(&held, row(JobStatus::Cancelled, "w1"), "p1").change,
              RowChange::CancelledElsewhere);
    const auto already = view(phase, "w1", record, true);
    EXPECT_EQ(judge_row(&already, row(JobStatus::Cancelled, "w1"), "p1").change, RowChange::Nothing)
        << "a cancel learnt once";
  }

  // This process's own write in flight settles the job: the row read meanwhile changes nothing.
  for (const auto phase : {Phase::Claiming, Phase::Finishing}) {
    const auto moving = view(phase, "w1", record);
    EXPECT_EQ(judge_row(&moving, row(JobStatus::Done, "w2"), "p1").change, RowChange::Nothing);
    EXPECT_EQ(judge_row(&moving, std::nullopt, "p1").change, RowChange::Nothing);
  }
}

// ---- JobBook: the active jobs' phases and the effects the studio carries out ----

namespace book {

ActiveJob queued_job(std::string id, int max_attempts = 3) {
  ActiveJob job;
  job.record.id = std::move(id);
  job.record.status = JobStatus::Queued;
  job.record.former_workers = ",";
  job.record.max_attempts = max_attempts;
  job.record.kind = proto::TaskKind::Image;
  return job;
}

template <typename E>
const E* find_effect(const Effects& effects) {
  for (const auto& effect : effects) {
    if (const auto* e = std::get_if<E>(&effect)) {
      return e;
    }
  }
  return nullptr;
}

// A book with job "j1" offered to worker w1 over session 7 at the clock's time.
struct Offered {
  ManualClock clock;
  JobBook book;
  Effects offered;
  Offered() {
    book.enqueue(queued_job("j1"), clock.steady_now());
    book.begin_claim("j1", "w1", 7);
    book.claim_stored("j1", clock.unix_millis());
    offered = book.offer("j1", clock.steady_now(), 5s);
  }
};

TEST(JobBookClassTest, ANewJobIsQueuedAndHandedToTheScheduler) {
  ManualClock clock;
  JobBook book;
  const auto effects = book.enqueue(queued_job("j1"), clock.steady_now());
  ASSERT_NE(book.find("j1"), nullptr);
  EXPECT_EQ(book.find("j1")->phase, Phase::Queued);
  ASSERT_NE(find_effect<effect::Enqueue>(effects), nullptr);
  EXPECT_EQ(find_effect<effect::Enqueue>(effects)->job_id, "j1");
  EXPECT_EQ(find_effect<effect::ArmDeadline>(effects), nullptr) << "a queued job has no deadline";
}

TEST(JobBookClassTest, AStoredClaimIsOfferedToTheHoldersSessionWithTheOfferTimeout) {
  Offered f;
  const auto* job = f.book.find("j1");
  EXPECT_EQ(job->phase, Phase::Offered);
  EXPECT_EQ(job->record.status, JobStatus::Claimed);
  EXPECT_EQ(job->record.worker_id, "w1");
  EXPECT_EQ(job->record.claimed_at, f.clock.unix_millis());
  const auto* send = find_effect<effect::SendOffer>(f.offered);
  ASSERT_NE(send, nullptr);
  EXPECT_EQ(send->session, 7u);
  const auto* arm = find_effect<effect::ArmDeadline>(f.offered);
  ASSERT_NE(arm, nullptr);
  EXPECT_EQ(arm->at, f.clock.steady_now() + 5s);
  ASSERT_NE(find_effect<effect::Publish>(f.offered), nullptr);
  EXPECT_EQ(find_effect<effect::Publish>(f.offered)->record.status, JobStatus::Claimed);
  EXPECT_EQ(f.book.standing("j1", "w1"), Standing::Holder);
}

TEST(JobBookClassTest, WhileTheClaimIsStoredTheJobIsBusyAndCannotBeOfferedTwice) {
  ManualClock clock;
  JobBook book;
  book.enqueue(queued_job("j1"), clock.steady_now());
  book.begin_claim("j1", "w1", 7);
  EXPECT_EQ(book.standing("j1", "w1"), Standing::Busy);
  book.begin_claim("j1", "w2", 8);  // not queued any more: nothing changes
  EXPECT_EQ(book.find("j1")->holder, "w1");
  EXPECT_TRUE(book.accept("j1", clock.steady_now(), clock.unix_millis(), 60s).empty())
      << "no accept before the offer went out";
}

TEST(JobBookClassTest, TheOfferTimeoutFiresOnlyForTheDeadlineStillArmed) {
  Offered f;
  const auto generation = find_effect<effect::ArmDeadline>(f.offered)->generation;
  const auto* due = f.book.deadline_due("j1", generation);
  ASSERT_NE(due, nullptr);
  EXPECT_EQ(due->reason, "offer not answered within 5000 ms");
  const auto accepted = f.book.accept("j1", f.clock.steady_now(), f.clock.unix_millis(), 60s);
  EXPECT_EQ(f.book.deadline_due("j1", generation), nullptr) << "the accept replaced it";
  EXPECT_NE(f.book.deadline_due("j1", find_effect<effect::ArmDeadline>(accepted)->generation),
            nullptr);
}

TEST(JobBookClassTest, OnlyTheOfferedSessionsAcceptStartsTheRun) {
  Offered f;
  EXPECT_EQ(f.book.judge_accept("j1", 8), Answer::AskHeld) << "another session of the worker";
  EXPECT_EQ(f.book.judge_accept("j1", 7), Answer::Start);
  f.clock.advance(2s);
  const auto effects = f.book.accept("j1", f.clock.steady_now(), f.clock.unix_millis(), 60s);
  const auto* job = f.book.find("j1");
  EXPECT_EQ(job->phase, Phase::Running);
  EXPECT_EQ(job->record.attempts, 1) << "attempts count runs started";
  EXPECT_EQ(job->record.accepted_at, f.clock.unix_millis());
  const auto* arm = find_effect<effect::ArmDeadline>(effects);
  ASSERT_NE(arm, nullptr);
  EXPECT_EQ(arm->at, f.clock.steady_now() + 60s) << "the run limit starts at the accept";
  EXPECT_EQ(f.book.judge_accept("j1", 7), Answer::Repeat);
  EXPECT_TRUE(f.book.accept("j1", f.clock.steady_now(), f.clock.unix_millis(), 60s).empty());
  EXPECT_EQ(f.book.find("j1")->record.attempts, 1) << "a repeated accept counts nothing";
}

TEST(JobBookClassTest, ADetachedClaimWaitsTheGraceAndReattachKeepsTheRunLimit) {
  Offered f;
  f.book.accept("j1", f.clock.steady_now(), f.clock.unix_millis(), 60s);
  const auto run_until = f.clock.steady_now() + 60s;
  f.clock.advance(10s);
  const auto detached = f.book.detach("j1", f.clock.steady_now(), 3s, "the worker disconnected");
  const auto* job = f.book.find("j1");
  EXPECT_EQ(job->phase, Phase::Detached);
  EXPECT_EQ(job->session, 0u);
  EXPECT_EQ(f.book.standing("j1", "w1"), Standing::Holder) << "its result is still taken";
  const auto* grace = find_effect<effect::ArmDeadline>(detached);
  ASSERT_NE(grace, nullptr);
  EXPECT_EQ(grace->at, f.clock.steady_now() + 3s);
  EXPECT_EQ(f.book.deadline_due("j1", grace->generation)->reason,
            "the worker disconnected while worker w1 held the job, and it did not return "
            "within 3000 ms");
  EXPECT_EQ(f.book.detached_claims_of("w1"), std::vector<std::string>{"j1"});

  f.clock.advance(1s);
  const auto back = f.book.reattach("j1", 9, f.clock.steady_now(), 60s);
  EXPECT_EQ(job->phase, Phase::Running);
  EXPECT_EQ(job->session, 9u);
  const auto* limit = find_effect<effect::ArmDeadline>(back);
  ASSERT_NE(limit, nullptr);
  EXPECT_EQ(limit->at, run_until) << "a reattach does not restart the run limit";
  EXPECT_EQ(f.book.deadline_due("j1", grace->generation), nullptr) << "the grace is over";
  EXPECT_TRUE(f.book.detached_claims_of("w1").empty());
  EXPECT_EQ(f.book.judge_accept("j1", 9), Answer::Repeat) << "an accept over the new session";
}

TEST(JobBookClassTest, OnlyAHeldJobDetachesAndOnlyADetachedOneReattaches) {
  ManualClock clock;
  JobBook book;
  book.enqueue(queued_job("j1"), clock.steady_now());
  EXPECT_TRUE(book.detach("j1", clock.steady_now(), 3s, "gone").empty());
  EXPECT_TRUE(book.reattach("j1", 9, clock.steady_now(), 60s).empty());
  EXPECT_EQ(book.find("j1")->phase, Phase::Queued);
  EXPECT_TRUE(book.detach("nope", clock.steady_now(), 3s, "gone").empty());
}

TEST(JobBookClassTest, AClaimOfAPreviousRunIsDetachedAndItsRunLimitStartsAtTheReattach) {
  ManualClock clock;
  JobBook book;
  auto job = queued_job("j1");
  job.record.status = JobStatus::Claimed;
  job.record.worker_id = "w1";
  const auto restored = book.restore_claimed(std::move(job), clock.steady_now(), 3s);
  EXPECT_EQ(book.find("j1")->phase, Phase::Detached);
  EXPECT_EQ(book.find("j1")->holder, "w1");
  ASSERT_NE(find_effect<effect::ArmDeadline>(restored), nullptr);
  clock.advance(1s);
  const auto back = book.reattach("j1", 4, clock.steady_now(), 60s);
  EXPECT_EQ(find_effect<effect::ArmDeadline>(back)->at, clock.steady_now() + 60s);
}

// A returning worker's detached claims are found by its id alone (an index, not a scan of every
// active job), through every way a claim leaves Detached and comes back to it.
TEST(JobBookClassTest, DetachedClaimsAreFoundPerHolderThroughReattachHoldAndRelease) {
  ManualClock clock;
  JobBook book;
  auto claimed = [&](const std::string& id, const std::string& worker) {
    auto job = queued_job(id);
    job.record.status = JobStatus::Claimed;
    job.record.worker_id = worker;
    book.restore_claimed(std::move(job), clock.steady_now(), 3s);
  };
  claimed("j1", "w1");
  claimed("j2", "w1");
  claimed("j3", "w2");
  auto sorted = [](std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  EXPECT_EQ(sorted(book.detached_claims_of("w1")), (std::vector<std::string>{"j1", "j2"}));
  EXPECT_EQ(book.detached_claims_of("w2"), std::vector<std::string>{"j3"});
  EXPECT_TRUE(book.detached_claims_of("w3").empty());

  book.reattach("j1", 4, clock.steady_now(), 60s);
  EXPECT_EQ(book.detached_claims_of("w1"), std::vector<std::string>{"j2"}) << "j1 runs again";
  // Held for a result (Finishing) it is not waiting; a failed store puts it back.
  auto held = book.hold("j2");
  EXPECT_TRUE(book.detached_claims_of("w1").empty());
  book.resume("j2", held.previous, clock.steady_now());
  EXPECT_EQ(book.detached_claims_of("w1"), std::vector<std::string>{"j2"});
  // Released and requeued: no longer a claim; detached again later under another holder.
  book.release_stored("j3", 1, "gone", false, clock.unix_millis(), clock.steady_now());
  EXPECT_TRUE(book.detached_claims_of("w2").empty());
  book.detach("j1", clock.steady_now(), 3s, "the session ended");
  EXPECT_EQ(sorted(book.detached_claims_of("w1")), (std::vector<std::string>{"j1", "j2"}));
}

TEST(JobBookClassTest, AHeldCompletionStopsTheDeadlineAndAFailedStoreResumesIt) {
  Offered f;
  f.book.accept("j1", f.clock.steady_now(), f.clock.unix_millis(), 60s);
  const auto run_until = f.clock.steady_now() + 60s;
  auto held = f.book.hold("j1");
  EXPECT_EQ(held.previous, Phase::Running);
  EXPECT_EQ(f.book.find("j1")->phase, Phase::Finishing);
  ASSERT_NE(find_effect<effect::CancelDeadline>(held.effects), nullptr);
  EXPECT_EQ(f.book.judge_active("j1", "w1").verdict, Verdict::Busy);
  f.clock.advance(5s);
  const auto resumed = f.book.resume("j1", held.previous, f.clock.steady_now());
  EXPECT_EQ(f.book.find("j1")->phase, Phase::Running);
  const auto* arm = find_effect<effect::ArmDeadline>(resumed);
  ASSERT_NE(arm, nullptr);
  EXPECT_EQ(arm->at, run_until) << "the run limit goes on where it was";
}

TEST(JobBookClassTest, AStaleTimerDoesNotFireWhileTheJobIsBeingSettled) {
  Offered f;
  const auto generation = find_effect<effect::ArmDeadline>(f.offered)->generation;
  f.book.hold("j1");
  EXPECT_EQ(f.book.deadline_due("j1", generation), nullptr);
}

TEST(JobBookClassTest, AQueuedJobHeldForAFormerHoldersResultGoesBackToTheQueue) {
  ManualClock clock;
  JobBook book;
  book.enqueue(queued_job("j1"), clock.steady_now());
  auto held = book.hold("j1");
  EXPECT_EQ(held.previous, Phase::Queued);
  const auto resumed = book.resume("j1", held.previous, clock.steady_now());
  EXPECT_EQ(book.find("j1")->phase, Phase::Queued);
  EXPECT_NE(find_effect<effect::Enqueue>(resumed), nullptr);
}

TEST(JobBookClassTest, LettingGoEndsTheSessionAndTheDeadline) {
  Offered f;
  const auto generation = find_effect<effect::ArmDeadline>(f.offered)->generation;
  const auto effects = f.book.let_go("j1");
  EXPECT_NE(find_effect<effect::CancelDeadline>(effects), nullptr);
  EXPECT_EQ(f.book.find("j1")->phase, Phase::Finishing);
  EXPECT_EQ(f.book.find("j1")->session, 0u);
  EXPECT_EQ(f.book.deadline_due("j1", generation), nullptr);
  const auto requeued = f.book.enqueue(*f.book.erase("j1"), f.clock.steady_now());
  EXPECT_EQ(f.book.find("j1")->holder, "");
  EXPECT_NE(find_effect<effect::Enqueue>(requeued), nullptr);
}

TEST(JobBookClassTest, ACancelIsJudgedOnTheHeldPhase) {
  Offered f;
  EXPECT_EQ(f.book.judge_cancel("j1"), Cancel::MarkHeld);
  EXPECT_EQ(f.book.judge_cancel("nope"), Cancel::AskStore);
  f.book.enqueue(queued_job("j2"), f.clock.steady_now());
  EXPECT_EQ(f.book.judge_cancel("j2"), Cancel::Unqueue);
  EXPECT_EQ(f.book.held_by("j1", "w1"), true);
  EXPECT_EQ(f.book.held_by("j1", "w2"), false);
  EXPECT_EQ(f.book.held_by("nope", "w1"), std::nullopt);
}

TEST(JobBookClassTest, ACancelledQueuedJobLeavesTheBookOnceTheRowSaysSo) {
  ManualClock clock;
  JobBook book;
  book.enqueue(queued_job("j1"), clock.steady_now());
  ASSERT_EQ(book.judge_cancel("j1"), Cancel::Unqueue);
  book.mark_cancelled("j1");
  ASSERT_NE(book.find("j1"), nullptr) << "kept until the cancel is stored";
  book.cancel_stored("j1");
  EXPECT_EQ(book.find("j1"), nullptr);
}

TEST(JobBookClassTest, ACancelledHeldJobDropsItsHoldersResultAndWaitsForItToLetGo) {
  Offered f;
  ASSERT_EQ(f.book.judge_cancel("j1"), Cancel::MarkHeld);
  f.book.mark_cancelled("j1");
  f.book.cancel_stored("j1");
  const auto* job = f.book.find("j1");
  ASSERT_NE(job, nullptr) << "the holder still has it";
  EXPECT_EQ(job->record.status, JobStatus::Cancelled);
  EXPECT_EQ(f.book.judge_active("j1", "w1").verdict, Verdict::Drop);
}

TEST(JobBookClassTest, ACancelThatWasNotStoredPutsAQueuedJobBackInTheQueue) {
  ManualClock clock;
  JobBook book;
  book.enqueue(queued_job("j1"), clock.steady_now());
  book.mark_cancelled("j1");
  const auto effects = book.cancel_failed("j1");
  ASSERT_NE(find_effect<effect::Enqueue>(effects), nullptr);
  EXPECT_FALSE(book.find("j1")->cancelled);
  EXPECT_TRUE(book.cancel_failed("j1").empty()) << "only once";
}

TEST(JobBookClassTest, AStoredReleaseRequeuesTheJobAndRemembersItsHolderAsFormer) {
  Offered f;
  f.book.let_go("j1");
  const auto effects =
      f.book.release_stored("j1", 1, "offer timed out", false, 1234, f.clock.steady_now());
  const auto* job = f.book.find("j1");
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->phase, Phase::Queued);
  EXPECT_EQ(job->record.status, JobStatus::Queued);
  EXPECT_EQ(job->record.worker_id, std::nullopt);
  EXPECT_TRUE(job->record.formerly_held_by("w1"));
  EXPECT_EQ(f.book.standing("j1", "w1"), Standing::Former);
  ASSERT_NE(find_effect<effect::Publish>(effects), nullptr);
  EXPECT_NE(find_effect<effect::Enqueue>(effects), nullptr);
}

TEST(JobBookClassTest, AStoredReleaseThatFailsTheJobTakesItOutOfTheBook) {
  Offered f;
  f.book.let_go("j1");
  const auto effects = f.book.release_stored("j1", 3, "boom", true, 1234, f.clock.steady_now());
  EXPECT_EQ(f.book.find("j1"), nullptr);
  const auto* published = find_effect<effect::Publish>(effects);
  ASSERT_NE(published, nullptr);
  EXPECT_EQ(published->record.status, JobStatus::Failed);
  EXPECT_EQ(published->record.finished_at, 1234);
  EXPECT_EQ(find_effect<effect::Enqueue>(effects), nullptr);
}

TEST(JobBookClassTest, AStoredCompletionMakesTheJobDoneByItsWorker) {
  Offered f;
  f.book.hold("j1");
  const auto effects = f.book.completion_stored("j1", "w1", 999);
  EXPECT_EQ(f.book.find("j1"), nullptr);
  const auto* published = find_effect<effect::Publish>(effects);
  ASSERT_NE(published, nullptr);
  EXPECT_EQ(published->record.status, JobStatus::Done);
  EXPECT_EQ(published->record.worker_id, "w1");
  EXPECT_EQ(published->record.finished_at, 999);
}

// A claim whose store answer comes after a release of the job began (its session closed while
// the claim was being stored) and refuses it: the row is still queued, and the job must go back
// to the queue, not be taken for lost.
// A book with job "j1" being claimed for worker w1 over session 7.
struct Claiming {
  ManualClock clock;
  JobBook book;
  Claiming() {
    book.enqueue(queued_job("j1"), clock.steady_now());
    book.begin_claim("j1", "w1", 7);
  }
};

TEST(JobBookClassTest, AClaimRefusedAfterItsReleaseBeganPutsTheJobBackInTheQueue) {
  Claiming f;
  auto& [clock, book] = f;
  book.claim_refused_late("j1");
  EXPECT_FALSE(book.find("j1")->claim_refused) << "while Claiming the answer settles it itself";
  book.let_go("j1");  // the session closed: the release began
  book.claim_refused_late("j1");
  EXPECT_TRUE(book.find("j1")->claim_refused);

  clock.advance(2s);
  const auto effects = book.requeue_unclaimed("j1", clock.steady_now());
  const auto* job = book.find("j1");
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->phase, Phase::Queued);
  EXPECT_EQ(job->holder, "");
  EXPECT_FALSE(job->claim_refused);
  EXPECT_EQ(job->enqueued_at, clock.steady_now());
  ASSERT_NE(find_effect<effect::Enqueue>(effects), nullptr);
  EXPECT_EQ(find_effect<effect::Publish>(effects), nullptr) << "the row never changed";
}

TEST(JobBookClassTest, AnUnclaimedJobThatWasCancelledMeanwhileLeavesTheBook) {
  Claiming f;
  auto& [clock, book] = f;
  book.mark_cancelled("j1");
  const auto effects = book.requeue_unclaimed("j1", clock.steady_now());
  EXPECT_EQ(book.find("j1"), nullptr);
  EXPECT_EQ(find_effect<effect::Enqueue>(effects), nullptr);
  EXPECT_TRUE(book.requeue_unclaimed("nope", clock.steady_now()).empty());
}

// A worker that fails an offer without accepting it still used a run: else a broken box could
// fail the same job for ever without ever using up its attempts.
TEST(JobBookClassTest, AFailWithoutAnAcceptCountsOneRunOnce) {
  Offered f;
  f.clock.advance(1s);
  f.book.fail_reported("j1", f.clock.unix_millis());
  EXPECT_EQ(f.book.find("j1")->record.attempts, 1);
  EXPECT_EQ(f.book.find("j1")->record.accepted_at, f.clock.unix_millis());
  f.book.fail_reported("j1", f.clock.unix_millis() + 5);
  EXPECT_EQ(f.book.find("j1")->record.attempts, 1) << "one run, reported twice";

  Offered accepted;
  accepted.book.accept("j1", accepted.clock.steady_now(), accepted.clock.unix_millis(), 60s);
  accepted.book.fail_reported("j1", accepted.clock.unix_millis());
  EXPECT_EQ(accepted.book.find("j1")->record.attempts, 1) << "the accept counted the run";

  ManualClock clock;
  JobBook queued;
  queued.enqueue(queued_job("j1"), clock.steady_now());
  queued.fail_reported("j1", clock.unix_millis());
  EXPECT_EQ(queued.find("j1")->record.attempts, 0) << "nobody holds a queued job";
}

}  // namespace book
}  // namespace
}  // namespace sw::studio::jobs
