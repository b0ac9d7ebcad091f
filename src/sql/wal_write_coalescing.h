#pragma once
// A SQLite VFS shim that hands one commit's WAL frames to the kernel in one write (issue 18).
//
// Why: SQLite writes each WAL frame as two pwrite calls, its 24-byte header and then its page
// (wal.c, walWriteOneFrame), so a studio commit that changes ten pages costs twenty system calls;
// on the 2-core benchmark machine that was a fifth of the database thread's commit time. This
// shim keeps the frames of a transaction in memory and writes them with one call when the commit
// frame's page arrives, which is still before SQLite updates the WAL index in shared memory
// (sqlite3WalFrames writes every frame first, then indexes them): another connection, in this
// process or another, never sees a frame that is not in the file yet. A process that dies after
// the commit returned loses nothing (the bytes are the kernel's); one that dies before it loses
// the transaction, as before.
//
// Facts relied on, from the WAL file format (sqlite.org/fileformat.html, "WAL File Format"): a
// frame header is 24 bytes, and its bytes 4..7 (big-endian) are nonzero only in a commit frame.
// Only a write pattern of header then page at consecutive offsets is buffered; any other write
// (the WAL header, a split write) first flushes what is held and then goes straight through, so
// an unexpected pattern costs speed, never correctness. Reads, syncs, size queries, truncation
// and close flush first. About kMaxHeldBytes are held at most, and written in pieces of at most
// that: SQLite's unix VFS writes at most 128 KiB - 1 bytes per call (os_unix.c, seekAndWriteFd)
// and reports a longer write as a full disk. A larger transaction (a migration) is written in
// several pieces.
//
// Files other than WAL files (the database, its -shm, journals) are the default VFS's own.
// Thread-safety: as SQLite's: one connection's files are used by one thread at a time.

#include <cstddef>

namespace sw::sql {

// The shim's VFS name for sqlite3_open_v2, registered on first use over SQLite's default VFS
// (not made the default). nullptr when it could not be registered: callers then open with the
// default VFS.
const char* wal_write_coalescing_vfs();

inline constexpr std::size_t kMaxHeldBytes = 120 * 1024;

}  // namespace sw::sql
