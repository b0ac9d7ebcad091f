#include "sql/wal_write_coalescing.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <new>
#include <vector>

namespace sw::sql {
namespace {

constexpr int kFrameHeaderBytes = 24;  // WAL file format: a frame header

sqlite3_vfs* g_real = nullptr;  // the default VFS, set once before the shim is registered

// One open WAL file: SQLite allocates szOsFile bytes; this struct is placed at the start and the
// default VFS's own file object right after it.
struct WalFile {
  sqlite3_file base{};                // first: what SQLite sees (pMethods = kWalMethods)
  std::vector<unsigned char> held;    // frames not yet written, from file offset held_at
  sqlite3_int64 held_at = 0;
  bool expect_page = false;           // a frame header is held; its page comes next
  bool commit = false;                // that header is a commit frame's

  sqlite3_file* real();
};

constexpr std::size_t kRealOffset =
    (sizeof(WalFile) + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) *
    alignof(std::max_align_t);

sqlite3_file* WalFile::real() {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<unsigned char*>(this) + kRealOffset);
}

WalFile* wal(sqlite3_file* file) {
  return reinterpret_cast<WalFile*>(file);
}

// Writes what is held, in one call. Held bytes are dropped either way: after a failed write
// SQLite abandons the transaction (its frames are past the last valid commit).
int flush(WalFile* f) {
  f->expect_page = false;
  f->commit = false;
  if (f->held.empty()) {
    return SQLITE_OK;
  }
  sqlite3_file* real = f->real();
  int rc = SQLITE_OK;
  for (std::size_t done = 0; done < f->held.size() && rc == SQLITE_OK;) {
    const std::size_t piece = std::min(f->held.size() - done, kMaxHeldBytes);
    rc = real->pMethods->xWrite(real, f->held.data() + done, static_cast<int>(piece),
                                f->held_at + static_cast<sqlite3_int64>(done));
    done += piece;
  }
  f->held.clear();
  return rc;
}

void hold(WalFile* f, const void* data, int n, sqlite3_int64 at) {
  if (f->held.empty()) {
    f->held_at = at;
  }
  const auto* bytes = static_cast<const unsigned char*>(data);
  f->held.insert(f->held.end(), bytes, bytes + n);
}

int wal_write(sqlite3_file* file, const void* data, int n, sqlite3_int64 at) {
  WalFile* f = wal(file);
  const bool contiguous =
      f->held.empty() || at == f->held_at + static_cast<sqlite3_int64>(f->held.size());
  if (n == kFrameHeaderBytes && !f->expect_page) {
    if (!contiguous) {
      if (const int rc = flush(f); rc != SQLITE_OK) {
        return rc;
      }
    }
    const auto* header = static_cast<const unsigned char*>(data);
    hold(f, data, n, at);
    f->expect_page = true;
    f->commit = (header[4] | header[5] | header[6] | header[7]) != 0;
    return SQLITE_OK;
  }
  if (f->expect_page && contiguous) {
    hold(f, data, n, at);
    f->expect_page = false;
    if (f->commit || f->held.size() >= kMaxHeldBytes) {
      return flush(f);  // the commit's frames go to the kernel before SQLite indexes them
    }
    return SQLITE_OK;
  }
  // Not the header-then-page pattern: what is held first, then this write as it came.
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  sqlite3_file* real = f->real();
  return real->pMethods->xWrite(real, data, n, at);
}

int wal_read(sqlite3_file* file, void* out, int n, sqlite3_int64 at) {
  WalFile* f = wal(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real()->pMethods->xRead(f->real(), out, n, at);
}

int wal_close(sqlite3_file* file) {
  WalFile* f = wal(file);
  const int flushed = flush(f);
  sqlite3_file* real = f->real();
  const int closed = real->pMethods != nullptr ? real->pMethods->xClose(real) : SQLITE_OK;
  f->~WalFile();
  return flushed != SQLITE_OK ? flushed : closed;
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = wal(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real()->pMethods->xTruncate(f->real(), size);
}

int wal_sync(sqlite3_file* file, int flags) {
  WalFile* f = wal(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real()->pMethods->xSync(f->real(), flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = wal(file);
  if (const int rc = flush(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real()->pMethods->xFileSize(f->real(), size);
}

int wal_lock(sqlite3_file* file, int level) {
  return wal(file)->real()->pMethods->xLock(wal(file)->real(), level);
}

int wal_unlock(sqlite3_file* file, int level) {
  return wal(file)->real()->pMethods->xUnlock(wal(file)->real(), level);
}

int wal_check_reserved_lock(sqlite3_file* file, int* out) {
  return wal(file)->real()->pMethods->xCheckReservedLock(wal(file)->real(), out);
}

int wal_file_control(sqlite3_file* file, int op, void* arg) {
  return wal(file)->real()->pMethods->xFileControl(wal(file)->real(), op, arg);
}

int wal_sector_size(sqlite3_file* file) {
  return wal(file)->real()->pMethods->xSectorSize(wal(file)->real());
}

int wal_device_characteristics(sqlite3_file* file) {
  return wal(file)->real()->pMethods->xDeviceCharacteristics(wal(file)->real());
}

// Version 1: shared memory and memory-mapped reads belong to the database file, never the WAL.
const sqlite3_io_methods kWalMethods = {
    1,          wal_close,     wal_read,      wal_write,
    wal_truncate, wal_sync,    wal_file_size, wal_lock,
    wal_unlock, wal_check_reserved_lock, wal_file_control, wal_sector_size,
    wal_device_characteristics,
    nullptr,    nullptr,       nullptr,       nullptr,
    nullptr,    nullptr};

int shim_open(sqlite3_vfs* /*vfs*/, const char* name, sqlite3_file* file, int flags,
              int* out_flags) {
  if ((flags & SQLITE_OPEN_WAL) == 0) {
    // Not a WAL file: the default VFS's object in place (szOsFile is larger than it needs).
    return g_real->xOpen(g_real, name, file, flags, out_flags);
  }
  auto* f = new (file) WalFile();
  const int rc = g_real->xOpen(g_real, name, f->real(), flags, out_flags);
  if (rc != SQLITE_OK) {
    f->~WalFile();
    file->pMethods = nullptr;  // SQLite calls no xClose for a failed open
    return rc;
  }
  f->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

}  // namespace

const char* wal_write_coalescing_vfs() {
  static const char* const name = []() -> const char* {
    sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
    if (real == nullptr) {
      return nullptr;
    }
    g_real = real;
    // Everything but opening is the default VFS's: its functions, and the fields they read
    // (pAppData, mxPathname), copied.
    static sqlite3_vfs shim = *real;
    shim.pNext = nullptr;
    shim.zName = "sw-wal-write-coalescing";
    shim.szOsFile = static_cast<int>(kRealOffset) + real->szOsFile;
    shim.xOpen = shim_open;
    if (sqlite3_vfs_register(&shim, 0) != SQLITE_OK) {
      return nullptr;
    }
    return shim.zName;
  }();
  return name;
}

}  // namespace sw::sql
