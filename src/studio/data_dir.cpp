#include "studio/data_dir.h"

#include <fmt/format.h>

#include <optional>
#include <string>

#include "common/file_io.h"
#include "common/log.h"
#include "sql/pg/connection.h"
#include "sql/sqlite.h"
#include "studio/store/pg_studio_store.h"

namespace sw::studio {
namespace {

namespace fs = std::filesystem;

const log::Logger& logger() {
  static const log::Logger instance("studio_worker::studio::data_dir");
  return instance;
}

std::string octal(unsigned mode) {
  return fmt::format("{:04o}", mode);
}

Status make_dir(const fs::path& dir) {
  auto narrowed = make_private_dir(dir);
  if (!narrowed) {
    return fail(std::move(narrowed).error());
  }
  if (*narrowed) {
    logger().warn("permissions.tightened",
                  {{"path", dir.string()}, {"from", octal(**narrowed)}, {"to", "0700"}});
  }
  return {};
}

Status tighten(const fs::path& file) {
  auto narrowed = tighten_private_file(file);
  if (!narrowed) {
    return fail(std::move(narrowed).error());
  }
  if (*narrowed) {
    logger().warn("permissions.tightened",
                  {{"path", file.string()}, {"from", octal(**narrowed)}, {"to", "0600"}});
  }
  return {};
}

// Narrows every entry of results/ and counts them (the evidence that this studio has a past).
Result<std::size_t> tighten_results(const fs::path& results) {
  std::error_code ec;
  std::size_t entries = 0;
  std::size_t narrowed = 0;
  for (const auto& entry : fs::directory_iterator(results, ec)) {
    ++entries;
    auto changed = tighten_private_file(entry.path());
    if (!changed) {
      return fail(std::move(changed).error());
    }
    narrowed += *changed ? 1 : 0;
  }
  if (ec) {
    return fail(Error::io("cannot list {}: {}", results.string(), ec.message()));
  }
  if (narrowed > 0) {
    logger().warn("permissions.tightened",
                  {{"path", results.string()}, {"files", narrowed}, {"to", "0600"}});
  }
  return entries;
}

// Whether the SQLite studio at `db` holds anything an operator would miss (jobs, workers,
// registrations, models, API keys): a file only a read-only command created holds none. An
// unreadable file counts as holding data (the caller then refuses rather than leaves it behind).
bool sqlite_studio_holds_data(const fs::path& db) {
  auto opened = sql::Db::open(db);
  if (!opened) {
    return true;
  }
  auto probe = opened->prepare(
      "SELECT EXISTS(SELECT 1 FROM jobs) OR EXISTS(SELECT 1 FROM workers) OR "
      "EXISTS(SELECT 1 FROM registration_requests) OR EXISTS(SELECT 1 FROM models) OR "
      "EXISTS(SELECT 1 FROM api_keys)");
  if (!probe) {
    return true;
  }
  auto row = probe->step();
  return !row || !*row || probe->int64(0) != 0;
}

// The URI the data directory's `database` file remembers, redacted (a file an older version
// wrote may hold a password); nullopt when it cannot be read.
std::optional<std::string> remembered_database(const fs::path& marker) {
  auto text = read_file(marker, 4096);
  if (!text) {
    return std::nullopt;
  }
  std::string uri = std::move(*text);
  while (!uri.empty() && (uri.back() == '\n' || uri.back() == '\r')) uri.pop_back();
  return sql::pg::redacted_uri(uri);
}

Error amnesia(const fs::path& db, std::string_view state, const fs::path& results,
              std::size_t entries) {
  return Error::make(
      Code::Conflict,
      "studio database {} is {} but {} holds {} result file(s): starting would forget every job, "
      "worker and API key. Restore studio.db from a backup (stop the server first), or move the "
      "data directory {} aside to start a fresh install",
      db.string(), state, results.string(), entries, db.parent_path().string());
}

Error damaged(const fs::path& db, std::string_view detail) {
  return Error::io(
      "studio database {} is damaged ({}). Restore it from a backup, or move studio.db, "
      "studio.db-wal, studio.db-shm and results/ aside to start a fresh install",
      db.string(), detail);
}

}  // namespace

Result<std::unique_ptr<store::SqliteStudioStore>> open_data_dir(const fs::path& data_dir,
                                                                const fs::path& results_dir) {
  const auto results = results_dir.empty() ? data_dir / "results" : results_dir;
  const auto db = data_dir / "studio.db";
  SW_TRY(make_dir(data_dir));
  SW_TRY(make_dir(results));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    SW_TRY(tighten(fs::path(db.string() + suffix)));
  }
  auto entries = tighten_results(results);
  if (!entries) {
    return fail(std::move(entries).error());
  }

  std::error_code ec;
  const bool exists = fs::exists(db, ec);
  const auto size = exists ? fs::file_size(db, ec) : 0;
  const auto wal_size = fs::file_size(db.string() + "-wal", ec);
  const bool empty = exists && size == 0 && (ec || wal_size == 0);
  if (!exists || empty) {
    if (*entries > 0) {
      return fail(amnesia(db, exists ? "empty (0 bytes)" : "missing", results, *entries));
    }
    if (empty) {
      logger().info("database.empty_fresh_install", {{"path", db.string()}});
    }
  } else {
    // A file that is not SQLite fails at its first statement; damaged pages show in quick_check.
    auto probe = store::Db::open(db);
    if (!probe) {
      return fail(damaged(db, probe.error().message));
    }
    auto check = probe->quick_check();
    if (!check) {
      return fail(damaged(db, check.error().message));
    }
    if (*check != "ok") {
      return fail(damaged(db, "quick_check: " + *check));
    }
    auto tables = probe->prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
    if (!tables) {
      return fail(damaged(db, tables.error().message));
    }
    auto row = tables->step();
    if (!row) {
      return fail(damaged(db, row.error().message));
    }
    if (*row && tables->int64(0) == 0 && *entries > 0) {
      return fail(amnesia(db, "without tables", results, *entries));
    }
  }
  auto store = store::SqliteStudioStore::open(db);
  if (!store) {
    return fail(
        Error::make(store.error().code, "{} (database {})", store.error().message, db.string()));
  }
  return std::move(*store);
}

Result<std::unique_ptr<store::StudioStore>> open_studio_store(
    const fs::path& data_dir, const std::optional<std::string>& database_uri,
    const fs::path& results_dir) {
  // A data directory whose studio keeps its data in PostgreSQL says so in this file, so that an
  // admin command (or a restart) run without --database is refused instead of answering from a
  // new, empty studio.db.
  const auto marker = data_dir / kDatabaseMarker;
  if (!database_uri) {
    std::error_code ec;
    if (fs::exists(marker, ec)) {
      return fail(Error::invalid_argument(
          "the studio of {} keeps its data in PostgreSQL ({}): pass --database (or set "
          "STUDIO_SERVER_DATABASE); to use SQLite in this data directory again, remove {}",
          data_dir.string(), remembered_database(marker).value_or("PostgreSQL"), marker.string()));
    }
    auto store = open_data_dir(data_dir, results_dir);
    if (!store) {
      return fail(std::move(store).error());
    }
    return std::unique_ptr<store::StudioStore>(std::move(*store));
  }
  // The other way round: a data directory whose studio kept its data in SQLite is not silently
  // given a new, empty PostgreSQL studio (issue 16: no silent fresh start).
  std::error_code ec;
  const auto sqlite_db = data_dir / "studio.db";
  if (fs::file_size(sqlite_db, ec) > 0 && !ec && !fs::exists(marker, ec)) {
    if (sqlite_studio_holds_data(sqlite_db)) {
      return fail(Error::invalid_argument(
          "{} holds a SQLite studio (its jobs, workers and API keys), which --database would "
          "leave behind: nothing of it is copied to PostgreSQL. To start on PostgreSQL in this "
          "data directory anyway, move {} (and its -wal and -shm files) aside; to keep it, start "
          "without --database",
          data_dir.string(), sqlite_db.string()));
    }
    // Only what a command run there without --database created: left alone, but said.
    logger().warn("studio.sqlite_ignored",
                  {{"path", sqlite_db.string()}, {"why", "it holds no jobs, workers or keys"}});
  }
  if (const auto before = remembered_database(marker)) {
    if (const auto now = sql::pg::redacted_uri(*database_uri);
        !sql::pg::same_connection(*before, *database_uri)) {
      // Allowed (a moved server, a renamed host), but never silent: it may be a typo.
      logger().warn("studio.database_changed",
                    {{"data_dir", data_dir.string()}, {"was", *before}, {"now", now}});
    }
  }
  const auto results = results_dir.empty() ? data_dir / "results" : results_dir;
  SW_TRY(make_dir(data_dir));
  SW_TRY(make_dir(results));
  auto entries = tighten_results(results);
  if (!entries) {
    return fail(std::move(entries).error());
  }
  auto store = store::PgStudioStore::open(*database_uri);
  if (!store) {
    return fail(std::move(store).error());
  }
  SW_TRY(write_file_atomically(marker, sql::pg::redacted_uri(*database_uri) + "\n",
                               Durability::RenameOnly, 0600));
  return std::unique_ptr<store::StudioStore>(std::move(*store));
}

}  // namespace sw::studio
