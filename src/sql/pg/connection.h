#pragma once
// A thin RAII layer over libpq (PostgreSQL's C client, Debian's libpq-dev 15; house style A.3):
// a connection opened from a postgresql:// URI, parameterised statements whose rows are read
// with typed accessors, and transactions that roll back unless committed. No ORM: callers write
// SQL. Errors are values; nothing throws.
//
// Thread-safety: a Connection is used by one thread at a time (libpq's PGconn is not
// thread-safe); distinct connections may live on distinct threads. exec() blocks the calling
// thread until the server answers, so call it from a database thread, never from the event loop;
// pg::Listener (listener.h) is the non-blocking part that belongs on the loop.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/error.h"

struct pg_conn;
struct pg_result;

namespace sw::sql::pg {

// Bytes for a BYTEA parameter (sent in binary, so any byte value travels unchanged).
struct Bytes {
  std::string_view data;
};

// One statement parameter ($1, $2, …): text, integer, real, bytes or NULL. Integers and reals
// are sent as their decimal text and PostgreSQL casts them to the column's type.
class Param {
 public:
  Param(std::nullopt_t) {}  // NOLINT(google-explicit-constructor): reads as SQL NULL
  Param(std::string_view text) : value_(text) {}          // NOLINT(google-explicit-constructor)
  Param(const std::string& text) : value_(text) {}        // NOLINT(google-explicit-constructor)
  Param(const char* text) : value_(std::string(text)) {}  // NOLINT(google-explicit-constructor)
  Param(std::int64_t value) : value_(std::to_string(value)) {}  // NOLINT
  Param(int value) : value_(std::to_string(value)) {}  // NOLINT(google-explicit-constructor)
  Param(double value);  // NOLINT(google-explicit-constructor): shortest round-trip text
  Param(Bytes bytes) : value_(std::string(bytes.data)), binary_(true) {}  // NOLINT
  template <class T>
  Param(const std::optional<T>& value) {  // NOLINT(google-explicit-constructor)
    if (value) {
      *this = Param(*value);
    }
  }

  bool is_null() const { return !value_; }
  bool is_binary() const { return binary_; }
  const std::string& value() const { return *value_; }

 private:
  std::optional<std::string> value_;
  bool binary_ = false;
};

// The rows (or command status) of one statement. Results are in text format; the accessors
// convert. Row and column indexes start at 0. Reading a column as a type it does not hold (text
// as an integer) is a programming error: the process aborts naming the column. Move-only.
class Rows {
 public:
  Rows(Rows&&) noexcept = default;
  Rows& operator=(Rows&&) noexcept = default;
  ~Rows();

  int size() const;
  bool empty() const { return size() == 0; }
  int columns() const;
  // Rows changed by INSERT/UPDATE/DELETE (also with RETURNING); 0 for other statements.
  std::int64_t affected() const;

  bool is_null(int row, int column) const;
  std::string text(int row, int column) const;
  std::int64_t int64(int row, int column) const;
  double real(int row, int column) const;
  bool boolean(int row, int column) const;
  // A BYTEA column's bytes (decoded from PostgreSQL's hex text form).
  std::string bytes(int row, int column) const;
  std::optional<std::string> optional_text(int row, int column) const;
  std::optional<std::int64_t> optional_int64(int row, int column) const;

 private:
  friend class Connection;
  struct Clear {
    void operator()(pg_result* result) const;
  };
  explicit Rows(pg_result* result) : result_(result) {}
  const char* cell(int row, int column, std::string_view type) const;
  std::unique_ptr<pg_result, Clear> result_;
};

// A LISTEN/NOTIFY notification: its channel and payload.
struct Notification {
  std::string channel;
  std::string payload;
};

// One connection to a PostgreSQL server. Move-only; closed by the destructor.
class Connection {
 public:
  // Opens `uri` ("postgresql://user:password@host:port/db?param=…" or "postgres://…"), waiting at
  // most `timeout` (unless the URI sets connect_timeout). Errors: InvalidArgument when trying
  // again cannot help (a URI libpq cannot read, an option value it refuses, a server that
  // answered and refused the login: unknown database or role, wrong or missing password, no
  // pg_hba.conf entry), Unavailable otherwise (no server there yet, starting up, too many
  // clients). Messages name the host, port, database and user, never the password.
  static Result<Connection> open(std::string_view uri,
                                 std::chrono::seconds timeout = std::chrono::seconds(10));

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  // Runs one statement with $1…$n parameters. Errors carry the server's message and SQLSTATE:
  // Conflict for integrity violations (class 23), Unavailable for a lost connection, a
  // serialization failure or a deadlock (worth retrying), Internal for SQL errors (class 42),
  // IoError otherwise. The first kMaxPrepared distinct statement texts are prepared on the
  // session (PQprepare) the first time they run and executed by name afterwards, so that the
  // server parses and analyses each once per connection, not once per call. A session that
  // loses them (DISCARD ALL, a pooler in transaction mode: SQLSTATE 26000) turns preparing off
  // for this connection; that statement is run again unprepared outside a transaction, and
  // inside one fails Unavailable (the transaction is aborted).
  static constexpr std::size_t kMaxPrepared = 256;
  Result<Rows> exec(std::string_view sql, std::initializer_list<Param> params = {});
  Result<Rows> exec(std::string_view sql, std::span<const Param> params);
  // Runs a script of several statements without parameters (migrations, DDL).
  Status exec_script(std::string_view sql);

  // LISTEN on a channel (quoted as an identifier). Notifications then arrive through
  // take_notifications() or a pg::Listener.
  Status listen(std::string_view channel);
  // pg_notify(channel, payload): delivered at the commit of the surrounding transaction.
  Status notify(std::string_view channel, std::string_view payload);
  // Reads what the server has sent without blocking and returns the notifications received so
  // far (possibly none). Unavailable when the connection is lost.
  Result<std::vector<Notification>> take_notifications();

  // False once the connection is lost (the server restarted, the network failed).
  bool ok() const;
  // Where the connection stands towards a transaction (PQtransactionStatus): Idle outside one,
  // Open inside, Aborted after a failed statement (only ROLLBACK [TO SAVEPOINT] works then),
  // Unknown when the connection is lost or a command is running.
  enum class TxState { Idle, Open, Aborted, Unknown };
  TxState tx_state() const;
  // Reconnects with the same parameters (blocking); LISTENs must be issued again.
  Status reconnect();
  // "host=… port=… dbname=… user=…" for messages; never the password.
  std::string describe() const;
  // The same parts one by one (for key=value logs); empty when closed.
  struct Endpoint {
    std::string host, port, dbname, user;
  };
  Endpoint endpoint() const;
  // The socket, for waiting on readability (pg::Listener); -1 when closed.
  int socket() const;
  pg_conn* raw() const { return conn_.get(); }

 private:
  struct Finish {
    void operator()(pg_conn* conn) const;
  };
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  Error error_from(pg_result* result, std::string_view what) const;
  // The server-side name `text` is prepared under (preparing it now when there is room);
  // nullptr when it runs unprepared. The error when preparing it failed (a bad statement).
  Result<const std::string*> prepared_name(const std::string& text, int params);

  std::unique_ptr<pg_conn, Finish> conn_;
  // Statement text → its prepared name ("sw_1", …). Prepared statements belong to the session:
  // forgotten by reconnect().
  std::unordered_map<std::string, std::string> prepared_;
  bool prepare_ = true;  // off for good once the session lost its prepared statements
};

// `uri` with its secrets replaced by "***", for messages, printed commands and the data
// directory's `database` file: the user-info's password ("postgresql://user:***@host/db") and
// every `password` and `sslpassword` query parameter ("…/db?password=***"). A URI with a query
// that Boost.URL cannot read loses its whole query ("…/db?***"). Then any text of what libpq
// itself reads as `password` or `sslpassword` that is still there (a user-info password with a
// '?' in it) is replaced wherever it occurs, at the risk of hiding more than the secret.
std::string redacted_uri(std::string_view uri);

// True when `a` and `b` name the same connection, secrets aside: every option libpq reads from
// them (host, port, dbname, user, sslmode, …) is the same, whatever the password and wherever
// it is written (user-info or query), so a redacted URI equals the URI it came from. A URI
// libpq cannot read is compared as text.
bool same_connection(std::string_view a, std::string_view b);

// BEGIN … COMMIT on one connection; rolls back in the destructor unless committed. commit() of a
// transaction in which a statement failed rolls back and reports Conflict (PostgreSQL would
// silently turn that COMMIT into a ROLLBACK). Opened while the connection is already inside a
// transaction (the studio's DbWorker batch), it is a SAVEPOINT instead: commit releases it, the
// destructor rolls back to it, so a multi-statement method stays atomic alone and nests in a
// batch (PQtransactionStatus tells which). Move-only; must not outlive its Connection.
class Transaction {
 public:
  // `begin` is the opening statement: "BEGIN", or e.g. "BEGIN ISOLATION LEVEL SERIALIZABLE"
  // (ignored when nested: a savepoint has the outer transaction's isolation).
  static Result<Transaction> begin(Connection& conn, std::string_view begin = "BEGIN");
  Transaction(Transaction&& other) noexcept
      : conn_(std::exchange(other.conn_, nullptr)), nested_(other.nested_) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status commit();

 private:
  Transaction(Connection& conn, bool nested) : conn_(&conn), nested_(nested) {}
  void roll_back();
  Connection* conn_;
  bool nested_ = false;
};

}  // namespace sw::sql::pg
