#pragma once
// The studio's data directory (studio.db plus results/): made private and checked before the
// database is trusted (issue 16, kinds 6 and 7b). Used by `serve` and by the admin subcommands.
// Blocking file and SQLite work; call it before the event loop runs. Not thread-safe against a
// second caller on the same directory at the same moment.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "studio/store/studio_store.h"

namespace sw::studio {

// Opens `data_dir`/studio.db (migrated) after:
// - making `data_dir` and `data_dir`/results 0700, and studio.db, its -wal/-shm and every result
//   file 0600, narrowing what an older version left looser (logged once per path; result files
//   as one count), whatever the umask;
// - refusing a database that has lost its memory while results/ still holds files: missing,
//   zero-length, or with no tables. Starting there as a fresh install would silently forget
//   every job, worker and key;
// - refusing a damaged database (not SQLite, or PRAGMA quick_check finds damage).
// A refusal is Code::Conflict (damaged: IoError) with a message naming the path and what the
// operator can do (restore a backup, or move the files aside to start fresh). A new install
// (no database, empty results/) is created.
// `results_dir` empty: <data_dir>/results.
Result<std::unique_ptr<store::SqliteStudioStore>> open_data_dir(
    const std::filesystem::path& data_dir, const std::filesystem::path& results_dir = {});

// The studio's store as configured (`serve` and the admin subcommands): PostgreSQL at
// `database_uri` when set (issue 18; the data and results directories are still made private,
// and no studio.db is opened or created), else open_data_dir. Errors: open_data_dir's, or
// PgStudioStore::open's (InvalidArgument for a URI libpq cannot read, Unavailable for a server
// that cannot be reached, Conflict for a newer schema), their messages never holding the
// password.
// The file in a data directory that names (password redacted) the PostgreSQL database its studio
// uses; open_studio_store writes it and refuses to open SQLite there while it exists.
inline constexpr const char* kDatabaseMarker = "database";
Result<std::unique_ptr<store::StudioStore>> open_studio_store(
    const std::filesystem::path& data_dir, const std::optional<std::string>& database_uri,
    const std::filesystem::path& results_dir = {});

}  // namespace sw::studio
