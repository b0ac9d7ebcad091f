#include "studio/scheduler.h"

#include <gtest/gtest.h>

namespace sw::studio {
namespace {

using proto::TaskKind;
using namespace std::chrono_literals;

proto::WorkerCapabilities caps(std::vector<TaskKind> kinds, double threshold = 24) {
  proto::WorkerCapabilities c;
  c.task_kinds = std::move(kinds);
  c.vram_threshold_gb = threshold;
  return c;
}

QueuedJob job(std::string id, std::int64_t seq, int priority = 0, TaskKind kind = TaskKind::Llm,
              double vram = 0, std::string model = "m") {
  return QueuedJob{std::move(id), seq, priority, kind, vram, std::move(model)};
}

const SteadyTime kNow = SteadyTime{} + 1h;

TEST(SchedulerTest, HigherPriorityFirstThenOlder) {
  Scheduler s;
  s.enqueue(job("old-low", 1, 0));
  s.enqueue(job("high", 2, 5));
  s.enqueue(job("new-low", 3, 0));
  s.upsert_worker("w", 1, caps({TaskKind::Llm}));
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    auto a = s.assign(kNow);
    ASSERT_EQ(a.size(), 1u);
    order.push_back(a[0].job_id);
    s.set_busy("w", false);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"high", "old-low", "new-low"}));
  EXPECT_EQ(s.queued(), 0u);
}

TEST(SchedulerTest, AWorkerHoldsOneJobAtATime) {
  Scheduler s;
  s.enqueue(job("a", 1));
  s.enqueue(job("b", 2));
  s.upsert_worker("w", 1, caps({TaskKind::Llm}));
  EXPECT_EQ(s.assign(kNow).size(), 1u);
  EXPECT_TRUE(s.assign(kNow).empty());
  EXPECT_EQ(s.queued(), 1u);
}

TEST(SchedulerTest, KindVramPauseAndPresenceDecideEligibility) {
  Scheduler s;
  s.enqueue(job("image", 1, 0, TaskKind::Image));
  s.enqueue(job("big", 2, 0, TaskKind::Llm, 48));
  s.upsert_worker("w", 1, caps({TaskKind::Llm}, 24));
  EXPECT_TRUE(s.assign(kNow).empty()) << "wrong kind and too little VRAM";

  auto c = caps({TaskKind::Image}, 24);
  c.auto_enabled = false;
  s.upsert_worker("w", 1, c);
  EXPECT_TRUE(s.assign(kNow).empty()) << "paused";

  c.auto_enabled = true;
  c.only_when_idle = true;
  c.user_presence = proto::UserPresence::Active;
  s.upsert_worker("w", 1, c);
  EXPECT_TRUE(s.assign(kNow).empty()) << "the user is at the machine";

  c.user_presence = std::nullopt;
  s.upsert_worker("w", 1, c);
  EXPECT_TRUE(s.assign(kNow).empty()) << "unknown presence is not idle";

  c.user_presence = proto::UserPresence::Idle;
  s.upsert_worker("w", 1, c);
  auto a = s.assign(kNow);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "image");
}

TEST(SchedulerTest, EarliestConnectedWinsUnlessAnotherIsWarmOnTheModel) {
  Scheduler s;
  s.upsert_worker("late", 2, caps({TaskKind::Llm}));
  s.upsert_worker("early", 1, caps({TaskKind::Llm}));
  s.enqueue(job("j1", 1, 0, TaskKind::Llm, 0, "m"));
  auto a = s.assign(kNow);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].worker_id, "early");
  s.set_busy("early", false);

  s.record_completion("late", "warm-model");
  s.enqueue(job("j2", 2, 0, TaskKind::Llm, 0, "warm-model"));
  a = s.assign(kNow);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].worker_id, "late");
}

TEST(SchedulerTest, HoldOffAndExclusionExpire) {
  Scheduler s;
  s.upsert_worker("w", 1, caps({TaskKind::Llm}));
  s.enqueue(job("j", 1));
  s.hold_off("w", kNow + 5s);
  EXPECT_TRUE(s.assign(kNow).empty());
  EXPECT_EQ(s.assign(kNow + 5s).size(), 1u);

  s.set_busy("w", false);
  s.enqueue(job("k", 2));
  s.exclude("w", "k", kNow + 20s);
  EXPECT_TRUE(s.assign(kNow + 10s).empty());
  EXPECT_EQ(s.assign(kNow + 20s).size(), 1u);
}

TEST(SchedulerTest, SkipsJobsNoIdleWorkerCanTakeWithoutStalling) {
  Scheduler s;
  for (int i = 0; i < 100; ++i) {
    s.enqueue(job("img-" + std::to_string(i), i, 10, TaskKind::Image));
  }
  s.enqueue(job("llm", 1000, 0, TaskKind::Llm));
  s.upsert_worker("w", 1, caps({TaskKind::Llm}));
  auto a = s.assign(kNow);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "llm");
  EXPECT_EQ(s.queued_per_kind()[TaskKind::Image], 100u);
}

TEST(SchedulerTest, RemovedJobsAndWorkersAreGone) {
  Scheduler s;
  s.enqueue(job("j", 1));
  EXPECT_TRUE(s.remove("j"));
  EXPECT_FALSE(s.remove("j"));
  s.upsert_worker("w", 1, caps({TaskKind::Llm}));
  s.remove_worker("w");
  s.enqueue(job("k", 2));
  EXPECT_TRUE(s.assign(kNow).empty());
}

TEST(SchedulerTest, OneWorkerGetsTheBestJobOfItsOwnKinds) {
  Scheduler s;
  for (int i = 0; i < 1000; ++i) {
    s.enqueue(job("img-" + std::to_string(i), i, 10, TaskKind::Image));
  }
  s.enqueue(job("llm-low", 2000, 0, TaskKind::Llm));
  s.enqueue(job("tts", 2001, 3, TaskKind::AudioTts));
  s.enqueue(job("llm-big", 2002, 9, TaskKind::Llm, 100));
  s.upsert_worker("w", 1, caps({TaskKind::Llm, TaskKind::AudioTts}));
  auto a = s.assign_worker("w", kNow);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->job_id, "tts") << "priority 3 beats 0; the 100 GB job does not fit";
  EXPECT_FALSE(s.assign_worker("w", kNow)) << "busy now";
  s.set_busy("w", false);
  EXPECT_EQ(s.assign_worker("w", kNow)->job_id, "llm-low");
  EXPECT_FALSE(s.is_queued("llm-low"));
  EXPECT_EQ(s.queued(), 1001u);
  s.set_busy("w", false);
  EXPECT_FALSE(s.assign_worker("w", kNow));
  EXPECT_FALSE(s.assign_worker("nobody", kNow));
}

}  // namespace
}  // namespace sw::studio
