// The job runner without sockets (issue 19): the gate a job holds and gives back as soon as the
// engine is done, the result split once into JSON or bytes, the engine's errors passed through,
// and the caller's deadline read on a ManualClock. The synthetic engine does the work on a real
// one-thread pool; the loop is an io_context run by the test.

#include "worker/job_runner.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "engines/synthetic/synthetic_engine.h"

namespace sw::worker {
namespace {

using namespace std::chrono_literals;

engines::DispatchRequest chat(std::string model = "synthetic-llm") {
  proto::LlmParams params;
  params.messages.push_back(proto::ChatMessage{"user", "hello"});
  return engines::DispatchRequest{std::move(model), proto::Task{std::move(params)},
                                  proto::ModelSource{"synthetic", {}, {}}, "job-1"};
}

engines::DispatchRequest image() {
  proto::ImageParams params;
  params.prompt = "a fox";
  params.width = 64;
  params.height = 64;
  params.ext = "png";
  return engines::DispatchRequest{"synthetic-image", proto::Task{std::move(params)},
                                  proto::ModelSource{"synthetic", {}, {}}, "job-2"};
}

struct JobRunnerTest : ::testing::Test {
  engines::SyntheticEngine engine;
  JobGate gate;
  boost::asio::thread_pool pool{1};
  ManualClock clock;
  JobRunner runner{engine, gate, pool.get_executor(), clock};
  boost::asio::io_context loop;
  std::optional<JobRunner::Outcome> outcome;
  bool busy_after = true;

  static boost::asio::awaitable<void> run_into(JobRunnerTest* self,
                                               engines::DispatchRequest request,
                                               SharedTicket ticket,
                                               std::optional<SteadyTime> deadline) {
    auto done = co_await self->runner.run(std::move(request), std::move(ticket), deadline);
    self->busy_after = self->runner.busy();
    self->outcome = std::move(done);
  }

  // Runs one job to its end on the loop.
  void run(engines::DispatchRequest request, std::optional<SteadyTime> deadline = {}) {
    auto ticket = runner.try_reserve("job");
    ASSERT_TRUE(ticket.has_value()) << "the gate was busy";
    boost::asio::co_spawn(loop, run_into(this, std::move(request), std::move(*ticket), deadline),
                          boost::asio::detached);
    loop.restart();
    loop.run();
    ASSERT_TRUE(outcome.has_value());
  }
};

TEST_F(JobRunnerTest, OneJobHoldsTheGateAndGivesItBackWhenTheEngineIsDone) {
  auto first = runner.try_reserve("job");
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(runner.busy());
  EXPECT_FALSE(runner.try_reserve("job").has_value()) << "a second job while one holds the gate";
  first->reset();
  EXPECT_FALSE(runner.busy());

  run(chat());
  EXPECT_FALSE(busy_after) << "the gate is free when the caller resumes with the result";
  EXPECT_TRUE(runner.try_reserve("job").has_value());
}

TEST_F(JobRunnerTest, AChatResultIsJsonAndAnImageResultIsBytesWithTheirExtension) {
  run(chat());
  ASSERT_TRUE(outcome->result) << outcome->result.error().message;
  EXPECT_EQ(outcome->result->kind, ResultPayload::Kind::Json);
  EXPECT_NE(outcome->result->body.find("chat.completion"), std::string::npos)
      << outcome->result->body;
  EXPECT_TRUE(outcome->result->ext.empty());

  outcome.reset();
  run(image());
  ASSERT_TRUE(outcome->result) << outcome->result.error().message;
  EXPECT_EQ(outcome->result->kind, ResultPayload::Kind::Binary);
  EXPECT_EQ(outcome->result->ext, "png");
  EXPECT_EQ(outcome->result->body.substr(1, 3), "PNG");
  EXPECT_FALSE(outcome->past_deadline);
}

TEST_F(JobRunnerTest, TheEnginesErrorIsPassedThroughAndTheGateFreed) {
  auto unknown = chat("a-model-nobody-serves");
  unknown.source.reset();  // not routed to the synthetic engine by its source either
  run(std::move(unknown));
  ASSERT_FALSE(outcome->result);
  EXPECT_EQ(outcome->result.error().code, Code::Unsupported);
  EXPECT_FALSE(busy_after);
}

TEST_F(JobRunnerTest, TheCallersDeadlineIsReadOnTheRunnersClock) {
  run(chat(), clock.steady_now() + 1s);
  EXPECT_FALSE(outcome->past_deadline);
  const auto deadline = clock.steady_now() + 1s;
  clock.advance(2s);  // the caller's deadline passed while it waited
  outcome.reset();
  run(chat(), deadline);
  EXPECT_TRUE(outcome->past_deadline);
}

}  // namespace
}  // namespace sw::worker
