#include "sql/wal_write_coalescing.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <vector>

namespace sw::sql {
namespace {

constexpr int kFrameHeaderBytes = 24;    // WAL file format: a frame header
constexpr int kWalHeaderBytes = 32;      // WAL file format: the file's header, at offset 0
constexpr int kMaxPageBytes = 65536;     // SQLite's largest page size

sqlite3_vfs* g_real = nullptr;  // the default VFS, set once before the shim is registered

// One open WAL file: SQLite allocates szOsFile bytes; this struct is placed at the start and the
// default VFS's own file object right after it.
struct WalFile {
  sqlite3_file base{};  // first: what SQLite sees (pMethods = kWalMethods)
  // A held frame header (pending: its page is the next write) and room for it with its page.
  std::vector<unsigned char> frame;
  bool pending = false;
  sqlite3_int64 pending_at = 0;
  // The end of the frames this handle has appended since it last wrote the WAL header: a header
  // written below it rewrites an existing frame (wal.c walRewriteChecksums) and is never held.
  sqlite3_int64 appended_end = 0;
  // The page size, from the WAL header this handle last wrote (0: not known yet, and nothing is
  // held): only a write that starts a frame can be a frame's header. Not from a header read:
  // recovery reads one before it knows whether it is valid.
  sqlite3_int64 page_size = 0;

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

// Learns the page size from a WAL header (bytes 8..11, big-endian) written at offset 0.
void learn_page_size(WalFile* f, const void* data, int n, sqlite3_int64 at) {
  if (at != 0 || n < kWalHeaderBytes) {
    return;
  }
  const auto* b = static_cast<const unsigned char*>(data);
  const sqlite3_int64 size = (sqlite3_int64{b[8]} << 24) | (sqlite3_int64{b[9]} << 16) |
                             (sqlite3_int64{b[10]} << 8) | sqlite3_int64{b[11]};
  const bool valid = size >= 512 && size <= kMaxPageBytes && (size & (size - 1)) == 0;
  f->page_size = valid ? size : 0;
}

bool starts_frame(const WalFile* f, sqlite3_int64 at) {
  return f->page_size != 0 && at >= kWalHeaderBytes &&
         (at - kWalHeaderBytes) % (f->page_size + kFrameHeaderBytes) == 0;
}

int write_real(WalFile* f, const void* data, int n, sqlite3_int64 at) {
  learn_page_size(f, data, n, at);
  sqlite3_file* real = f->real();
  const int rc = real->pMethods->xWrite(real, data, n, at);
  if (rc == SQLITE_OK) {
    // The WAL header is written when the log (re)starts: frames are appended after it again.
    f->appended_end = at == 0 ? at + n : std::max(f->appended_end, at + n);
  }
  return rc;
}

// Writes a held header alone, before any other use of the file: a safety net, since
// walWriteOneFrame writes the page (or, split at a sync point, its first piece) right after its
// header. A failure here is reported as an I/O error, which makes SQLite roll the transaction
// back.
int flush_header(WalFile* f) {
  if (!f->pending) {
    return SQLITE_OK;
  }
  f->pending = false;
  const int rc = write_real(f, f->frame.data(), kFrameHeaderBytes, f->pending_at);
  return rc == SQLITE_OK ? rc : SQLITE_IOERR_WRITE;
}

int wal_write(sqlite3_file* file, const void* data, int n, sqlite3_int64 at) {
  WalFile* f = wal(file);
  if (f->pending) {
    if (at == f->pending_at + kFrameHeaderBytes && n <= kMaxPageBytes) {
      // The frame's page: header and page in one call.
      std::memcpy(f->frame.data() + kFrameHeaderBytes, data, static_cast<std::size_t>(n));
      f->pending = false;
      return write_real(f, f->frame.data(), kFrameHeaderBytes + n, f->pending_at);
    }
    if (const int rc = flush_header(f); rc != SQLITE_OK) {
      return rc;
    }
  }
  if (n == kFrameHeaderBytes && at >= f->appended_end && starts_frame(f, at)) {
    // A new frame's header: held until its page, the next write.
    std::memcpy(f->frame.data(), data, kFrameHeaderBytes);
    f->pending = true;
    f->pending_at = at;
    return SQLITE_OK;
  }
  return write_real(f, data, n, at);
}

int wal_read(sqlite3_file* file, void* out, int n, sqlite3_int64 at) {
  WalFile* f = wal(file);
  if (const int rc = flush_header(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real()->pMethods->xRead(f->real(), out, n, at);
}

int wal_close(sqlite3_file* file) {
  WalFile* f = wal(file);
  const int flushed = flush_header(f);
  sqlite3_file* real = f->real();
  const int closed = real->pMethods != nullptr ? real->pMethods->xClose(real) : SQLITE_OK;
  f->~WalFile();
  return flushed != SQLITE_OK ? flushed : closed;
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = wal(file);
  if (const int rc = flush_header(f); rc != SQLITE_OK) {
    return rc;
  }
  f->appended_end = std::min(f->appended_end, size);
  return f->real()->pMethods->xTruncate(f->real(), size);
}

int wal_sync(sqlite3_file* file, int flags) {
  WalFile* f = wal(file);
  if (const int rc = flush_header(f); rc != SQLITE_OK) {
    return rc;
  }
  return f->real()->pMethods->xSync(f->real(), flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = wal(file);
  if (const int rc = flush_header(f); rc != SQLITE_OK) {
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
  try {
    f->frame.resize(kFrameHeaderBytes + kMaxPageBytes);  // no allocation while writing
  } catch (const std::bad_alloc&) {
    f->~WalFile();
    file->pMethods = nullptr;
    return SQLITE_NOMEM;
  }
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
