// The WAL write-coalescing VFS (sql/wal_write_coalescing.h) holds a transaction's frames until its
// commit frame: what a user would notice if it held them too long or dropped them is a committed
// row another connection cannot read (or reads damaged), or a commit lost when the process dies
// right after it. Each test commits through Db (the shim) and reads through another connection:
// another Db, SQLite's default VFS (as the sqlite3 shell would), or another process.

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "sql/sqlite.h"
#include "sql/wal_write_coalescing.h"
#include "support/temp_dir.h"

namespace sw::sql {
namespace {

std::int64_t scalar(Db& db, std::string_view sql) {
  auto stmt = db.prepare(sql);
  EXPECT_TRUE(stmt) << sql;
  if (!stmt) return -1;
  auto row = stmt->step();
  EXPECT_TRUE(row && *row) << sql;
  return stmt->int64(0);
}

// A row of `bytes` bytes that says which row it is: its first byte and its length.
Status insert_row(Db& db, int n, std::size_t bytes) {
  auto stmt = db.prepare("INSERT INTO t(n, payload) VALUES (?, ?)");
  if (!stmt) return fail(std::move(stmt).error());
  const std::string payload(bytes, static_cast<char>('a' + n % 26));
  return stmt->bind(1, n).bind_blob(2, payload).run();
}

// Rows whose payload is not what insert_row wrote.
constexpr std::string_view kDamagedRows =
    "SELECT count(*) FROM t WHERE length(payload) <> ?1 OR "
    "substr(CAST(payload AS TEXT), 1, 1) <> char(97 + n % 26) OR "
    "substr(CAST(payload AS TEXT), -1, 1) <> char(97 + n % 26)";

std::int64_t damaged_rows(Db& db, std::int64_t bytes) {
  auto stmt = db.prepare(kDamagedRows);
  EXPECT_TRUE(stmt);
  if (!stmt) return -1;
  stmt->bind(1, bytes);
  auto row = stmt->step();
  EXPECT_TRUE(row && *row);
  return stmt->int64(0);
}

constexpr std::string_view kTable = "CREATE TABLE t (n INTEGER PRIMARY KEY, payload BLOB NOT NULL)";

void create_database(const std::filesystem::path& path, std::string_view schema = kTable) {
  auto db = Db::open(path);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec(schema));
}

// Runs `body` in a forked child that then dies at once (_exit: no destructor of what `body`
// left alive runs, nothing is checkpointed): true when `body` succeeded.
bool in_dying_child(const std::function<bool()>& body) {
  const pid_t child = ::fork();
  if (child < 0) return false;
  if (child == 0) ::_exit(body() ? 0 : 1);
  int status = 0;
  return ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(WalWriteCoalescing, IsRegisteredOverTheDefaultVfs) {
  const char* name = wal_write_coalescing_vfs();
  ASSERT_NE(name, nullptr);
  EXPECT_NE(sqlite3_vfs_find(name), nullptr);
  EXPECT_NE(sqlite3_vfs_find(nullptr), sqlite3_vfs_find(name)) << "it must not be the default";
}

TEST(WalWriteCoalescing, EachCommitIsReadAtOnceByOtherConnections) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  auto writer = Db::open(path);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->exec(kTable));
  auto reader = Db::open(path);
  ASSERT_TRUE(reader);
  sqlite3* plain = nullptr;  // SQLite's own VFS, as the sqlite3 shell opens it
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &plain, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  constexpr std::size_t kBytes = 6000;  // more than a page: every commit writes several frames
  for (int n = 1; n <= 120; ++n) {
    ASSERT_TRUE(writer->exec("BEGIN IMMEDIATE"));
    ASSERT_TRUE(insert_row(*writer, n, kBytes));
    ASSERT_TRUE(writer->exec("COMMIT"));
    ASSERT_EQ(scalar(*reader, "SELECT count(*) FROM t"), n);
    sqlite3_stmt* count = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(plain, "SELECT count(*), sum(length(payload)) FROM t", -1, &count,
                                 nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int64(count, 0), n);
    EXPECT_EQ(sqlite3_column_int64(count, 1), static_cast<std::int64_t>(n * kBytes));
    sqlite3_finalize(count);
  }
  EXPECT_EQ(damaged_rows(*reader, kBytes), 0);
  sqlite3_close(plain);
}

TEST(WalWriteCoalescing, ACommitSurvivesItsProcessDyingRightAfterIt) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  create_database(path);
  ASSERT_TRUE(in_dying_child([&] {
    auto& db = *new Result<Db>(Db::open(path));  // left open: closing would checkpoint
    for (int n = 1; db && n <= 40; ++n) {
      if (!db->exec("BEGIN IMMEDIATE") || !insert_row(*db, n, 3000) || !db->exec("COMMIT")) {
        return false;
      }
    }
    return db.has_value();
  }));
  auto db = Db::open(path);
  ASSERT_TRUE(db);
  EXPECT_EQ(scalar(*db, "SELECT count(*) FROM t"), 40);
  EXPECT_EQ(damaged_rows(*db, 3000), 0);
}

// Opens `path` through SQLite's own VFS (as the sqlite3 shell does); the count of `table`'s rows.
std::int64_t plain_count(const std::filesystem::path& path, std::string_view table) {
  sqlite3* plain = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &plain, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  const std::string sql = "SELECT count(*) FROM " + std::string(table);
  std::int64_t n = -1;
  if (sqlite3_prepare_v2(plain, sql.c_str(), -1, &count, nullptr) == SQLITE_OK &&
      sqlite3_step(count) == SQLITE_ROW) {
    n = sqlite3_column_int64(count, 0);
  }
  sqlite3_finalize(count);
  sqlite3_close(plain);
  return n;
}

// A transaction bigger than the page cache writes (spills) frames before its commit; changing
// those pages again makes SQLite rewrite frames in place and then their headers' checksums
// (wal.c walRewriteChecksums). Recovery after the writer dies must find the commit.
TEST(WalWriteCoalescing, ASpillingTransactionSurvivesItsProcessDyingRightAfterIt) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  create_database(path);
  ASSERT_TRUE(in_dying_child([&] {
    auto& db = *new Result<Db>(Db::open(path));  // left open: closing would checkpoint
    if (!db || !db->exec("PRAGMA cache_size=20") || !db->exec("BEGIN IMMEDIATE")) return false;
    for (int n = 1; n <= 1500; ++n) {
      if (!insert_row(*db, n, 1000)) return false;
    }
    return db->exec("UPDATE t SET payload = zeroblob(1000) WHERE n % 50 = 0") &&
           db->exec("UPDATE t SET payload = CAST(payload AS BLOB) WHERE n % 50 <> 0") &&
           db->exec("COMMIT");
  }));
  EXPECT_EQ(plain_count(path, "t"), 1500);
  auto db = Db::open(path);
  ASSERT_TRUE(db);
  auto check = db->quick_check();
  ASSERT_TRUE(check);
  EXPECT_EQ(*check, "ok");
}

// This connection's spilled and rewritten frames, then another connection restarts the WAL and
// commits: closing this one must not write anything of its own over the other's frames.
TEST(WalWriteCoalescing, ClosingAfterAnotherConnectionRestartedTheWalKeepsItsCommits) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  create_database(path, std::string(kTable) +
                            "; CREATE TABLE u (n INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
  ASSERT_TRUE(in_dying_child([&] {
    sqlite3* other = nullptr;  // never closed: the process dies with it open
    if (sqlite3_open_v2(path.c_str(), &other, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      return false;
    }
    auto ours = Db::open(path);
    if (!ours || !ours->exec("PRAGMA cache_size=10") || !ours->exec("BEGIN IMMEDIATE")) {
      return false;
    }
    for (int n = 1; n <= 300; ++n) {
      if (!insert_row(*ours, n, 200)) return false;
    }
    if (!ours->exec("UPDATE t SET payload = zeroblob(200) WHERE n % 7 = 0") ||
        !ours->exec("COMMIT") ||
        sqlite3_exec(other, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr) !=
            SQLITE_OK) {
      return false;
    }
    for (int n = 1; n <= 200; ++n) {
      const std::string insert =
          "INSERT INTO u VALUES (" + std::to_string(n) + ", randomblob(3000))";
      if (sqlite3_exec(other, insert.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return false;
      }
    }
    ours = tl::unexpected(Error::internal("closed"));  // our connection closes here
    return true;
  }));
  EXPECT_EQ(plain_count(path, "t"), 300);
  EXPECT_EQ(plain_count(path, "u"), 200);
}

// With synchronous=FULL, psow=0 and pages smaller than a sector, SQLite pads each commit to a
// sector boundary and splits the page write that crosses it (wal.c walWriteToLog): its 24-byte
// tail is not a frame header and must not be held past the commit (reviewer's reproducer).
TEST(WalWriteCoalescing, ASplitPagesTailIsNotHeldPastTheCommit) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  const std::string uri = "file:" + path.string() + "?psow=0";
  sqlite3* writer = nullptr;
  ASSERT_EQ(sqlite3_open_v2(uri.c_str(), &writer,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                            wal_write_coalescing_vfs()),
            SQLITE_OK);
  auto exec = [](sqlite3* db, const char* sql) {
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
  };
  ASSERT_TRUE(exec(writer,
                   "PRAGMA page_size=512; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                   "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); "
                   "INSERT INTO t VALUES (1, zeroblob(100))"));
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &reader, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  auto value = [](sqlite3* db) {
    sqlite3_stmt* stmt = nullptr;
    std::string out = "(no row)";
    if (sqlite3_prepare_v2(db, "SELECT hex(v) FROM t", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    } else {
      out = std::string("error: ") + sqlite3_errmsg(db);
    }
    sqlite3_finalize(stmt);
    return out;
  };
  for (int i = 1; i <= 300; ++i) {
    ASSERT_TRUE(exec(writer, "UPDATE t SET v = randomblob(100) WHERE id = 1"));
    const auto written = value(writer);
    ASSERT_EQ(value(reader), written) << "commit " << i;
  }
  sqlite3_close(reader);
  sqlite3_close(writer);
}

// Recovery reads a WAL header before it knows whether it is valid. A page size taken from a header
// SQLite then rejected (here 4096, over a 512-byte-page database) would make a split page's tail
// look like a frame start, and hold it past the commit (third reviewer's reproducer).
TEST(WalWriteCoalescing, APageSizeFromARejectedWalHeaderIsNotUsed) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  const std::string wal_path = path.string() + "-wal";
  auto exec = [](sqlite3* db, const char* sql) {
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
  };
  {
    sqlite3* setup = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &setup), SQLITE_OK);
    ASSERT_TRUE(exec(setup, "PRAGMA page_size=512; PRAGMA journal_mode=WAL; CREATE TABLE t(x); "
                            "CREATE TABLE u(x); INSERT INTO u VALUES (randomblob(100))"));
    sqlite3_close(setup);  // checkpointed, the WAL removed
  }
  {
    // A leftover WAL: the right magic, page size 4096, a wrong checksum (SQLite ignores it).
    const unsigned char header[32] = {0x37, 0x7f, 0x06, 0x82, 0x00, 0x2d, 0xe2, 0x18,
                                      0,    0,    0x10, 0,    0,    0,    0,    0,
                                      1,    2,    3,    4,    5,    6,    7,    8,
                                      9,    9,    9,    9,    9,    9,    9,    9};
    std::ofstream wal(wal_path, std::ios::binary);
    wal.write(reinterpret_cast<const char*>(header), sizeof header);
    const std::string zeros(4120, '\0');
    wal.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  const std::string uri = "file:" + path.string() + "?psow=0";
  sqlite3* ours = nullptr;
  ASSERT_EQ(sqlite3_open_v2(uri.c_str(), &ours, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI,
                            wal_write_coalescing_vfs()),
            SQLITE_OK);
  // Recovery runs here and reads the leftover header.
  ASSERT_TRUE(exec(ours, "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0; "
                         "SELECT count(*) FROM u"));
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &other, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_TRUE(exec(other, "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0"));
  // The other connection writes the real header (page size 512) and frames until our commit's
  // padding will end on a 4096-byte boundary that is a frame start for page size 4096.
  constexpr std::uintmax_t kBoundary = 3'510'272;
  constexpr std::uintmax_t kOurFrames = 9 * (512 + 24);
  std::uintmax_t size = 0;
  for (int commits = 0; commits < 20'000; ++commits) {
    ASSERT_TRUE(exec(other, "INSERT INTO t VALUES (1)"));
    size = std::filesystem::file_size(wal_path);
    if (size + kOurFrames > kBoundary - 4096) break;
  }
  ASSERT_LE(size + kOurFrames, kBoundary) << "the WAL grew past the boundary this test needs";
  ASSERT_TRUE(exec(ours, "UPDATE u SET x = randomblob(100)"));
  EXPECT_EQ(std::filesystem::file_size(wal_path), kBoundary + 24)
      << "all of our commit is in the file before SQLite indexes it";
  sqlite3_stmt* check = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(other, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
  sqlite3_finalize(check);
  sqlite3_close(ours);
  sqlite3_close(other);
}

TEST(WalWriteCoalescing, CheckpointsAndRestartedWalsLoseNothing) {
  testing::TempDir dir;
  const auto path = dir.path() / "t.db";
  auto writer = Db::open(path);
  ASSERT_TRUE(writer);
  // A checkpoint every few commits: the WAL restarts from its header again and again.
  ASSERT_TRUE(writer->exec("PRAGMA wal_autocheckpoint=8"));
  ASSERT_TRUE(writer->exec(kTable));
  auto reader = Db::open(path);
  ASSERT_TRUE(reader);
  for (int n = 1; n <= 300; ++n) {
    ASSERT_TRUE(insert_row(*writer, n, 1500));  // autocommit: one transaction each
    if (n % 50 == 0) {
      ASSERT_EQ(scalar(*reader, "SELECT count(*) FROM t"), n);
    }
  }
  ASSERT_TRUE(writer->exec("PRAGMA wal_checkpoint(TRUNCATE)"));
  for (int n = 301; n <= 320; ++n) {
    ASSERT_TRUE(insert_row(*writer, n, 1500));
  }
  EXPECT_EQ(scalar(*reader, "SELECT count(*) FROM t"), 320);
  EXPECT_EQ(damaged_rows(*reader, 1500), 0);
  auto check = reader->quick_check();
  ASSERT_TRUE(check);
  EXPECT_EQ(*check, "ok");
}

}  // namespace
}  // namespace sw::sql
