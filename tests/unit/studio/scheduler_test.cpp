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
              double vram = 0, std::string model = "m", std::string engine = "synthetic") {
  return QueuedJob{std::move(id), seq, priority, kind, vram, std::move(model), std::move(engine)};
}

// A worker as the reference advertises one (§1.5): per kind, its engines' names and model ids.
proto::WorkerCapabilities listing(proto::ModelsPerKind per_kind, double threshold = 24) {
  proto::WorkerCapabilities c;
  for (const auto& [kind, models] : per_kind) {
    c.task_kinds.push_back(kind);
  }
  c.supported_models_per_kind = std::move(per_kind);
  c.vram_threshold_gb = threshold;
  return c;
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

// Feature "capacity" (issue 19): a worker that announced room for more gets a second job while
// the first runs, up to its slots; then it waits like any busy worker.
TEST(SchedulerTest, AWorkerWithSlotsHoldsThatManyJobsAtOnce) {
  Scheduler s;
  s.enqueue(job("llm", 1, 0, TaskKind::Llm));
  s.enqueue(job("image", 2, 0, TaskKind::Image));
  s.enqueue(job("third", 3, 0, TaskKind::Image));
  s.upsert_worker("w", 1, caps({TaskKind::Llm, TaskKind::Image}));
  s.set_slots("w", 2);
  const auto first = s.assign(kNow);
  ASSERT_EQ(first.size(), 2u) << "both slots filled in one pass";
  EXPECT_EQ(first[0].job_id, "llm");
  EXPECT_EQ(first[1].job_id, "image");
  EXPECT_TRUE(s.assign(kNow).empty());
  EXPECT_EQ(s.waiting("third", kNow)->reason, WaitClass::Busy);
  s.set_held("w", 1);  // one finished
  const auto next = s.assign_worker("w", kNow);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->job_id, "third");
  s.set_held("w", 2);
  s.set_slots("w", 2);
  EXPECT_FALSE(s.assign_worker("w", kNow).has_value());
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

// A worker with room for several jobs that had no room for one beside the others: the job waits
// until one of them ends (or the exclusion expires), while smaller ones still go to the worker.
TEST(SchedulerTest, AJobRefusedForRoomWaitsForAJobToEndNotForTheClock) {
  Scheduler s;
  s.upsert_worker("w", 1, caps({TaskKind::Llm}));
  s.set_slots("w", 4);  // a slot stays free throughout: only the exclusion holds "big" back
  s.set_held("w", 2);
  s.enqueue(job("big", 2));
  s.exclude("w", "big", kNow + 60s, /*until_room=*/true);
  s.enqueue(job("small", 1));
  auto a = s.assign(kNow);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "small") << "the worker is not rested";
  EXPECT_TRUE(s.assign(kNow).empty()) << "big waits while nothing ended";
  s.room_freed("w", "big");  // the refused offer itself leaving frees nothing
  EXPECT_TRUE(s.assign(kNow).empty());
  s.room_freed("w", "a job that ran");
  a = s.assign(kNow + 1s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "big");
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

// ---- engines (issue 14) ----

TEST(SchedulerTest, AJobGoesOnlyToAWorkerWhoseListNamesItsEngineOrModel) {
  const auto llama = job("llama", 1, 0, TaskKind::Llm, 0, "qwen-0.5b", "llama-cpp");
  EXPECT_TRUE(Scheduler::serves(listing({{TaskKind::Llm, {"llama-cpp:*", "synthetic"}}}), llama));
  EXPECT_TRUE(Scheduler::serves(listing({{TaskKind::Llm, {"qwen-0.5b"}}}), llama))
      << "the model id itself";
  EXPECT_TRUE(Scheduler::serves(listing({{TaskKind::Llm, {"llama-cpp"}}}), llama))
      << "the bare engine name, as the synthetic engine lists itself";
  EXPECT_FALSE(
      Scheduler::serves(listing({{TaskKind::Llm, {"synthetic", "synthetic-llm"}}}), llama));
  EXPECT_FALSE(
      Scheduler::serves(listing({{TaskKind::Llm, {"llama-cpp:", "llama-cppx:*", "*"}}}), llama))
      << "only `<engine>:*` is the engine's wildcard";
  EXPECT_FALSE(Scheduler::serves(listing({{TaskKind::Image, {"llama-cpp:*"}}}), llama))
      << "the list of another kind does not count";
  EXPECT_TRUE(Scheduler::serves(caps({TaskKind::Llm}), llama))
      << "a worker without per-kind lists (older reference) keeps the kind rule";
  EXPECT_TRUE(Scheduler::serves(listing({{TaskKind::Llm, {"synthetic", "synthetic-llm"}}}),
                                job("s", 2, 0, TaskKind::Llm, 0, "synth-llm", "synthetic")));
}

TEST(SchedulerTest, WorkersWithoutTheEngineAreSkippedForAWorkerThatHasIt) {
  Scheduler s;
  s.upsert_worker("synthetic-only", 1, listing({{TaskKind::Llm, {"synthetic", "synthetic-llm"}}}));
  s.upsert_worker("with-llama", 2, listing({{TaskKind::Llm, {"llama-cpp:*", "synthetic"}}}));
  for (int i = 0; i < 6; ++i) {
    s.enqueue(job("llama-" + std::to_string(i), i, 0, TaskKind::Llm, 0, "qwen", "llama-cpp"));
  }
  auto a = s.assign(kNow);
  ASSERT_EQ(a.size(), 1u) << "the earlier-connected worker has no llama-cpp";
  EXPECT_EQ(a[0].worker_id, "with-llama");
  EXPECT_TRUE(s.assign(kNow).empty()) << "five wait for the worker that has the engine";
  EXPECT_FALSE(s.assign_worker("synthetic-only", kNow)) << "the heartbeat path applies it too";
  s.enqueue(job("synth", 10, 0, TaskKind::Llm, 0, "synth-llm", "synthetic"));
  EXPECT_EQ(s.assign_worker("synthetic-only", kNow)->job_id, "synth");
  s.set_busy("with-llama", false);
  EXPECT_EQ(s.assign_worker("with-llama", kNow)->job_id, "llama-1");
}

// ---- waiting reasons (issue 14) ----

TEST(SchedulerTest, AQueuedJobSaysWhyItWaitsInTheDocumentedOrder) {
  Scheduler s;
  s.enqueue(job("j", 1, 0, TaskKind::Llm, 24, "qwen", "llama-cpp"));
  EXPECT_FALSE(s.waiting("unknown", kNow));
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: no worker connected");

  s.upsert_worker("image-only", 1, caps({TaskKind::Image}));
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: no connected worker serves kind llm");

  s.upsert_worker("synthetic", 2, listing({{TaskKind::Llm, {"synthetic", "synthetic-llm"}}}, 48));
  auto reason = s.waiting("j", kNow);
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->text, "waiting: no connected worker has engine llama-cpp");
  EXPECT_EQ(reason->reason, WaitClass::NoEngine);
  EXPECT_EQ(reason->detail, "llama-cpp");

  s.upsert_worker("small", 3, listing({{TaskKind::Llm, {"llama-cpp:*"}}}, 12));
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: no connected worker has ≥ 24 GB free");
  s.enqueue(job("half", 2, 0, TaskKind::Llm, 12.5, "qwen", "llama-cpp"));
  EXPECT_EQ(s.waiting("half", kNow)->text, "waiting: no connected worker has ≥ 12.5 GB free");

  auto paused = listing({{TaskKind::Llm, {"llama-cpp:*"}}}, 24);
  paused.auto_enabled = false;
  s.upsert_worker("big", 4, paused);
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: all eligible workers paused");
  // A paused worker with the capacity feature announces no room: still paused, not busy (a
  // newcomer's break-it run saw "busy" for an idle, paused worker).
  s.set_slots("big", 0);
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: all eligible workers paused");
  s.set_slots("big", 1);
  paused.auto_enabled = true;
  s.upsert_worker("big", 4, paused);
  s.set_busy("big", true);
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: all eligible workers busy");

  s.upsert_worker("big2", 5, listing({{TaskKind::Llm, {"llama-cpp:*"}}}, 32));
  s.hold_off("big2", kNow + 5s);
  EXPECT_EQ(s.waiting("j", kNow)->text, "waiting: all eligible workers busy or held off");
  s.exclude("big2", "j", kNow + 20s);
  EXPECT_EQ(s.waiting("j", kNow + 10s)->text,
            "waiting: all eligible workers busy or kept off this job");
  reason = s.waiting("j", kNow + 20s);
  EXPECT_EQ(reason->reason, WaitClass::Pending) << reason->text;

  EXPECT_EQ(s.assign(kNow + 20s).size(), 1u);
  EXPECT_FALSE(s.waiting("j", kNow + 20s)) << "an offered job does not wait";
}

TEST(SchedulerTest, WaitingCountsGroupTheQueueByReason) {
  Scheduler s;
  s.upsert_worker(
      "synthetic", 1,
      listing({{TaskKind::Llm, {"synthetic", "synthetic-llm"}}, {TaskKind::Image, {"synthetic"}}}));
  for (int i = 0; i < 5; ++i) {
    s.enqueue(job("llama-" + std::to_string(i), i, 0, TaskKind::Llm, 0, "qwen", "llama-cpp"));
  }
  s.enqueue(job("video", 10, 0, TaskKind::Video));
  s.enqueue(job("sd", 11, 0, TaskKind::Image, 0, "sdxl", "sd-cpp"));
  s.enqueue(job("synth-1", 12, 0, TaskKind::Llm));
  s.enqueue(job("synth-2", 13, 0, TaskKind::Llm));
  s.set_busy("synthetic", true);
  const auto counts = s.waiting_counts(kNow);
  const std::map<std::pair<WaitClass, std::string>, std::size_t> expected = {
      {{WaitClass::NoKind, "video"}, 1},
      {{WaitClass::NoEngine, "llama-cpp"}, 5},
      {{WaitClass::NoEngine, "sd-cpp"}, 1},
      {{WaitClass::Busy, ""}, 2}};
  EXPECT_EQ(counts, expected);
  s.set_busy("synthetic", false);
  s.exclude("synthetic", "synth-1", kNow + 1s);
  EXPECT_EQ(s.waiting_counts(kNow).at({WaitClass::Busy, ""}), 1u) << "synth-1 was declined";
  EXPECT_EQ(s.waiting_counts(kNow).at({WaitClass::Pending, ""}), 1u) << "synth-2 is next";
}

TEST(SchedulerTest, AJobWhoseInputIsAnUploadGoesOnlyToAWorkerThatFetchesUploads) {
  Scheduler s;
  auto stt = job("stt", 1, 0, TaskKind::AudioStt);
  stt.needs_uploads = true;
  s.enqueue(stt);
  s.enqueue(job("plain", 2, 0, TaskKind::AudioStt));
  s.upsert_worker("old", 1, caps({TaskKind::AudioStt}));
  auto reason = s.waiting("stt", kNow);
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->reason, WaitClass::NoUploads);
  EXPECT_EQ(reason->text,
            "waiting: no connected worker fetches studio uploads (feature \"uploads\")");
  EXPECT_EQ(to_string(WaitClass::NoUploads), "no_uploads");
  EXPECT_EQ(s.waiting_counts(kNow).at({WaitClass::NoUploads, ""}), 1u);

  // The older worker takes the job without an upload, never the one with.
  auto first = s.assign(kNow);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].job_id, "plain");
  s.set_busy("old", false);
  EXPECT_TRUE(s.assign(kNow).empty());
  EXPECT_FALSE(s.assign_worker("old", kNow));

  s.upsert_worker("new", 2, caps({TaskKind::AudioStt}));
  s.set_fetches_uploads("new", true);
  EXPECT_EQ(s.waiting("stt", kNow)->reason, WaitClass::Pending);
  auto second = s.assign(kNow);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].job_id, "stt");
  EXPECT_EQ(second[0].worker_id, "new");
}

}  // namespace
}  // namespace sw::studio
