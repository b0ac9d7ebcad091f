// Several studio processes on one PostgreSQL database (issue 18), as a user sees them: two real
// `studio-server serve --database …` processes sharing a results directory, each with its own
// data directory, and real `studio-worker` processes (synthetic engine) connected to one or the
// other. Whatever process a request reaches, the job, the worker, the key and the events are the
// same. Every wait is on a state read through the public APIs (or the database, for the counts
// that say a job was not recorded twice), bounded by a deadline; nothing is timed.
//
// The PostgreSQL server is tests/support/postgres_server (a throwaway PostgreSQL 15, one fresh
// database per test). Without its binaries every test prints `SKIPPED:` and skips, except under
// CI=true where that fails.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <iostream>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "engines/build_engine.h"
#include "engines/runner/input_fetch.h"
#include "proto/codec.h"
#include "sql/pg/connection.h"
#include "support/farm.h"
#include "support/postgres_server.h"
#include "support/protocol_client.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

using namespace farm;

// The bytes the synthetic engine produces for an image task: what a result must be identical to.
std::string expected_image(const json& task, const std::string& model) {
  auto decoded = proto::decode_task(task.dump());
  EXPECT_TRUE(decoded) << decoded.error().message;
  proto::ModelSource source;
  source.engine = "synthetic";
  auto engine = engines::build_engine();
  auto result =
      engine->dispatch(engines::DispatchRequest{model, *decoded, source, "expected", false});
  EXPECT_TRUE(result) << result.error().message;
  const auto* image = std::get_if<engines::ImageResult>(&*result);
  EXPECT_NE(image, nullptr);
  return image ? std::string(image->bytes.begin(), image->bytes.end()) : std::string();
}

// The job is claimed and its worker has started it (accepted the offer).
bool running(const json& job) {
  if (job.value("status", "") != "claimed" || !job.contains("attemptHistory") ||
      !job["attemptHistory"].is_array() || job["attemptHistory"].empty()) {
    return false;
  }
  return job["attemptHistory"].back().contains("startedAt");
}

json image_task(const std::string& prompt) {
  return {{"kind", "image"}, {"prompt", prompt}, {"width", 40}, {"height", 32}};
}

// An SSE stream (/api/v1/events) read on a plain socket.
class EventReader {
 public:
  explicit EventReader(std::uint16_t port) : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval limit{1, 0};  // a read returns at least every second, so deadlines are checked
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    const std::string request =
        "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kAdmin + "\r\n\r\n";
    boost::asio::write(socket_, boost::asio::buffer(request));
    EXPECT_TRUE(wait_for([](const std::string& seen) {
      return seen.find(": connected") != std::string::npos;
    })) << seen_;
  }
  // Reads until `found(everything so far)` or the deadline.
  template <class Found>
  bool wait_for(Found found, std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::array<char, 4096> chunk{};
    while (!found(seen_)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      boost::system::error_code ec;
      const auto n = socket_.read_some(boost::asio::buffer(chunk), ec);
      if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) continue;
      if (ec) return found(seen_);
      seen_.append(chunk.data(), n);
    }
    return true;
  }
  // Whether one `data:` line is about `job_id` with `status`.
  bool has_job_event(const std::string& job_id, const std::string& status) {
    return wait_for([&](const std::string& seen) { return job_event_in(seen, job_id, status); });
  }
  static bool job_event_in(const std::string& seen, const std::string& job_id,
                           const std::string& status) {
    return count_job_events(seen, job_id, status, 1) > 0;
  }
  // How many `data:` lines so far are about `job_id` with `status` (counting stops at `stop`).
  static int count_job_events(const std::string& seen, const std::string& job_id,
                              const std::string& status, int stop = 1000) {
    int count = 0;
    std::size_t at = 0;
    while ((at = seen.find("event: job\ndata: ", at)) != std::string::npos) {
      at += 17;
      const auto end = seen.find('\n', at);
      if (end == std::string::npos) return count;
      const auto data = json::parse(seen.substr(at, end - at), nullptr, false);
      if (data.is_object() && data.value("id", "") == job_id &&
          data.value("status", "") == status && ++count >= stop) {
        return count;
      }
    }
    return count;
  }
  const std::string& seen() const { return seen_; }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::string seen_;
};

class StudioClusterTest : public PostgresTest {
 protected:
  void SetUp() override {
    PostgresTest::SetUp();
    if (IsSkipped() || HasFailure()) return;
    results_ = dir_.path() / "results";
  }

  // On failure (or with SW_CLUSTER_TEST_LOGS=1) the studios' and workers' logs, which say what
  // each process did (`cluster.*` lines: adoption, take-over, cancels learnt from another).
  void TearDown() override {
    if (!HasFailure() && std::getenv("SW_CLUSTER_TEST_LOGS") == nullptr) return;
    for (const auto& log : logs_) {
      const auto text = read_file(log);
      std::cout << "---- " << log.string() << "\n"
                << (text.size() > 20'000 ? text.substr(text.size() - 20'000) : text) << "\n";
    }
  }

  // A studio process on the test's database and the shared results and uploads directories
  // (unless `args` name an uploads directory of its own).
  std::unique_ptr<Studio> studio(const std::string& name, std::vector<std::string> args = {}) {
    std::vector<std::string> all = {"--database", uri_, "--results-dir", results_.string()};
    if (std::find(args.begin(), args.end(), "--uploads-dir") == args.end()) {
      all.insert(all.end(), {"--uploads-dir", (dir_.path() / "uploads").string()});
    }
    all.insert(all.end(), args.begin(), args.end());
    logs_.push_back(dir_.path() / name / "server.log");
    return std::make_unique<Studio>(dir_.path() / name, 0, all);
  }

  // A worker registered through `via`; approved through `approver`, and connected.
  std::unique_ptr<Worker> worker(const std::string& name, const Studio& via, const Studio& approver,
                                 int job_ms, std::string* id = nullptr) {
    logs_.push_back(dir_.path() / name / "worker.log");
    auto started = std::make_unique<Worker>(dir_.path() / name, via.url(), job_ms, "");
    const auto worker_id = approver.approve_next();
    if (id) *id = worker_id;
    EXPECT_TRUE(started->wait_session("connected", 60s)) << started->log();
    return started;
  }

  // The models, created through `a`, as `b` sees them.
  static void add_models(const Studio& a, const Studio& b) {
    a.add_models();
    EXPECT_TRUE(eventually([&] {
      return b.api("GET", "/api/v1/models/synth-image").status == 200;
    })) << "the model created through one process is unknown to the other";
  }

  std::string submit(const Studio& through, const json& task) {
    const json body = {{"model", "synth-image"}, {"task", task}};
    const auto reply = through.api("POST", "/api/v1/jobs", body.dump());
    EXPECT_EQ(reply.status, 201) << reply.body;
    return json::parse(reply.body, nullptr, false).value("id", "");
  }

  // What the database recorded for a job: how often it was recorded done, and its attempts'
  // outcomes.
  struct Recorded {
    std::string status;
    std::int64_t completions = -1;
    std::int64_t done_attempts = -1;
  };
  Recorded recorded(const std::string& job_id) {
    Recorded out;
    auto conn = sql::pg::Connection::open(uri_);
    EXPECT_TRUE(conn) << conn.error().message;
    if (!conn) return out;
    auto row = conn->exec("SELECT status, completions FROM jobs WHERE id = $1", {job_id});
    EXPECT_TRUE(row && row->size() == 1);
    if (!row || row->size() != 1) return out;
    out.status = row->text(0, 0);
    out.completions = row->int64(0, 1);
    auto done = conn->exec(
        "SELECT count(*) FROM job_attempts WHERE job_id = $1 AND outcome = 'done'", {job_id});
    EXPECT_TRUE(done) << done.error().message;
    if (done) out.done_attempts = done->int64(0, 0);
    return out;
  }

  // An API key with a quota of `jobs` a day, created through `a` and known to `b`: its secret and
  // id.
  std::pair<std::string, std::string> quota_key(const Studio& a, const Studio& b,
                                                const std::string& name, int jobs) {
    const auto created =
        a.api("POST", "/api/v1/keys",
              json{{"name", name}, {"scope", "inference"}, {"quota", {{"jobs", jobs}}}}.dump());
    EXPECT_EQ(created.status, 201) << created.body;
    const auto key = json::parse(created.body, nullptr, false);
    const std::string secret = key.value("key", "");
    EXPECT_TRUE(eventually([&] {
      return http_request(b.port(), "GET", "/api/v1/usage", "", secret).status == 200;
    })) << "the key created through one process is unknown to the other";
    return {secret, key.value("id", "")};
  }

  // `count` POST /api/v1/jobs of `body` as `bearer`, sent at once from as many threads, through
  // `a` and `b` in turn; the replies in that order.
  static std::vector<HttpReply> post_jobs_at_once(const Studio& a, const Studio& b, int count,
                                                  const std::string& body,
                                                  const std::string& bearer) {
    std::vector<HttpReply> replies(static_cast<std::size_t>(count));
    std::latch start(count);
    std::vector<std::thread> clients;
    for (int i = 0; i < count; ++i) {
      clients.emplace_back([&, i] {
        start.arrive_and_wait();
        replies[static_cast<std::size_t>(i)] =
            http_request((i % 2 == 0 ? a : b).port(), "POST", "/api/v1/jobs", body, bearer);
      });
    }
    for (auto& client : clients) client.join();
    return replies;
  }

  // Gives the worker a token written straight to the database, as a rotation through another
  // process looks before its notification lands (the processes learn it at their next read).
  void set_worker_token(const std::string& worker_id, const std::string& token) {
    auto conn = sql::pg::Connection::open(uri_);
    ASSERT_TRUE(conn) << conn.error().message;
    auto updated = conn->exec("UPDATE workers SET token_hash = $1 WHERE id = $2",
                              {sha256_hex(token), worker_id});
    ASSERT_TRUE(updated) << updated.error().message;
  }

  TempDir dir_;
  std::filesystem::path results_;
  std::vector<std::filesystem::path> logs_;
};

// A job submitted through one process is run by a worker connected only to the other, and its
// result is served by the first, byte for byte what the engine produced.
// What `serve --database` exits with when it cannot start, as a supervisor acts on it: 2 when
// trying again cannot help (the server refused the login: a database that does not exist; an
// option libpq refuses), so the packaged unit (RestartPreventExitStatus=2) stops; 1 while no
// server answers (at boot before PostgreSQL), so the unit tries again. The password stays out.
TEST_F(StudioClusterTest, AStudioThatCannotStartOnItsDatabaseExitsAsASupervisorNeeds) {
  const auto base = "postgresql://sw:Pa55word@127.0.0.1:" + std::to_string(server_->port());
  struct Case {
    std::string uri;
    int exit_code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {base + "/no_such_db", 2, "no_such_db"},
      {base + "/postgres?sslmode=bogus", 2, "sslmode"},
      {base + "/postgres?connect_timeout=abc", 2, "connect_timeout"},
      {"postgresql://sw:Pa55word@127.0.0.1:1/studio?connect_timeout=2", 1, "port=1"},
  };
  for (const auto& [uri, exit_code, says] : cases) {
    const auto dir = dir_.path() / ("exit" + std::to_string(exit_code) + says);
    const auto ran =
        run_command({SW_STUDIO_SERVER_BIN, "serve", "--data-dir", (dir / "data").string(),
                     "--listen", "127.0.0.1:0", "--database", uri},
                    dir_.path() / (says + ".log"));
    EXPECT_EQ(ran.exit_code, exit_code) << uri << "\n" << ran.output;
    EXPECT_NE(ran.output.find(says), std::string::npos) << ran.output;
    EXPECT_EQ(ran.output.find("Pa55word"), std::string::npos) << ran.output;
  }
}

// The start banner's commands work as printed: with a password in --database they read the URI
// from STUDIO_SERVER_DATABASE (a line says to export it) instead of printing it with ***, which
// fails to log in when pasted; the password is printed nowhere.
TEST_F(StudioClusterTest, TheBannersCommandsNeverCarryThePasswordOrAStandInForIt) {
  const std::string with_password =
      "postgresql://sw:Pa55word@127.0.0.1:" + uri_.substr(uri_.rfind(':') + 1);
  Studio started(dir_.path() / "banner", 0,
                 {"--database", with_password, "--results-dir", results_.string()});
  std::string banner;
  ASSERT_TRUE(eventually([&] {
    banner = read_file(dir_.path() / "banner" / "server.log");
    return banner.find("or, unattended") != std::string::npos;
  })) << banner;
  EXPECT_NE(banner.find("workers pending --data-dir " + (dir_.path() / "banner" / "data").string() +
                        " --database \"$STUDIO_SERVER_DATABASE\""),
            std::string::npos)
      << banner;
  EXPECT_NE(banner.find("export STUDIO_SERVER_DATABASE="), std::string::npos) << banner;
  EXPECT_EQ(banner.find("Pa55word"), std::string::npos) << banner;
  EXPECT_EQ(banner.find("--database 'postgresql://sw:***"), std::string::npos) << banner;
}

TEST_F(StudioClusterTest, AJobSubmittedThroughOneProcessRunsOnAWorkerOfTheOther) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  std::string worker_id;
  auto on_b = worker("wb", *b, *b, 0, &worker_id);

  const auto task = image_task("across processes");
  const auto job = submit(*a, task);
  ASSERT_TRUE(a->wait_status(job, "done", 60s)) << a->job(job).dump() << on_b->log();
  EXPECT_EQ(a->job(job).value("workerId", ""), worker_id);

  const auto through_a = a->api("GET", "/api/v1/jobs/" + job + "/result");
  const auto through_b = b->api("GET", "/api/v1/jobs/" + job + "/result");
  ASSERT_EQ(through_a.status, 200) << through_a.body;
  ASSERT_EQ(through_b.status, 200) << through_b.body;
  EXPECT_TRUE(through_a.body == expected_image(task, "synth-image"))
      << "the result differs from the engine's output";
  EXPECT_TRUE(through_a.body == through_b.body);
  const auto rec = recorded(job);
  EXPECT_EQ(rec.completions, 1);
  EXPECT_EQ(rec.done_attempts, 1);
}

// A studio killed with SIGKILL while its worker runs a job: the other process adopts the claim
// once the dead one's lease ends, and requeues it after the claim grace; a worker of the survivor
// runs it. The first worker, back on a restarted first process with its own result, does not make
// the job done a second time.
TEST_F(StudioClusterTest, AKilledProcessesJobIsAdoptedAndDoneOnce) {
  auto a = studio("a");
  auto b = studio("b", {"--claim-grace-ms", "2000", "--heartbeat-interval-ms", "500"});
  add_models(*a, *b);
  std::string holder;
  auto on_a = worker("wa", *a, *a, 3000, &holder);

  const auto task = image_task("killed holder");
  const auto job = submit(*b, task);
  ASSERT_TRUE(eventually([&] { return running(b->job(job)); }, 60s)) << b->job(job).dump();
  EXPECT_EQ(b->job(job).value("workerId", ""), holder);
  const auto port_a = a->port();
  a->kill9();

  // The survivor's own worker, connected only to it, once the job is no longer queued.
  std::string rescuer;
  auto on_b = worker("wb", *b, *b, 0, &rescuer);
  ASSERT_TRUE(b->wait_status(job, "done", 90s)) << b->job(job).dump() << on_b->log();
  EXPECT_EQ(b->job(job).value("workerId", ""), rescuer);

  // The first process comes back; its worker delivers the result it kept: acknowledged, dropped.
  a->start(port_a);
  EXPECT_TRUE(eventually([&] { return on_a->status()["outbox"].value("entries", -1) == 0; }, 60s))
      << on_a->status().dump() << on_a->log();
  EXPECT_EQ(b->job(job).value("status", ""), "done");
  const auto rec = recorded(job);
  EXPECT_EQ(rec.status, "done");
  EXPECT_EQ(rec.completions, 1) << "recorded done more than once";
  EXPECT_EQ(rec.done_attempts, 1);
  const auto result = a->api("GET", "/api/v1/jobs/" + job + "/result");
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_TRUE(result.body == expected_image(task, "synth-image"));
}

// A studio killed while its worker runs a job, started again at once: the worker reconnects to
// the new process, which takes the claim over, and the job ends done once, by that worker.
TEST_F(StudioClusterTest, AWorkerBackOnARestartedProcessKeepsItsJob) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  std::string holder;
  auto on_a = worker("wa", *a, *a, 3000, &holder);

  const auto task = image_task("restarted studio");
  const auto job = submit(*b, task);
  ASSERT_TRUE(eventually([&] { return running(b->job(job)); }, 60s)) << b->job(job).dump();
  const auto port_a = a->port();
  a->kill9();
  a->start(port_a);
  ASSERT_TRUE(b->wait_status(job, "done", 90s)) << b->job(job).dump() << on_a->log();
  EXPECT_EQ(b->job(job).value("workerId", ""), holder);
  const auto rec = recorded(job);
  EXPECT_EQ(rec.completions, 1);
  EXPECT_EQ(rec.done_attempts, 1);
  const auto result = b->api("GET", "/api/v1/jobs/" + job + "/result");
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_TRUE(result.body == expected_image(task, "synth-image"));
}

// A cancel through one process of a job that a worker of the other runs reaches the holder's
// process (its event stream says so) and the worker (it announced "cancel": told to stop), the
// job ends cancelled, nothing the worker sends revives it, and the worker is free for the next
// job.
TEST_F(StudioClusterTest, ACancelThroughOneProcessReachesTheHolderOnTheOther) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  auto on_a = worker("wa", *a, *a, 3000);
  EventReader events_a(a->port());
  EventReader events_b(b->port());

  const auto job = submit(*a, image_task("to be cancelled"));
  ASSERT_TRUE(eventually([&] { return running(a->job(job)); }, 60s)) << a->job(job).dump();
  const auto cancel = b->api("POST", "/api/v1/jobs/" + job + "/cancel", "{}");
  ASSERT_EQ(cancel.status, 200) << cancel.body;
  EXPECT_EQ(json::parse(cancel.body, nullptr, false).value("status", ""), "cancelled");
  EXPECT_TRUE(events_a.has_job_event(job, "cancelled"))
      << "the holder's process never learnt of the cancel: " << events_a.seen();
  EXPECT_TRUE(eventually(
      [&] { return on_a->log().find("studio cancelled job " + job) != std::string::npos; }, 60s))
      << "the worker was never told to stop: " << on_a->log();

  // The worker finishes, its result is acknowledged and dropped, and it takes the next job.
  EXPECT_TRUE(eventually([&] { return on_a->status()["outbox"].value("entries", -1) == 0; }, 60s))
      << on_a->status().dump();
  const auto next = submit(*b, image_task("after the cancel"));
  ASSERT_TRUE(b->wait_status(next, "done", 60s)) << b->job(next).dump() << on_a->log();
  EXPECT_EQ(a->job(job).value("status", ""), "cancelled");
  EXPECT_NE(a->api("GET", "/api/v1/jobs/" + job + "/result").status, 200);
  const auto rec = recorded(job);
  EXPECT_EQ(rec.status, "cancelled");
  EXPECT_EQ(rec.completions, 0);
  // Each stream told of the cancel once. The next job's `done` comes after anything either
  // process published about the cancel (each relays its events in order).
  for (auto* events : {&events_a, &events_b}) {
    ASSERT_TRUE(events->has_job_event(next, "done")) << events->seen();
    EXPECT_EQ(EventReader::count_job_events(events->seen(), job, "cancelled"), 1) << events->seen();
  }
}

// A worker waiting for approval on one process is let in by an approval through the other; an
// API key created through one works on the other, and once deleted stops working there; a worker
// deleted through one is cut off from the other.
TEST_F(StudioClusterTest, ApprovalsDeletionsAndKeysWorkWhicheverProcessARequestReaches) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  // Registered (and pending) on A, approved through B.
  std::string worker_id;
  auto on_a = worker("wa", *a, *b, 0, &worker_id);
  const auto job = submit(*b, image_task("approved elsewhere"));
  EXPECT_TRUE(b->wait_status(job, "done", 60s)) << b->job(job).dump() << on_a->log();

  const auto created = a->api("POST", "/api/v1/keys", json{{"name", "cluster"}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  const auto key = json::parse(created.body, nullptr, false);
  const std::string secret = key.value("key", "");
  ASSERT_FALSE(secret.empty()) << created.body;
  EXPECT_EQ(http_request(b->port(), "GET", "/api/v1/jobs", "", secret).status, 200)
      << "a key created through one process is refused by the other";
  ASSERT_EQ(a->api("DELETE", "/api/v1/keys/" + key.value("id", "")).status, 200);
  EXPECT_TRUE(eventually([&] {
    return http_request(b->port(), "GET", "/api/v1/jobs", "", secret).status == 401;
  })) << "a deleted key still works on the other process";

  // Deleted through B, the worker connected to A is cut off (close 4004: the daemon exits 12).
  ASSERT_EQ(b->api("DELETE", "/api/v1/workers/" + worker_id).status, 200);
  EXPECT_EQ(on_a->wait_exit(30s), 12) << on_a->log();
}

// Issue 22: a join token lives in the database: one made through A approves a worker that
// registers through B, and the last use of a token goes to one worker even when two ask through
// the two processes at once (one conditional update decides). The winner's credentials come from
// whichever process its poll reaches.
TEST_F(StudioClusterTest, AJoinTokensLastUseGoesToOneWorkerWhicheverProcessTheyReach) {
  auto a = studio("a");
  auto b = studio("b");
  const auto created = a->api("POST", "/api/v1/join-tokens", R"({"uses":1})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string token = json::parse(created.body).value("token", "");
  const auto caps = json::parse(proto::encode(test_capabilities()));
  const auto ask = [&](const Studio& through, const std::string& install) {
    const json body = {{"installId", install},
                       {"registrationSecretHash", sha256_hex("secret-" + install)},
                       {"capabilities", caps},
                       {"userAgent", "studio-worker/cluster-test"},
                       {"joinToken", token}};
    return http_request(through.port(), "POST", "/graphics/api/workers/register-request",
                        body.dump());
  };
  HttpReply via_a, via_b;
  std::thread first([&] { via_a = ask(*a, "install-a"); });
  std::thread second([&] { via_b = ask(*b, "install-b"); });
  first.join();
  second.join();
  ASSERT_TRUE((via_a.status == 200) != (via_b.status == 200))
      << "exactly one join may win: " << via_a.status << " " << via_a.body << " / " << via_b.status
      << " " << via_b.body;
  const bool a_won = via_a.status == 200;
  const auto& won = a_won ? via_a : via_b;
  const auto& lost = a_won ? via_b : via_a;
  EXPECT_EQ(lost.status, 403) << lost.body;
  EXPECT_NE(lost.body.find("join_token_refused"), std::string::npos) << lost.body;
  const auto answer = json::parse(won.body);
  EXPECT_EQ(answer.value("status", ""), "approved") << won.body;

  // The winner polls the process it did not ask and gets its credentials.
  const Studio& other = a_won ? *b : *a;
  const std::string install = a_won ? "install-a" : "install-b";
  const auto poll =
      http_request(other.port(), "GET",
                   "/graphics/api/workers/register-requests/" + answer.value("requestId", ""), "",
                   "secret-" + install);
  const auto decoded = proto::decode_registration_poll(poll.body);
  ASSERT_TRUE(decoded && std::holds_alternative<proto::RegistrationApproved>(*decoded))
      << poll.body;
  const auto workers = json::parse(a->api("GET", "/api/v1/workers").body);
  ASSERT_EQ(workers["workers"].size(), 1u) << workers;
  EXPECT_EQ(workers["workers"][0].value("approvedBy", "").rfind("join-token:jt-", 0), 0u)
      << workers;
}

// Issue 20: a key's usage lives in the database, so a quota holds across processes: jobs through
// one count against the key on the other, both read the same usage, and a quota lifted through
// one is lifted on the other.
TEST_F(StudioClusterTest, AKeysQuotaAndUsageAreTheSameThroughEitherProcess) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  auto on_b = worker("wb", *b, *b, 0);
  const auto created =
      a->api("POST", "/api/v1/keys",
             json{{"name", "metered"}, {"scope", "inference"}, {"quota", {{"jobs", 2}}}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  const auto key = json::parse(created.body, nullptr, false);
  const std::string secret = key.value("key", "");
  const std::string key_id = key.value("id", "");
  const json body = {{"model", "synth-image"}, {"task", image_task("metered")}};
  auto first = http_request(a->port(), "POST", "/api/v1/jobs", body.dump(), secret);
  ASSERT_EQ(first.status, 201) << first.body;
  auto second = http_request(b->port(), "POST", "/api/v1/jobs", body.dump(), secret);
  ASSERT_EQ(second.status, 201) << second.body;
  for (const auto& reply : {first, second}) {
    const auto id = json::parse(reply.body, nullptr, false).value("id", "");
    EXPECT_TRUE(b->wait_status(id, "done", 60s)) << b->job(id).dump() << on_b->log();
  }
  EXPECT_EQ(http_request(a->port(), "POST", "/api/v1/jobs", body.dump(), secret).status, 429);
  EXPECT_EQ(http_request(b->port(), "POST", "/api/v1/jobs", body.dump(), secret).status, 429);
  // Both processes read the same usage, run time included (metered where each job ended).
  const auto through_a = json::parse(a->api("GET", "/api/v1/keys/" + key_id + "/usage").body);
  const auto through_b =
      json::parse(http_request(b->port(), "GET", "/api/v1/usage", "", secret).body);
  EXPECT_EQ(through_a["total"]["jobs"], 2) << through_a.dump();
  EXPECT_EQ(through_a["total"], through_b["total"]) << through_b.dump();
  // Lifted through A, the quota is gone on B too (its key cache is told).
  ASSERT_EQ(a->api("PATCH", "/api/v1/keys/" + key_id, R"({"quota":null})").status, 200);
  EXPECT_TRUE(eventually([&] {
    return http_request(b->port(), "POST", "/api/v1/jobs", body.dump(), secret).status == 201;
  })) << "a lifted quota still holds on the other process";
}

// A key's quota holds when its jobs arrive through both processes at once: the check and the job
// it admits are one step across processes (the key's usage is held until the batch commits), so
// exactly the quota's jobs are created, however the requests interleave.
TEST_F(StudioClusterTest, AKeysQuotaHoldsWhenItsJobsArriveThroughBothProcessesAtOnce) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  constexpr int kQuota = 5;
  constexpr int kRequests = 40;
  const auto [secret, key_id] = quota_key(*a, *b, "raced", kQuota);
  const json body = {{"model", "synth-image"}, {"task", image_task("raced")}};
  // Each answer as "<status> <error code>" ("201 " for a job).
  std::vector<std::string> answers;
  for (const auto& reply : post_jobs_at_once(*a, *b, kRequests, body.dump(), secret)) {
    answers.push_back(
        std::to_string(reply.status) + " " +
        (reply.status == 201 ? "" : json::parse(reply.body, nullptr, false).value("error", "")));
  }
  EXPECT_EQ(std::count(answers.begin(), answers.end(), "201 "), kQuota);
  EXPECT_EQ(std::count(answers.begin(), answers.end(), "429 quota_exceeded"), kRequests - kQuota);
  const auto usage = json::parse(a->api("GET", "/api/v1/keys/" + key_id + "/usage").body);
  EXPECT_EQ(usage["total"]["jobs"], kQuota) << usage.dump();
}

// The same request (one idempotencyKey) sent through both processes at once, for a key with
// room for one more job: every answer is that one job, none 429 (the quota check waits for the
// key's usage before it looks the idempotency key up, so it finds the first request's job).
TEST_F(StudioClusterTest, ARetriedRequestOfAKeyAtItsQuotaGetsItsJobThroughEitherProcess) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  const auto secret = quota_key(*a, *b, "last-one", 1).first;
  const json body = {
      {"model", "synth-image"}, {"task", image_task("once")}, {"idempotencyKey", "only-once"}};
  // Each answer as "<status> <job id>" (the body when there is no id).
  std::vector<std::string> answers;
  for (const auto& reply : post_jobs_at_once(*a, *b, 8, body.dump(), secret)) {
    answers.push_back(std::to_string(reply.status) + " " +
                      json::parse(reply.body, nullptr, false).value("id", reply.body));
  }
  const auto first_id = answers[0].substr(answers[0].find(' ') + 1);
  for (const auto& answer : answers) {
    EXPECT_TRUE(answer == "201 " + first_id || answer == "200 " + first_id)
        << answer << " (the first: " << answers[0] << ")";
  }
}

// A client upload (a job's input) stored through one process is fetched by a worker through the
// other, byte for byte: both were given one --uploads-dir. A process given a directory of its own
// answers for the same upload 500 file_missing naming the flag, not a bare I/O error.
TEST_F(StudioClusterTest, AnUploadStoredThroughOneProcessIsServedByTheOther) {
  auto a = studio("a");
  auto b = studio("b");
  auto apart = studio("apart", {"--uploads-dir", (dir_.path() / "apart-uploads").string()});
  std::string worker_id;
  auto on_a = worker("wa", *a, *a, 0, &worker_id);
  const std::string token = "an-upload-fetching-worker-token-0123456789";
  ASSERT_NO_FATAL_FAILURE(set_worker_token(worker_id, token));
  const std::string bytes = "RIFF-not-really-audio-" + std::string(3000, 'x');
  const auto stored =
      http_request(a->port(), "POST", "/api/v1/uploads", bytes, kAdmin, "audio/wav");
  ASSERT_EQ(stored.status, 201) << stored.body;
  const std::string id = json::parse(stored.body, nullptr, false).value("id", "");
  // The token was written behind the processes' backs: each reads it at its next cache reload.
  const auto fetch = [&](const Studio& through) {
    HttpReply reply;
    EXPECT_TRUE(eventually([&] {
      reply = http_request(through.port(), "GET", "/graphics/api/uploads/" + id, "", token);
      return reply.status != 401;
    })) << reply.body;
    return reply;
  };
  const auto through_b = fetch(*b);
  ASSERT_EQ(through_b.status, 200) << through_b.body;
  EXPECT_TRUE(through_b.body == bytes) << "the upload differs through the other process";
  // A worker of the other process fetches the URL the client got (it names the address the
  // client used, not b) from its own studio, with its token: the job's input is found whichever
  // process the client used.
  const std::string url = json::parse(stored.body, nullptr, false).value("url", "");
  ASSERT_NE(url.find("/graphics/api/uploads/" + id), std::string::npos) << url;
  ASSERT_NE(url.rfind(b->url(), 0), 0u) << "the URL must not name b already: " << url;
  const engines::StudioAccess worker_of_b{b->url(), token, std::nullopt};
  auto fetched = engines::fetch_input(url, {false, 1 << 20, "audio input", &worker_of_b});
  ASSERT_TRUE(fetched) << fetched.error().message;
  EXPECT_TRUE(std::string(fetched->begin(), fetched->end()) == bytes);
  const auto through_apart = fetch(*apart);
  EXPECT_EQ(through_apart.status, 500) << through_apart.body;
  const auto answer = json::parse(through_apart.body, nullptr, false);
  EXPECT_EQ(answer.value("error", ""), "file_missing") << through_apart.body;
  EXPECT_NE(answer.value("message", "").find("--uploads-dir"), std::string::npos)
      << through_apart.body;
}

// A worker token this process has not heard of (written to the database with no notification
// to it, as a rotation through another process looks before its NOTIFY lands) is read from the
// database at the WebSocket upgrade rather than refused (issue 18).
TEST_F(StudioClusterTest, AWorkerTokenNewToAProcessIsReadFromTheDatabaseAtTheUpgrade) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  std::string worker_id;
  auto on_a = worker("wa", *a, *a, 0, &worker_id);
  const std::string token = "a-token-b-has-never-seen-0123456789abcdef";
  ASSERT_NO_FATAL_FAILURE(set_worker_token(worker_id, token));
  auto client = ProtocolClient::connect(b->port(), worker_id, {token});
  ASSERT_TRUE(client) << "refused instead of read from the database: " << client.error().message;
  auto wrong = ProtocolClient::connect(b->port(), worker_id, {"not-the-token"});
  ASSERT_FALSE(wrong) << "a wrong token is still refused";
  EXPECT_NE(wrong.error().message.find("HTTP 401"), std::string::npos) << wrong.error().message;
}

// The events of a job that runs on one process reach a stream opened on the other.
TEST_F(StudioClusterTest, EventsOfAJobOnOneProcessReachStreamsOnTheOther) {
  auto a = studio("a");
  auto b = studio("b");
  add_models(*a, *b);
  auto on_a = worker("wa", *a, *a, 0);
  EventReader events_b(b->port());
  const auto job = submit(*a, image_task("events elsewhere"));
  ASSERT_TRUE(a->wait_status(job, "done", 60s)) << a->job(job).dump();
  EXPECT_TRUE(events_b.has_job_event(job, "queued")) << events_b.seen();
  EXPECT_TRUE(events_b.has_job_event(job, "done")) << events_b.seen();
  // Both leave cleanly (their process rows go with them).
  EXPECT_EQ(a->terminate(), 0);
  EXPECT_EQ(b->terminate(), 0);
}

}  // namespace
}  // namespace sw::testing
