#pragma once
// A SQLite VFS shim that writes each WAL frame, header and page, with one system call (issue 18).
//
// Why: SQLite writes a WAL frame as two pwrite calls, its 24-byte header and then its page
// (wal.c, walWriteOneFrame), so a studio commit that changes ten pages costs twenty system calls;
// on the 2-core benchmark machine that was a large share of the database thread's commit time.
// This shim holds a new frame's header until its page, the very next write on the file, and
// writes the two together. Nothing is held past that write, so what SQLite believes written is
// in the kernel before it indexes the frame: other connections (in this process or another, the
// sqlite3 shell included) and a restart after a crash see exactly what they would without it.
//
// Only a 24-byte write that starts a frame (offset 32 + k × (page size + 24), the page size taken
// from the WAL header this handle last wrote; unknown: nothing is held) and appends past the
// frames this handle has written since it last wrote that header is held. So a header written
// over an existing frame (wal.c walRewriteChecksums, after a transaction changed a page it had
// spilled) and the 24-byte tail of a page split at a sector boundary (walWriteToLog, with
// synchronous=FULL and psow=0) go straight through, as does every other write. Any other use of
// the file (read, sync, size, truncate, close) first writes a held header alone, and a failure
// there is reported as an I/O error (SQLite then rolls the transaction back). Holding a whole transaction's frames until its commit frame was tried
// and dropped: frames spilled by a transaction that then rolls back would outlive it in memory,
// and a header rewritten in place was taken for a new frame's (found by review, reproduced; so
// were the split page's tail, fixed by the frame-boundary rule, and a page size learned from a
// header that recovery then threw away).
//
// Facts relied on, from the WAL file format (sqlite.org/fileformat.html, "WAL File Format"): the
// file header is 32 bytes at offset 0 with the page size in its bytes 8..11 (big-endian), a frame
// header 24 bytes followed by its page (at most 65,536 bytes).
//
// Files other than WAL files (the database, its -shm, journals) are the default VFS's own.
// Thread-safety: as SQLite's: one connection's files are used by one thread at a time.

namespace sw::sql {

// The shim's VFS name for sqlite3_open_v2, registered on first use over SQLite's default VFS
// (not made the default). nullptr when it could not be registered: callers then open with the
// default VFS.
const char* wal_write_coalescing_vfs();

}  // namespace sw::sql
