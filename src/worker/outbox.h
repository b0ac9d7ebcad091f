#pragma once
// The durable result outbox (issue 7): every finished studio result, JSON or bytes, is written
// here (SQLite, synchronous=FULL: fsynced at each commit) before delivery is attempted, and stays
// until the studio acknowledges it (2xx for the multipart upload, `completeAck` for completeJson)
// or answers that the job is no longer this worker's (409 / protocol_violation). A worker that
// crashed delivers what it had finished after its restart.
//
// Delivery is oldest first; an entry that failed waits a backoff (1 s doubling to 60 s) kept on
// disk, so a restart does not hammer a studio that refused it a moment ago. The outbox is bounded
// by entries and bytes; the session declines offers while it is full instead of dropping results.
// A result that could not be written (disk full) is kept in memory and still delivered.
//
// Threads (issue 19): every disk operation runs on the outbox's own writer thread; the loop
// starts one with keep / load_due / drop / retry_later and is resumed on its own executor when
// the disk is done, so it never waits on an fsync. What the loop reads synchronously (summary,
// full, contains, next_due_ms) comes from counters behind a lock that is never held across disk
// I/O. The blocking forms (put, due, remove, postpone) are for the writer thread and tests;
// they are thread-safe but must not be called on the loop.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "sql/sqlite.h"

namespace sw::worker {

struct OutboxEntry {
  enum class Kind { Json, Binary };
  std::int64_t seq = 0;  // delivery order
  std::string job_id;
  Kind kind = Kind::Json;
  std::string studio;     // the api base URL the job came from
  std::string worker_id;  // the identity that held the claim
  std::string prompt;     // the full prompt (completeJson.prompt, the upload's `prompt` part)
  std::string ext;        // binary only
  std::string body;       // the JSON result text, or the result bytes
  std::int64_t created_at_ms = 0;
  int attempts = 0;
  std::int64_t next_attempt_at_ms = 0;
  std::string last_error;
  bool durable = true;  // false: only in memory (the write failed)
};

struct OutboxLimits {
  std::uint64_t max_entries = 1000;
  std::uint64_t max_bytes = 4096ull << 20;
};

struct OutboxSummary {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
  std::uint64_t volatile_entries = 0;  // not on disk
  std::optional<std::int64_t> oldest_created_at_ms;
  std::string last_error;
  std::uint64_t delivered = 0;  // since start: acknowledged and removed
  std::uint64_t dropped = 0;    // since start: the studio said the job is not ours
  OutboxLimits limits;
  bool full = false;
  // Disk operations queued on or running on the writer thread (an fsync that takes long, a
  // database another process holds locked show here).
  std::uint64_t disk_ops_pending = 0;
};

// Why an entry waits for a later attempt (a type, not a sentinel error text: issue 19).
enum class Deferral {
  // Its completeJson went out; the studio's completeAck removes it, else it goes again when due.
  // Not an error: the summary's last_error is left as it was.
  AwaitingAck,
  // The attempt failed (the detail says why); becomes the summary's last_error.
  Failed,
  // Claimed under another studio or worker identity: kept for when that comes back.
  OtherClaim,
};

// The pause after `attempts` failed deliveries: `base_ms` doubling, capped at 60 s.
std::int64_t outbox_backoff_ms(int attempts, std::int64_t base_ms = 1000);

class Outbox {
 public:
  // Opens (creating) the outbox at `path`. A file that is not a readable outbox is renamed
  // `<name>.corrupt-<unix ts>` and a fresh one created (its results were unreadable anyway).
  static Result<std::unique_ptr<Outbox>> open(const std::filesystem::path& path,
                                              OutboxLimits limits);

  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  // Finishes the disk operation that is running; queued ones are dropped with their waiters
  // (the loop that would resume them has stopped by then).
  ~Outbox();

  // ---- from the loop: the disk work runs on the writer thread, the caller resumes on its own
  // executor. Operations run in the order they were started.

  // put() on the writer thread. The caller learns the outcome only once the entry is on disk (or,
  // the disk refusing it, kept in memory): nothing may be delivered before.
  boost::asio::awaitable<bool> keep(OutboxEntry entry);
  boost::asio::awaitable<Result<std::vector<OutboxEntry>>> load_due(std::int64_t now_ms,
                                                                    std::size_t limit);
  boost::asio::awaitable<Status> drop(std::string job_id, bool delivered);
  boost::asio::awaitable<Status> retry_later(std::string job_id, int attempts,
                                             std::int64_t next_attempt_at_ms, Deferral why,
                                             std::string detail);

  // ---- blocking: the writer thread and tests; never on the loop.

  // Adds (or replaces, by job id) an entry; fills `seq`. Returns whether it reached the disk: on
  // a write error the entry is kept in memory instead and the error is reported in the summary.
  bool put(OutboxEntry& entry);
  // Entries whose next attempt is due at `now_ms`, oldest first, at most `limit`.
  Result<std::vector<OutboxEntry>> due(std::int64_t now_ms, std::size_t limit);
  // The earliest next attempt of any entry, if there is one.
  std::optional<std::int64_t> next_due_ms() const;
  // The studio acknowledged it (`delivered`) or disowned it (not delivered): gone for good.
  Status remove(const std::string& job_id, bool delivered);
  // An attempt that did not settle the entry: counts it and schedules the next one. The entry's
  // stored last_error is `detail`, or "awaiting completeAck" for Deferral::AwaitingAck.
  Status postpone(const std::string& job_id, int attempts, std::int64_t next_attempt_at_ms,
                  Deferral why, const std::string& detail);

  // ---- anywhere, the loop included: counters only, never waits for the disk.

  bool contains(const std::string& job_id) const;
  OutboxSummary summary() const;
  bool full() const;

 private:
  struct Writer;
  Outbox(sql::Db db, OutboxLimits limits);
  Status load_counters();
  // Runs `work` on the writer thread, counted in disk_ops_pending while queued or running.
  template <class R>
  boost::asio::awaitable<R> on_writer(std::function<R()> work);

  std::unique_ptr<Writer> writer_;
  // Held across disk I/O; never taken by the loop (only the writer thread and blocking callers).
  std::mutex db_mutex_;
  sql::Db db_;  // guarded by db_mutex_
  const OutboxLimits limits_;
  // Guards everything below; held only for in-memory updates, never across disk I/O.
  mutable std::mutex state_mutex_;
  // job id → (bytes, created, next attempt), for the summary and next_due without a query.
  struct Meta {
    std::uint64_t bytes = 0;
    std::int64_t created_at_ms = 0;
    std::int64_t next_attempt_at_ms = 0;
  };
  std::map<std::string, Meta> meta_;
  std::map<std::string, OutboxEntry> volatile_;  // entries the disk refused
  std::uint64_t bytes_ = 0;
  std::uint64_t delivered_ = 0;
  std::uint64_t dropped_ = 0;
  std::string last_error_;
  std::int64_t next_seq_hint_ = 0;
  std::uint64_t disk_ops_pending_ = 0;
};

}  // namespace sw::worker
