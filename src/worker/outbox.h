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
// Thread-safe: the pool writes and reads entries, the loop reads the summary.

#include <cstdint>
#include <filesystem>
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
};

// The pause after `attempts` failed deliveries: `base_ms` doubling, capped at 60 s.
std::int64_t outbox_backoff_ms(int attempts, std::int64_t base_ms = 1000);

class Outbox {
 public:
  // Opens (creating) the outbox at `path`. A file that is not a readable outbox is renamed
  // `<name>.corrupt-<unix ts>` and a fresh one created (its results were unreadable anyway).
  static Result<std::unique_ptr<Outbox>> open(const std::filesystem::path& path,
                                              OutboxLimits limits);

  // Adds (or replaces, by job id) an entry; fills `seq`. Returns whether it reached the disk: on
  // a write error the entry is kept in memory instead and the error is reported in the summary.
  bool put(OutboxEntry& entry);
  // Entries whose next attempt is due at `now_ms`, oldest first, at most `limit`.
  Result<std::vector<OutboxEntry>> due(std::int64_t now_ms, std::size_t limit);
  // The earliest next attempt of any entry, if there is one.
  std::optional<std::int64_t> next_due_ms() const;
  // The studio acknowledged it (`delivered`) or disowned it (not delivered): gone for good.
  Status remove(const std::string& job_id, bool delivered);
  // A failed attempt: counts it and schedules the next one.
  Status postpone(const std::string& job_id, int attempts, std::int64_t next_attempt_at_ms,
                  const std::string& error);
  bool contains(const std::string& job_id) const;
  OutboxSummary summary() const;
  bool full() const;

 private:
  Outbox(sql::Db db, OutboxLimits limits) : db_(std::move(db)), limits_(limits) {}
  Status load_counters();

  mutable std::mutex mutex_;
  sql::Db db_;
  OutboxLimits limits_;
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
};

}  // namespace sw::worker
