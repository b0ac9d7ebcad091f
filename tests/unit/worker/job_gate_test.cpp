// Job admission with slots and memory (worker/job_gate.h), with made-up memory readings.

#include "worker/job_gate.h"

#include <gtest/gtest.h>

#include <optional>

namespace sw::worker {
namespace {

JobGate::Memory gpu(double free_gib) {
  return JobGate::Memory{free_gib, "GPU 0"};
}

TEST(JobGate, OneSlotRefusesASecondJobWithTheReferenceWords) {
  JobGate gate;  // the default: one job at a time
  auto first = gate.try_acquire("a");
  ASSERT_TRUE(first.has_value());
  auto second = gate.try_acquire("b");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error(), "worker already has an in-flight job");
  first->release();
  EXPECT_TRUE(gate.try_acquire("b").has_value()) << "a released slot is free again";
}

// Issue 18: a studio whose run limit requeued a job may offer it again to the worker still
// running it; a second run of the same job beside the first is refused, whatever the room.
TEST(JobGate, AJobRunningHereIsNotTakenASecondTime) {
  JobGate gate(3);
  auto first = gate.try_acquire("j1");
  ASSERT_TRUE(first.has_value());
  auto again = gate.try_acquire("j1");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), "worker already runs job j1");
  EXPECT_TRUE(gate.try_acquire("j2").has_value()) << "other jobs still fit";
  first->release();
  EXPECT_TRUE(gate.try_acquire("j1").has_value()) << "once its run ended, it may run again";
}

TEST(JobGate, TwoSlotsAdmitAnLlmAndAnImageWhenMemoryHoldsBoth) {
  JobGate gate(2);
  auto llm = gate.try_acquire("llm");
  ASSERT_TRUE(llm.has_value());
  // The first job is the engine's to judge: no reading needed.
  EXPECT_EQ(gate.admit(*llm, 8.0, std::nullopt), std::nullopt);
  auto image = gate.try_acquire("image");
  ASSERT_TRUE(image.has_value());
  EXPECT_EQ(gate.admit(*image, 6.0, gpu(16.0)), std::nullopt) << "16 − 8 leaves 8 ≥ 6";
  EXPECT_EQ(gate.held(), 2u);
  EXPECT_EQ(gate.room(), 0u);
  EXPECT_EQ(gate.holders(), (std::vector<std::string>{"llm", "image"}));

  auto third = gate.try_acquire("third");
  ASSERT_FALSE(third.has_value());
  EXPECT_EQ(third.error(), "worker already runs 2 jobs (max_concurrent_jobs = 2)");
}

TEST(JobGate, AJobThatDoesNotFitBesideTheRunningOnesIsRefusedNamingTheNumbers) {
  JobGate gate(3);
  auto a = gate.try_acquire("a");
  auto b = gate.try_acquire("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(gate.admit(*a, 4.0, gpu(20.0)), std::nullopt);
  EXPECT_EQ(gate.admit(*b, 6.0, gpu(20.0)), std::nullopt);
  auto c = gate.try_acquire("c");
  ASSERT_TRUE(c.has_value());
  auto refusal = gate.admit(*c, 12.0, gpu(20.0));
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(*refusal,
            "insufficient memory: needs 12.0 GiB, 10.0 GiB free on GPU 0 with 2 jobs running "
            "(they hold 10.0 GiB)");
  c->release();
  EXPECT_EQ(gate.held(), 2u) << "a refused job gives its slot back with its ticket";

  // Once a running job ends, its memory counts as free again.
  a->release();
  auto d = gate.try_acquire("d");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(gate.admit(*d, 12.0, gpu(20.0)), std::nullopt) << "20 − 6 leaves 14 ≥ 12";
}

TEST(JobGate, WithoutAMemoryReadingOnlyOneJobRuns) {
  JobGate gate(2);
  auto a = gate.try_acquire("a");
  auto b = gate.try_acquire("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(gate.admit(*a, 1.0, std::nullopt), std::nullopt);
  auto refusal = gate.admit(*b, 1.0, std::nullopt);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_NE(refusal->find("free memory cannot be read"), std::string::npos) << *refusal;
}

TEST(JobGate, ALimitOfOneServesAStudioWithoutCapacityOneJobAtATime) {
  JobGate gate(4);
  auto a = gate.try_acquire("a", 1);
  ASSERT_TRUE(a.has_value());
  auto b = gate.try_acquire("b", 1);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error(), "worker already has an in-flight job");
  EXPECT_TRUE(gate.try_acquire("local", 4).has_value()) << "a caller without the limit";
}

TEST(JobGate, EveryAcquireAdmitAndReleaseIsAnnounced) {
  JobGate gate(2);
  int changes = 0;
  gate.set_on_change([&] { ++changes; });
  auto a = gate.try_acquire("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(gate.admit(*a, 1.0, gpu(4.0)), std::nullopt);
  EXPECT_EQ(changes, 2);
  a->release();
  EXPECT_EQ(changes, 3);
  EXPECT_EQ(gate.room(), 2u);
}

// At shutdown a job's coroutine frame (holding its ticket) can be torn down with the event loop,
// after the gate: the late release touches nothing freed (ASan would say) and calls no one.
TEST(JobGate, ATicketThatOutlivesItsGateReleasesHarmlessly) {
  int changes = 0;
  std::optional<JobGate::Ticket> late;
  {
    JobGate gate(2);
    gate.set_on_change([&] { ++changes; });
    auto ticket = gate.try_acquire("held at shutdown");
    ASSERT_TRUE(ticket.has_value());
    late.emplace(std::move(*ticket));
  }
  const int before = changes;
  late.reset();
  EXPECT_EQ(changes, before) << "a gone gate's listener is not called";
}

TEST(JobGate, ACapOfZeroMeansOne) {
  JobGate gate(0);
  EXPECT_EQ(gate.max_jobs(), 1u);
  gate.set_max_jobs(3);
  EXPECT_EQ(gate.room(), 3u);
}

}  // namespace
}  // namespace sw::worker
