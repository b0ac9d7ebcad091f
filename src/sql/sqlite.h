#pragma once
// A thin RAII layer over the SQLite C API (house style C.2 §10): a connection, prepared
// statements with typed binds and columns, BEGIN IMMEDIATE transactions and the numbered
// migration runner. Shared by the studio's store and the worker's outbox. Errors are values.
// Not thread-safe: one Db per thread (SQLite serialises writers itself; we keep one writer).

#include <cstdint>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "sql/migration.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sw::sql {

class Stmt;

// One open database connection. Move-only.
class Db {
 public:
  // Opens (creating) `path` with WAL, synchronous=NORMAL, foreign_keys=ON and a 5 s busy
  // timeout, through the WAL write-coalescing VFS (wal_write_coalescing.h). ":memory:" gives a private in-memory database. Every database here holds private
  // data: a missing file is created 0600 before SQLite opens it, whatever the umask, and SQLite
  // gives the -wal and -shm files it creates the main file's mode (os_unix.c findCreateFileMode,
  // unixOpenSharedMemory). An existing file's mode is left to the caller (see file_io.h).
  static Result<Db> open(const std::filesystem::path& path);

  Db(Db&&) noexcept;
  Db& operator=(Db&&) noexcept;
  ~Db();

  // Runs one or more statements that return no rows.
  Status exec(std::string_view sql);
  Result<Stmt> prepare(std::string_view sql);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  std::int64_t changes() const;
  std::int64_t last_insert_rowid() const;
  // How long a statement waits for another connection's lock before failing with "database is
  // locked" (SQLITE_BUSY); open() sets 5 s.
  void set_busy_timeout(std::chrono::milliseconds timeout);
  sqlite3* raw() const { return db_.get(); }

  // PRAGMA quick_check: "ok", or SQLite's first findings about damaged pages joined by "; ".
  // O(database size); meant for start-up.
  Result<std::string> quick_check();

 private:
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  explicit Db(sqlite3* db) : db_(db) {}
  std::unique_ptr<sqlite3, Closer> db_;
};

// A prepared statement. bind() indexes start at 1, column() indexes at 0. step() returns true
// while a row is available. Move-only; must not outlive its Db.
class Stmt {
 public:
  Stmt(Stmt&&) noexcept = default;
  Stmt& operator=(Stmt&&) noexcept = default;

  Stmt& bind(int index, std::int64_t value);
  Stmt& bind(int index, double value);
  Stmt& bind(int index, std::string_view text);
  Stmt& bind_null(int index);
  Stmt& bind_blob(int index, std::string_view bytes);
  template <class T>
  Stmt& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }
  Stmt& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Stmt& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  Stmt& bind(int index, const char* text) { return bind(index, std::string_view(text)); }

  // Steps once; true when a row is ready, false when done. The first bind error is reported here.
  Result<bool> step();
  // Steps to completion, for statements that return no rows.
  Status run();
  // Clears bindings and rewinds, so a cached statement can run again.
  void reset();

  bool is_null(int column) const;
  std::int64_t int64(int column) const;
  double real(int column) const;
  std::string text(int column) const;
  std::optional<std::string> optional_text(int column) const;
  std::optional<std::int64_t> optional_int64(int column) const;
  std::string blob(int column) const;

 private:
  friend class Db;
  struct Finalizer {
    void operator()(sqlite3_stmt* stmt) const;
  };
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  void note_bind(int rc);
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  int bind_error_ = 0;
};

// BEGIN IMMEDIATE … COMMIT; rolls back in the destructor unless committed.
class Tx {
 public:
  static Result<Tx> begin(Db& db);
  Tx(Tx&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Tx& operator=(Tx&&) = delete;
  ~Tx();
  Status commit();

 private:
  explicit Tx(Db& db) : db_(&db) {}
  Db* db_;
};

// Applies every migration above the recorded version (its SQLite text), each in its own
// BEGIN IMMEDIATE transaction, and records it in `schema_migrations`. Refuses a database whose
// version is newer than the newest in `migrations` (Code::Conflict, see migration.h).
Status migrate(Db& db, std::span<const Migration> migrations);

}  // namespace sw::sql
