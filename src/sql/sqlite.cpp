#include "sql/sqlite.h"

#include <fcntl.h>
#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "common/file_io.h"
#include "sql/wal_write_coalescing.h"

namespace sw::sql {
namespace {

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int primary = rc & 0xff;
  Code code = Code::IoError;
  if (primary == SQLITE_CONSTRAINT) {
    code = Code::Conflict;
  } else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    code = Code::Unavailable;
  } else if (primary == SQLITE_ERROR || primary == SQLITE_MISUSE || primary == SQLITE_RANGE) {
    code = Code::Internal;
  }
  return Error::make(code, "sqlite {}: {}", what, detail);
}

}  // namespace

void Db::Closer::operator()(sqlite3* db) const {
  sqlite3_close_v2(db);
}
void Stmt::Finalizer::operator()(sqlite3_stmt* stmt) const {
  sqlite3_finalize(stmt);
}

Db::Db(Db&&) noexcept = default;
Db& Db::operator=(Db&&) noexcept = default;
Db::~Db() = default;

Result<Db> Db::open(const std::filesystem::path& path) {
  if (path != ":memory:" && !path.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      // O_EXCL: a file that appeared meanwhile (another process) keeps its mode.
      auto created = open_private_file(path, O_RDWR | O_CREAT | O_EXCL);
      if (!created && !std::filesystem::exists(path, ec)) {
        return fail(
            Error::io("cannot create database {}: {}", path.string(), created.error().message));
      }
    }
  }
  sqlite3* raw = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  // Each WAL frame, header and page, reaches the kernel in one write (wal_write_coalescing.h).
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, wal_write_coalescing_vfs());
  Db db(raw);
  if (rc != SQLITE_OK) {
    return fail(Error::io("cannot open database {}: {}", path.string(),
                          raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  SW_TRY(db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  return db;
}

Result<std::string> Db::quick_check() {
  auto check = prepare("PRAGMA quick_check(8)");
  if (!check) {
    return fail(std::move(check).error());
  }
  std::string findings;
  while (true) {
    auto row = check->step();
    if (!row) {
      return fail(std::move(row).error());
    }
    if (!*row) {
      break;
    }
    findings += (findings.empty() ? "" : "; ") + check->text(0);
  }
  return findings.empty() ? std::string("no answer") : findings;
}

Status Db::exec(std::string_view sql) {
  const std::string owned(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_.get(), owned.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return fail(Error::make(rc == SQLITE_BUSY ? Code::Unavailable : Code::IoError,
                            "sqlite exec: {}", detail));
  }
  return {};
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const int rc =
      sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  Stmt stmt(raw);
  if (rc != SQLITE_OK) {
    return fail(sqlite_error(db_.get(), rc, "prepare"));
  }
  return stmt;
}

std::int64_t Db::changes() const {
  return sqlite3_changes64(db_.get());
}
void Db::set_busy_timeout(std::chrono::milliseconds timeout) {
  sqlite3_busy_timeout(db_.get(), static_cast<int>(timeout.count()));
}

std::int64_t Db::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_.get());
}

void Stmt::note_bind(int rc) {
  if (rc != SQLITE_OK && bind_error_ == 0) {
    bind_error_ = rc;
  }
}

Stmt& Stmt::bind(int index, std::int64_t value) {
  note_bind(sqlite3_bind_int64(stmt_.get(), index, value));
  return *this;
}
Stmt& Stmt::bind(int index, double value) {
  note_bind(sqlite3_bind_double(stmt_.get(), index, value));
  return *this;
}
Stmt& Stmt::bind(int index, std::string_view text) {
  note_bind(sqlite3_bind_text64(stmt_.get(), index, text.data(), text.size(), SQLITE_TRANSIENT,
                                SQLITE_UTF8));
  return *this;
}
Stmt& Stmt::bind_blob(int index, std::string_view bytes) {
  note_bind(sqlite3_bind_blob64(stmt_.get(), index, bytes.data(), bytes.size(), SQLITE_TRANSIENT));
  return *this;
}
Stmt& Stmt::bind_null(int index) {
  note_bind(sqlite3_bind_null(stmt_.get(), index));
  return *this;
}

Result<bool> Stmt::step() {
  sqlite3* db = sqlite3_db_handle(stmt_.get());
  if (bind_error_ != 0) {
    return fail(sqlite_error(db, bind_error_, "bind"));
  }
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return fail(sqlite_error(db, rc, "step"));
}

Status Stmt::run() {
  while (true) {
    auto row = step();
    if (!row) {
      return fail(std::move(row).error());
    }
    if (!*row) {
      return {};
    }
  }
}

void Stmt::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
  bind_error_ = 0;
}

bool Stmt::is_null(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}
std::int64_t Stmt::int64(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}
double Stmt::real(int column) const {
  return sqlite3_column_double(stmt_.get(), column);
}
std::string Stmt::text(int column) const {
  const auto* bytes = sqlite3_column_text(stmt_.get(), column);
  const int size = sqlite3_column_bytes(stmt_.get(), column);
  return bytes == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(size));
}
std::string Stmt::blob(int column) const {
  const auto* bytes = sqlite3_column_blob(stmt_.get(), column);
  const int size = sqlite3_column_bytes(stmt_.get(), column);
  return bytes == nullptr
             ? std::string()
             : std::string(static_cast<const char*>(bytes), static_cast<std::size_t>(size));
}
std::optional<std::string> Stmt::optional_text(int column) const {
  if (is_null(column)) {
    return std::nullopt;
  }
  return text(column);
}
std::optional<std::int64_t> Stmt::optional_int64(int column) const {
  if (is_null(column)) {
    return std::nullopt;
  }
  return int64(column);
}

Result<Tx> Tx::begin(Db& db) {
  SW_TRY(db.exec("BEGIN IMMEDIATE"));
  return Tx(db);
}

Tx::~Tx() {
  if (db_ != nullptr) {
    (void)db_->exec("ROLLBACK");
  }
}

Status Tx::commit() {
  Db* db = std::exchange(db_, nullptr);
  auto status = db->exec("COMMIT");
  if (!status) {
    (void)db->exec("ROLLBACK");
  }
  return status;
}

Status migrate(Db& db, std::span<const Migration> migrations) {
  SW_TRY(
      db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
              "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"));
  auto current_stmt = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current_stmt) {
    return fail(std::move(current_stmt).error());
  }
  auto row = current_stmt->step();
  if (!row) {
    return fail(std::move(row).error());
  }
  const auto current = current_stmt->int64(0);
  current_stmt->reset();
  SW_TRY(check_migrations(current, migrations, Dialect::Sqlite));
  for (const auto& migration : migrations) {
    if (migration.version <= current) {
      continue;
    }
    auto tx = Tx::begin(db);
    if (!tx) {
      return fail(std::move(tx).error());
    }
    if (auto applied = db.exec(migration.sqlite); !applied) {
      return fail(Error::io("migration {} failed: {}", migration.version, applied.error().message));
    }
    auto record = db.prepare("INSERT INTO schema_migrations(version) VALUES (?)");
    if (!record) {
      return fail(std::move(record).error());
    }
    SW_TRY(record->bind(1, migration.version).run());
    SW_TRY(tx->commit());
  }
  return {};
}

}  // namespace sw::sql
