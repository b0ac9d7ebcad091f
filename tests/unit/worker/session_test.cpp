// The studio session without sockets (issue 19): its link is a fake WebSocket handed out by the
// session's connector seam, jobs run on the synthetic engine through the real JobRunner, results
// go through the real outbox file, and the courier's due times are read on a ManualClock. What is
// asserted is what a studio would see: hello first, nothing before welcome, accept → completeJson
// → the entry gone on completeAck, the result sent again on the next link after a drop, and the
// exit codes of the frames that end a session for good. The loopback tests against a scripted
// studio (integration/worker_session_test.cpp) cover the real socket's own behaviour.

#include "worker/session.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engines/synthetic/synthetic_engine.h"
#include "support/loop_turns.h"
#include "support/offer_frames.h"
#include "support/temp_dir.h"

namespace sw::worker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::run_loop_until;
using testing::synthetic_llm_offer;

// The studio's end of one link: what the worker sent, and what the test makes the studio say.
class FakeSocket final : public net::WsClient {
 public:
  explicit FakeSocket(const asio::any_io_executor& loop) : bell_(loop) {}

  asio::awaitable<Result<net::WsMessage>> read() override {
    while (inbox_.empty()) {
      if (!open_) co_return fail(Error::unavailable("the link was aborted"));
      bell_.expires_at(asio::steady_timer::time_point::max());
      co_await bell_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    auto next = std::move(inbox_.front());
    inbox_.pop_front();
    co_return next;
  }
  // Like a real socket, a write completes later: the caller suspends, and whatever else is
  // queued on the loop runs first.
  asio::awaitable<Status> send_text(std::string text) override {
    if (!open_) co_return fail(Error::unavailable("the link is closed"));
    sent.push_back(json::parse(text));
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_return Status{};
  }
  asio::awaitable<void> close(std::uint16_t code, std::string /*reason*/) override {
    if (!closed_with) closed_with = code;
    abort();
    co_return;
  }
  void abort() override {
    open_ = false;
    bell_.cancel();
  }
  bool is_open() const override { return open_; }
  const std::string& subprotocol() const override { return subprotocol_; }

  // ---- the studio's side
  void say(std::string text) {
    inbox_.push_back(net::WsMessage{net::WsMessage::Kind::Text, std::move(text), 0, {}});
    bell_.cancel();
  }
  void close_with(std::uint16_t code, std::string reason) {
    inbox_.push_back(net::WsMessage{net::WsMessage::Kind::Closed, {}, code, std::move(reason)});
    bell_.cancel();
  }
  void drop() {
    inbox_.push_back(fail(Error::unavailable("connection reset by peer")));
    bell_.cancel();
  }
  std::vector<json> of_type(const std::string& type) const {
    std::vector<json> out;
    for (const auto& frame : sent) {
      if (frame.value("type", "") == type) out.push_back(frame);
    }
    return out;
  }

  std::vector<json> sent;
  std::optional<std::uint16_t> closed_with;

 private:
  asio::steady_timer bell_;
  std::deque<Result<net::WsMessage>> inbox_;
  bool open_ = true;
  std::string subprotocol_ = "studio-worker-v1";
};

const std::string kWelcome =
    R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z"})";

WorkerConfig registered_config() {
  WorkerConfig config;
  config.api_base_url = "http://studio.test/";
  config.worker_id = "w-1";
  config.auth_token = "token-1";
  config.max_concurrent_jobs = 2;  // one studio job at a time all the same, unless "capacity"
  return config;
}

RuntimeTimings quiet_timings() {
  RuntimeTimings timings;
  // Beats and log batches only when the test wants them: the first beat follows the welcome.
  timings.heartbeat_interval = 1h;
  timings.log_flush_interval = 1h;
  timings.backoff_base = 1ms;
  timings.backoff_cap = 2ms;
  return timings;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    release_jobs();
    auto opened = Outbox::open(dir.path() / "outbox.db", {});
    ASSERT_TRUE(opened) << opened.error().message;
    outbox = std::move(*opened);
    runtime.attach_outbox(*outbox);
    session = std::make_unique<StudioSession>(
        runtime, status, runner,
        [this](net::WsClientOptions options) { return connect(std::move(options)); });
  }

  void TearDown() override {
    release_jobs();  // a test that failed with a job held must not leave the pool waiting
    if (running) {
      session->stop();
      EXPECT_TRUE(run_until([&] { return !running; })) << "the session did not stop";
    }
    session.reset();
    pool.join();
  }

  asio::awaitable<net::WsClient::ConnectResult> connect(net::WsClientOptions options) {
    opened_with.push_back(std::move(options));
    auto socket = std::make_shared<FakeSocket>(loop.get_executor());
    sockets.push_back(socket);
    co_return socket;
  }

  void start() {
    running = true;
    asio::co_spawn(loop, session->run(), [this](const std::exception_ptr&) { running = false; });
  }

  // Runs the loop until `done` holds. Jobs run on the pool and the outbox's disk work on its
  // writer thread, both answering on the loop, so it is run in short turns; the deadline only
  // guards a broken test.
  bool run_until(const std::function<bool()>& done) { return testing::run_loop_until(loop, done); }

  // Jobs wait in the synthetic engine until this is called (no timing window: SyntheticEngine).
  void hold_jobs() { std::filesystem::remove(dir.path() / "release"); }
  void release_jobs() { std::ofstream(dir.path() / "release").put('1'); }

  FakeSocket& link(std::size_t n) { return *sockets.at(n); }
  bool sent(std::size_t n, const std::string& type, std::size_t count = 1) {
    return run_until(
        [&, n] { return sockets.size() > n && link(n).of_type(type).size() >= count; });
  }

  testing::TempDir dir;
  asio::io_context loop;
  asio::thread_pool pool{2};
  engines::SyntheticEngine engine{std::chrono::milliseconds(0), dir.path() / "release"};
  ManualClock clock;
  Runtime runtime{loop.get_executor(),
                  pool.get_executor(),
                  dir.path() / "config.toml",
                  registered_config(),
                  engine,
                  quiet_timings(),
                  0};
  std::unique_ptr<Outbox> outbox;
  StatusBoard status;
  JobRunner runner{engine, runtime.gate(), pool.get_executor(), clock};
  std::unique_ptr<StudioSession> session;
  bool running = false;
  std::vector<net::WsClientOptions> opened_with;
  std::vector<std::shared_ptr<FakeSocket>> sockets;
};

TEST_F(SessionTest, HelloGoesFirstWithTheTokenAndFeaturesAndNothingElseBeforeTheWelcome) {
  start();
  ASSERT_TRUE(sent(0, "hello"));
  const auto& options = opened_with.at(0);
  EXPECT_EQ(options.url, "ws://studio.test/graphics/api/workers/w-1/connect");
  EXPECT_EQ(options.subprotocol, "studio-worker-v1");
  ASSERT_FALSE(options.headers.empty());
  EXPECT_EQ(options.headers[0].value, "Bearer token-1");

  const json hello = link(0).sent.at(0);
  EXPECT_EQ(hello["type"], "hello");
  EXPECT_EQ(hello["authToken"], "token-1");
  EXPECT_EQ(hello["features"],
            json::array({"limits", "capacity", "progress", "cancel", "uploads"}));

  // An offer before the welcome is dropped: no accept, no reject, no heartbeat. A job offered
  // after it runs to its result, and by then an answer to the early one would have gone out.
  link(0).say(synthetic_llm_offer("job-early", "the prompt", 0));
  link(0).say(kWelcome);
  ASSERT_TRUE(sent(0, "heartbeat"));
  EXPECT_EQ(status.view().session.phase, SessionPhase::Connected);
  link(0).say(synthetic_llm_offer("job-after", "the prompt", 0));
  ASSERT_TRUE(sent(0, "completeJson"));
  for (const auto& frame : link(0).sent) {
    EXPECT_NE(frame.value("jobId", ""), "job-early") << frame.dump();
  }
}

TEST_F(SessionTest, AnOfferIsAcceptedRunAndItsResultLeavesTheOutboxOnTheStudiosAck) {
  start();
  ASSERT_TRUE(sent(0, "hello"));
  link(0).say(kWelcome);
  link(0).say(synthetic_llm_offer("job-1", "the prompt", 0));
  ASSERT_TRUE(sent(0, "completeJson"));
  ASSERT_EQ(link(0).of_type("accept").size(), 1u);
  EXPECT_EQ(link(0).of_type("accept")[0]["jobId"], "job-1");
  const json complete = link(0).of_type("completeJson")[0];
  EXPECT_EQ(complete["jobId"], "job-1");
  EXPECT_EQ(complete["prompt"], "the prompt");
  EXPECT_TRUE(outbox->contains("job-1")) << "kept until the studio acknowledges it";

  link(0).say(R"({"type":"completeAck","jobId":"job-1"})");
  ASSERT_TRUE(run_until([&] { return !outbox->contains("job-1"); }));
  EXPECT_EQ(outbox->summary().delivered, 1u);
}

TEST_F(SessionTest, ALinkThatDropsIsReopenedAndTheUnacknowledgedResultGoesOnTheNewOne) {
  start();
  ASSERT_TRUE(sent(0, "hello"));
  link(0).say(kWelcome);
  link(0).say(synthetic_llm_offer("job-1", "the prompt", 0));
  ASSERT_TRUE(sent(0, "completeJson"));
  link(0).drop();

  ASSERT_TRUE(sent(1, "hello")) << "the session reconnects by itself";
  EXPECT_EQ(link(1).sent.size(), 1u) << "nothing about the job before the new welcome";
  link(1).say(kWelcome);
  ASSERT_TRUE(sent(1, "completeJson"));
  EXPECT_EQ(link(1).of_type("completeJson")[0]["jobId"], "job-1");
  link(1).say(R"({"type":"completeAck","jobId":"job-1"})");
  ASSERT_TRUE(run_until([&] { return !outbox->contains("job-1"); }));
}

TEST_F(SessionTest, AClose4001EndsTheSessionForGoodAsAnAuthenticationFailure) {
  start();
  ASSERT_TRUE(sent(0, "hello"));
  link(0).close_with(4001, "bad token");
  ASSERT_TRUE(run_until([&] { return !running; }));
  EXPECT_EQ(session->exit_code(), ExitCode::AuthFailed);
  EXPECT_EQ(sockets.size(), 1u) << "no reconnect after an authentication failure";
  EXPECT_EQ(status.view().session.phase, SessionPhase::AuthFailed);
}

TEST_F(SessionTest, AWorkerDeletedErrorEndsTheSessionWithItsOwnExitCode) {
  start();
  ASSERT_TRUE(sent(0, "hello"));
  link(0).say(kWelcome);
  link(0).say(R"({"type":"error","code":"worker_deleted","message":"deleted by the operator"})");
  ASSERT_TRUE(run_until([&] { return !running; }));
  EXPECT_EQ(session->exit_code(), ExitCode::WorkerDeleted);
  EXPECT_EQ(link(0).closed_with, 1000);
  EXPECT_EQ(sockets.size(), 1u);
}

TEST_F(SessionTest, ACapacityStudioHearsOfAnAcceptedJobAtOnceWithTheRoomLeft) {
  hold_jobs();
  start();
  ASSERT_TRUE(sent(0, "hello"));
  link(0).say(R"({"type":"welcome","workerId":"w-1","serverTime":"2026-01-01T00:00:00Z",)"
              R"("features":["capacity"]})");
  ASSERT_TRUE(sent(0, "heartbeat"));
  EXPECT_EQ(link(0).of_type("heartbeat")[0]["capacity"]["room"], 2);
  link(0).say(synthetic_llm_offer("job-1", "the prompt", 0));
  ASSERT_TRUE(sent(0, "accept"));
  // Heartbeats are an hour apart here: only the event-driven beat can say this. The studio
  // counts the worker's slots as the jobs a beat lists plus its room, so a beat that names the
  // job with one slot left is what lets it offer a second job while this one runs.
  const auto names_job_with_room = [&] {
    for (const auto& beat : link(0).of_type("heartbeat")) {
      const auto& capacity = beat["capacity"];
      if (capacity["jobIds"] == json::array({"job-1"}) && capacity["room"] == 1) return true;
    }
    return false;
  };
  ASSERT_TRUE(run_until(names_job_with_room)) << json(link(0).sent).dump();
  EXPECT_TRUE(link(0).of_type("completeJson").empty()) << "the job is still held";

  release_jobs();
  ASSERT_TRUE(sent(0, "completeJson"));
  // And once it is done, a beat says every slot is free again and lists no job.
  ASSERT_TRUE(run_until([&] {
    const auto beats = link(0).of_type("heartbeat");
    const auto& last = beats.back()["capacity"];
    return last["jobIds"].empty() && last["room"] == 2;
  })) << json(link(0).sent).dump();
}

TEST_F(SessionTest, APausedWorkerRejectsAnOfferWithThePausedCode) {
  runtime.set_paused(true);
  start();
  ASSERT_TRUE(sent(0, "hello"));
  link(0).say(kWelcome);
  link(0).say(synthetic_llm_offer("job-1", "the prompt", 0));
  ASSERT_TRUE(sent(0, "reject"));
  const json reject = link(0).of_type("reject")[0];
  EXPECT_EQ(reject["jobId"], "job-1");
  EXPECT_EQ(reject["code"], "paused");
  EXPECT_TRUE(link(0).of_type("accept").empty());
}

}  // namespace
}  // namespace sw::worker
