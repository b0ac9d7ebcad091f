// The studio on PostgreSQL survives a restart of the database server under it (issue 18): writes
// while the server is down are answered 503 or retried, none is acknowledged uncommitted, the
// studio reconnects by itself, and no job is lost: a job whose release could not be written while
// the server was down is offered again once it is back, and new jobs complete.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/clock.h"
#include "proto/codec.h"
#include "sql/pg/connection.h"
#include "sql/sqlite.h"
#include "studio/data_dir.h"
#include "support/postgres_server.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

using namespace std::chrono_literals;

class StudioPgRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Its own server: this test stops it, which the other tests' shared server must not see.
    if (const auto absent = PostgresServer::unavailable_reason(); !absent.empty()) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string_view(ci) == "true") {
        FAIL() << "CI=true and the PostgreSQL server is missing: " << absent;
      }
      std::cout << "SKIPPED: " << absent << "\n";
      GTEST_SKIP() << absent;
    }
    auto started = PostgresServer::start();
    ASSERT_TRUE(started) << started.error().describe();
    server_ = std::move(*started);
    auto uri = server_->create_database("studio");
    ASSERT_TRUE(uri) << uri.error().describe();
    studio::StudioConfig config;
    config.data_dir = dir_.path();
    config.database_uri = *uri;
    config.reject_hold_off = 0ms;  // the rejected job may come straight back to the same worker
    config.fail_hold_off = 0ms;
    studio_ = std::make_unique<StudioHarness>(std::move(config));
    studio_->add_model("synth-llm", "llm");
  }

  // GET the job until the studio answers from the database again (its first batch after the
  // server came back meets the dead connection; the next one reconnects, with backoff).
  bool wait_until_answering(const std::string& job_id) {
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < give_up) {
      if (studio_->admin("GET", "/api/v1/jobs/" + job_id).status == 200) {
        return true;
      }
    }
    return false;
  }

  TempDir dir_;
  std::unique_ptr<PostgresServer> server_;
  std::unique_ptr<StudioHarness> studio_;
};

proto::RawJson chat_result(const std::string& text) {
  auto parsed = proto::RawJson::parse(R"({"object":"chat.completion","text":")" + text + "\"}");
  EXPECT_TRUE(parsed);
  return *parsed;
}

TEST_F(StudioPgRestartTest, JobsSurviveARestartOfThePostgresServer) {
  const auto worker = register_worker(*studio_, "install-pg-restart");
  auto client = connect_worker(*studio_, worker);
  ASSERT_NE(client, nullptr);
  const auto late = register_worker(*studio_, "install-pg-restart-late");

  // Before: a job runs through.
  const auto before = studio_->create_job(llm_job("synth-llm", "before"));
  auto offer = expect_offer(*client);
  ASSERT_TRUE(offer);
  ASSERT_EQ(offer->job_id, before);
  client->send(proto::Accept{before});
  client->send(proto::CompleteJson{before, chat_result("before"), std::nullopt});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));

  // A job is offered; then the server goes down.
  const auto across = studio_->create_job(llm_job("synth-llm", "across"));
  offer = expect_offer(*client);
  ASSERT_TRUE(offer);
  ASSERT_EQ(offer->job_id, across);
  ASSERT_TRUE(server_->stop());

  // The worker refuses the offer while the database is down: the release cannot be written, and
  // the job must not be forgotten for it.
  client->send(proto::Reject{across, "busy for a moment", proto::RejectCode::Busy});
  // A client's write is answered 503 (not committed), and the studio keeps serving.
  const auto refused = studio_->admin("POST", "/api/v1/jobs", llm_job("synth-llm", "down"));
  EXPECT_EQ(refused.status, 503) << refused.body;
  // It says when to come back, and not where the database lives or who the studio is there.
  bool retry_after = false;
  for (const auto& [name, value] : refused.headers) {
    if (name == "retry-after" || name == "Retry-After") retry_after = !value.empty();
  }
  EXPECT_TRUE(retry_after) << refused.body;
  EXPECT_EQ(refused.body.find(std::to_string(server_->port())), std::string::npos) << refused.body;
  EXPECT_EQ(refused.body.find("127.0.0.1"), std::string::npos) << refused.body;

  // A worker saying hello meanwhile: its record cannot be read, so the studio closes with "try
  // again later" (1013) and no `error` frame, which would stop a worker for good (the reference
  // worker treats every `error`, internal_error included, as fatal); it reconnects later.
  {
    auto hello_client = ProtocolClient::connect(studio_->port(), late.worker_id,
                                                ProtocolClient::Options{late.token, true});
    ASSERT_TRUE(hello_client) << hello_client.error().message;
    (*hello_client)->send(proto::Hello{late.token, {}});
    const auto said = (*hello_client)->next_text(20s);
    EXPECT_FALSE(said.has_value()) << "no frame before the close: " << said.value_or("");
    EXPECT_EQ((*hello_client)->wait_closed(20s), std::optional<std::uint16_t>(1013));
  }

  ASSERT_TRUE(server_->start_again()) << server_->log();
  ASSERT_TRUE(wait_until_answering(across));

  // The rejected job comes back once its release is stored, and completes.
  offer = expect_offer(*client, 20s);
  ASSERT_TRUE(offer);
  EXPECT_EQ(offer->job_id, across);
  client->send(proto::Accept{across});
  client->send(proto::CompleteJson{across, chat_result("across"), std::nullopt});
  ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_TRUE(studio_->wait_job_status(across, "done"));

  // After: new jobs are taken and complete.
  const auto after = studio_->create_job(llm_job("synth-llm", "after"));
  offer = expect_offer(*client);
  ASSERT_TRUE(offer);
  ASSERT_EQ(offer->job_id, after);
  client->send(proto::Accept{after});
  client->send(proto::CompleteJson{after, chat_result("after"), std::nullopt});
  ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_EQ(studio_->job_status(before), "done");
  EXPECT_EQ(studio_->job_status(after), "done");
  // The rejected offer and the run that completed: the history kept both.
  const auto history = studio_->admin("GET", "/api/v1/jobs/" + across);
  EXPECT_NE(history.body.find("rejected"), std::string::npos) << history.body;
}

// Two processes on one database whose hosts' clocks disagree by a minute: the one whose clock
// runs ahead does not take the other for dead and adopt the job its worker runs, because leases
// are written and compared on PostgreSQL's clock (a fresh review found every process trusted its
// own). Awaited event: the second process's lease renewal; then the first's row and claim stand.
TEST_F(StudioPgRestartTest, AProcessWhoseClockRunsAheadTakesNoLiveProcessForDead) {
  const auto worker = register_worker(*studio_, "install-clock-skew");
  auto client = connect_worker(*studio_, worker);
  ASSERT_NE(client, nullptr);
  const auto job = studio_->create_job(llm_job("synth-llm", "held"));
  auto offer = expect_offer(*client);
  ASSERT_TRUE(offer && offer->job_id == job);
  client->send(proto::Accept{job});
  ASSERT_TRUE(studio_->wait_job_status(job, "claimed"));

  auto db = sql::pg::Connection::open(server_->uri("studio"));
  ASSERT_TRUE(db) << db.error().message;
  auto first = db->exec("SELECT id FROM studio_processes");
  ASSERT_TRUE(first && first->size() == 1);
  const std::string first_id = first->text(0, 0);

  // The second process's wall clock is a minute ahead (and stands still: only its lease times
  // read it).
  ManualClock ahead(SteadyTime(std::chrono::hours(1)), unix_millis_now() + 60'000);
  TempDir other_dir;
  studio::StudioConfig config;
  config.data_dir = other_dir.path();
  config.database_uri = server_->uri("studio");
  StudioHarness other(std::move(config), {}, ahead);
  const auto lease_of_other = [&]() -> std::optional<std::int64_t> {
    auto row = db->exec("SELECT lease_until FROM studio_processes WHERE id <> $1", {first_id});
    if (!row || row->size() != 1) return std::nullopt;
    return row->int64(0, 0);
  };
  const auto registered = lease_of_other();
  ASSERT_TRUE(registered);
  const auto job_holder_process = [&]() -> std::string {
    auto row = db->exec("SELECT COALESCE(process_id, '') FROM jobs WHERE id = $1", {job});
    return row && row->size() == 1 ? row->text(0, 0) : std::string();
  };
  // Polled until the second process has swept once (its renewal and adoption are one batch:
  // its lease moved) or has taken the job (the failure this test is about). Another
  // connection's writes, every 2 s: no event to await here.
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (lease_of_other() == registered && job_holder_process() == first_id &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(50ms);
  }

  auto standing = db->exec(
      "SELECT (SELECT count(*) FROM studio_processes WHERE id = $1), status, process_id, "
      "(SELECT lease_until FROM studio_processes WHERE id <> $1) - "
      "(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM jobs WHERE id = $2",
      {first_id, job});
  ASSERT_TRUE(standing && standing->size() == 1) << (standing ? "" : standing.error().message);
  EXPECT_EQ(standing->int64(0, 0), 1) << "the live process was taken for dead";
  EXPECT_EQ(standing->text(0, 1), "claimed");
  EXPECT_EQ(standing->text(0, 2), first_id) << "the job was adopted from a live process";
  // The second process's lease runs from the server's now (10 s), not from its own clock (70 s).
  EXPECT_LT(standing->int64(0, 3), 30'000);
  EXPECT_EQ(studio_->job_status(job), "claimed");
}

// An admin command run without --database on the data directory of a studio on PostgreSQL is
// refused, naming the database, instead of answering from a new, empty studio.db.
TEST_F(StudioPgRestartTest, ADataDirectoryOnPostgresRefusesToOpenSqliteWithoutDatabase) {
  auto opened = studio::open_studio_store(dir_.path(), std::nullopt);
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().message.find("keeps its data in PostgreSQL (postgresql://"),
            std::string::npos)
      << opened.error().message;
  EXPECT_NE(opened.error().message.find("--database"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "studio.db"));
}

// The other way round: --database given for a data directory whose studio kept its data in
// SQLite is refused, naming studio.db, instead of starting an empty studio on PostgreSQL (a
// fresh review found it came up empty, its workers then failing to authenticate). A studio.db
// that holds nothing (a command run there without --database made it) is no reason to refuse.
// Refused before any connection: no server is needed (port 1: nobody there).
TEST(StudioDataDir, ASqliteDataDirectoryRefusesDatabaseUntilStudioDbIsMovedAside) {
  TempDir dir;
  {
    auto sqlite = studio::open_studio_store(dir.path(), std::nullopt);
    ASSERT_TRUE(sqlite) << sqlite.error().message;
  }
  ASSERT_GT(std::filesystem::file_size(dir.path() / "studio.db"), 0u);
  const std::string uri = "postgresql://studio@127.0.0.1:1/studio";
  auto empty = studio::open_studio_store(dir.path(), uri);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Code::Unavailable) << "a studio.db with nothing in it refused: "
                                                   << empty.error().message;
  {
    auto db = sql::Db::open(dir.path() / "studio.db");
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_TRUE(db->exec("INSERT INTO models(id, kind, display_name, vram_gb_estimate, enabled, "
                         "source, created_at, updated_at) VALUES ('m', 'llm', 'M', 1, 1, '{}', 1, "
                         "1)"));
  }
  auto refused = studio::open_studio_store(dir.path(), uri);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::InvalidArgument);
  EXPECT_NE(refused.error().message.find("holds a SQLite studio"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("move " + (dir.path() / "studio.db").string()),
            std::string::npos)
      << refused.error().message;
  // Moved aside, the refusal is gone: what fails now is the connection (port 1: nobody there).
  std::filesystem::rename(dir.path() / "studio.db", dir.path() / "studio.db.sqlite-backup");
  for (const char* side : {"-wal", "-shm"}) {
    std::error_code ignored;
    std::filesystem::remove(dir.path() / (std::string("studio.db") + side), ignored);
  }
  auto connecting = studio::open_studio_store(dir.path(), uri);
  ASSERT_FALSE(connecting);
  EXPECT_EQ(connecting.error().code, Code::Unavailable) << connecting.error().message;
}

// A `database` file an older version wrote with the password in its query: what the studio says
// of it (refusing a command without --database) shows no password.
TEST(StudioDataDir, ARememberedUriIsNeverShownWithItsPassword) {
  TempDir dir;
  {
    std::ofstream marker(dir.path() / studio::kDatabaseMarker);
    marker << "postgresql://studio@db.example/studio?password=OLDSECRET\n";
  }
  auto refused = studio::open_studio_store(dir.path(), std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("postgresql://studio@db.example/studio"),
            std::string::npos)
      << refused.error().message;
  EXPECT_EQ(refused.error().message.find("OLDSECRET"), std::string::npos)
      << refused.error().message;
}

}  // namespace
}  // namespace sw::testing
