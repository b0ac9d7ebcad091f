// studio-server throughput and latency (targets.md "Studio"), end to end over loopback:
//   - jobs/s with 50 synthetic protocol workers, JSON results (completeJson) and 64 KiB binary
//     results (multipart complete), jobs submitted through the client API by 8 keep-alive
//     clients while the workers drain the queue;
//   - queued → offer latency with one idle eligible worker, p50/p99, measured from the client's
//     POST /api/v1/jobs to the offer frame arriving at the worker (an upper bound of the
//     studio's own figure, which /metrics also exports);
//   - with --idle-sessions N (default 10000): a studio-server child process holding N idle
//     sessions that heartbeat every 5 s; its RSS and CPU share over a 30 s window.
//
// Where the load runs: for the jobs/s and submit → offer figures the studio is in this process
// and the load generator (workers and submitters) is a second process, `studio_bench
// --load-generator` (given its run on stdin, answering on stdout), so the clients' threads are
// not the studio's threads and nothing in the studio's process spins waiting for an event. For
// the idle-session figures the studio is a studio-server child and the sessions are here, so
// its RSS and CPU are its own. On a 2-core machine the two processes still share the cores.
//
// Each figure prints as `<name>: <value> <unit>`; throughput is the median of 3 runs. A run
// that fails (a client error, a job lost, a deadline passed) prints why on stderr, prints no
// figure, and exits 1. --check compares the figures measured with targets.md and exits 2 on a
// miss (MISS lines on stdout).
//   build/ci/bench/studio_bench [--only=json|binary|latency|idle] [--jobs=N]
//                               [--idle-sessions=N] [--check]

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
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
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
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
#include "store/studio_store.h"
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
  asio::io_context* io = nullptr;  // stopped when the run ends
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
}

// Why a run failed; printed on stderr by main.
struct Failure {
  std::string why;
};

asio::awaitable<void> protocol_worker(Run* run, sw::testing::WorkerCredentials credentials,
                                      bool heartbeat_only) {
  auto executor = co_await asio::this_coro::executor;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), run->port);
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
  ++run->welcomed;
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
  beast::tcp_stream upload(executor);
  if (run->binary) {
    co_await upload.async_connect(endpoint, asio::use_awaitable);
    upload.socket().set_option(tcp::no_delay(true));
  }
  const std::string result = R"({"object":"chat.completion","choices":[]})";
  while (run->done < run->target && !run->failed) {
    co_await ws.async_read(buffer, asio::use_awaitable);
    auto frame = sw::proto::decode_studio_frame(beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
    if (!frame) {
      std::cerr << "bench worker: undecodable frame: " << frame.error().message << "\n";
      run->failed = true;
      run->io->stop();
      co_return;
    }
    if (std::holds_alternative<sw::proto::CompleteAck>(*frame)) {
      if (++run->done == run->target) {
        run->finished = Clock::now();
        run->io->stop();
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
    co_await ws.async_write(asio::buffer(accept), asio::use_awaitable);
    if (!run->binary) {
      const std::string complete = sw::proto::encode(sw::proto::WorkerFrame{
          sw::proto::CompleteJson{job_id, *sw::proto::RawJson::parse(result), std::nullopt}});
      co_await ws.async_write(asio::buffer(complete), asio::use_awaitable);
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
      run->io->stop();
      co_return;
    }
    if (++run->done == run->target) {
      run->finished = Clock::now();
      run->io->stop();
    }
  }
}

asio::awaitable<void> submitter(Run* run, int jobs, std::string body) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), run->port),
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
      run->io->stop();
    }
  }
}

void spawn_checked(asio::io_context& io, asio::awaitable<void> task, Run* run) {
  asio::co_spawn(io, std::move(task), [run](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        if (!run->failed.exchange(true)) {
          std::cerr << "bench client failed: " << ex.what() << "\n";
          run->io->stop();
        }
      }
    }
  });
}

// ---- the load generator (a child process: `studio_bench --load-generator`) ------------------

// Submits `jobs` jobs one at a time and waits, without spinning, for each one's offer and its
// completion; records submit → offer in microseconds.
asio::awaitable<void> latency_driver(Run* run, int jobs, std::string body,
                                     std::vector<double>* micros) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), run->port),
                                asio::use_awaitable);
  stream.socket().set_option(tcp::no_delay(true));
  asio::steady_timer wake(executor);
  run->wake = &wake;
  beast::flat_buffer buffer;
  for (int i = 0; i < jobs && !run->failed; ++i) {
    const int before = run->done;
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
    }
    while (run->done == before && !run->failed) {
      wake.expires_after(kRunDeadline);
      co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  run->wake = nullptr;
  run->io->stop();
}

// Reads the run from stdin, runs it, writes the outcome on stdout as one JSON object:
// {"ok", "error"?, "done", "seconds" (first submit → last completion), "micros"? (latency)}.
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
  asio::io_context io;
  run.io = &io;
  std::size_t workers = 0;
  for (const auto& w : spec.value("workers", nlohmann::json::array())) {
    sw::testing::WorkerCredentials credentials{w.value("id", ""), w.value("token", "")};
    spawn_checked(io, protocol_worker(&run, credentials, false), &run);
    ++workers;
  }
  asio::steady_timer deadline(io);
  deadline.expires_after(kRunDeadline);
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << "load generator: the run passed its deadline\n";
    run.failed = true;
    io.stop();
  });
  while (run.welcomed < static_cast<int>(workers) && !run.failed) {
    io.run_one();
  }
  const std::string body = spec.value("body", "");
  std::vector<double> micros;
  const auto start = Clock::now();
  if (latency) {
    spawn_checked(io, latency_driver(&run, run.target, body, &micros), &run);
    io.run();  // one thread: the driver and the worker share it, neither spins
  } else {
    for (int i = 0; i < kSubmitters; ++i) {
      spawn_checked(io, submitter(&run, run.target / kSubmitters, body), &run);
    }
    std::thread second([&io] { io.run(); });  // the clients get both cores' worth of help
    io.run();
    second.join();
  }
  out["done"] = run.done.load();
  const bool complete = !run.failed && run.done == run.target &&
                        (!latency || static_cast<int>(micros.size()) == run.target);
  out["ok"] = complete;
  if (!complete) {
    out["error"] = fmt::format("{} of {} jobs completed{}", run.done.load(), run.target,
                               run.failed ? " (a client failed; see above)" : "");
  } else {
    out["seconds"] = std::chrono::duration<double>(run.finished - start).count();
    if (latency) out["micros"] = micros;
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

// One end-to-end throughput run: jobs/s.
std::variant<double, Failure> throughput(bool binary, int jobs) {
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
  auto result = run_load_generator(spec);
  if (auto* failure = std::get_if<Failure>(&result)) return *failure;
  const auto& answer = std::get<nlohmann::json>(result);
  const double seconds = answer.value("seconds", 0.0);
  if (seconds <= 0) return Failure{"the load generator reported no duration"};
  return submitted / seconds;
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
    auto store = sw::store::StudioStore::open(dir.path() / "studio.db");
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
  run.io = &io;
  for (const auto& w : workers) {
    spawn_checked(io, protocol_worker(&run, w, true), &run);
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

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The median of 3 throughput runs, or the first failure.
std::optional<Failure> median_throughput(bool binary, int jobs, const std::string& name) {
  std::vector<double> runs;
  for (int i = 0; i < 3; ++i) {
    auto run = throughput(binary, jobs);
    if (auto* failure = std::get_if<Failure>(&run)) return *failure;
    runs.push_back(std::get<double>(run));
  }
  figure(name, median(runs), "jobs/s");
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
    } else if (arg == "--check") {
      check = true;
    } else {
      std::fprintf(stderr, "studio_bench: unknown argument %s\n", arg.c_str());
      return 64;
    }
  }
  if (jobs < 4 * kSubmitters || sessions < 0 ||
      !(only.empty() || only == "json" || only == "binary" || only == "latency" ||
        only == "idle")) {
    std::fprintf(stderr,
                 "studio_bench: --jobs must be >= %d, --idle-sessions >= 0, --only one of json, "
                 "binary, latency, idle\n",
                 4 * kSubmitters);
    return 64;
  }
  sw::log::set_filter(*sw::log::Filter::parse("warn"));
  // A load generator that dies early must fail the run, not kill this process with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::optional<Failure> failure;
  if (!failure && (only.empty() || only == "json")) {
    failure = median_throughput(false, jobs, "studio_json_jobs_per_second");
  }
  if (!failure && (only.empty() || only == "binary")) {
    failure = median_throughput(true, jobs / 4, "studio_binary_64k_jobs_per_second");
  }
  if (!failure && (only.empty() || only == "latency")) {
    failure = offer_latency(2000);
  }
  bool idle_skipped = false;
  if (!failure && (only.empty() || only == "idle") && sessions > 0) {
    failure = idle_sessions(SW_STUDIO_SERVER_BIN, sessions, idle_skipped);
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
