#pragma once
// The studio's data directory (studio.db plus results/): made private and checked before the
// database is trusted (issue 16, kinds 6 and 7b). Used by `serve` and by the admin subcommands.
// Blocking file and SQLite work; call it before the event loop runs. Not thread-safe against a
// second caller on the same directory at the same moment.

#include <filesystem>
#include <memory>

#include "common/error.h"
#include "store/studio_store.h"

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
Result<std::unique_ptr<store::StudioStore>> open_data_dir(const std::filesystem::path& data_dir);

}  // namespace sw::studio
