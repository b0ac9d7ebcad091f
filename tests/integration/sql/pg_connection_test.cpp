// The libpq layer against a real PostgreSQL 15 (tests/support/postgres_server.h): connecting and
// its errors, parameters, transactions, LISTEN/NOTIFY on an Asio loop, and the queue claim
// statement the studio's PostgreSQL store builds on.

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <latch>
#include <set>
#include <thread>
#include <vector>

#include "sql/pg/connection.h"
#include "sql/pg/listener.h"
#include "support/postgres_server.h"

namespace sw::sql::pg {
namespace {

namespace asio = boost::asio;
using PgConnection = sw::testing::PostgresTest;

Connection open_ok(const std::string& uri) {
  auto conn = Connection::open(uri);
  EXPECT_TRUE(conn) << conn.error().describe();
  return std::move(*conn);
}

TEST_F(PgConnection, ConnectsAndSaysWhereWithoutThePassword) {
  auto conn = open_ok(uri_);
  EXPECT_TRUE(conn.ok());
  auto one = conn.exec("SELECT 1 + 1");
  ASSERT_TRUE(one) << one.error().describe();
  EXPECT_EQ(one->int64(0, 0), 2);
  EXPECT_NE(conn.describe().find("host=127.0.0.1"), std::string::npos) << conn.describe();
  EXPECT_NE(conn.describe().find("dbname=t_pgconnection_"), std::string::npos);
}

TEST_F(PgConnection, AUriLibpqCannotReadIsAnInvalidArgument) {
  auto other = Connection::open("mysql://sw@127.0.0.1/db");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Code::InvalidArgument);
  // A malformed percent-escape inside the password: libpq's message quotes the token.
  auto bad = Connection::open("postgresql://sw:hunter%zz2@127.0.0.1:1/db");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::InvalidArgument) << bad.error().describe();
  EXPECT_EQ(bad.error().message.find("hunter"), std::string::npos) << bad.error().message;
  auto unknown = Connection::open("postgresql://sw@127.0.0.1/db?no_such_option=1");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::InvalidArgument);
  EXPECT_NE(unknown.error().message.find("no_such_option"), std::string::npos)
      << unknown.error().message;
}

TEST_F(PgConnection, ARefusedConnectionNamesHostPortAndDatabaseButNeverThePassword) {
  // Port 1: privileged, and no PostgreSQL there.
  auto refused =
      Connection::open("postgresql://sw:s3cret-pw@127.0.0.1:1/inventory", std::chrono::seconds(2));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::Unavailable);
  const auto& message = refused.error().message;
  EXPECT_NE(message.find("127.0.0.1"), std::string::npos) << message;
  EXPECT_NE(message.find("port=1"), std::string::npos) << message;
  EXPECT_NE(message.find("dbname=inventory"), std::string::npos) << message;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
}

// What the server answers with a refusal, and what libpq refuses itself, cannot change by trying
// again: InvalidArgument, so that `studio-server serve` exits 2 (a unit does not restart it for
// ever) instead of 1 (transient, as when no server answers yet).
TEST_F(PgConnection, ALoginTheServerRefusesIsAnInvalidArgumentNamingWhy) {
  auto missing = Connection::open(server_->uri("no_such_db"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::InvalidArgument) << missing.error().message;
  EXPECT_NE(missing.error().message.find("no_such_db"), std::string::npos)
      << missing.error().message;
  auto role = Connection::open(
      "postgresql://nobody_here@127.0.0.1:" + std::to_string(server_->port()) + "/postgres");
  ASSERT_FALSE(role);
  EXPECT_EQ(role.error().code, Code::InvalidArgument) << role.error().message;
  EXPECT_NE(role.error().message.find("nobody_here"), std::string::npos) << role.error().message;
  auto sslmode = Connection::open(server_->uri() + "?sslmode=bogus");
  ASSERT_FALSE(sslmode);
  EXPECT_EQ(sslmode.error().code, Code::InvalidArgument) << sslmode.error().message;
  EXPECT_NE(sslmode.error().message.find("sslmode"), std::string::npos) << sslmode.error().message;
}

// What the studio prints and keeps of --database: no password, wherever the URI carries it.
TEST(PgRedactedUri, HidesTheUserInfoPasswordAndEveryPasswordParameter) {
  EXPECT_EQ(redacted_uri("postgresql://studio:s3cret@db:5432/studio"),
            "postgresql://studio:***@db:5432/studio");
  EXPECT_EQ(redacted_uri("postgresql://studio@127.0.0.1:55432/studio5?password=SeCrEt99"),
            "postgresql://studio@127.0.0.1:55432/studio5?password=***");
  const auto both = redacted_uri(
      "postgresql://u:one@h/db?sslmode=require&password=two&application_name=x&password=three");
  EXPECT_EQ(both.find("one"), std::string::npos) << both;
  EXPECT_EQ(both.find("two"), std::string::npos) << both;
  EXPECT_EQ(both.find("three"), std::string::npos) << both;
  EXPECT_NE(both.find("sslmode=require"), std::string::npos) << both;
  EXPECT_NE(both.find("application_name=x"), std::string::npos) << both;
  // A query Boost.URL cannot read is dropped whole.
  const auto unreadable = redacted_uri("postgresql://u@h/db?password=a b%zz");
  EXPECT_EQ(unreadable, "postgresql://u@h/db?***");
  EXPECT_EQ(redacted_uri("postgresql://u@h/db"), "postgresql://u@h/db");
  // What libpq reads as the password, though a URI parser sees a query ('?' in the user-info).
  const auto odd = redacted_uri("postgresql://u:pw?x@h/db");
  EXPECT_EQ(odd.find("pw?x"), std::string::npos) << odd;
  // The client key's passphrase.
  EXPECT_EQ(redacted_uri("postgresql://u@h/db?sslmode=verify-full&sslpassword=S3kr1t"),
            "postgresql://u@h/db?sslmode=verify-full&sslpassword=***");
}

// A data directory remembers its URI redacted; the same connection given with its password
// elsewhere (user-info or query) is not a changed database, another host, port, database, user
// or sslmode is.
TEST(PgSameConnection, IgnoresThePasswordAndWhereItIsWrittenOnly) {
  const std::string uri = "postgresql://studio:pw@db.example:5432/studio";
  EXPECT_TRUE(same_connection(redacted_uri(uri), uri));
  EXPECT_TRUE(same_connection(uri, "postgresql://studio@db.example:5432/studio?password=pw"));
  EXPECT_TRUE(same_connection(uri, "postgresql://studio:other@db.example:5432/studio"));
  EXPECT_FALSE(same_connection(uri, "postgresql://studio:pw@db.example:5433/studio"));
  EXPECT_FALSE(same_connection(uri, "postgresql://studio:pw@db2.example:5432/studio"));
  EXPECT_FALSE(same_connection(uri, "postgresql://studio:pw@db.example:5432/other"));
  EXPECT_FALSE(same_connection(uri, "postgresql://admin:pw@db.example:5432/studio"));
  EXPECT_FALSE(same_connection(uri, uri + "?sslmode=require"));
  EXPECT_FALSE(same_connection("postgresql://u@h/db?x=%zz", "postgresql://u@h/db"));
}

TEST_F(PgConnection, ParametersRoundTripTextBigintBytesRealAndNull) {
  auto conn = open_ok(uri_);
  ASSERT_TRUE(conn.exec_script(
      "CREATE TABLE t (id BIGINT PRIMARY KEY, s TEXT, b BYTEA, r DOUBLE PRECISION)"));
  const std::string text = "it's \"quoted\", $1, ünïcödé, back\\slash";
  const std::string bytes("\x00\x01\xff\x00\\x41'", 8);
  const std::int64_t big = 9'007'199'254'740'993;  // above 2^53: no double on the way
  auto inserted = conn.exec("INSERT INTO t VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)",
                            {big, text, Bytes{bytes}, 0.1, std::int64_t{-1}, std::nullopt,
                             std::optional<std::string>(), std::optional<double>()});
  ASSERT_TRUE(inserted) << inserted.error().describe();
  EXPECT_EQ(inserted->affected(), 2);
  auto rows = conn.exec("SELECT id, s, b, r FROM t ORDER BY id DESC");
  ASSERT_TRUE(rows) << rows.error().describe();
  ASSERT_EQ(rows->size(), 2);
  EXPECT_EQ(rows->int64(0, 0), big);
  EXPECT_EQ(rows->text(0, 1), text);
  EXPECT_EQ(rows->bytes(0, 2), bytes);
  EXPECT_EQ(rows->real(0, 3), 0.1);
  EXPECT_EQ(rows->int64(1, 0), -1);
  EXPECT_TRUE(rows->is_null(1, 1));
  EXPECT_EQ(rows->optional_text(1, 1), std::nullopt);
  EXPECT_TRUE(rows->is_null(1, 2));
  EXPECT_TRUE(rows->is_null(1, 3));
  EXPECT_EQ(rows->optional_int64(1, 0), -1);
}

TEST_F(PgConnection, StatementErrorsCarryTheServersMessageAndAKind) {
  auto conn = open_ok(uri_);
  ASSERT_TRUE(conn.exec_script("CREATE TABLE u (k TEXT PRIMARY KEY)"));
  ASSERT_TRUE(conn.exec("INSERT INTO u VALUES ($1)", {"a"}));
  auto duplicate = conn.exec("INSERT INTO u VALUES ($1)", {"a"});
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code, Code::Conflict);
  EXPECT_NE(duplicate.error().message.find("23505"), std::string::npos);
  auto typo = conn.exec("SELEC 1");
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().code, Code::Internal);
  EXPECT_NE(typo.error().message.find("syntax error"), std::string::npos);
  EXPECT_TRUE(conn.ok());  // a statement error leaves the connection usable
}

constexpr std::string_view kAddOne = "SELECT $1::bigint + 1";
// How many statements exec() has prepared on this session (it names them sw_1, sw_2, …).
constexpr std::string_view kPreparedCount =
    "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sw\\_%'";

// exec() prepares a statement on the session the first time its text runs and runs it by name
// afterwards, also after a rollback; a new session (after the server dropped the old one)
// prepares again, and statements past the cap run unprepared.
TEST_F(PgConnection, StatementsArePreparedOnceAndStillRunAfterAReconnectOrPastTheCap) {
  auto conn = open_ok(uri_);
  for (int i = 0; i < 3; ++i) {
    auto sum = conn.exec(kAddOne, {std::int64_t{41}});
    ASSERT_TRUE(sum) << sum.error().describe();
    EXPECT_EQ(sum->int64(0, 0), 42);
  }
  auto count = conn.exec(kPreparedCount);
  ASSERT_TRUE(count) << count.error().describe();
  EXPECT_EQ(count->int64(0, 0), 2) << "the sum's statement and this one, each prepared once";

  // Prepared in a transaction that rolls back: a prepared statement is the session's, not the
  // transaction's, so it runs again afterwards.
  const std::string_view add_two = "SELECT $1::bigint + 2";
  {
    auto tx = Transaction::begin(conn);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn.exec(add_two, {std::int64_t{1}}));
  }  // rolled back
  auto after_rollback = conn.exec(add_two, {std::int64_t{1}});
  ASSERT_TRUE(after_rollback) << after_rollback.error().describe();
  EXPECT_EQ(after_rollback->int64(0, 0), 3);

  auto admin = open_ok(uri_);
  auto pid = conn.exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid);
  ASSERT_TRUE(admin.exec("SELECT pg_terminate_backend($1)", {pid->int64(0, 0)}));
  EXPECT_FALSE(conn.exec(kAddOne, {std::int64_t{1}}));
  ASSERT_TRUE(conn.reconnect());
  auto again = conn.exec(kAddOne, {std::int64_t{1}});
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(again->int64(0, 0), 2);

  for (std::size_t n = 0; n < Connection::kMaxPrepared + 10; ++n) {
    const auto text = "SELECT $1::bigint + 0 + " + std::to_string(n);
    auto sum = conn.exec(text, {std::int64_t{1}});
    ASSERT_TRUE(sum) << text << ": " << sum.error().describe();
    EXPECT_EQ(sum->int64(0, 0), static_cast<std::int64_t>(n) + 1);
  }
  count = conn.exec(kPreparedCount);
  ASSERT_TRUE(count) << count.error().describe();
  EXPECT_EQ(count->int64(0, 0), static_cast<std::int64_t>(Connection::kMaxPrepared));
}

// A session that loses its prepared statements (DEALLOCATE/DISCARD ALL, or a pooler in
// transaction mode handing us another server session) stops preparing: outside a transaction
// the statement runs again at once; inside one the transaction fails Unavailable (try again),
// and the next try runs unprepared.
TEST_F(PgConnection, ASessionThatLosesItsPreparedStatementsRunsThemUnpreparedFromThenOn) {
  auto idle = open_ok(uri_);
  ASSERT_TRUE(idle.exec(kAddOne, {std::int64_t{1}}));
  ASSERT_TRUE(idle.exec_script("DEALLOCATE ALL"));
  auto rerun = idle.exec(kAddOne, {std::int64_t{1}});
  ASSERT_TRUE(rerun) << rerun.error().describe();
  EXPECT_EQ(rerun->int64(0, 0), 2);
  auto count = idle.exec(kPreparedCount);
  ASSERT_TRUE(count) << count.error().describe();
  EXPECT_EQ(count->int64(0, 0), 0) << "nothing is prepared any more";

  auto in_transaction = open_ok(uri_);
  ASSERT_TRUE(in_transaction.exec(kAddOne, {std::int64_t{1}}));
  ASSERT_TRUE(in_transaction.exec_script("DISCARD ALL"));
  {
    auto tx = Transaction::begin(in_transaction);
    ASSERT_TRUE(tx);
    auto lost = in_transaction.exec(kAddOne, {std::int64_t{1}});
    ASSERT_FALSE(lost);
    EXPECT_EQ(lost.error().code, Code::Unavailable) << lost.error().describe();
  }  // rolled back
  auto retried = in_transaction.exec(kAddOne, {std::int64_t{2}});
  ASSERT_TRUE(retried) << retried.error().describe();
  EXPECT_EQ(retried->int64(0, 0), 3);
}

TEST_F(PgConnection, AFailedTransactionRollsBackAndAnUncommittedOneLeavesNothing) {
  auto conn = open_ok(uri_);
  ASSERT_TRUE(conn.exec_script("CREATE TABLE v (k TEXT PRIMARY KEY)"));
  {
    auto tx = Transaction::begin(conn);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn.exec("INSERT INTO v VALUES ('kept-only-if-committed')"));
    EXPECT_FALSE(conn.exec("INSERT INTO v VALUES (NULL)"));  // NOT NULL violation
    auto committed = tx->commit();
    ASSERT_FALSE(committed);
    EXPECT_EQ(committed.error().code, Code::Conflict);
  }
  {
    auto tx = Transaction::begin(conn);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn.exec("INSERT INTO v VALUES ('dropped')"));
  }  // destroyed without commit
  auto count = conn.exec("SELECT count(*) FROM v");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->int64(0, 0), 0);
  {
    auto tx = Transaction::begin(conn);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn.exec("INSERT INTO v VALUES ('committed')"));
    ASSERT_TRUE(tx->commit());
  }
  count = conn.exec("SELECT count(*) FROM v");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->int64(0, 0), 1);
}

asio::awaitable<void> wait_once(Listener& listener, Result<std::vector<Notification>>& out,
                                asio::steady_timer& guard) {
  out = co_await listener.wait();
  guard.cancel();
}

TEST_F(PgConnection, NotifyWakesAWaiterOnTheLoopWhileTheLoopKeepsRunning) {
  auto listening = open_ok(uri_);
  ASSERT_TRUE(listening.listen("jobs ready"));
  asio::io_context io;
  auto listener = Listener::create(io.get_executor(), listening);
  ASSERT_TRUE(listener) << listener.error().describe();
  Result<std::vector<Notification>> got = fail(Error::internal("never completed"));
  asio::steady_timer guard(io, std::chrono::seconds(30));  // a bound, not a pace
  guard.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      (*listener)->cancel();
    }
  });
  asio::co_spawn(io, wait_once(**listener, got, guard), asio::detached);
  // This handler runs only if the pending wait leaves the loop free; it then has another
  // connection commit a notification.
  std::thread notifier;
  bool loop_ran_while_waiting = false;
  asio::post(io, [&] {
    loop_ran_while_waiting = true;
    notifier = std::thread([this] {
      auto other = Connection::open(uri_);
      ASSERT_TRUE(other);
      ASSERT_TRUE(other->notify("jobs ready", "job-42"));
    });
  });
  io.run();
  notifier.join();
  EXPECT_TRUE(loop_ran_while_waiting);
  ASSERT_TRUE(got) << got.error().describe();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].channel, "jobs ready");
  EXPECT_EQ((*got)[0].payload, "job-42");
}

TEST_F(PgConnection, AWaitEndsCancelledOnCancelAndUnavailableWhenTheServerDropsUs) {
  auto listening = open_ok(uri_);
  ASSERT_TRUE(listening.listen("nothing"));
  asio::io_context io;
  auto listener = Listener::create(io.get_executor(), listening);
  ASSERT_TRUE(listener);
  Result<std::vector<Notification>> got = fail(Error::internal("never completed"));
  asio::steady_timer guard(io, std::chrono::seconds(30));
  asio::co_spawn(io, wait_once(**listener, got, guard), asio::detached);
  asio::post(io, [&] { (*listener)->cancel(); });
  io.run();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::Cancelled) << got.error().describe();

  // The server ends this session: the waiter learns the connection is gone.
  auto admin = open_ok(uri_);
  auto pid = listening.exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid);
  io.restart();
  guard.expires_after(std::chrono::seconds(30));
  guard.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      (*listener)->cancel();
    }
  });
  asio::co_spawn(io, wait_once(**listener, got, guard), asio::detached);
  std::thread killer(
      [&] { ASSERT_TRUE(admin.exec("SELECT pg_terminate_backend($1)", {pid->int64(0, 0)})); });
  io.run();
  killer.join();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Code::Unavailable) << got.error().describe();
  EXPECT_FALSE(listening.ok());
  EXPECT_TRUE(listening.reconnect());
  EXPECT_TRUE(listening.exec("SELECT 1"));
}

// The claim every PostgreSQL job queue uses: the row is chosen and taken in one statement, and
// SKIP LOCKED makes a second claimer pass over a row the first holds instead of waiting for it
// (and then taking it too). Two connections claim in parallel until the queue is empty.
TEST_F(PgConnection, TwoConnectionsClaimingInParallelNeverGetTheSameRow) {
  auto setup = open_ok(uri_);
  ASSERT_TRUE(setup.exec_script(R"sql(
CREATE TABLE jobs (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   state TEXT NOT NULL, claimed_by TEXT);
INSERT INTO jobs(state) SELECT 'queued' FROM generate_series(1, 400);
)sql"));
  constexpr std::string_view kClaim = R"sql(
UPDATE jobs SET state = 'claimed', claimed_by = $1
WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id
            FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id)sql";
  std::vector<std::int64_t> claimed[2];
  std::latch start(2);
  auto claimer = [&](int n) {
    auto conn = Connection::open(uri_);
    ASSERT_TRUE(conn);
    start.arrive_and_wait();
    while (true) {
      auto row = conn->exec(kClaim, {std::string("claimer-") + std::to_string(n)});
      ASSERT_TRUE(row) << row.error().describe();
      if (row->empty()) {
        return;
      }
      claimed[n].push_back(row->int64(0, 0));
    }
  };
  std::thread a(claimer, 0);
  std::thread b(claimer, 1);
  a.join();
  b.join();
  std::set<std::int64_t> all(claimed[0].begin(), claimed[0].end());
  for (const auto id : claimed[1]) {
    EXPECT_TRUE(all.insert(id).second) << "job " << id << " was handed to both claimers";
  }
  EXPECT_EQ(all.size(), 400u);
  EXPECT_EQ(claimed[0].size() + claimed[1].size(), 400u);
  // Each row records the one claimer that got it.
  auto mismatched =
      setup.exec("SELECT count(*) FROM jobs WHERE state <> 'claimed' OR claimed_by IS NULL");
  ASSERT_TRUE(mismatched);
  EXPECT_EQ(mismatched->int64(0, 0), 0);
  std::cout << "claims: claimer-0 " << claimed[0].size() << ", claimer-1 " << claimed[1].size()
            << "\n";
}

}  // namespace
}  // namespace sw::sql::pg
