// The durable outbox on a real file: what is put survives a reopen (a crash), delivery order is
// oldest first, backoff is kept, removal is final, bounds are reported, a corrupt file is set
// aside rather than blocking the worker.

#include "worker/outbox.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <fstream>
#include <thread>

#include "sql/sqlite.h"
#include "support/temp_dir.h"

namespace sw::worker {
namespace {

OutboxEntry entry(const std::string& job, std::string body, OutboxEntry::Kind kind,
                  std::int64_t at = 1000) {
  OutboxEntry e;
  e.job_id = job;
  e.kind = kind;
  e.studio = "http://studio/";
  e.worker_id = "w-1";
  e.prompt = "p";
  e.ext = kind == OutboxEntry::Kind::Binary ? "webp" : "";
  e.body = std::move(body);
  e.created_at_ms = at;
  e.next_attempt_at_ms = at;
  return e;
}

TEST(Outbox, EntriesSurviveAReopenAndComeBackOldestFirstByteForByte) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  const std::string bytes("\x00\x01webp\xff\x00tail", 12);
  {
    auto outbox = Outbox::open(path, {});
    ASSERT_TRUE(outbox) << outbox.error().message;
    auto first = entry("job-a", bytes, OutboxEntry::Kind::Binary);
    auto second = entry("job-b", R"({"ok":1})", OutboxEntry::Kind::Json);
    EXPECT_TRUE((*outbox)->put(first));
    EXPECT_TRUE((*outbox)->put(second));
  }  // as if the process died here
  auto outbox = Outbox::open(path, {});
  ASSERT_TRUE(outbox) << outbox.error().message;
  EXPECT_EQ((*outbox)->summary().entries, 2u);
  EXPECT_EQ((*outbox)->summary().bytes, bytes.size() + 8);
  auto due = (*outbox)->due(5000, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].job_id, "job-a");
  EXPECT_EQ((*due)[0].body, bytes);
  EXPECT_EQ((*due)[0].ext, "webp");
  EXPECT_EQ((*due)[1].kind, OutboxEntry::Kind::Json);
  EXPECT_EQ((*due)[1].body, R"({"ok":1})");
}

TEST(Outbox, APostponedEntryWaitsItsBackoffEvenAcrossAReopen) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  {
    auto outbox = Outbox::open(path, {});
    ASSERT_TRUE(outbox);
    auto e = entry("job-a", "x", OutboxEntry::Kind::Json);
    (*outbox)->put(e);
    ASSERT_TRUE((*outbox)->postpone("job-a", 3, 9000, Deferral::Failed, "studio 503"));
  }
  auto outbox = Outbox::open(path, {});
  ASSERT_TRUE(outbox);
  EXPECT_TRUE((*outbox)->due(8999, 10)->empty());
  auto due = (*outbox)->due(9000, 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempts, 3);
  EXPECT_EQ((*due)[0].last_error, "studio 503");
  EXPECT_EQ((*outbox)->next_due_ms(), 9000);
}

TEST(Outbox, RemovedEntriesAreGoneForGoodAndCounted) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  {
    auto outbox = Outbox::open(path, {});
    ASSERT_TRUE(outbox) << outbox.error().message;
    auto a = entry("job-a", "x", OutboxEntry::Kind::Json);
    auto b = entry("job-b", "y", OutboxEntry::Kind::Json);
    ASSERT_TRUE((*outbox)->put(a));
    ASSERT_TRUE((*outbox)->put(b));
    ASSERT_TRUE((*outbox)->remove("job-a", true));
    ASSERT_TRUE((*outbox)->remove("job-b", false));
    EXPECT_EQ((*outbox)->summary().delivered, 1u);
    EXPECT_EQ((*outbox)->summary().dropped, 1u);
  }
  auto outbox = Outbox::open(path, {});
  ASSERT_TRUE(outbox) << outbox.error().message;
  EXPECT_EQ((*outbox)->summary().entries, 0u);
  auto due = (*outbox)->due(1'000'000, 10);
  ASSERT_TRUE(due) << due.error().message;
  EXPECT_TRUE(due->empty());
}

TEST(Outbox, ReportsFullAtItsBounds) {
  testing::TempDir dir;
  auto outbox = Outbox::open(dir.path() / "outbox.db", OutboxLimits{2, 1 << 20});
  ASSERT_TRUE(outbox);
  auto a = entry("job-a", "x", OutboxEntry::Kind::Json);
  ASSERT_TRUE((*outbox)->put(a));
  EXPECT_FALSE((*outbox)->full());
  auto b = entry("job-b", "y", OutboxEntry::Kind::Json);
  ASSERT_TRUE((*outbox)->put(b));
  EXPECT_TRUE((*outbox)->full());
  EXPECT_TRUE((*outbox)->summary().full);
  auto big = Outbox::open(dir.path() / "big.db", OutboxLimits{100, 10});
  ASSERT_TRUE(big) << big.error().message;
  auto c = entry("job-c", std::string(11, 'z'), OutboxEntry::Kind::Binary);
  ASSERT_TRUE((*big)->put(c));
  EXPECT_TRUE((*big)->full());
}

TEST(Outbox, ACorruptFileIsSetAsideAndAFreshOutboxOpens) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  std::ofstream(path) << "this is not a database, it is what a failing disk left behind";
  auto outbox = Outbox::open(path, {});
  ASSERT_TRUE(outbox) << outbox.error().message;
  EXPECT_EQ((*outbox)->summary().entries, 0u);
  bool aside = false;
  for (const auto& file : std::filesystem::directory_iterator(dir.path())) {
    aside = aside || file.path().filename().string().rfind("outbox.db.corrupt-", 0) == 0;
  }
  EXPECT_TRUE(aside);
}

// Releases before numbered migrations created the table directly; this is their exact schema.
TEST(Outbox, AnOutboxFromBeforeMigrationsKeepsItsEntriesAndIsAdoptedAsVersionOne) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  {
    auto db = sql::Db::open(path);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->exec(R"sql(
CREATE TABLE IF NOT EXISTS outbox (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id           TEXT NOT NULL UNIQUE,
  kind             TEXT NOT NULL CHECK (kind IN ('json', 'binary')),
  studio           TEXT NOT NULL,
  worker_id        TEXT NOT NULL,
  prompt           TEXT NOT NULL,
  ext              TEXT NOT NULL,
  body             BLOB NOT NULL,
  created_at       INTEGER NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL,
  last_error       TEXT NOT NULL DEFAULT ''
);
INSERT INTO outbox(job_id, kind, studio, worker_id, prompt, ext, body, created_at,
                   next_attempt_at) VALUES ('old-job', 'json', 'http://studio/', 'w-1', 'p', '',
                   X'7B7D', 1000, 1000);
)sql"));
  }
  {
    auto outbox = Outbox::open(path, {});
    ASSERT_TRUE(outbox) << outbox.error().message;
    auto due = (*outbox)->due(5000, 10);
    ASSERT_TRUE(due);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].job_id, "old-job");
    EXPECT_EQ((*due)[0].body, "{}");
  }
  auto db = sql::Db::open(path);
  ASSERT_TRUE(db);
  auto version = db->prepare("SELECT MAX(version) FROM schema_migrations");
  ASSERT_TRUE(version);
  ASSERT_TRUE(version->step().value_or(false));
  EXPECT_EQ(version->int64(0), 1);
}

TEST(Outbox, AnOutboxFromANewerReleaseIsRefusedAndLeftInPlace) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  {
    auto outbox = Outbox::open(path, {});
    ASSERT_TRUE(outbox) << outbox.error().message;
    auto e = entry("job-a", "{}", OutboxEntry::Kind::Json);
    EXPECT_TRUE((*outbox)->put(e));
  }
  {
    auto db = sql::Db::open(path);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->exec("INSERT INTO schema_migrations(version) VALUES (99)"));
  }
  auto outbox = Outbox::open(path, {});
  ASSERT_FALSE(outbox);
  EXPECT_EQ(outbox.error().code, Code::Conflict);
  EXPECT_NE(outbox.error().message.find("newer than this binary knows"), std::string::npos)
      << outbox.error().message;
  for (const auto& file : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(file.path().filename().string().find("corrupt"), std::string::npos);
  }
}

// Waiting for a completeAck is a state of the entry, not an error: the operator's lastError
// keeps showing the last real failure.
TEST(Outbox, AnEntryAwaitingItsAckIsNotReportedAsAnError) {
  testing::TempDir dir;
  auto outbox = Outbox::open(dir.path() / "outbox.db", {});
  ASSERT_TRUE(outbox);
  auto a = entry("job-a", "x", OutboxEntry::Kind::Json);
  auto b = entry("job-b", "y", OutboxEntry::Kind::Json);
  ASSERT_TRUE((*outbox)->put(a));
  ASSERT_TRUE((*outbox)->put(b));
  ASSERT_TRUE((*outbox)->postpone("job-a", 1, 2000, Deferral::Failed, "studio 503"));
  ASSERT_TRUE((*outbox)->postpone("job-b", 1, 3000, Deferral::AwaitingAck, ""));
  EXPECT_EQ((*outbox)->summary().last_error, "job-a: studio 503");
  auto due = (*outbox)->due(3000, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[1].job_id, "job-b");
  EXPECT_EQ((*due)[1].attempts, 1);
  EXPECT_EQ((*due)[1].last_error, "awaiting completeAck");
}

// The loop's side of the outbox (issue 19): it starts a write and goes on; the write runs on the
// writer thread, and the caller resumes on its own thread once the entry is on disk.
struct Kept {
  std::optional<bool> durable;
  std::thread::id resumed_on;
};

boost::asio::awaitable<void> keep_into(Outbox& outbox, OutboxEntry e, Kept& kept) {
  const bool durable = co_await outbox.keep(std::move(e));
  kept.durable = durable;
  kept.resumed_on = std::this_thread::get_id();
}

// Named locals: GCC 12 double-destroys temporaries inside a co_await expression.
boost::asio::awaitable<void> drop_and_retry(Outbox& outbox, std::vector<Status>& out) {
  std::string job_b = "job-b", why = "studio 503", job_a = "job-a";
  Status retried =
      co_await outbox.retry_later(std::move(job_b), 2, 7000, Deferral::Failed, std::move(why));
  out.push_back(std::move(retried));
  Status dropped = co_await outbox.drop(std::move(job_a), true);
  out.push_back(std::move(dropped));
}

TEST(Outbox, TheLoopsCountersAnswerWhileAWriteWaitsForTheDisk) {
  testing::TempDir dir;
  const auto path = dir.path() / "outbox.db";
  auto outbox = Outbox::open(path, OutboxLimits{1, 1 << 20});
  ASSERT_TRUE(outbox) << outbox.error().message;
  // Another process holds the database's write lock (a backup, an operator's sqlite3 shell):
  // the write has to wait for it.
  auto other = sql::Db::open(path);
  ASSERT_TRUE(other) << other.error().message;
  ASSERT_TRUE(other->exec("BEGIN IMMEDIATE"));

  boost::asio::io_context loop;
  Kept kept;
  boost::asio::co_spawn(loop,
                        keep_into(**outbox, entry("job-a", "x", OutboxEntry::Kind::Json), kept),
                        boost::asio::detached);
  loop.poll();  // the loop starts the write and is free again
  EXPECT_FALSE(kept.durable.has_value());
  // What the loop reads on every offer and status request answers now, without the disk.
  const auto summary = (*outbox)->summary();
  EXPECT_EQ(summary.disk_ops_pending, 1u);
  EXPECT_EQ(summary.entries, 0u);  // not counted before it is on disk
  EXPECT_FALSE((*outbox)->full());
  EXPECT_FALSE((*outbox)->contains("job-a"));
  EXPECT_FALSE((*outbox)->next_due_ms().has_value());

  ASSERT_TRUE(other->exec("ROLLBACK"));
  loop.run();  // until the write's completion has resumed the caller
  ASSERT_TRUE(kept.durable.has_value());
  EXPECT_TRUE(*kept.durable);
  EXPECT_EQ(kept.resumed_on, std::this_thread::get_id());
  EXPECT_TRUE((*outbox)->contains("job-a"));
  EXPECT_TRUE((*outbox)->full());
  EXPECT_EQ((*outbox)->summary().disk_ops_pending, 0u);
  EXPECT_EQ((*outbox)->summary().volatile_entries, 0u);
  outbox->reset();  // as if the process died: the entry is on disk
  auto reopened = Outbox::open(path, {});
  ASSERT_TRUE(reopened);
  auto due = (*reopened)->due(5000, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].job_id, "job-a");
}

TEST(Outbox, LoopOperationsRunInTheOrderTheyWereStarted) {
  testing::TempDir dir;
  auto outbox = Outbox::open(dir.path() / "outbox.db", {});
  ASSERT_TRUE(outbox);
  boost::asio::io_context loop;
  Kept a, b;
  boost::asio::co_spawn(loop, keep_into(**outbox, entry("job-a", "x", OutboxEntry::Kind::Json), a),
                        boost::asio::detached);
  boost::asio::co_spawn(loop, keep_into(**outbox, entry("job-b", "y", OutboxEntry::Kind::Json), b),
                        boost::asio::detached);
  std::vector<Status> results;
  boost::asio::co_spawn(loop, drop_and_retry(**outbox, results), boost::asio::detached);
  loop.run();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0]);
  EXPECT_TRUE(results[1]);
  const auto summary = (*outbox)->summary();
  EXPECT_EQ(summary.entries, 1u);
  EXPECT_EQ(summary.delivered, 1u);
  EXPECT_EQ((*outbox)->next_due_ms(), 7000);
  auto due = (*outbox)->due(7000, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].job_id, "job-b");
  EXPECT_EQ((*due)[0].attempts, 2);
}

TEST(Outbox, BackoffDoublesFromItsBaseAndStopsAtAMinute) {
  EXPECT_EQ(outbox_backoff_ms(0), 0);
  EXPECT_EQ(outbox_backoff_ms(1), 1000);
  EXPECT_EQ(outbox_backoff_ms(2), 2000);
  EXPECT_EQ(outbox_backoff_ms(4), 8000);
  EXPECT_EQ(outbox_backoff_ms(50), 60'000);
  EXPECT_EQ(outbox_backoff_ms(3, 50), 200);
}

}  // namespace
}  // namespace sw::worker
