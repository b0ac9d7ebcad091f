// The durable outbox on a real file: what is put survives a reopen (a crash), delivery order is
// oldest first, backoff is kept, removal is final, bounds are reported, a corrupt file is set
// aside rather than blocking the worker.

#include "worker/outbox.h"

#include <gtest/gtest.h>

#include <fstream>

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
    ASSERT_TRUE((*outbox)->postpone("job-a", 3, 9000, "studio 503"));
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
