// The courier's delivery rules on a fake link and a manual clock, over a real outbox file: what
// goes out as completeJson and when it leaves the outbox, resends without an ack, the studio's
// limits, the multipart route's answers, results that end every link they are sent on, entries
// of another identity, a send that fails. No sockets: the link is a fake (CourierLink), and time
// moves only when the test moves it.

#include "worker/courier.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "support/loop_turns.h"
#include "support/temp_dir.h"

namespace sw::worker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using json = nlohmann::json;

// A link that records what is sent on it and answers uploads as the test says.
class FakeLink final : public CourierLink {
 public:
  static constexpr long kCannotUpload = -1;  // an answer: this worker cannot upload at all
  bool is_alive = true;
  std::string url = "http://studio/";
  std::string id = "w-1";
  std::optional<proto::StudioLimits> studio_limits;
  std::uint64_t beats = 0;
  std::optional<Error> send_error;                  // every send fails with it when set
  std::map<std::string, std::deque<long>> answers;  // job → HTTP statuses to answer, in order
  std::vector<json> frames;                         // what was sent, in order
  std::vector<std::string> uploads;                 // job ids, one per upload attempt

  bool alive() const override { return is_alive; }
  std::string studio_url() const override { return url; }
  std::string worker_id() const override { return id; }
  std::optional<proto::StudioLimits> limits() const override { return studio_limits; }
  std::uint64_t beats_queued() const override { return beats; }

  asio::awaitable<Status> send_text(std::string text) override {
    if (send_error) co_return fail(*send_error);
    frames.push_back(json::parse(text));
    co_return Status{};
  }

  asio::awaitable<tl::expected<void, UploadFailure>> upload(
      std::shared_ptr<ResultUpload> upload) override {
    uploads.push_back(upload->job_id);
    auto& queue = answers[upload->job_id];
    const long status = queue.empty() ? 200 : queue.front();
    if (!queue.empty()) queue.pop_front();
    tl::expected<void, UploadFailure> answer;
    if (status == kCannotUpload) {
      const std::string message = "libcurl.so.4: cannot open shared object file";
      answer = tl::unexpected(UploadFailure{Error::not_found("{}", message), 0, true});
    } else if (status != 200) {
      const std::string message = "the studio answered " + std::to_string(status);
      answer = tl::unexpected(UploadFailure{Error::unavailable("{}", message), status});
    }
    co_return answer;
  }

  std::vector<json> frames_of(const std::string& type) const {
    std::vector<json> out;
    for (const auto& frame : frames) {
      if (frame.value("type", "") == type) out.push_back(frame);
    }
    return out;
  }
};

OutboxEntry entry(const std::string& job, std::string body, OutboxEntry::Kind kind,
                  std::int64_t at) {
  OutboxEntry e;
  e.job_id = job;
  e.kind = kind;
  e.studio = "http://studio/";
  e.worker_id = "w-1";
  e.prompt = "a prompt";
  e.ext = kind == OutboxEntry::Kind::Binary ? "webp" : "";
  e.body = std::move(body);
  e.created_at_ms = at;
  e.next_attempt_at_ms = at;
  return e;
}

class CourierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Outbox::open(dir.path() / "outbox.db", {});
    ASSERT_TRUE(opened) << opened.error().message;
    outbox = std::move(*opened);
    courier = std::make_unique<Courier>(loop.get_executor(), *outbox, logs, clock,
                                        CourierTimings{1000ms, 10'000ms}, nullptr);
  }

  void TearDown() override {
    if (!courier) return;  // SetUp failed, and said why
    courier->link_ended(false);
    EXPECT_TRUE(run_until([&] { return running == 0; })) << "the courier did not stop";
  }

  void put(const std::string& job, std::string body,
           OutboxEntry::Kind kind = OutboxEntry::Kind::Json) {
    auto e = entry(job, std::move(body), kind, clock.unix_millis());
    ASSERT_TRUE(outbox->put(e));
  }

  void start(const std::shared_ptr<FakeLink>& on) {
    ++running;
    asio::co_spawn(loop, courier->run(on), [this](const std::exception_ptr&) { --running; });
  }

  // Runs the loop until `done` holds. The outbox's writer thread posts its answers to the loop,
  // so the loop is run in short turns; the deadline only guards a broken test.
  bool run_until(const std::function<bool()>& done) { return testing::run_loop_until(loop, done); }

  // The stored entry of `job` (attempts, next attempt, last error), if it is still there.
  std::optional<OutboxEntry> stored(const std::string& job) {
    auto all = outbox->due(std::numeric_limits<std::int64_t>::max(), 100);
    if (!all) return std::nullopt;
    for (auto& e : *all) {
      if (e.job_id == job) return e;
    }
    return std::nullopt;
  }

  // Waits until `job`'s stored entry has `attempts` attempts (its postponement is on disk).
  bool attempted(const std::string& job, int attempts) {
    return run_until([&] {
      auto e = stored(job);
      return e && e->attempts == attempts;
    });
  }

  testing::TempDir dir;
  // Before the outbox: its writer thread, which answers on the loop, is joined first.
  asio::io_context loop;
  std::unique_ptr<Outbox> outbox;
  ManualClock clock;
  LogHub logs;
  std::unique_ptr<Courier> courier;
  int running = 0;
  std::shared_ptr<FakeLink> link = std::make_shared<FakeLink>();
};

TEST_F(CourierTest, AJsonResultGoesAsCompleteJsonAndLeavesTheOutboxOnlyOnItsAck) {
  put("job-a", R"({"text":"hi"})");
  start(link);
  ASSERT_TRUE(run_until([&] { return link->frames.size() == 1; }));
  const auto& frame = link->frames[0];
  EXPECT_EQ(frame["type"], "completeJson");
  EXPECT_EQ(frame["jobId"], "job-a");
  EXPECT_EQ(frame["prompt"], "a prompt");
  ASSERT_TRUE(attempted("job-a", 1));
  EXPECT_TRUE(outbox->contains("job-a")) << "kept until the studio acknowledges it";

  courier->complete_acked("job-a");
  ASSERT_TRUE(run_until([&] { return !outbox->contains("job-a"); }));
  EXPECT_EQ(outbox->summary().delivered, 1u);
}

TEST_F(CourierTest, WithoutAnAckTheResultIsSentAgainOnceTheAckWaitHasPassed) {
  put("job-a", R"({"n":1})");
  start(link);
  ASSERT_TRUE(attempted("job-a", 1));
  EXPECT_EQ(stored("job-a")->next_attempt_at_ms, clock.unix_millis() + 10'000);
  EXPECT_EQ(link->frames.size(), 1u);

  clock.advance(10'001ms);
  courier->poke();
  ASSERT_TRUE(run_until([&] { return link->frames.size() == 2; }));
  EXPECT_EQ(link->frames[1]["type"], "completeJson");
  EXPECT_EQ(link->frames[1]["jobId"], "job-a");
}

TEST_F(CourierTest, AResultOverTheStudiosMessageLimitFailsForGoodAndTheNextIsDelivered) {
  link->studio_limits = proto::StudioLimits{300, 1 << 20};
  put("job-big", json{{"text", std::string(1000, 'x')}}.dump());
  put("job-small", R"({"text":"ok"})");
  start(link);
  ASSERT_TRUE(run_until([&] { return link->frames.size() == 2; }));
  EXPECT_EQ(link->frames[0]["type"], "fail");
  EXPECT_EQ(link->frames[0]["jobId"], "job-big");
  EXPECT_EQ(link->frames[0]["retryable"], false);
  EXPECT_NE(link->frames[0]["error"].get<std::string>().find("over the studio's message limit "
                                                             "of 300 bytes"),
            std::string::npos)
      << link->frames[0]["error"];
  EXPECT_EQ(link->frames[1]["type"], "completeJson");
  EXPECT_EQ(link->frames[1]["jobId"], "job-small");
  ASSERT_TRUE(run_until([&] { return !outbox->contains("job-big"); }));
}

TEST_F(CourierTest, TheMultipartRoutesAnswersDecideRetryDropOrFailure) {
  put("b-later", "bytes-1", OutboxEntry::Kind::Binary);      // 503, then 200
  put("b-not-ours", "bytes-2", OutboxEntry::Kind::Binary);   // 409
  put("b-invalid", "bytes-3", OutboxEntry::Kind::Binary);    // 413
  put("b-forbidden", "bytes-4", OutboxEntry::Kind::Binary);  // 403
  put("b-no-curl", "bytes-5", OutboxEntry::Kind::Binary);    // libcurl could not be loaded
  link->answers["b-no-curl"] = {FakeLink::kCannotUpload};
  link->answers["b-later"] = {503, 200};
  link->answers["b-not-ours"] = {409};
  link->answers["b-invalid"] = {413};
  link->answers["b-forbidden"] = {403};
  start(link);
  ASSERT_TRUE(run_until([&] {
    return !outbox->contains("b-not-ours") && !outbox->contains("b-invalid") &&
           !outbox->contains("b-forbidden") && !outbox->contains("b-no-curl") &&
           link->frames.size() == 3;
  }));
  ASSERT_TRUE(attempted("b-later", 1));
  EXPECT_EQ(stored("b-later")->next_attempt_at_ms, clock.unix_millis() + 1000) << "1 s backoff";
  EXPECT_NE(stored("b-later")->last_error.find("503"), std::string::npos);

  const auto fails = link->frames_of("fail");
  ASSERT_EQ(fails.size(), 3u) << "409 drops the result without a word";
  EXPECT_EQ(fails[0]["jobId"], "b-invalid");
  EXPECT_EQ(fails[0]["retryable"], false) << "a refusal that would repeat";
  EXPECT_EQ(fails[1]["jobId"], "b-forbidden");
  EXPECT_EQ(fails[1]["retryable"], true) << "another worker may still deliver";
  // A worker that cannot upload at all hands the job back at once instead of holding it until
  // the studio's run limit.
  EXPECT_EQ(fails[2]["jobId"], "b-no-curl");
  EXPECT_EQ(fails[2]["retryable"], true);
  EXPECT_NE(fails[2]["error"].get<std::string>().find("cannot upload results"), std::string::npos);
  EXPECT_EQ(std::count(link->uploads.begin(), link->uploads.end(), "b-no-curl"), 1);

  clock.advance(1001ms);
  courier->poke();
  ASSERT_TRUE(run_until([&] { return !outbox->contains("b-later"); }));
  EXPECT_EQ(std::count(link->uploads.begin(), link->uploads.end(), "b-later"), 2);
  EXPECT_EQ(outbox->summary().delivered, 1u);
}

TEST_F(CourierTest, EveryRefusalThatMayChangeIsRetriedAndEveryOneThatWouldRepeatFailsTheJob) {
  const std::vector<long> retried = {0, 401, 408, 429, 500, 502};  // 0: a transport error
  const std::vector<long> final_refusals = {400, 415, 422};
  for (long status : retried) {
    const std::string job = "retry-" + std::to_string(status);
    put(job, "bytes", OutboxEntry::Kind::Binary);
    link->answers[job] = {status};
  }
  for (long status : final_refusals) {
    const std::string job = "final-" + std::to_string(status);
    put(job, "bytes", OutboxEntry::Kind::Binary);
    link->answers[job] = {status};
  }
  start(link);
  for (long status : retried) {
    const std::string job = "retry-" + std::to_string(status);
    ASSERT_TRUE(attempted(job, 1)) << job;
  }
  ASSERT_TRUE(run_until([&] { return link->frames.size() == final_refusals.size(); }));
  for (std::size_t i = 0; i < final_refusals.size(); ++i) {
    EXPECT_EQ(link->frames[i]["jobId"], "final-" + std::to_string(final_refusals[i]));
    EXPECT_EQ(link->frames[i]["retryable"], false);
  }
  ASSERT_TRUE(run_until([&] { return outbox->summary().entries == retried.size(); }));
}

TEST_F(CourierTest, AHeartbeatAnsweredFromBeforeTheResultWasSentDoesNotProveItWasRead) {
  put("job-a", R"({"text":"x"})");
  for (int drop = 1; drop <= Courier::kDropsBeforeUndeliverable; ++drop) {
    link = std::make_shared<FakeLink>();
    link->beats = 7;
    start(link);
    ASSERT_TRUE(run_until([&] { return !link->frames.empty(); }));
    ASSERT_TRUE(attempted("job-a", drop));
    courier->heartbeat_acked(7);  // the beat queued before the completeJson
    link->is_alive = false;
    courier->link_ended(true);
    ASSERT_TRUE(run_until([&] { return running == 0; }));
  }
  link = std::make_shared<FakeLink>();
  start(link);
  ASSERT_TRUE(run_until([&] { return !outbox->contains("job-a"); }));
  EXPECT_EQ(link->frames.at(0)["type"], "fail");
}

TEST_F(CourierTest, ABinaryResultOverTheStudiosUploadLimitIsNotUploaded) {
  link->studio_limits = proto::StudioLimits{1 << 20, 10};
  put("b-big", std::string(64, 'x'), OutboxEntry::Kind::Binary);
  start(link);
  ASSERT_TRUE(run_until([&] { return !outbox->contains("b-big"); }));
  EXPECT_TRUE(link->uploads.empty());
  ASSERT_EQ(link->frames.size(), 1u);
  EXPECT_EQ(link->frames[0]["type"], "fail");
  EXPECT_EQ(link->frames[0]["retryable"], false);
}

TEST_F(CourierTest, AResultAfterWhichEveryLinkEndsUnreadIsDeclaredUndeliverableOnTheThird) {
  put("job-a", R"({"text":"poison"})");
  for (int drop = 1; drop <= Courier::kDropsBeforeUndeliverable; ++drop) {
    link = std::make_shared<FakeLink>();
    start(link);
    ASSERT_TRUE(run_until([&] { return !link->frames.empty(); }));
    EXPECT_EQ(link->frames[0]["type"], "completeJson") << "link " << drop;
    ASSERT_TRUE(attempted("job-a", drop));
    link->is_alive = false;
    courier->link_ended(true);
    ASSERT_TRUE(run_until([&] { return running == 0; }));
  }
  link = std::make_shared<FakeLink>();
  start(link);
  ASSERT_TRUE(run_until([&] { return !outbox->contains("job-a"); }));
  ASSERT_EQ(link->frames.size(), 1u);
  EXPECT_EQ(link->frames[0]["type"], "fail");
  EXPECT_EQ(link->frames[0]["retryable"], false);
  EXPECT_NE(link->frames[0]["error"].get<std::string>().find("the session ended 3 times"),
            std::string::npos);
}

TEST_F(CourierTest, ALinkThatEndsAfterTheStudioReadTheResultDoesNotCountAgainstIt) {
  put("job-a", R"({"text":"fine"})");
  for (int round = 1; round <= Courier::kDropsBeforeUndeliverable + 1; ++round) {
    link = std::make_shared<FakeLink>();
    link->beats = 7;
    start(link);
    ASSERT_TRUE(run_until([&] { return !link->frames.empty(); }));
    EXPECT_EQ(link->frames[0]["type"], "completeJson") << "round " << round;
    ASSERT_TRUE(attempted("job-a", round));
    // The studio answered a heartbeat queued after the completeJson: it read it.
    courier->heartbeat_acked(8);
    link->is_alive = false;
    courier->link_ended(true);
    ASSERT_TRUE(run_until([&] { return running == 0; }));
  }
  EXPECT_TRUE(outbox->contains("job-a"));
}

TEST_F(CourierTest, AnEntryClaimedUnderAnotherIdentityWaitsAndIsNotSent) {
  auto other = entry("job-old", R"({"a":1})", OutboxEntry::Kind::Json, clock.unix_millis());
  other.worker_id = "w-before-reset";
  ASSERT_TRUE(outbox->put(other));
  put("job-new", R"({"b":2})");
  start(link);
  ASSERT_TRUE(attempted("job-old", 1));
  ASSERT_TRUE(run_until([&] { return link->frames.size() == 1; }));
  EXPECT_EQ(link->frames[0]["jobId"], "job-new");
  EXPECT_EQ(stored("job-old")->next_attempt_at_ms, clock.unix_millis() + 60'000);
  EXPECT_NE(stored("job-old")->last_error.find("w-before-reset"), std::string::npos);
}

TEST_F(CourierTest, AProtocolViolationNamingAnAwaitedResultDisownsOnlyThatJob) {
  put("job-a", R"({"a":1})");
  start(link);
  ASSERT_TRUE(attempted("job-a", 1));
  EXPECT_EQ(courier->disowned_by("completeJson for job job-a: not assigned to this worker"),
            "job-a");
  EXPECT_EQ(courier->disowned_by("unexpected frame"), std::nullopt);
}

TEST_F(CourierTest, ASendThatFailsKeepsTheResultAndBacksOff) {
  link->send_error = Error::unavailable("connection reset");
  put("job-a", R"({"a":1})");
  start(link);
  ASSERT_TRUE(attempted("job-a", 1));
  const auto kept = stored("job-a");
  EXPECT_EQ(kept->next_attempt_at_ms, clock.unix_millis() + 1000);
  EXPECT_NE(kept->last_error.find("connection reset"), std::string::npos) << kept->last_error;

  link->send_error.reset();
  clock.advance(1001ms);
  courier->poke();
  ASSERT_TRUE(run_until([&] { return link->frames.size() == 1; }));
  EXPECT_EQ(link->frames[0]["type"], "completeJson");
}

}  // namespace
}  // namespace sw::worker
