// End to end: revoking a worker on a running studio takes effect at once. `studio-server workers
// delete` goes through the running studio (which holds the data directory's lock), so the worker's
// live session is closed with `worker_deleted`, its token no longer upgrades, and no job submitted
// afterwards is offered to it. Before issue 16 the command deleted the row behind the studio's
// back and the studio kept the token in memory.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/farm.h"
#include "support/temp_dir.h"

namespace sw::testing::farm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

json llm_task(const std::string& text) {
  return {{"messages", {{{"role", "user"}, {"content", text}}}}};
}

TEST(OperatorRevocation, AWorkerDeletedFromTheCommandLineIsCutOffAtOnce) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker doomed(dir.path() / "w1", studio);
  const std::string doomed_id = studio.approve_next();
  ASSERT_TRUE(doomed.wait_session("connected")) << doomed.log();
  const auto state = read_file(doomed.config().parent_path() / "state.toml");
  const auto token_at = state.find("auth_token = '");
  ASSERT_NE(token_at, std::string::npos);
  const std::string token = state.substr(token_at + 14, 64);

  // The command's environment carries the admin token (farm::spawn sets it for every child).
  const auto deleted = run_command({SW_STUDIO_SERVER_BIN, "workers", "delete", doomed_id,
                                    "--data-dir", studio.data_dir().string()},
                                   dir.path() / "delete.log");
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_THAT(deleted.output, HasSubstr("deleted worker " + doomed_id));

  // Its token no longer upgrades: checked right after the command returned, before any heartbeat.
  auto again = ProtocolClient::connect(studio.port(), doomed_id, {token, true});
  EXPECT_FALSE(again.has_value()) << "the deleted worker's token still upgrades";
  if (!again) {
    EXPECT_THAT(again.error().message, HasSubstr("401"));
  }
  again = {};

  // Its live session was closed with worker_deleted (close 4004), so the daemon exits for good
  // with 12 (ExitCode::WorkerDeleted: a supervisor does not restart it).
  const auto code = doomed.wait_exit(20s);
  EXPECT_EQ(code, 12) << doomed.log();
  EXPECT_THAT(doomed.log(), HasSubstr("worker_deleted"));

  // A job submitted after the delete waits for another worker; the deleted one never sees it.
  const auto job = studio.submit("llm", llm_task("after the delete"));
  Worker other(dir.path() / "w2", studio);
  const std::string other_id = studio.approve_next();
  ASSERT_TRUE(studio.wait_status(job, "done")) << studio.job(job).dump() << other.log();
  const auto view = studio.job(job);
  EXPECT_EQ(view.value("workerId", ""), other_id);
  for (const auto& attempt : view["attemptHistory"]) {
    EXPECT_NE(attempt.value("workerId", ""), doomed_id) << view.dump();
  }
  const auto workers = studio.api("GET", "/api/v1/workers");
  EXPECT_THAT(workers.body, Not(HasSubstr(doomed_id)));
}

}  // namespace
}  // namespace sw::testing::farm
