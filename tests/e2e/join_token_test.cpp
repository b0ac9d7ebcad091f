// End to end (issue 22): workers join a fleet unattended with a join token. Real `studio-server`
// and `studio-worker` processes on 127.0.0.1, observed as an operator does: the commands' output
// and exit codes, the studio's lists, the worker's state file.
//
// * `studio-server join-token create` prints a token (while the studio runs: the command writes
//   the database, the studio reads tokens at each use); `studio-worker register --join-token T`
//   keeps it; the daemon is approved at once, recorded as approved by that token, and takes work.
// * A token used up, revoked or unknown stops the daemon with exit 10 and says why and what to do;
//   a restart exits 10 again without asking.
// * The admin API does the same (POST/GET/DELETE /api/v1/join-tokens); other scopes get 403.
// * Without a token nothing changes: a worker waits for the operator (the reference flow).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "support/farm.h"
#include "support/temp_dir.h"

namespace sw::testing::farm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

struct CreatedToken {
  std::string token;
  std::string id;
};

// `studio-server join-token create …` on the studio's data directory, as an operator runs it.
CreatedToken create_token(const Studio& studio, const fs::path& dir,
                          std::vector<std::string> flags) {
  std::vector<std::string> argv = {SW_STUDIO_SERVER_BIN, "join-token", "create", "--data-dir",
                                   studio.data_dir().string()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  const auto created = run_command(argv, dir / "join-token-create.log");
  EXPECT_EQ(created.exit_code, 0) << created.output;
  std::smatch token, id;
  const std::regex token_re("join token: (swjoin-[0-9a-f]{64})");
  const std::regex id_re("id (jt-[0-9a-f-]+),");
  EXPECT_TRUE(std::regex_search(created.output, token, token_re)) << created.output;
  EXPECT_TRUE(std::regex_search(created.output, id, id_re)) << created.output;
  return {token.size() > 1 ? token[1].str() : "", id.size() > 1 ? id[1].str() : ""};
}

// `studio-worker --config <dir>/config.toml register --api-base-url … --join-token T`.
CommandResult register_with_token(const fs::path& dir, const Studio& studio,
                                  const std::string& token) {
  fs::create_directories(dir);
  return run_command({SW_STUDIO_WORKER_BIN, "--config", (dir / "config.toml").string(), "register",
                      "--api-base-url", studio.url(), "--join-token", token},
                     dir / "register.log");
}

TEST(JoinTokenTest, AWorkerWithATokenJoinsWithoutTheOperatorAndTakesWork) {
  TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  const auto token = create_token(studio, dir.path(), {"--uses", "1", "--label", "rack 3"});
  ASSERT_FALSE(token.token.empty());

  const auto registered = register_with_token(dir.path() / "w1", studio, token.token);
  ASSERT_EQ(registered.exit_code, 0) << registered.output;
  EXPECT_THAT(registered.output, HasSubstr("join token kept in"));
  EXPECT_EQ(fs::status(dir.path() / "w1" / "state.toml").permissions() & fs::perms::group_all,
            fs::perms::none)
      << "the token is a secret: state.toml is 0600";
  EXPECT_THAT(read_file(dir.path() / "w1" / "state.toml"), HasSubstr("join_token = "));
  const auto before = run_command(
      {SW_STUDIO_WORKER_BIN, "--config", (dir.path() / "w1" / "config.toml").string(), "status"},
      dir.path() / "status.log");
  EXPECT_THAT(before.output, HasSubstr("joins with a join token on next launch"));
  EXPECT_THAT(before.output, Not(HasSubstr(token.token))) << "never the secret";

  // Nobody approves anything: the worker connects by itself.
  Worker worker(dir.path() / "w1", studio);
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto pending = json::parse(studio.api("GET", "/api/v1/workers/pending").body);
  EXPECT_TRUE(pending["pending"].empty()) << pending;
  EXPECT_THAT(worker.log(), HasSubstr("joined with a join token"));

  // Recorded as approved by that token, on the API and the command line.
  const auto list = json::parse(studio.api("GET", "/api/v1/workers").body);
  ASSERT_EQ(list["workers"].size(), 1u) << list;
  EXPECT_EQ(list["workers"][0].value("approvedBy", ""), "join-token:" + token.id) << list;
  const auto worker_id = list["workers"][0].value("id", "");
  const auto listed = run_command(
      {SW_STUDIO_SERVER_BIN, "workers", "list", "--data-dir", studio.data_dir().string()},
      dir.path() / "workers-list.log");
  EXPECT_THAT(listed.output, HasSubstr("by=join-token:" + token.id));

  // The token is spent, is kept no longer by the worker, and says so when listed.
  EXPECT_THAT(read_file(dir.path() / "w1" / "state.toml"), Not(HasSubstr("join_token")));
  const auto tokens = run_command(
      {SW_STUDIO_SERVER_BIN, "join-token", "list", "--data-dir", studio.data_dir().string()},
      dir.path() / "join-token-list.log");
  EXPECT_EQ(tokens.exit_code, 0) << tokens.output;
  EXPECT_THAT(tokens.output, HasSubstr(token.id + "  used_up  uses=1/1"));
  EXPECT_THAT(tokens.output, HasSubstr("label=\"rack 3\""));
  EXPECT_THAT(tokens.output, Not(HasSubstr(token.token))) << "never the secret";

  // And it works.
  const auto job = studio.submit("image", {{"prompt", "a lighthouse"}});
  EXPECT_TRUE(studio.wait_status(job, "done")) << studio.job(job);
  EXPECT_EQ(studio.job(job).value("workerId", ""), worker_id);
  EXPECT_EQ(worker.terminate(), 0);
}

TEST(JoinTokenTest, AUsedUpRevokedOrUnknownTokenStopsTheWorkerWithExit10AndSaysWhy) {
  TempDir dir;
  Studio studio(dir.path() / "studio");
  const auto once = create_token(studio, dir.path(), {"--uses", "1"});
  const auto revoked = create_token(studio, dir.path(), {"--ttl", "never"});

  ASSERT_EQ(register_with_token(dir.path() / "first", studio, once.token).exit_code, 0);
  Worker first(dir.path() / "first", studio);
  ASSERT_TRUE(first.wait_session("connected")) << first.log();

  struct Case {
    std::string name;
    std::string token;
    std::string why;
  };
  const auto revoke = run_command({SW_STUDIO_SERVER_BIN, "join-token", "revoke", revoked.id,
                                   "--data-dir", studio.data_dir().string()},
                                  dir.path() / "revoke.log");
  ASSERT_EQ(revoke.exit_code, 0) << revoke.output;
  const std::vector<Case> cases = {
      {"used-up", once.token, "join token " + once.id + " is used up (1 of 1 uses)"},
      {"revoked", revoked.token, "join token " + revoked.id + " was revoked at"},
      {"unknown", "swjoin-" + std::string(64, '0'), "join token not recognised by this studio"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto worker_dir = dir.path() / c.name;
    ASSERT_EQ(register_with_token(worker_dir, studio, c.token).exit_code, 0);
    // Run to its end (it may be gone before its local API is even announced).
    const auto run =
        run_command({SW_STUDIO_WORKER_BIN, "--config", (worker_dir / "config.toml").string(), "run",
                     "--local-api-port", "0", "--registration-poll-ms", "200"},
                    worker_dir / "worker.log");
    EXPECT_EQ(run.exit_code, 10) << run.output;
    EXPECT_THAT(run.output, HasSubstr("join token refused: " + c.why));
    EXPECT_THAT(run.output, HasSubstr("studio-worker register --reset --join-token"));
    EXPECT_THAT(read_file(worker_dir / "state.toml"), Not(HasSubstr("join_token =")))
        << "a refused token is not kept";
    // A restart does not ask again.
    const auto again =
        run_command({SW_STUDIO_WORKER_BIN, "--config", (worker_dir / "config.toml").string(), "run",
                     "--local-api-port", "0"},
                    worker_dir / "restart.log");
    EXPECT_EQ(again.exit_code, 10) << again.output;
    EXPECT_THAT(again.output, HasSubstr(c.why));
  }
  const auto workers = json::parse(studio.api("GET", "/api/v1/workers").body);
  EXPECT_EQ(workers["workers"].size(), 1u) << "only the first join made a worker: " << workers;
  const auto pending = json::parse(studio.api("GET", "/api/v1/workers/pending").body);
  EXPECT_TRUE(pending["pending"].empty()) << "a refused join leaves no request: " << pending;
  EXPECT_EQ(first.terminate(), 0);
}

// The token need not be on a command line: `--join-token -` reads standard input, and
// STUDIO_WORKER_JOIN_TOKEN reaches `run` itself (an environment file for the unit).
TEST(JoinTokenTest, ATokenFromStandardInputOrTheEnvironmentJoinsToo) {
  TempDir dir;
  Studio studio(dir.path() / "studio");
  const auto piped = create_token(studio, dir.path(), {});
  fs::create_directories(dir.path() / "piped");
  const std::string line = "echo '" + piped.token + "' | " + SW_STUDIO_WORKER_BIN + " --config " +
                           (dir.path() / "piped" / "config.toml").string() +
                           " register --api-base-url " + studio.url() + " --join-token - 2>&1";
  ASSERT_EQ(std::system(line.c_str()), 0);
  Worker from_stdin(dir.path() / "piped", studio);
  ASSERT_TRUE(from_stdin.wait_session("connected")) << from_stdin.log();

  const auto env_token = create_token(studio, dir.path(), {});
  Worker from_env(dir.path() / "env", studio.url(), 0, "", {},
                  {{"STUDIO_WORKER_JOIN_TOKEN", env_token.token}});
  ASSERT_TRUE(from_env.wait_session("connected")) << from_env.log();
  const auto pending = json::parse(studio.api("GET", "/api/v1/workers/pending").body);
  EXPECT_TRUE(pending["pending"].empty()) << pending;
  const auto workers = json::parse(studio.api("GET", "/api/v1/workers").body);
  ASSERT_EQ(workers["workers"].size(), 2u) << workers;
  EXPECT_EQ(workers["workers"][1].value("approvedBy", ""), "join-token:" + env_token.id);
}

TEST(JoinTokenTest, TheAdminApiCreatesListsAndRevokesTokensAndOnlyTheAdminMay) {
  TempDir dir;
  Studio studio(dir.path() / "studio");
  auto created = studio.api("POST", "/api/v1/join-tokens",
                            R"({"label":"cloud-init","ttlSeconds":3600,"uses":3})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto token = json::parse(created.body);
  EXPECT_THAT(token.value("token", ""), ::testing::StartsWith("swjoin-"));
  EXPECT_EQ(token.value("state", ""), "active");
  EXPECT_EQ(token.value("maxUses", 0), 3);
  EXPECT_EQ(token.value("createdBy", ""), "admin");
  EXPECT_TRUE(token["expiresAt"].is_string()) << token;

  const auto never = studio.api("POST", "/api/v1/join-tokens", R"({"ttlSeconds":null})");
  ASSERT_EQ(never.status, 201) << never.body;
  EXPECT_TRUE(json::parse(never.body)["expiresAt"].is_null());
  for (const char* bad : {R"({"ttlSeconds":10})", R"({"uses":0})", R"({"ttl":"1h"})",
                          R"({"label":"a\u0007b"})", "[]"}) {
    const auto refused = studio.api("POST", "/api/v1/join-tokens", bad);
    EXPECT_EQ(refused.status, 400) << bad << " " << refused.body;
  }

  const auto list = json::parse(studio.api("GET", "/api/v1/join-tokens").body);
  ASSERT_EQ(list["joinTokens"].size(), 2u) << list;
  EXPECT_FALSE(list["joinTokens"][0].contains("token")) << "never the secret again";
  const auto id = token.value("id", "");
  EXPECT_EQ(studio.api("DELETE", "/api/v1/join-tokens/" + id).status, 200);
  EXPECT_EQ(studio.api("DELETE", "/api/v1/join-tokens/" + id).status, 404) << "revoked once";
  const auto after = json::parse(studio.api("GET", "/api/v1/join-tokens").body);
  bool seen = false;
  for (const auto& row : after["joinTokens"]) {
    if (row.value("id", "") == id) {
      seen = true;
      EXPECT_EQ(row.value("state", ""), "revoked");
      EXPECT_TRUE(row["revokedAt"].is_string());
    }
  }
  EXPECT_TRUE(seen) << "a revoked token stays listed: " << after;

  // A client key may not mint fleet members.
  const auto key = json::parse(studio.api("POST", "/api/v1/keys", R"({"name":"ci"})").body);
  const auto as_client =
      http_request(studio.port(), "POST", "/api/v1/join-tokens", "{}", key.value("key", ""));
  EXPECT_EQ(as_client.status, 403) << as_client.body;
  EXPECT_EQ(http_request(studio.port(), "GET", "/api/v1/join-tokens", "", "").status, 401);
}

TEST(JoinTokenTest, CommandsNameTheirMistakes) {
  TempDir dir;
  Studio studio(dir.path() / "studio");
  // A data directory no studio ever used: the token would be one no studio reads.
  const auto nowhere = run_command({SW_STUDIO_SERVER_BIN, "join-token", "create", "--data-dir",
                                    (dir.path() / "elsewhere").string()},
                                   dir.path() / "nowhere.log");
  EXPECT_EQ(nowhere.exit_code, 2) << nowhere.output;
  EXPECT_THAT(nowhere.output, HasSubstr("no studio database in"));
  EXPECT_FALSE(fs::exists(dir.path() / "elsewhere" / "studio.db"));
  const auto bad_ttl = run_command({SW_STUDIO_SERVER_BIN, "join-token", "create", "--ttl", "5s",
                                    "--data-dir", studio.data_dir().string()},
                                   dir.path() / "bad-ttl.log");
  EXPECT_EQ(bad_ttl.exit_code, 2) << bad_ttl.output;
  EXPECT_THAT(bad_ttl.output, HasSubstr("ttl \"5s\""));
  const auto unknown = run_command({SW_STUDIO_SERVER_BIN, "join-token", "revoke", "jt-nope",
                                    "--data-dir", studio.data_dir().string()},
                                   dir.path() / "revoke.log");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("no join token jt-nope"));

  // A provisioning script run twice: the approved worker needs no token, says so, and succeeds.
  const auto token = create_token(studio, dir.path(), {});
  ASSERT_EQ(register_with_token(dir.path() / "w", studio, token.token).exit_code, 0);
  Worker worker(dir.path() / "w", studio);
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  EXPECT_THAT(worker.log(), HasSubstr("approved through its join token as w-"));
  const auto twice = register_with_token(dir.path() / "w", studio, token.token);
  EXPECT_EQ(twice.exit_code, 0) << twice.output;
  EXPECT_THAT(twice.output, HasSubstr("approved already as w-"));
  EXPECT_THAT(read_file(dir.path() / "w" / "state.toml"), Not(HasSubstr("join_token")));
  const auto spaced = register_with_token(dir.path() / "w2", studio, "swjoin- oops");
  EXPECT_NE(spaced.exit_code, 0) << spaced.output;
  EXPECT_THAT(spaced.output, HasSubstr("no spaces"));
}

}  // namespace
}  // namespace sw::testing::farm
