#include "worker/outbox.h"

#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <functional>
#include <system_error>

#include "common/clock.h"
#include "common/log.h"
#include "worker/run_blocking.h"

namespace sw::worker {
namespace {

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::outbox");
  return instance;
}

// Version 1: the outbox as releases before numbered migrations created it, with IF NOT EXISTS so
// that such a database (its table in place, no schema_migrations) is adopted as version 1.
constexpr std::string_view kSchemaV1 = R"sql(
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
)sql";

constexpr std::string_view kEntryColumns =
    "seq, job_id, kind, studio, worker_id, prompt, ext, body, created_at, attempts, "
    "next_attempt_at, last_error";

OutboxEntry read_entry(const sql::Stmt& s) {
  OutboxEntry entry;
  entry.seq = s.int64(0);
  entry.job_id = s.text(1);
  entry.kind = s.text(2) == "binary" ? OutboxEntry::Kind::Binary : OutboxEntry::Kind::Json;
  entry.studio = s.text(3);
  entry.worker_id = s.text(4);
  entry.prompt = s.text(5);
  entry.ext = s.text(6);
  entry.body = s.blob(7);
  entry.created_at_ms = s.int64(8);
  entry.attempts = static_cast<int>(s.int64(9));
  entry.next_attempt_at_ms = s.int64(10);
  entry.last_error = s.text(11);
  return entry;
}

// The outbox's schema (SQLite only: it lives on the worker's disk).
constexpr sql::Migration kMigrations[] = {{1, kSchemaV1, {}}};

// Opens the file and proves it is a usable outbox (schema in place, pages intact).
Result<sql::Db> open_checked(const std::filesystem::path& path) {
  auto db = sql::Db::open(path);
  if (!db) {
    return fail(std::move(db).error());
  }
  // FULL: the WAL is fsynced at every commit, so a stored result survives a power cut.
  SW_TRY(db->exec("PRAGMA synchronous=FULL;"));
  // Every statement runs on the writer thread, never on the event loop: a lock held elsewhere
  // (a backup, an sqlite3 shell) may delay a result's write for longer than open()'s 5 s rather
  // than send the result on with no copy on disk.
  db->set_busy_timeout(std::chrono::seconds(30));
  if (auto migrated = sql::migrate(*db, kMigrations); !migrated) {
    // Conflict: a newer release's outbox (a downgrade), which open() must not move aside.
    return fail(migrated.error().code == Code::Conflict
                    ? std::move(migrated).error()
                    : Error::io("outbox schema: {}", migrated.error().message));
  }
  auto check = db->prepare("PRAGMA quick_check");
  if (!check) {
    return fail(std::move(check).error());
  }
  auto row = check->step();
  if (!row) {
    return fail(std::move(row).error());
  }
  if (!*row || check->text(0) != "ok") {
    return fail(Error::io("outbox {} failed its integrity check: {}", path.string(),
                          *row ? check->text(0) : std::string("no answer")));
  }
  return std::move(*db);
}

}  // namespace

std::int64_t outbox_backoff_ms(int attempts, std::int64_t base_ms) {
  if (attempts <= 0) {
    return 0;
  }
  const int doublings = std::min(attempts - 1, 16);
  return std::min<std::int64_t>(base_ms << doublings, 60'000);
}

// One thread: the outbox's disk operations run one at a time, in the order they were started.
struct Outbox::Writer {
  boost::asio::thread_pool thread{1};
};

Outbox::Outbox(sql::Db db, OutboxLimits limits)
    : writer_(std::make_unique<Writer>()), db_(std::move(db)), limits_(limits) {}

Outbox::~Outbox() {
  // Before the database and the counters go: the writer's running operation uses both.
  writer_.reset();
}

template <class R>
boost::asio::awaitable<R> Outbox::on_writer(std::function<R()> work) {
  {
    std::lock_guard lock(state_mutex_);
    ++disk_ops_pending_;
  }
  std::function<R()> counted = [this, work = std::move(work)]() {
    R result = work();
    std::lock_guard lock(state_mutex_);
    --disk_ops_pending_;
    return result;
  };
  const boost::asio::any_io_executor writer = writer_->thread.get_executor();
  co_return co_await run_blocking<R>(writer, std::move(counted));
}

// The operations below build their work as named locals: GCC 12 double-destroys temporaries
// inside a co_await expression.

boost::asio::awaitable<bool> Outbox::keep(OutboxEntry entry) {
  // Shared with the writer: the entry (its body may be megabytes) is moved, never copied.
  auto shared = std::make_shared<OutboxEntry>(std::move(entry));
  std::function<bool()> work = [this, shared] { return put(*shared); };
  co_return co_await on_writer<bool>(std::move(work));
}

boost::asio::awaitable<Result<std::vector<OutboxEntry>>> Outbox::load_due(std::int64_t now_ms,
                                                                          std::size_t limit) {
  std::function<Result<std::vector<OutboxEntry>>()> work = [this, now_ms, limit] {
    return due(now_ms, limit);
  };
  co_return co_await on_writer<Result<std::vector<OutboxEntry>>>(std::move(work));
}

boost::asio::awaitable<Status> Outbox::drop(std::string job_id, bool delivered) {
  std::function<Status()> work = [this, job_id = std::move(job_id), delivered] {
    return remove(job_id, delivered);
  };
  co_return co_await on_writer<Status>(std::move(work));
}

boost::asio::awaitable<Status> Outbox::retry_later(std::string job_id, int attempts,
                                                   std::int64_t next_attempt_at_ms, Deferral why,
                                                   std::string detail) {
  std::function<Status()> work = [this, job_id = std::move(job_id), attempts, next_attempt_at_ms,
                                  why, detail = std::move(detail)] {
    return postpone(job_id, attempts, next_attempt_at_ms, why, detail);
  };
  co_return co_await on_writer<Status>(std::move(work));
}

Result<std::unique_ptr<Outbox>> Outbox::open(const std::filesystem::path& path,
                                             OutboxLimits limits) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  auto db = open_checked(path);
  if (!db && db.error().code == Code::Conflict) {
    // Written by a newer release: its results are intact and that release can deliver them.
    return fail(Error::make(Code::Conflict, "outbox {}: {}", path.string(), db.error().message));
  }
  if (!db) {
    // Unreadable: keep the file for the operator, start afresh rather than refuse to work.
    const auto aside = path.string() + ".corrupt-" + std::to_string(unix_millis_now() / 1000);
    logger().error("outbox.corrupt",
                   {{"path", path.string()}, {"error", db.error().message}, {"moved_to", aside}});
    std::filesystem::rename(path, aside, ec);
    if (ec) {
      return fail(Error::io("outbox {} is unreadable ({}) and cannot be moved aside: {}",
                            path.string(), db.error().message, ec.message()));
    }
    for (const char* suffix : {"-wal", "-shm"}) {
      std::filesystem::rename(path.string() + suffix, aside + suffix, ec);
    }
    db = open_checked(path);
    if (!db) {
      return fail(std::move(db).error());
    }
  }
  std::unique_ptr<Outbox> outbox(new Outbox(std::move(*db), limits));
  SW_TRY(outbox->load_counters());
  return outbox;
}

Status Outbox::load_counters() {
  auto stmt = db_.prepare(
      "SELECT job_id, length(body), created_at, next_attempt_at, seq FROM outbox ORDER BY seq");
  if (!stmt) {
    return fail(std::move(stmt).error());
  }
  while (true) {
    auto row = stmt->step();
    if (!row) {
      return fail(std::move(row).error());
    }
    if (!*row) {
      break;
    }
    const auto bytes = static_cast<std::uint64_t>(stmt->int64(1));
    meta_[stmt->text(0)] = Meta{bytes, stmt->int64(2), stmt->int64(3)};
    bytes_ += bytes;
    next_seq_hint_ = std::max(next_seq_hint_, stmt->int64(4));
  }
  if (!meta_.empty()) {
    logger().info("outbox.loaded", {{"entries", meta_.size()}, {"bytes", bytes_}});
  }
  return {};
}

bool Outbox::put(OutboxEntry& entry) {
  std::lock_guard db_lock(db_mutex_);
  auto stmt = db_.prepare(fmt::format(
      "INSERT OR REPLACE INTO outbox({}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      kEntryColumns));
  Status written = stmt ? Status{} : Status(fail(std::move(stmt).error()));
  if (written) {
    stmt->bind(1, entry.job_id)
        .bind(2, entry.kind == OutboxEntry::Kind::Binary ? "binary" : "json")
        .bind(3, entry.studio)
        .bind(4, entry.worker_id)
        .bind(5, entry.prompt)
        .bind(6, entry.ext)
        .bind_blob(7, entry.body)
        .bind(8, entry.created_at_ms)
        .bind(9, entry.attempts)
        .bind(10, entry.next_attempt_at_ms)
        .bind(11, entry.last_error);
    written = stmt->run();
  }
  // The disk has answered: only now do the counters (what the loop reads) change.
  std::lock_guard lock(state_mutex_);
  if (auto old = meta_.find(entry.job_id); old != meta_.end()) {
    bytes_ -= old->second.bytes;
    meta_.erase(old);
    volatile_.erase(entry.job_id);
  }
  meta_[entry.job_id] = Meta{entry.body.size(), entry.created_at_ms, entry.next_attempt_at_ms};
  bytes_ += entry.body.size();
  if (written) {
    entry.seq = db_.last_insert_rowid();
    entry.durable = true;
    next_seq_hint_ = std::max(next_seq_hint_, entry.seq);
    return true;
  }
  entry.seq = ++next_seq_hint_;
  entry.durable = false;
  last_error_ = "result of " + entry.job_id + " kept in memory only: " + written.error().message;
  logger().error("outbox.write_failed",
                 {{"job_id", entry.job_id}, {"error", written.error().message}});
  volatile_[entry.job_id] = entry;
  return false;
}

Result<std::vector<OutboxEntry>> Outbox::due(std::int64_t now_ms, std::size_t limit) {
  std::lock_guard db_lock(db_mutex_);
  static const std::string sql = fmt::format(
      "SELECT {} FROM outbox WHERE next_attempt_at <= ? ORDER BY seq LIMIT ?", kEntryColumns);
  auto stmt = db_.prepare(sql);
  if (!stmt) {
    return fail(std::move(stmt).error());
  }
  stmt->bind(1, now_ms).bind(2, static_cast<std::int64_t>(limit));
  std::vector<OutboxEntry> entries;
  while (true) {
    auto row = stmt->step();
    if (!row) {
      return fail(std::move(row).error());
    }
    if (!*row) {
      break;
    }
    entries.push_back(read_entry(*stmt));
  }
  {
    std::lock_guard lock(state_mutex_);
    for (const auto& [id, entry] : volatile_) {
      if (entry.next_attempt_at_ms <= now_ms) {
        entries.push_back(entry);
      }
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.seq < b.seq; });
  if (entries.size() > limit) {
    entries.resize(limit);
  }
  return entries;
}

std::optional<std::int64_t> Outbox::next_due_ms() const {
  std::lock_guard lock(state_mutex_);
  std::optional<std::int64_t> next;
  for (const auto& [id, meta] : meta_) {
    if (!next || meta.next_attempt_at_ms < *next) {
      next = meta.next_attempt_at_ms;
    }
  }
  return next;
}

Status Outbox::remove(const std::string& job_id, bool delivered) {
  std::lock_guard db_lock(db_mutex_);
  bool in_memory = false;
  {
    std::lock_guard lock(state_mutex_);
    in_memory = volatile_.contains(job_id);
  }
  if (!in_memory) {
    auto stmt = db_.prepare("DELETE FROM outbox WHERE job_id = ?");
    if (!stmt) {
      return fail(std::move(stmt).error());
    }
    SW_TRY(stmt->bind(1, job_id).run());
  }
  std::lock_guard lock(state_mutex_);
  volatile_.erase(job_id);
  if (auto it = meta_.find(job_id); it != meta_.end()) {
    bytes_ -= it->second.bytes;
    meta_.erase(it);
    ++(delivered ? delivered_ : dropped_);
  }
  return {};
}

Status Outbox::postpone(const std::string& job_id, int attempts, std::int64_t next_attempt_at_ms,
                        Deferral why, const std::string& detail) {
  const std::string error = why == Deferral::AwaitingAck ? "awaiting completeAck" : detail;
  std::lock_guard db_lock(db_mutex_);
  {
    std::lock_guard lock(state_mutex_);
    if (why != Deferral::AwaitingAck) last_error_ = job_id + ": " + error;
    if (auto it = meta_.find(job_id); it != meta_.end()) {
      it->second.next_attempt_at_ms = next_attempt_at_ms;
    }
    if (auto it = volatile_.find(job_id); it != volatile_.end()) {
      it->second.attempts = attempts;
      it->second.next_attempt_at_ms = next_attempt_at_ms;
      it->second.last_error = error;
      return {};
    }
  }
  auto stmt = db_.prepare(
      "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE job_id = ?");
  if (!stmt) {
    return fail(std::move(stmt).error());
  }
  return stmt->bind(1, attempts).bind(2, next_attempt_at_ms).bind(3, error).bind(4, job_id).run();
}

bool Outbox::contains(const std::string& job_id) const {
  std::lock_guard lock(state_mutex_);
  return meta_.contains(job_id);
}

OutboxSummary Outbox::summary() const {
  std::lock_guard lock(state_mutex_);
  OutboxSummary summary;
  summary.entries = meta_.size();
  summary.bytes = bytes_;
  summary.volatile_entries = volatile_.size();
  for (const auto& [id, meta] : meta_) {
    if (!summary.oldest_created_at_ms || meta.created_at_ms < *summary.oldest_created_at_ms) {
      summary.oldest_created_at_ms = meta.created_at_ms;
    }
  }
  summary.last_error = last_error_;
  summary.delivered = delivered_;
  summary.dropped = dropped_;
  summary.limits = limits_;
  summary.full = meta_.size() >= limits_.max_entries || bytes_ >= limits_.max_bytes;
  summary.disk_ops_pending = disk_ops_pending_;
  return summary;
}

bool Outbox::full() const {
  std::lock_guard lock(state_mutex_);
  return meta_.size() >= limits_.max_entries || bytes_ >= limits_.max_bytes;
}

}  // namespace sw::worker
