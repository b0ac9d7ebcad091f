// studio-server throughput and latency (targets.md "Studio"), end to end over loopback:
//   - jobs/s with 50 synthetic protocol workers, JSON results (completeJson) and 64 KiB binary
//     results (multipart complete), jobs submitted through the client API by 8 keep-alive
//     clients while the workers drain the queue; with each, the studio's own CPU per job
//     (`…_studio_cpu_per_job`, µs: its loop and database threads), which the machine's other
//     load moves less than it moves jobs/s;
//   - queued → offer latency with one idle eligible worker, p50/p99, measured from the client's
//     POST /api/v1/jobs to the offer frame arriving at the worker (an upper bound of the
//     studio's own figure, which /metrics also exports);
//   - with --idle-sessions N (default 10000): a studio-server child process holding N idle
//     sessions that heartbeat every 5 s; its RSS and CPU share over a 30 s window;
//   - the set-ups side by side (issue 18), against studio-server child processes: JSON jobs/s
//     (with the studio processes' and PostgreSQL's CPU share) and submit → offer p50/p99 for one
//     studio on SQLite (`studio_sqlite1_…`), one on PostgreSQL (`studio_pg1_…`) and two on one
//     PostgreSQL database (`studio_pg2_…`: clients submit through both, workers are split
//     between them; its submit → offer also split into offers to the other process and to the
//     same one). PostgreSQL is a throwaway server (tests/support/postgres_server); without its
//     binaries those figures print `SKIPPED:`;
//   - with --only=cluster-idle: N idle sessions split across two studio-servers on one
//     PostgreSQL database; each process's RSS and CPU share, and PostgreSQL's CPU share.
//
// Where the load runs: for the jobs/s and submit → offer figures the studio is in this process
// and the load generator (workers and submitters) is a second process, `studio_bench
// --load-generator` (given its run on stdin, answering on stdout), so the clients' threads are
// not the studio's threads and nothing in the studio's process spins waiting for an event (the
// load generator's two threads each run a loop of their own, with half the clients). For
// the idle-session figures the studio is a studio-server child and the sessions are here, so
// its RSS and CPU are its own. On a 2-core machine the two processes still share the cores.
//
// Each figure prints as `<name>: <value> <unit>`; throughput is the median of 3 runs. A run
// that fails (a client error, a job lost, a deadline passed) prints why on stderr, prints no
// figure, and exits 1. --check compares the figures measured with targets.md and exits 2 on a
// miss (MISS lines on stdout).
//   build/ci/bench/studio_bench [--only=json|binary|latency|idle|backends|cluster-idle] [--jobs=N]
//                               [--setups=sqlite1,pg1,pg2] (which set-ups --only=backends runs)
//                               [--idle-sessions=N] [--check]

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <variant>

#include "common/clock.h"
#include "common/log.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "sql/pg/connection.h"
#include "studio/store/pg_studio_store.h"
#include "studio/store/studio_store.h"
#include "support/postgres_server.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kWorkers = 50;
constexpr int kSubmitters = 8;
// No run on this machine class takes more than a few seconds; past these it has failed.
constexpr auto kRunDeadline = 300s;
constexpr auto kIdleConnectDeadline = 300s;

// targets.md "Studio".
constexpr double kTargetJsonJobsPerSecond = 5000;
constexpr double kTargetBinaryJobsPerSecond = 1000;
constexpr double kTargetSubmitToOfferP99Ms = 2;
constexpr int kTargetIdleSessions = 10'000;
constexpr double kTargetIdleRssMib = 1024;
constexpr double kTargetIdleCpuPercent = 50;

struct Run {
  // The loops the run's clients are on (a throughput run: one per thread), all stopped when the
  // run ends.
  std::vector<asio::io_context*> ios;
  void stop() {
    for (auto* io : ios) io->stop();
    std::lock_guard lock(welcome_mutex);
    welcome.notify_all();
  }
  // Set-up: the main thread waits here until every worker is welcomed (or the run failed).
  std::mutex welcome_mutex;
  std::condition_variable welcome;
  std::uint16_t port = 0;
  bool binary = false;
  int target = 0;
  std::atomic<int> done{0};
  std::atomic<int> welcomed{0};
  std::atomic<int> refused_handshakes{0};  // 503s from the studio's connection caps, retried
  std::atomic<bool> failed{false};
  std::string image_bytes;
  Clock::time_point finished;
  // Latency mode: when the worker saw each offer, and a timer the worker cancels to wake the
  // latency driver (same thread: the latency run's loop has one).
  std::mutex offers_mutex;
  std::map<std::string, Clock::time_point> offer_seen;
  asio::steady_timer* wake = nullptr;
};

// Figures are collected and printed only once every run has succeeded.
struct Figure {
  std::string name;
  double value = 0;
  std::string unit;
};
std::vector<Figure> g_figures;

void figure(const std::string& name, double value, const std::string& unit) {
  g_figures.push_back({name, value, unit});
  // On stderr as measured: a long run that fails later still shows what it measured.
  std::fprintf(stderr, "measured %s: %.3f %s\n", name.c_str(), value, unit.c_str());
}

// Why a run failed; printed on stderr by main.
struct Failure {
  std::string why;
};

// One worker's WebSocket, shared by its job loop and its heartbeats (coroutines on one thread):
// one write at a time, as Beast requires.
struct WorkerSocket {
  websocket::stream<beast::tcp_stream>& ws;
  bool writing = false;
  bool over = false;  // the job loop ended: the heartbeats stop
  asio::steady_timer write_done;
  asio::steady_timer beat;
};

asio::awaitable<void> write_frame(WorkerSocket& socket, const std::string& text) {
  while (socket.writing) {
    socket.write_done.expires_at(asio::steady_timer::time_point::max());
    co_await socket.write_done.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  socket.writing = true;
  auto [ec, written] =
      co_await socket.ws.async_write(asio::buffer(text), asio::as_tuple(asio::use_awaitable));
  socket.writing = false;
  socket.write_done.cancel();
  if (ec) throw boost::system::system_error(ec);
}

asio::awaitable<void> heartbeats(Run* run, WorkerSocket& socket, std::string beat) {
  while (!socket.over && !run->failed) {
    socket.beat.expires_after(5s);
    co_await socket.beat.async_wait(asio::as_tuple(asio::use_awaitable));
    if (socket.over || run->failed) break;
    co_await write_frame(socket, beat);
  }
}

// Takes offers, accepts them and completes them (JSON over the socket, or a binary upload)
// until the run's target is reached.
asio::awaitable<void> job_loop(Run* run, WorkerSocket& socket,
                               sw::testing::WorkerCredentials credentials, tcp::endpoint endpoint) {
  struct Over {
    WorkerSocket& socket;
    ~Over() {
      socket.over = true;
      socket.beat.cancel();
    }
  } over{socket};
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream upload(executor);
  if (run->binary) {
    co_await upload.async_connect(endpoint, asio::use_awaitable);
    upload.socket().set_option(tcp::no_delay(true));
  }
  const std::string result = R"({"object":"chat.completion","choices":[]})";
  auto& ws = socket.ws;
  beast::flat_buffer buffer;
  while (run->done < run->target && !run->failed) {
    co_await ws.async_read(buffer, asio::use_awaitable);
    auto frame = sw::proto::decode_studio_frame(beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
    if (!frame) {
      std::cerr << "bench worker: undecodable frame: " << frame.error().message << "\n";
      run->failed = true;
      run->stop();
      co_return;
    }
    if (std::holds_alternative<sw::proto::CompleteAck>(*frame)) {
      if (++run->done == run->target) {
        run->finished = Clock::now();
        run->stop();
      }
      if (run->wake != nullptr) run->wake->cancel();
      continue;
    }
    if (!std::holds_alternative<sw::proto::Offer>(*frame)) {
      continue;
    }
    const auto job_id = std::get<sw::proto::Offer>(*frame).claim.job_id;
    if (run->wake != nullptr) {
      // Latency mode only: a throughput run's 20,000 map entries cost the load generator CPU
      // that the studio, on the same 2 cores, then lacked.
      std::lock_guard lock(run->offers_mutex);
      run->offer_seen[job_id] = Clock::now();
      run->wake->cancel();
    }
    const std::string accept = sw::proto::encode(sw::proto::WorkerFrame{sw::proto::Accept{job_id}});
    co_await write_frame(socket, accept);
    if (!run->binary) {
      const std::string complete = sw::proto::encode(sw::proto::WorkerFrame{
          sw::proto::CompleteJson{job_id, *sw::proto::RawJson::parse(result), std::nullopt}});
      co_await write_frame(socket, complete);
      continue;
    }
    const auto [type, form] =
        sw::testing::result_form("bench", "png", run->image_bytes, job_id + ".png");
    http::request<http::string_body> req{
        http::verb::post,
        "/graphics/api/workers/" + credentials.worker_id + "/jobs/" + job_id + "/complete", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + credentials.token);
    req.set(http::field::content_type, type);
    req.body() = form;
    req.prepare_payload();
    co_await http::async_write(upload, req, asio::use_awaitable);
    beast::flat_buffer response_buffer;
    http::response<http::string_body> res;
    co_await http::async_read(upload, response_buffer, res, asio::use_awaitable);
    if (res.result_int() != 200) {
      std::cerr << "bench worker: complete answered " << res.result_int() << ": " << res.body()
                << "\n";
      run->failed = true;
      run->stop();
      co_return;
    }
    if (++run->done == run->target) {
      run->finished = Clock::now();
      run->stop();
    }
  }
}

asio::awaitable<void> protocol_worker(Run* run, sw::testing::WorkerCredentials credentials,
                                      bool heartbeat_only, std::uint16_t port) {
  auto executor = co_await asio::this_coro::executor;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  // A fleet connecting at once from one address meets the studio's cap on connections still in
  // their handshake (503 + Retry-After); like a real worker, a refused one retries after a
  // jittered pause.
  std::optional<websocket::stream<beast::tcp_stream>> connected;
  for (int attempt = 0; !connected; ++attempt) {
    websocket::stream<beast::tcp_stream> ws(executor);
    co_await beast::get_lowest_layer(ws).async_connect(endpoint, asio::use_awaitable);
    beast::get_lowest_layer(ws).expires_never();
    // Small frames back to back (accept, then completeJson): without this, Nagle holds the
    // second until the first is acknowledged.
    beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
    ws.set_option(websocket::stream_base::decorator([token = credentials.token](auto& req) {
      req.set(http::field::authorization, "Bearer " + token);
      req.set(http::field::sec_websocket_protocol, "studio-worker-v1");
    }));
    websocket::response_type refusal;
    auto [ec] = co_await ws.async_handshake(
        refusal, "127.0.0.1", "/graphics/api/workers/" + credentials.worker_id + "/connect",
        asio::as_tuple(asio::use_awaitable));
    if (!ec) {
      connected.emplace(std::move(ws));
      break;
    }
    // The refusal is sent as the socket closes: a request that crossed it may read a reset.
    const bool refused = refusal.result() == http::status::service_unavailable ||
                         ec == asio::error::connection_reset || ec == http::error::end_of_stream ||
                         ec == asio::error::eof;
    if (!refused || attempt >= 50) {
      throw boost::system::system_error(ec);
    }
    ++run->refused_handshakes;
    asio::steady_timer pause(executor, std::chrono::milliseconds(200 + std::rand() % 1000));
    co_await pause.async_wait(asio::use_awaitable);
  }
  auto& ws = *connected;
  ws.text(true);
  const auto caps = sw::testing::test_capabilities();
  // Frames are named locals: GCC 12 mishandles temporaries inside co_await expressions.
  const std::string hello =
      sw::proto::encode(sw::proto::WorkerFrame{sw::proto::Hello{credentials.token, caps}});
  co_await ws.async_write(asio::buffer(hello), asio::use_awaitable);
  beast::flat_buffer buffer;
  co_await ws.async_read(buffer, asio::use_awaitable);
  buffer.consume(buffer.size());
  {
    std::lock_guard lock(run->welcome_mutex);
    ++run->welcomed;
  }
  run->welcome.notify_all();
  if (heartbeat_only) {
    // Idle: a heartbeat every 5 s, staggered, and read the acks.
    const std::string beat =
        sw::proto::encode(sw::proto::WorkerFrame{sw::proto::Heartbeat{caps, std::nullopt}});
    asio::steady_timer timer(executor);
    timer.expires_after(std::chrono::milliseconds(std::rand() % 5000));
    co_await timer.async_wait(asio::use_awaitable);
    while (!run->failed) {
      co_await ws.async_write(asio::buffer(beat), asio::use_awaitable);
      co_await ws.async_read(buffer, asio::use_awaitable);
      buffer.consume(buffer.size());
      timer.expires_after(5s);
      co_await timer.async_wait(asio::use_awaitable);
    }
    co_return;
  }
  // Like a real worker it heartbeats every 5 s, busy or idle: a worker that waits 30 s for an
  // offer (a slow set-up leaves most of the 50 idle) would otherwise be closed as silent.
  WorkerSocket socket{ws, false, false, asio::steady_timer(executor), asio::steady_timer(executor)};
  const std::string beat =
      sw::proto::encode(sw::proto::WorkerFrame{sw::proto::Heartbeat{caps, std::nullopt}});
  using namespace asio::experimental::awaitable_operators;
  co_await (job_loop(run, socket, credentials, endpoint) && heartbeats(run, socket, beat));
}

asio::awaitable<void> submitter(Run* run, int jobs, std::string body, std::uint16_t port) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::use_awaitable);
  stream.socket().set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  for (int i = 0; i < jobs && !run->failed; ++i) {
    http::request<http::string_body> req{http::verb::post, "/api/v1/jobs", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + sw::testing::kTestAdminToken);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    if (res.result_int() != 201) {
      std::cerr << "submit failed: " << res.body() << "\n";
      run->failed = true;
      run->stop();
    }
  }
}

// Every loop of the load generator is run by one thread (a worker's job loop and heartbeats,
// which share its socket, are on the same one), so its tasks need no strand: a strand's lock and
// queue on every completion cost CPU that the studio, on the same cores, then lacks.
void spawn_checked(asio::io_context& io, asio::awaitable<void> task, Run* run) {
  asio::co_spawn(io, std::move(task), [run](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        if (!run->failed.exchange(true)) {
          std::cerr << "bench client failed: " << ex.what() << "\n";
          run->stop();
        }
      }
    }
  });
}

// ---- the load generator (a child process: `studio_bench --load-generator`) ------------------

// Submits `jobs` jobs one at a time, the i-th through ports[i % ports.size()] (one keep-alive
// connection each), and waits, without spinning, for each one's offer and its completion;
// records submit → offer in microseconds and, in `via`, the index of the port it went through.
asio::awaitable<void> latency_driver(Run* run, int jobs, std::string body,
                                     std::vector<std::uint16_t> ports, std::vector<double>* micros,
                                     std::vector<int>* via) {
  auto executor = co_await asio::this_coro::executor;
  std::vector<std::unique_ptr<beast::tcp_stream>> streams;
  for (const auto port : ports) {
    auto stream = std::make_unique<beast::tcp_stream>(executor);
    co_await stream->async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                   asio::use_awaitable);
    stream->socket().set_option(tcp::no_delay(true));
    streams.push_back(std::move(stream));
  }
  asio::steady_timer wake(executor);
  run->wake = &wake;
  beast::flat_buffer buffer;
  for (int i = 0; i < jobs && !run->failed; ++i) {
    const int before = run->done;
    const auto through = static_cast<std::size_t>(i) % streams.size();
    auto& stream = *streams[through];
    http::request<http::string_body> req{http::verb::post, "/api/v1/jobs", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + sw::testing::kTestAdminToken);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    const auto t0 = Clock::now();
    co_await http::async_write(stream, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    const auto id = nlohmann::json::parse(res.body(), nullptr, false).value("id", "");
    if (res.result_int() != 201 || id.empty()) {
      std::cerr << "submit failed: " << res.result_int() << " " << res.body() << "\n";
      run->failed = true;
      break;
    }
    auto offered = [&]() -> std::optional<Clock::time_point> {
      std::lock_guard lock(run->offers_mutex);
      auto it = run->offer_seen.find(id);
      if (it == run->offer_seen.end()) return std::nullopt;
      return it->second;
    };
    while (!offered() && !run->failed) {
      wake.expires_after(kRunDeadline);
      co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled: woken
    }
    if (auto seen = offered()) {
      micros->push_back(std::chrono::duration<double, std::micro>(*seen - t0).count());
      via->push_back(static_cast<int>(through));
    }
    while (run->done == before && !run->failed) {
      wake.expires_after(kRunDeadline);
      co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  run->wake = nullptr;
  run->stop();
}

// Reads the run from stdin, runs it, writes the outcome on stdout as one JSON object:
// {"ok", "error"?, "done", "seconds" (first submit → last completion), "micros"? and "via"?
// (latency)}. The run: {"mode", "port", "ports"? (submit through these in turn; default [port]),
// "jobs", "binary", "body", "workers": [{"id", "token", "port"? (default port)}]}.
int load_generator() {
  std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  const auto spec = nlohmann::json::parse(text, nullptr, false);
  nlohmann::json out = {{"ok", false}, {"done", 0}};
  if (!spec.is_object()) {
    out["error"] = "the load generator's input is not a JSON object";
    std::cout << out.dump() << std::endl;
    return 1;
  }
  const bool latency = spec.value("mode", "") == "latency";
  Run run;
  run.port = spec.value("port", std::uint16_t{0});
  run.binary = spec.value("binary", false);
  run.target = spec.value("jobs", 0);
  run.image_bytes = std::string(64 * 1024, 'x');
  // Each loop runs on a thread of its own. A throughput run splits its clients over two (each
  // core drives half of them, and no thread wakes the other: one loop shared by two threads
  // spent an eighth of the load generator's CPU on futex wake-ups that the studio, on the same
  // cores, then lacked); a latency run's driver and its worker share one.
  // Concurrency hint 1: one thread runs each (Asio then keeps its own posts on a private queue).
  asio::io_context io{1};
  asio::io_context second_io{1};
  run.ios = {&io};
  if (!latency) run.ios.push_back(&second_io);
  std::size_t workers = 0;
  const auto ports =
      spec.value("ports", std::vector<std::uint16_t>{static_cast<std::uint16_t>(run.port)});
  for (const auto& w : spec.value("workers", nlohmann::json::array())) {
    sw::testing::WorkerCredentials credentials{w.value("id", ""), w.value("token", "")};
    spawn_checked(*run.ios[workers % run.ios.size()],
                  protocol_worker(&run, credentials, false, w.value("port", run.port)), &run);
    ++workers;
  }
  asio::steady_timer deadline(io);
  deadline.expires_after(kRunDeadline);
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << "load generator: the run passed its deadline\n";
    run.failed = true;
    run.stop();
  });
  std::vector<std::thread> threads;
  for (auto* loop : run.ios) threads.emplace_back([loop] { loop->run(); });
  {
    std::unique_lock lock(run.welcome_mutex);
    run.welcome.wait(lock,
                     [&] { return run.welcomed >= static_cast<int>(workers) || run.failed; });
  }
  const std::string body = spec.value("body", "");
  std::vector<double> micros;
  std::vector<int> via;
  const auto start = Clock::now();
  if (!run.failed) {
    if (latency) {
      spawn_checked(io, latency_driver(&run, run.target, body, ports, &micros, &via), &run);
    } else {
      for (int i = 0; i < kSubmitters; ++i) {
        spawn_checked(*run.ios[static_cast<std::size_t>(i) % run.ios.size()],
                      submitter(&run, run.target / kSubmitters, body,
                                ports[static_cast<std::size_t>(i) % ports.size()]),
                      &run);
      }
    }
  }
  for (auto& thread : threads) thread.join();  // until the run ends (stop) or fails
  out["done"] = run.done.load();
  const bool complete = !run.failed && run.done == run.target &&
                        (!latency || static_cast<int>(micros.size()) == run.target);
  out["ok"] = complete;
  if (!complete) {
    out["error"] = fmt::format("{} of {} jobs completed{}", run.done.load(), run.target,
                               run.failed ? " (a client failed; see above)" : "");
  } else {
    out["seconds"] = std::chrono::duration<double>(run.finished - start).count();
    if (latency) {
      out["micros"] = micros;
      out["via"] = via;
    }
  }
  std::cout << out.dump() << std::endl;
  return complete ? 0 : 1;
}

// ---- the studio side ---------------------------------------------------------------------------

std::string self_binary() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

// Runs `studio_bench --load-generator` with `spec` on its stdin; its JSON answer.
std::variant<nlohmann::json, Failure> run_load_generator(const nlohmann::json& spec) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return Failure{"pipe: " + std::string(std::strerror(errno))};
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return Failure{"pipe: " + std::string(std::strerror(errno))};
  }
  const std::string binary = self_binary();
  const pid_t pid = ::fork();
  if (pid < 0) return Failure{"fork: " + std::string(std::strerror(errno))};
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::execl(binary.c_str(), binary.c_str(), "--load-generator", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  const std::string text = spec.dump();
  bool written = true;
  for (std::size_t at = 0; at < text.size();) {
    const ssize_t n = ::write(in[1], text.data() + at, text.size() - at);
    if (n <= 0) {
      written = false;
      break;
    }
    at += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  std::string answer;
  char chunk[4096];
  for (ssize_t n; (n = ::read(out[0], chunk, sizeof chunk)) > 0;) answer.append(chunk, n);
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!written) return Failure{"could not hand the run to the load generator"};
  auto result = nlohmann::json::parse(answer, nullptr, false);
  if (!result.is_object()) {
    return Failure{fmt::format("the load generator exited with status {} and no answer",
                               WIFEXITED(status) ? WEXITSTATUS(status) : -1)};
  }
  if (!result.value("ok", false)) return Failure{result.value("error", "the run failed")};
  return result;
}

nlohmann::json credentials_json(const std::vector<sw::testing::WorkerCredentials>& workers) {
  auto list = nlohmann::json::array();
  for (const auto& w : workers) list.push_back({{"id", w.worker_id}, {"token", w.token}});
  return list;
}

// The CPU this process has used (user + system), in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

struct ThroughputRun {
  double jobs_per_second = 0;
  // The studio's CPU (this process: its loop and database threads; the clients are the load
  // generator's) per job over the run, workers' handshakes included: what the studio spends,
  // whatever the machine's other load does to the wall-clock figure.
  double cpu_us_per_job = 0;
};

// One end-to-end throughput run.
std::variant<ThroughputRun, Failure> throughput(bool binary, int jobs) {
  sw::testing::TempDir dir;
  sw::studio::StudioConfig config;
  config.data_dir = dir.path();
  config.register_rate_limit = 1000;
  sw::testing::StudioHarness studio(config);
  studio.add_model("synth-llm", "llm");
  studio.add_model("synth-image", "image");
  std::vector<sw::testing::WorkerCredentials> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(sw::testing::register_worker(studio, "b" + std::to_string(i)));
  }
  const int submitted = jobs / kSubmitters * kSubmitters;
  const nlohmann::json spec = {{"mode", "throughput"},
                               {"port", studio.port()},
                               {"binary", binary},
                               {"jobs", submitted},
                               {"workers", credentials_json(workers)},
                               {"body", binary ? sw::testing::image_job("synth-image", "bench")
                                               : sw::testing::llm_job("synth-llm", "bench")}};
  const double cpu_before = process_cpu_seconds();
  auto result = run_load_generator(spec);
  const double cpu_seconds = process_cpu_seconds() - cpu_before;
  if (auto* failure = std::get_if<Failure>(&result)) return *failure;
  const auto& answer = std::get<nlohmann::json>(result);
  const double seconds = answer.value("seconds", 0.0);
  if (seconds <= 0) return Failure{"the load generator reported no duration"};
  return ThroughputRun{submitted / seconds, cpu_seconds * 1e6 / submitted};
}

// Sequential submit → offer latency with one idle worker that completes each job at once.
std::optional<Failure> offer_latency(int jobs) {
  sw::testing::TempDir dir;
  sw::studio::StudioConfig config;
  config.data_dir = dir.path();
  sw::testing::StudioHarness studio(config);
  studio.add_model("synth-llm", "llm");
  const nlohmann::json spec = {
      {"mode", "latency"},
      {"port", studio.port()},
      {"jobs", jobs},
      {"workers", credentials_json({sw::testing::register_worker(studio, "lat")})},
      {"body", sw::testing::llm_job("synth-llm", "latency")}};
  auto result = run_load_generator(spec);
  if (auto* failure = std::get_if<Failure>(&result)) return *failure;
  std::vector<double> micros =
      std::get<nlohmann::json>(result).value("micros", std::vector<double>{});
  if (micros.size() != static_cast<std::size_t>(jobs)) {
    return Failure{fmt::format("{} latencies for {} jobs", micros.size(), jobs)};
  }
  std::sort(micros.begin(), micros.end());
  figure("studio_submit_to_offer_p50", micros[micros.size() / 2] / 1000.0, "ms");
  figure("studio_submit_to_offer_p99", micros[micros.size() * 99 / 100] / 1000.0, "ms");
  return std::nullopt;
}

struct ProcessUsage {
  double rss_mib = 0;
  double cpu_seconds = 0;
};

ProcessUsage usage_of(pid_t pid) {
  ProcessUsage usage;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      usage.rss_mib = std::stod(line.substr(6)) / 1024.0;
    }
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) {
    fields >> skip;  // state … cmajflt
  }
  double utime = 0;
  double stime = 0;
  fields >> utime >> stime;
  usage.cpu_seconds = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return usage;
}

// N idle sessions against a studio-server child (so that its RSS and CPU are its own). Sets
// `skipped` (and measures nothing) where the fd limit cannot hold them.
std::optional<Failure> idle_sessions(const std::string& server_binary, int sessions,
                                     bool& skipped) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);                            // inherited by the child
  if (limit.rlim_cur < static_cast<rlim_t>(sessions) + 200) {  // per process: ours and the child's
    std::printf("SKIPPED: studio_idle_sessions: the fd limit %llu is too low for %d sessions\n",
                static_cast<unsigned long long>(limit.rlim_cur), sessions);
    skipped = true;
    return std::nullopt;
  }
  sw::testing::TempDir dir;
  std::vector<sw::testing::WorkerCredentials> workers;
  {
    auto store = sw::store::SqliteStudioStore::open(dir.path() / "studio.db");
    if (!store) return Failure{store.error().message};
    auto tx = sw::store::Tx::begin((*store)->db());
    if (!tx) return Failure{tx.error().message};
    for (int i = 0; i < sessions; ++i) {
      sw::store::WorkerRecord w;
      w.id = "w-idle-" + std::to_string(i);
      const std::string token = sw::random_hex(16);
      w.token_hash = sw::sha256_hex(token);
      w.install_id = w.id;
      w.capabilities_json = "{}";
      w.created_at = sw::unix_millis_now();
      if (auto inserted = (*store)->insert_worker(w); !inserted) {
        return Failure{inserted.error().message};
      }
      workers.push_back({w.id, token});
    }
    if (auto committed = tx->commit(); !committed) return Failure{committed.error().message};
  }
  int out[2];
  if (pipe(out) != 0) return Failure{"pipe: " + std::string(std::strerror(errno))};
  const pid_t pid = fork();
  if (pid < 0) return Failure{"fork: " + std::string(std::strerror(errno))};
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    const std::string data = "--data-dir=" + dir.path().string();
    ::setenv("STUDIO_WORKER_LOG", "warn", 1);  // a welcome line per session would dominate
    execl(server_binary.c_str(), server_binary.c_str(), "serve", "--listen", "127.0.0.1:0",
          data.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(out[1]);
  auto stop_server = [pid] {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  };
  // "studio-server <v> listening on http://127.0.0.1:<port>"
  std::string banner;
  char c = 0;
  while (read(out[0], &c, 1) == 1 && c != '\n') {
    banner.push_back(c);
  }
  const auto colon = banner.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(banner.c_str() + colon + 1);
  if (port <= 0 || port > 65535) {
    stop_server();
    return Failure{"studio-server did not say where it listens: `" + banner + "`"};
  }
  Run run;
  run.port = static_cast<std::uint16_t>(port);
  asio::io_context io;
  run.ios = {&io};
  for (const auto& w : workers) {
    spawn_checked(io, protocol_worker(&run, w, true, run.port), &run);
  }
  const auto connect_start = Clock::now();
  while (run.welcomed < sessions && !run.failed &&
         Clock::now() - connect_start < kIdleConnectDeadline) {
    io.run_one_for(1s);
  }
  const double ramp = std::chrono::duration<double>(Clock::now() - connect_start).count();
  if (run.welcomed < sessions || run.failed) {
    run.failed = true;
    stop_server();
    return Failure{
        fmt::format("{} of {} idle sessions were welcomed", run.welcomed.load(), sessions)};
  }
  // Let the staggered heartbeats settle into their rhythm, then measure a window.
  io.run_for(6s);
  const auto before = usage_of(pid);
  const auto window_start = Clock::now();
  io.run_for(30s);
  const auto after = usage_of(pid);
  const double window = std::chrono::duration<double>(Clock::now() - window_start).count();
  // A session that failed during the window (the studio dropped it) fails the run.
  const bool dropped = run.failed;
  run.failed = true;
  kill(pid, SIGTERM);
  io.run_for(2s);
  int status = 0;
  waitpid(pid, &status, 0);
  if (dropped) return Failure{"an idle session failed during the measurement window"};
  if (after.rss_mib <= 0) return Failure{"could not read studio-server's memory use"};
  figure("studio_idle_sessions", run.welcomed, "sessions");
  figure("studio_idle_sessions_connect_seconds", ramp, "s");
  figure("studio_idle_sessions_refused_handshakes", run.refused_handshakes, "retries");
  figure("studio_idle_sessions_rss", after.rss_mib, "MiB");
  figure("studio_idle_sessions_cpu", 100.0 * (after.cpu_seconds - before.cpu_seconds) / window,
         "%_of_one_core");
  return std::nullopt;
}

// ---- studio-server processes: SQLite and PostgreSQL, one and two (issue 18) ------------------
//
// The same load against studio-server children, so that the set-ups compare like for like: one
// studio on SQLite, one on PostgreSQL, two on one PostgreSQL database (clients submitting
// through both, the workers split between them). PostgreSQL is a throwaway server of
// tests/support/postgres_server (fsync and synchronous_commit off: the figures say what the
// studio and the database server cost, not what a disk does). Workers and the model are written
// into the database before the studios start (registration through the API is rate limited per
// source), so every studio reads them at start-up.

struct ServerProcess {
  pid_t pid = -1;
  std::uint16_t port = 0;
  std::filesystem::path log;
};

void stop_server(ServerProcess& server) {
  if (server.pid <= 0) return;
  ::kill(server.pid, SIGTERM);
  ::waitpid(server.pid, nullptr, 0);
  server.pid = -1;
}

std::string tail_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return text.substr(text.size() > 2000 ? text.size() - 2000 : 0);
}

// studio-server serve --listen 127.0.0.1:0 --data-dir <data_dir> <extra>, its stdout and stderr
// in <data_dir>.log; returns once it says where it listens.
std::variant<ServerProcess, Failure> start_server(const std::filesystem::path& data_dir,
                                                  const std::vector<std::string>& extra) {
  std::filesystem::create_directories(data_dir);
  ServerProcess server;
  server.log = data_dir.string() + ".log";
  std::vector<std::string> argv = {SW_STUDIO_SERVER_BIN, "serve",      "--listen",
                                   "127.0.0.1:0",        "--data-dir", data_dir.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return Failure{"fork: " + std::string(std::strerror(errno))};
  if (pid == 0) {
    const int fd = ::open(server.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::setenv("STUDIO_WORKER_LOG", "warn", 1);  // a line per session or job would dominate
    ::setenv("STUDIO_SERVER_ADMIN_TOKEN", sw::testing::kTestAdminToken.c_str(), 1);
    ::execv(args[0], args.data());
    _exit(127);
  }
  server.pid = pid;
  // "studio-server <v> listening on http://127.0.0.1:<port>"
  const std::string banner = "listening on http://127.0.0.1:";
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline) {
    std::ifstream in(server.log);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (const auto at = text.find(banner); at != std::string::npos) {
      server.port = static_cast<std::uint16_t>(std::atoi(text.c_str() + at + banner.size()));
      return server;
    }
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      return Failure{"studio-server exited at start: " + tail_of(server.log)};
    }
    std::this_thread::sleep_for(10ms);
  }
  stop_server(server);
  return Failure{"studio-server did not say where it listens: " + tail_of(server.log)};
}

// `count` approved workers `<prefix><i>` written straight into the store; their credentials.
std::variant<std::vector<sw::testing::WorkerCredentials>, Failure> insert_workers(
    sw::store::StudioStore& store, int count, const std::string& prefix) {
  std::vector<sw::testing::WorkerCredentials> workers;
  const auto caps = sw::proto::encode(sw::testing::test_capabilities());
  for (int i = 0; i < count; ++i) {
    sw::store::WorkerRecord w;
    w.id = prefix + std::to_string(i);
    const std::string token = sw::random_hex(16);
    w.token_hash = sw::sha256_hex(token);
    w.install_id = w.id;
    w.capabilities_json = caps;
    w.created_at = sw::unix_millis_now();
    if (auto inserted = store.insert_worker(w); !inserted) return Failure{inserted.error().message};
    workers.push_back({w.id, token});
  }
  return workers;
}

sw::store::ModelRecord bench_model(const std::string& id, sw::proto::TaskKind kind) {
  sw::store::ModelRecord model;
  model.id = id;
  model.kind = kind;
  model.display_name = id;
  model.source_json = R"({"engine":"synthetic","files":[],)"
                      R"("cliDefaults":{"cfgScale":0,"steps":0,"width":0,"height":0}})";
  model.created_at = model.updated_at = sw::unix_millis_now();
  return model;
}

enum class Backend { Sqlite, Postgres };

// One set-up: its studio processes (stopped on destruction) and the workers in its database.
struct Deployment {
  sw::testing::TempDir dir;
  std::vector<ServerProcess> servers;
  std::vector<sw::testing::WorkerCredentials> workers;
  Deployment() = default;
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;
  ~Deployment() {
    for (auto& server : servers) stop_server(server);
  }
  std::vector<std::uint16_t> ports() const {
    std::vector<std::uint16_t> out;
    for (const auto& server : servers) out.push_back(server.port);
    return out;
  }
};

// Starts `processes` studio-servers on a fresh database (SQLite: one process only) holding
// `workers` approved workers and the models synth-llm and synth-image.
std::variant<std::unique_ptr<Deployment>, Failure> deploy(Backend backend, int processes,
                                                          int workers,
                                                          sw::testing::PostgresServer* pg) {
  auto deployment = std::make_unique<Deployment>();
  const auto& root = deployment->dir.path();
  std::vector<std::string> extra;
  std::variant<std::vector<sw::testing::WorkerCredentials>, Failure> inserted;
  const auto fill = [&](sw::store::StudioStore& store) -> std::optional<Failure> {
    inserted = insert_workers(store, workers, "w-bench-");
    if (auto* failure = std::get_if<Failure>(&inserted)) return *failure;
    for (auto [id, kind] : {std::pair{"synth-llm", sw::proto::TaskKind::Llm},
                            std::pair{"synth-image", sw::proto::TaskKind::Image}}) {
      if (auto added = store.insert_model(bench_model(id, kind)); !added) {
        return Failure{added.error().message};
      }
    }
    return std::nullopt;
  };
  if (backend == Backend::Sqlite) {
    std::filesystem::create_directories(root / "s0");
    auto store = sw::store::SqliteStudioStore::open(root / "s0" / "studio.db");
    if (!store) return Failure{store.error().message};
    auto tx = sw::store::Tx::begin((*store)->db());
    if (!tx) return Failure{tx.error().message};
    if (auto failure = fill(**store)) return *failure;
    if (auto committed = tx->commit(); !committed) return Failure{committed.error().message};
  } else {
    static int databases = 0;
    auto uri = pg->create_database("bench_" + std::to_string(++databases));
    if (!uri) return Failure{uri.error().message};
    auto store = sw::store::PgStudioStore::open(*uri);
    if (!store) return Failure{store.error().message};
    auto tx = sw::sql::pg::Transaction::begin((*store)->connection());
    if (!tx) return Failure{tx.error().message};
    if (auto failure = fill(**store)) return *failure;
    if (auto committed = tx->commit(); !committed) return Failure{committed.error().message};
    extra = {"--database", *uri, "--results-dir", (root / "results").string()};
  }
  deployment->workers = std::get<std::vector<sw::testing::WorkerCredentials>>(inserted);
  for (int i = 0; i < processes; ++i) {
    auto started = start_server(root / ("s" + std::to_string(i)), extra);
    if (auto* failure = std::get_if<Failure>(&started)) return *failure;
    deployment->servers.push_back(std::get<ServerProcess>(started));
  }
  return deployment;
}

// CPU seconds of the postmaster's children (the backends serving the studios) that live now.
double postgres_cpu_seconds(pid_t postmaster) {
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    std::string state;
    long ppid = 0;
    fields >> state >> ppid;
    if (ppid != postmaster) continue;
    total += usage_of(static_cast<pid_t>(std::stol(name))).cpu_seconds;
  }
  return total;
}

const char* backend_name(Backend backend, int processes) {
  if (backend == Backend::Sqlite) return "sqlite1";
  return processes == 1 ? "pg1" : "pg2";
}

// One throughput run against a fresh deployment: jobs/s, and the CPU share of the studio
// processes and of PostgreSQL's backends over the run (% of one core, all processes together).
struct ProcessRun {
  double jobs_per_second = 0;
  double studio_cpu = 0;
  double postgres_cpu = 0;
};

std::variant<ProcessRun, Failure> process_throughput(Backend backend, int processes, int jobs,
                                                     sw::testing::PostgresServer* pg) {
  auto deployed = deploy(backend, processes, kWorkers, pg);
  if (auto* failure = std::get_if<Failure>(&deployed)) return *failure;
  auto& deployment = *std::get<std::unique_ptr<Deployment>>(deployed);
  const auto ports = deployment.ports();
  auto workers = credentials_json(deployment.workers);
  for (std::size_t i = 0; i < workers.size(); ++i) workers[i]["port"] = ports[i % ports.size()];
  const int submitted = jobs / kSubmitters * kSubmitters;
  const nlohmann::json spec = {
      {"mode", "throughput"}, {"port", ports[0]},
      {"ports", ports},       {"jobs", submitted},
      {"workers", workers},   {"body", sw::testing::llm_job("synth-llm", "bench")}};
  double studio_before = 0;
  for (const auto& server : deployment.servers) studio_before += usage_of(server.pid).cpu_seconds;
  const double pg_before = pg != nullptr ? postgres_cpu_seconds(pg->pid()) : 0;
  const auto t0 = Clock::now();
  auto result = run_load_generator(spec);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (auto* failure = std::get_if<Failure>(&result)) {
    std::string logs;
    for (const auto& server : deployment.servers) logs += "\n" + tail_of(server.log);
    return Failure{failure->why + logs};
  }
  double studio_after = 0;
  for (const auto& server : deployment.servers) studio_after += usage_of(server.pid).cpu_seconds;
  const double pg_after = pg != nullptr ? postgres_cpu_seconds(pg->pid()) : 0;
  const double seconds = std::get<nlohmann::json>(result).value("seconds", 0.0);
  if (seconds <= 0) return Failure{"the load generator reported no duration"};
  return ProcessRun{submitted / seconds, 100.0 * (studio_after - studio_before) / wall,
                    100.0 * (pg_after - pg_before) / wall};
}

// Sequential submit → offer with one idle worker on the last studio; with two studios the
// submits alternate between them, so half the offers cross from one process to the other.
std::optional<Failure> process_latency(Backend backend, int processes, int jobs,
                                       sw::testing::PostgresServer* pg) {
  auto deployed = deploy(backend, processes, 1, pg);
  if (auto* failure = std::get_if<Failure>(&deployed)) return *failure;
  auto& deployment = *std::get<std::unique_ptr<Deployment>>(deployed);
  const auto ports = deployment.ports();
  auto workers = credentials_json(deployment.workers);
  workers[0]["port"] = ports.back();
  const nlohmann::json spec = {
      {"mode", "latency"},  {"port", ports[0]},
      {"ports", ports},     {"jobs", jobs},
      {"workers", workers}, {"body", sw::testing::llm_job("synth-llm", "latency")}};
  auto result = run_load_generator(spec);
  if (auto* failure = std::get_if<Failure>(&result)) {
    std::string logs;
    for (const auto& server : deployment.servers) logs += "\n" + tail_of(server.log);
    return Failure{failure->why + logs};
  }
  const auto& answer = std::get<nlohmann::json>(result);
  const auto micros = answer.value("micros", std::vector<double>{});
  const auto via = answer.value("via", std::vector<int>{});
  if (micros.size() != static_cast<std::size_t>(jobs) || via.size() != micros.size()) {
    return Failure{fmt::format("{} latencies for {} jobs", micros.size(), jobs)};
  }
  const std::string name = std::string("studio_") + backend_name(backend, processes);
  const auto percentiles = [&](const std::string& prefix, int through) {
    std::vector<double> picked;
    for (std::size_t i = 0; i < micros.size(); ++i) {
      if (through < 0 || via[i] == through) picked.push_back(micros[i]);
    }
    if (picked.empty()) return;
    std::sort(picked.begin(), picked.end());
    figure(prefix + "_p50", picked[picked.size() / 2] / 1000.0, "ms");
    figure(prefix + "_p99", picked[picked.size() * 99 / 100] / 1000.0, "ms");
  };
  percentiles(name + "_submit_to_offer", -1);
  if (processes > 1) {
    percentiles(name + "_submit_to_offer_other_process", 0);
    percentiles(name + "_submit_to_offer_same_process", processes - 1);
  }
  return std::nullopt;
}

// The side-by-side figures: JSON jobs/s (median of 3 runs, each on a fresh deployment) and
// submit → offer for 1×SQLite, 1×PostgreSQL, 2×PostgreSQL.
std::optional<Failure> backends(int jobs, const std::string& only_setups, bool& pg_skipped) {
  std::unique_ptr<sw::testing::PostgresServer> pg;
  if (auto why = sw::testing::PostgresServer::unavailable_reason(); !why.empty()) {
    std::printf("SKIPPED: the PostgreSQL figures: %s\n", why.c_str());
    pg_skipped = true;
  } else {
    auto started = sw::testing::PostgresServer::start();
    if (!started) return Failure{"PostgreSQL did not start: " + started.error().describe()};
    pg = std::move(*started);
  }
  std::vector<std::pair<Backend, int>> setups = {{Backend::Sqlite, 1}};
  if (pg) {
    setups.push_back({Backend::Postgres, 1});
    setups.push_back({Backend::Postgres, 2});
  }
  for (const auto& [backend, processes] : setups) {
    if (!only_setups.empty() &&
        ("," + only_setups + ",").find(std::string(",") + backend_name(backend, processes) + ",") ==
            std::string::npos) {
      continue;
    }
    const std::string name = std::string("studio_") + backend_name(backend, processes);
    std::vector<ProcessRun> runs;
    for (int i = 0; i < 3; ++i) {
      auto run = process_throughput(backend, processes, jobs, pg.get());
      if (auto* failure = std::get_if<Failure>(&run)) return Failure{name + ": " + failure->why};
      runs.push_back(std::get<ProcessRun>(run));
    }
    std::sort(runs.begin(), runs.end(), [](const ProcessRun& a, const ProcessRun& b) {
      return a.jobs_per_second < b.jobs_per_second;
    });
    const auto& mid = runs[1];
    figure(name + "_json_jobs_per_second", mid.jobs_per_second, "jobs/s");
    figure(name + "_json_studio_cpu", mid.studio_cpu, "%_of_one_core");
    if (backend == Backend::Postgres) {
      figure(name + "_json_postgres_cpu", mid.postgres_cpu, "%_of_one_core");
    }
    if (auto failure = process_latency(backend, processes, 2000, pg.get())) {
      return Failure{name + " latency: " + failure->why};
    }
  }
  return std::nullopt;
}

// N idle sessions split across two studio-servers on one PostgreSQL database: each process's RSS
// and CPU share over a 30 s window (and PostgreSQL's backends' CPU).
std::optional<Failure> cluster_idle_sessions(int sessions, bool& skipped) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);  // inherited by the children
  if (limit.rlim_cur < static_cast<rlim_t>(sessions) + 200) {
    std::printf("SKIPPED: studio_pg2_idle_sessions: the fd limit %llu is too low for %d\n",
                static_cast<unsigned long long>(limit.rlim_cur), sessions);
    skipped = true;
    return std::nullopt;
  }
  if (auto why = sw::testing::PostgresServer::unavailable_reason(); !why.empty()) {
    std::printf("SKIPPED: studio_pg2_idle_sessions: %s\n", why.c_str());
    skipped = true;
    return std::nullopt;
  }
  auto started = sw::testing::PostgresServer::start();
  if (!started) return Failure{"PostgreSQL did not start: " + started.error().describe()};
  auto& pg = **started;
  auto deployed = deploy(Backend::Postgres, 2, sessions, &pg);
  if (auto* failure = std::get_if<Failure>(&deployed)) return *failure;
  auto& deployment = *std::get<std::unique_ptr<Deployment>>(deployed);
  Run run;
  asio::io_context io;
  run.ios = {&io};
  for (std::size_t i = 0; i < deployment.workers.size(); ++i) {
    spawn_checked(io,
                  protocol_worker(&run, deployment.workers[i], true,
                                  deployment.servers[i % deployment.servers.size()].port),
                  &run);
  }
  const auto connect_start = Clock::now();
  while (run.welcomed < sessions && !run.failed &&
         Clock::now() - connect_start < kIdleConnectDeadline) {
    io.run_one_for(1s);
  }
  const double ramp = std::chrono::duration<double>(Clock::now() - connect_start).count();
  if (run.welcomed < sessions || run.failed) {
    run.failed = true;
    return Failure{
        fmt::format("{} of {} idle sessions were welcomed", run.welcomed.load(), sessions)};
  }
  io.run_for(6s);
  std::vector<ProcessUsage> before;
  for (const auto& server : deployment.servers) before.push_back(usage_of(server.pid));
  const double pg_before = postgres_cpu_seconds(pg.pid());
  const auto window_start = Clock::now();
  io.run_for(30s);
  std::vector<ProcessUsage> after;
  for (const auto& server : deployment.servers) after.push_back(usage_of(server.pid));
  const double pg_after = postgres_cpu_seconds(pg.pid());
  const double window = std::chrono::duration<double>(Clock::now() - window_start).count();
  const bool dropped = run.failed;
  run.failed = true;
  for (auto& server : deployment.servers) ::kill(server.pid, SIGTERM);
  io.run_for(2s);
  if (dropped) return Failure{"an idle session failed during the measurement window"};
  figure("studio_pg2_idle_sessions", run.welcomed, "sessions");
  figure("studio_pg2_idle_sessions_connect_seconds", ramp, "s");
  for (std::size_t i = 0; i < after.size(); ++i) {
    const std::string name = "studio_pg2_idle_process" + std::to_string(i + 1);
    if (after[i].rss_mib <= 0) return Failure{"could not read a studio-server's memory use"};
    figure(name + "_rss", after[i].rss_mib, "MiB");
    figure(name + "_cpu", 100.0 * (after[i].cpu_seconds - before[i].cpu_seconds) / window,
           "%_of_one_core");
  }
  figure("studio_pg2_idle_postgres_cpu", 100.0 * (pg_after - pg_before) / window, "%_of_one_core");
  return std::nullopt;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The median of 3 throughput runs (`<kind>_jobs_per_second`) and of their studio CPU per job
// (`<kind>_studio_cpu_per_job`), or the first failure.
std::optional<Failure> median_throughput(bool binary, int jobs, const std::string& kind) {
  std::vector<double> rates;
  std::vector<double> cpu;
  for (int i = 0; i < 3; ++i) {
    auto run = throughput(binary, jobs);
    if (auto* failure = std::get_if<Failure>(&run)) return *failure;
    rates.push_back(std::get<ThroughputRun>(run).jobs_per_second);
    cpu.push_back(std::get<ThroughputRun>(run).cpu_us_per_job);
    // Each run on stderr, so that the spread behind the medians shows.
    std::fprintf(stderr, "%s: run %d of 3: %.1f jobs/s, studio CPU %.1f us/job\n", kind.c_str(),
                 i + 1, rates.back(), cpu.back());
  }
  figure(kind + "_jobs_per_second", median(rates), "jobs/s");
  figure(kind + "_studio_cpu_per_job", median(cpu), "us");
  return std::nullopt;
}

// MISS lines for every figure measured that misses its target in targets.md; true when none.
bool check_targets() {
  bool ok = true;
  auto at_least = [&](const Figure& f, const char* name, double target) {
    if (f.name == name && f.value < target) {
      std::printf("MISS: %s %.3f < %.0f %s (targets.md)\n", name, f.value, target, f.unit.c_str());
      ok = false;
    }
  };
  auto at_most = [&](const Figure& f, const char* name, double target) {
    if (f.name == name && f.value > target) {
      std::printf("MISS: %s %.3f > %.0f %s (targets.md)\n", name, f.value, target, f.unit.c_str());
      ok = false;
    }
  };
  for (const auto& f : g_figures) {
    at_least(f, "studio_json_jobs_per_second", kTargetJsonJobsPerSecond);
    at_least(f, "studio_binary_64k_jobs_per_second", kTargetBinaryJobsPerSecond);
    at_most(f, "studio_submit_to_offer_p99", kTargetSubmitToOfferP99Ms);
    at_least(f, "studio_idle_sessions", kTargetIdleSessions);
    at_most(f, "studio_idle_sessions_rss", kTargetIdleRssMib);
    at_most(f, "studio_idle_sessions_cpu", kTargetIdleCpuPercent);
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int sessions = 10'000;
  int jobs = 20'000;
  bool check = false;
  std::string only;
  std::string setups;  // --only=backends: a comma-separated subset of sqlite1,pg1,pg2
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--load-generator") {
      sw::log::set_filter(*sw::log::Filter::parse("warn"));
      return load_generator();
    } else if (arg.rfind("--idle-sessions=", 0) == 0) {
      sessions = std::atoi(arg.c_str() + 16);
    } else if (arg.rfind("--jobs=", 0) == 0) {
      jobs = std::atoi(arg.c_str() + 7);
    } else if (arg.rfind("--only=", 0) == 0) {
      only = arg.substr(7);
    } else if (arg.rfind("--setups=", 0) == 0) {
      setups = arg.substr(9);
    } else if (arg == "--check") {
      check = true;
    } else {
      std::fprintf(stderr, "studio_bench: unknown argument %s\n", arg.c_str());
      return 64;
    }
  }
  if (jobs < 4 * kSubmitters || sessions < 0 ||
      !(only.empty() || only == "json" || only == "binary" || only == "latency" || only == "idle" ||
        only == "backends" || only == "cluster-idle")) {
    std::fprintf(stderr,
                 "studio_bench: --jobs must be >= %d, --idle-sessions >= 0, --only one of json, "
                 "binary, latency, idle, backends, cluster-idle\n",
                 4 * kSubmitters);
    return 64;
  }
  // Quiet by default; STUDIO_WORKER_LOG (e.g. "warn,studio_worker::studio::db=info") overrides.
  sw::log::set_filter(*sw::log::Filter::parse("warn"));
  sw::log::init_from_env();
  // A load generator that dies early must fail the run, not kill this process with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::optional<Failure> failure;
  if (!failure && (only.empty() || only == "json")) {
    failure = median_throughput(false, jobs, "studio_json");
  }
  if (!failure && (only.empty() || only == "binary")) {
    failure = median_throughput(true, jobs / 4, "studio_binary_64k");
  }
  if (!failure && (only.empty() || only == "latency")) {
    failure = offer_latency(2000);
  }
  bool idle_skipped = false;
  if (!failure && (only.empty() || only == "idle") && sessions > 0) {
    failure = idle_sessions(SW_STUDIO_SERVER_BIN, sessions, idle_skipped);
  }
  bool pg_skipped = false;
  if (!failure && (only.empty() || only == "backends")) {
    failure = backends(jobs, setups, pg_skipped);
  }
  if (!failure && (only.empty() || only == "cluster-idle") && sessions > 0) {
    failure = cluster_idle_sessions(sessions, idle_skipped);
  }
  if (failure) {
    std::fprintf(stderr, "studio_bench: the run failed, no figure printed: %s\n",
                 failure->why.c_str());
    return 1;
  }
  for (const auto& f : g_figures) {
    std::printf("%s: %.3f %s\n", f.name.c_str(), f.value, f.unit.c_str());
  }
  std::fflush(stdout);
  if (check) return check_targets() ? 0 : 2;
  return 0;
}
