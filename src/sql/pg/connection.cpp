#include "sql/pg/connection.h"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <libpq-fe.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

namespace sw::sql::pg {
namespace {

// libpq's messages end in newlines and indent hints with tabs; ours are one line.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const bool space = c == '\n' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) {
      continue;
    }
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') {
    out.pop_back();
  }
  return out;
}

void replace_all(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) {
    return;
  }
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

// The password as written in the URI's user-info ("scheme://user:PASSWORD@host…"), for
// redaction only: libpq may echo a malformed token of the URI in its error message.
std::string_view raw_password(std::string_view uri) {
  const auto scheme = uri.find("://");
  if (scheme == std::string_view::npos) {
    return {};
  }
  auto authority = uri.substr(scheme + 3);
  authority = authority.substr(0, authority.find_first_of("/?"));
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return {};
  }
  const auto userinfo = authority.substr(0, at);
  const auto colon = userinfo.find(':');
  return colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1);
}

// The value libpq would use for `keyword` (decoded), also for redaction; empty when unset.
std::string parsed_option(const std::string& uri, const char* keyword) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &error);
  PQfreemem(error);
  std::string value;
  for (auto* option = options; option != nullptr && option->keyword != nullptr; ++option) {
    if (std::strcmp(option->keyword, keyword) == 0 && option->val != nullptr) {
      value = option->val;
    }
  }
  PQconninfoFree(options);
  return value;
}

std::string parsed_password(const std::string& uri) {
  return parsed_option(uri, "password");
}

std::string redact(std::string message, const std::string& uri) {
  replace_all(message, raw_password(uri), "***");
  replace_all(message, parsed_password(uri), "***");
  replace_all(message, parsed_option(uri, "sslpassword"), "***");
  return message;
}

std::string describe_conn(const PGconn* conn) {
  auto field = [](const char* value) { return value != nullptr ? value : ""; };
  return fmt::format("host={} port={} dbname={} user={}", field(PQhost(conn)), field(PQport(conn)),
                     field(PQdb(conn)), field(PQuser(conn)));
}

[[noreturn]] void column_misuse(const char* name, std::string_view type, const char* value) {
  // A query read as the wrong type is a bug in our SQL, not bad input: stop here (house style
  // C.3, broken invariant) rather than store a wrong number.
  std::fprintf(stderr, "sql::pg: column %s read as %.*s holds '%s'\n", name,
               static_cast<int>(type.size()), type.data(), value);
  std::abort();
}

// The URI with the user-info password and the password parameters of its query hidden.
std::string redacted_uri_parts(std::string_view uri) {
  std::string out(uri);
  if (const auto password = raw_password(uri); !password.empty()) {
    // raw_password points into the user-info, just before the last '@' of the authority.
    const auto at = static_cast<std::size_t>(password.data() - uri.data());
    out.replace(at, password.size(), "***");
  }
  // libpq also takes the password as a query parameter ("…/db?password=…").
  const auto query = out.find('?');
  if (query == std::string::npos) {
    return out;
  }
  auto parsed = boost::urls::parse_uri_reference(out);
  if (!parsed) {
    // Unreadable as a URI: the whole query goes, in case it holds a password.
    out.replace(query + 1, std::string::npos, "***");
    return out;
  }
  boost::urls::url url(*parsed);
  for (const char* secret : {"password", "sslpassword"}) {
    if (url.params().contains(secret)) {
      url.params().set(secret, "***");  // every such parameter, as one
    }
  }
  return std::string(url.buffer());
}

}  // namespace

std::string redacted_uri(std::string_view uri) {
  std::string out = redacted_uri_parts(uri);
  // Whatever libpq would read as a secret and the URI's structure did not show (a user-info
  // password holding '?' or '/', which a URI parser takes for the query or path): every
  // occurrence of its text goes, at the risk of hiding more than the secret.
  const std::string text(uri);
  for (const char* secret : {"password", "sslpassword"}) {
    replace_all(out, parsed_option(text, secret), "***");
  }
  return out;
}

bool same_connection(std::string_view a, std::string_view b) {
  using Options = std::map<std::string, std::string>;
  const auto options_of = [](std::string_view uri) -> std::optional<Options> {
    const std::string text(uri);
    char* error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(text.c_str(), &error);
    PQfreemem(error);
    if (parsed == nullptr) {
      return std::nullopt;
    }
    Options out;
    for (auto* option = parsed; option->keyword != nullptr; ++option) {
      const std::string_view keyword = option->keyword;
      if (option->val != nullptr && keyword != "password" && keyword != "sslpassword") {
        out.emplace(keyword, option->val);
      }
    }
    PQconninfoFree(parsed);
    return out;
  };
  const auto left = options_of(a);
  const auto right = options_of(b);
  return left && right ? *left == *right : a == b;
}

Param::Param(double value) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  value_ = std::string(buffer, ec == std::errc() ? end : buffer);
}

// ---- Rows -----------------------------------------------------------------------------------

void Rows::Clear::operator()(pg_result* result) const {
  PQclear(result);
}
Rows::~Rows() = default;

int Rows::size() const {
  return PQntuples(result_.get());
}
int Rows::columns() const {
  return PQnfields(result_.get());
}
std::int64_t Rows::affected() const {
  const char* text = PQcmdTuples(result_.get());
  std::int64_t n = 0;
  std::from_chars(text, text + std::strlen(text), n);
  return n;
}
bool Rows::is_null(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}
const char* Rows::cell(int row, int column, std::string_view type) const {
  if (row < 0 || row >= size() || column < 0 || column >= columns()) {
    column_misuse(fmt::format("#{} of row {}", column, row).c_str(), type, "(out of range)");
  }
  return PQgetvalue(result_.get(), row, column);
}
std::string Rows::text(int row, int column) const {
  const char* value = cell(row, column, "text");
  return std::string(value, static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}
std::int64_t Rows::int64(int row, int column) const {
  const char* value = cell(row, column, "int64");
  const char* end = value + std::strlen(value);
  std::int64_t n = 0;
  const auto parsed = std::from_chars(value, end, n);
  if (parsed.ec != std::errc() || parsed.ptr != end || is_null(row, column)) {
    column_misuse(PQfname(result_.get(), column), "int64", value);
  }
  return n;
}
double Rows::real(int row, int column) const {
  const char* value = cell(row, column, "real");
  const char* end = value + std::strlen(value);
  double x = 0;
  const auto parsed = std::from_chars(value, end, x);
  if (parsed.ec != std::errc() || parsed.ptr != end || is_null(row, column)) {
    column_misuse(PQfname(result_.get(), column), "real", value);
  }
  return x;
}
bool Rows::boolean(int row, int column) const {
  const std::string_view value = cell(row, column, "boolean");
  if (value != "t" && value != "f") {
    column_misuse(PQfname(result_.get(), column), "boolean", value.data());
  }
  return value == "t";
}
std::string Rows::bytes(int row, int column) const {
  const char* value = cell(row, column, "bytes");
  if (is_null(row, column)) {
    column_misuse(PQfname(result_.get(), column), "bytes", "NULL");
  }
  std::size_t size = 0;
  unsigned char* decoded = PQunescapeBytea(reinterpret_cast<const unsigned char*>(value), &size);
  if (decoded == nullptr) {
    column_misuse(PQfname(result_.get(), column), "bytes", value);
  }
  std::string out(reinterpret_cast<const char*>(decoded), size);
  PQfreemem(decoded);
  return out;
}
std::optional<std::string> Rows::optional_text(int row, int column) const {
  return is_null(row, column) ? std::nullopt : std::optional(text(row, column));
}
std::optional<std::int64_t> Rows::optional_int64(int row, int column) const {
  return is_null(row, column) ? std::nullopt : std::optional(int64(row, column));
}

// ---- Connection -----------------------------------------------------------------------------

void Connection::Finish::operator()(pg_conn* conn) const {
  PQfinish(conn);
}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

namespace {

// The server answered and refused this login, or libpq refused an option's value: the URI (or
// the server's roles, databases or pg_hba.conf) is wrong, and trying again cannot help. libpq 15
// gives a failed connection no SQLSTATE, so its words decide: the server's FATAL messages for
// 3D000 (database), 28000 (role, pg_hba.conf) and 28P01 (password), and libpq's own "invalid …
// value" for an option (sslmode=bogus). Any other failure (no server, DNS, "starting up",
// "too many clients", a server in another language) stays transient.
bool login_refused(std::string_view detail) {
  const bool from_server = detail.find("FATAL:") != std::string_view::npos;
  for (const std::string_view refusal :
       {"does not exist", "password authentication failed", "no pg_hba.conf entry",
        "authentication failed for user"}) {
    if (from_server && detail.find(refusal) != std::string_view::npos) {
      return true;
    }
  }
  // libpq's own words for an option, alone ("invalid sslmode value: …") or after the server it
  // was trying ("connection to server at … failed: invalid integer value \"abc\" for
  // connection option \"connect_timeout\"").
  const auto invalid = detail.find("invalid ");
  return invalid != std::string_view::npos &&
         detail.find(" value", invalid) != std::string_view::npos;
}

}  // namespace

Result<Connection> Connection::open(std::string_view uri, std::chrono::seconds timeout) {
  const std::string owned(uri);
  if (!uri.starts_with("postgresql://") && !uri.starts_with("postgres://")) {
    return fail(Error::invalid_argument(
        "not a PostgreSQL URI (expected postgresql://user@host:port/database)"));
  }
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(owned.c_str(), &parse_error);
  const bool readable = parsed != nullptr;
  PQconninfoFree(parsed);
  if (!readable) {
    std::string detail = parse_error != nullptr ? one_line(parse_error) : "out of memory";
    PQfreemem(parse_error);
    return fail(Error::invalid_argument("bad PostgreSQL URI: {}", redact(detail, owned)));
  }
  // Defaults first: a connect_timeout or client_encoding in the URI overrides them.
  const std::string seconds = std::to_string(std::max<std::int64_t>(1, timeout.count()));
  const char* keywords[] = {"connect_timeout", "client_encoding", "dbname", nullptr};
  const char* values[] = {seconds.c_str(), "UTF8", owned.c_str(), nullptr};
  Connection conn(PQconnectdbParams(keywords, values, 1));
  if (!conn.conn_) {
    return fail(Error::unavailable("postgresql: out of memory opening a connection"));
  }
  // Server notices (e.g. "relation … already exists, skipping" from the migrations' IF NOT
  // EXISTS) are not errors; libpq's default prints them on stderr, past our logging.
  PQsetNoticeProcessor(
      conn.raw(), [](void*, const char*) {}, nullptr);
  if (PQstatus(conn.raw()) != CONNECTION_OK) {
    const std::string detail = one_line(PQerrorMessage(conn.raw()));
    return fail(Error::make(
        login_refused(detail) || PQconnectionNeedsPassword(conn.raw()) != 0 ? Code::InvalidArgument
                                                                            : Code::Unavailable,
        "postgresql: cannot connect to {}: {}", conn.describe(), redact(detail, owned)));
  }
  return conn;
}

bool Connection::ok() const {
  return conn_ && PQstatus(conn_.get()) == CONNECTION_OK;
}

Connection::TxState Connection::tx_state() const {
  if (!conn_) {
    return TxState::Unknown;
  }
  switch (PQtransactionStatus(conn_.get())) {
    case PQTRANS_IDLE: return TxState::Idle;
    case PQTRANS_INTRANS: return TxState::Open;
    case PQTRANS_INERROR: return TxState::Aborted;
    default: return TxState::Unknown;
  }
}

Status Connection::reconnect() {
  prepared_.clear();  // a new session knows none of them
  PQreset(conn_.get());
  if (!ok()) {
    return fail(Error::unavailable("postgresql: cannot reconnect to {}: {}", describe(),
                                   one_line(PQerrorMessage(conn_.get()))));
  }
  return {};
}

std::string Connection::describe() const {
  return conn_ ? describe_conn(conn_.get()) : "(closed)";
}

Connection::Endpoint Connection::endpoint() const {
  if (!conn_) {
    return {};
  }
  auto field = [](const char* value) { return std::string(value != nullptr ? value : ""); };
  return {field(PQhost(conn_.get())), field(PQport(conn_.get())), field(PQdb(conn_.get())),
          field(PQuser(conn_.get()))};
}

int Connection::socket() const {
  return conn_ ? PQsocket(conn_.get()) : -1;
}

Error Connection::error_from(pg_result* result, std::string_view what) const {
  if (result == nullptr || PQstatus(conn_.get()) != CONNECTION_OK) {
    return Error::unavailable("postgresql {} on {}: {}", what, describe(),
                              one_line(PQerrorMessage(conn_.get())));
  }
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string_view sqlstate = state != nullptr ? state : "";
  Code code = Code::IoError;
  if (sqlstate.starts_with("23")) {
    code = Code::Conflict;
  } else if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate.starts_with("08") ||
             sqlstate.starts_with("57P")) {
    code = Code::Unavailable;
  } else if (sqlstate.starts_with("42")) {
    code = Code::Internal;
  }
  return Error::make(code, "postgresql {}: {} (SQLSTATE {})", what,
                     one_line(PQresultErrorMessage(result)), sqlstate);
}

Result<Rows> Connection::exec(std::string_view sql, std::initializer_list<Param> params) {
  return exec(sql, std::span<const Param>(params.begin(), params.size()));
}

Result<Rows> Connection::exec(std::string_view sql, std::span<const Param> params) {
  const std::string text(sql);
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  std::vector<int> formats(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    values[i] = params[i].is_null() ? nullptr : params[i].value().data();
    lengths[i] = params[i].is_null() ? 0 : static_cast<int>(params[i].value().size());
    formats[i] = params[i].is_binary() ? 1 : 0;
  }
  const int count = static_cast<int>(params.size());
  auto name = prepared_name(text, count);
  if (!name) {
    return fail(std::move(name).error());
  }
  // Parameter types are left to the server (0 = infer from the statement); results in text.
  Rows rows(*name != nullptr ? PQexecPrepared(conn_.get(), (*name)->c_str(), count, values.data(),
                                              lengths.data(), formats.data(), 0)
                             : PQexecParams(conn_.get(), text.c_str(), count, nullptr,
                                            values.data(), lengths.data(), formats.data(), 0));
  const auto status = rows.result_ ? PQresultStatus(rows.result_.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    const char* state =
        rows.result_ ? PQresultErrorField(rows.result_.get(), PG_DIAG_SQLSTATE) : nullptr;
    if (*name != nullptr && state != nullptr && std::string_view(state) == "26000") {
      // The session lost a statement prepared on it: something ran DISCARD or DEALLOCATE, or a
      // pooler in transaction mode moved us to another server session. Prepare nothing more on
      // this connection. Outside a transaction the statement runs again, unprepared; inside one
      // the transaction is aborted, and the caller is told to try again.
      prepare_ = false;
      prepared_.clear();
      if (tx_state() == TxState::Idle) {
        return exec(sql, params);
      }
      return fail(
          Error::unavailable("postgresql exec: the session lost its prepared statements "
                             "(DISCARD, DEALLOCATE or a pooler in transaction mode); "
                             "they are no longer used"));
    }
    return fail(error_from(rows.result_.get(), "exec"));
  }
  return rows;
}

Result<const std::string*> Connection::prepared_name(const std::string& text, int params) {
  if (const auto found = prepared_.find(text); found != prepared_.end()) {
    return &found->second;
  }
  // Off after the session lost its statements; past the cap, statements built at run time do
  // not fill the session with plans.
  if (!prepare_ || prepared_.size() >= kMaxPrepared) {
    return nullptr;
  }
  std::string name = "sw_" + std::to_string(prepared_.size() + 1);
  Rows prepared(PQprepare(conn_.get(), name.c_str(), text.c_str(), params, nullptr));
  const auto status = prepared.result_ ? PQresultStatus(prepared.result_.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK) {
    return fail(error_from(prepared.result_.get(), "exec"));  // as the run would have failed
  }
  return &prepared_.emplace(text, std::move(name)).first->second;
}

Status Connection::exec_script(std::string_view sql) {
  const std::string text(sql);
  Rows rows(PQexec(conn_.get(), text.c_str()));
  const auto status = rows.result_ ? PQresultStatus(rows.result_.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY) {
    return fail(error_from(rows.result_.get(), "script"));
  }
  return {};
}

Status Connection::listen(std::string_view channel) {
  char* quoted = PQescapeIdentifier(conn_.get(), channel.data(), channel.size());
  if (quoted == nullptr) {
    return fail(Error::invalid_argument("postgresql: bad channel name: {}",
                                        one_line(PQerrorMessage(conn_.get()))));
  }
  const std::string statement = std::string("LISTEN ") + quoted;
  PQfreemem(quoted);
  return exec_script(statement);
}

Status Connection::notify(std::string_view channel, std::string_view payload) {
  auto done = exec("SELECT pg_notify($1, $2)", {channel, payload});
  if (!done) {
    return fail(std::move(done).error());
  }
  return {};
}

Result<std::vector<Notification>> Connection::take_notifications() {
  if (PQconsumeInput(conn_.get()) == 0) {
    return fail(Error::unavailable("postgresql: connection to {} lost: {}", describe(),
                                   one_line(PQerrorMessage(conn_.get()))));
  }
  std::vector<Notification> out;
  while (PGnotify* note = PQnotifies(conn_.get())) {
    out.push_back(
        {note->relname != nullptr ? note->relname : "", note->extra != nullptr ? note->extra : ""});
    PQfreemem(note);
  }
  return out;
}

// ---- Transaction ----------------------------------------------------------------------------

Result<Transaction> Transaction::begin(Connection& conn, std::string_view begin) {
  const auto state = conn.tx_state();
  const bool nested = state == Connection::TxState::Open || state == Connection::TxState::Aborted;
  SW_TRY(conn.exec_script(nested ? std::string_view("SAVEPOINT sw_tx") : begin));
  return Transaction(conn, nested);
}

void Transaction::roll_back() {
  if (nested_) {
    // Back to the savepoint, then drop it: the outer transaction goes on as before.
    (void)conn_->exec_script("ROLLBACK TO SAVEPOINT sw_tx; RELEASE SAVEPOINT sw_tx");
  } else {
    (void)conn_->exec_script("ROLLBACK");
  }
}

Transaction::~Transaction() {
  if (conn_ != nullptr) {
    roll_back();
  }
}

Status Transaction::commit() {
  if (conn_ == nullptr) {
    return fail(Error::make(Code::Internal, "postgresql: transaction already ended"));
  }
  if (conn_->tx_state() == Connection::TxState::Aborted) {
    roll_back();
    conn_ = nullptr;
    return fail(Error::make(Code::Conflict,
                            "postgresql: transaction rolled back: a statement in it failed"));
  }
  auto status = conn_->exec_script(nested_ ? std::string_view("RELEASE SAVEPOINT sw_tx")
                                           : std::string_view("COMMIT"));
  if (!status) {
    roll_back();
  }
  conn_ = nullptr;
  return status;
}

}  // namespace sw::sql::pg
