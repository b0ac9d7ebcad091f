// The job book's verdicts, one transition or rule per test, with made-up rows and times.

#include "studio/jobs/job_book.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sw::studio::jobs
