// studio-server throughput and latency (targets.md "Studio"), end to end over loopback:
//   - jobs/s with 50 in-process synthetic protocol workers, JSON results (completeJson) and
//     64 KiB binary results (multipart complete), jobs submitted through the client API by
//     8 keep-alive clients while the workers drain the queue;
//   - queued → offer latency with one idle eligible worker, p50/p99, measured from the client's
//     POST /api/v1/jobs to the offer frame arriving at the worker (an upper bound of the
//     studio's own figure, which /metrics also exports);
//   - with --idle-sessions N (default 10000): a studio-server child process holding N idle
//     sessions that heartbeat every 5 s; its RSS and CPU share over a 30 s window.
// Each figure prints as `<name>: <value> <unit>`; throughput is the median of 3 runs.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

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

struct Run {
  asio::io_context* io = nullptr;  // stopped when the run ends
  std::uint16_t port = 0;
  bool binary = false;
  int target = 0;
  std::atomic<int> done{0};
  std::atomic<int> welcomed{0};
  std::atomic<bool> failed{false};
  std::string image_bytes;
  Clock::time_point finished;
  // Latency mode: when the worker saw each offer.
  std::mutex offers_mutex;
  std::map<std::string, Clock::time_point> offer_seen;
};

void figure(const std::string& name, double value, const std::string& unit) {
  std::printf("%s: %.3f %s\n", name.c_str(), value, unit.c_str());
  std::fflush(stdout);
}

asio::awaitable<void> protocol_worker(Run* run, sw::testing::WorkerCredentials credentials,
                                      bool heartbeat_only) {
  auto executor = co_await asio::this_coro::executor;
  websocket::stream<beast::tcp_stream> ws(executor);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), run->port);
  co_await beast::get_lowest_layer(ws).async_connect(endpoint, asio::use_awaitable);
  beast::get_lowest_layer(ws).expires_never();
  // Small frames back to back (accept, then completeJson): without this, Nagle holds the second
  // until the first is acknowledged.
  beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
  ws.set_option(websocket::stream_base::decorator([token = credentials.token](auto& req) {
    req.set(http::field::authorization, "Bearer " + token);
    req.set(http::field::sec_websocket_protocol, "studio-worker-v1");
  }));
  co_await ws.async_handshake("127.0.0.1",
                              "/graphics/api/workers/" + credentials.worker_id + "/connect",
                              asio::use_awaitable);
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
      run->failed = true;
      co_return;
    }
    if (std::holds_alternative<sw::proto::CompleteAck>(*frame)) {
      if (++run->done == run->target) {
        run->finished = Clock::now();
        run->io->stop();
      }
      continue;
    }
    if (!std::holds_alternative<sw::proto::Offer>(*frame)) {
      continue;
    }
    const auto job_id = std::get<sw::proto::Offer>(*frame).claim.job_id;
    {
      std::lock_guard lock(run->offers_mutex);
      run->offer_seen[job_id] = Clock::now();
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
      run->failed = true;
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

// One end-to-end throughput run; jobs/s, or 0 on failure.
double throughput(bool binary, int jobs) {
  sw::testing::TempDir dir;
  sw::studio::StudioConfig config;
  config.data_dir = dir.path();
  config.register_rate_limit = 1000;
  sw::testing::StudioHarness studio(config);
  studio.add_model("synth-llm", "llm");
  studio.add_model("synth-image", "image");
  Run run;
  run.port = studio.port();
  run.binary = binary;
  run.target = jobs;
  run.image_bytes = std::string(64 * 1024, 'x');
  asio::io_context io;
  run.io = &io;
  for (int i = 0; i < kWorkers; ++i) {
    spawn_checked(
        io,
        protocol_worker(&run, sw::testing::register_worker(studio, "b" + std::to_string(i)), false),
        &run);
  }
  while (run.welcomed < kWorkers && !run.failed) {
    io.run_one();
  }
  const std::string body = binary ? sw::testing::image_job("synth-image", "bench")
                                  : sw::testing::llm_job("synth-llm", "bench");
  const auto start = Clock::now();
  for (int i = 0; i < kSubmitters; ++i) {
    spawn_checked(io, submitter(&run, jobs / kSubmitters, body), &run);
  }
  std::thread second([&io] { io.run(); });  // the clients get both cores' worth of help
  io.run();
  second.join();
  if (run.failed || run.done != jobs) {
    return 0;
  }
  return jobs / std::chrono::duration<double>(run.finished - start).count();
}

// Sequential submit → offer latency with one idle worker that completes each job at once.
void offer_latency(int jobs) {
  sw::testing::TempDir dir;
  sw::studio::StudioConfig config;
  config.data_dir = dir.path();
  sw::testing::StudioHarness studio(config);
  studio.add_model("synth-llm", "llm");
  Run run;
  run.port = studio.port();
  run.target = jobs;
  asio::io_context io;
  run.io = &io;
  spawn_checked(io, protocol_worker(&run, sw::testing::register_worker(studio, "lat"), false),
                &run);
  while (run.welcomed < 1 && !run.failed) {
    io.run_one();
  }
  std::thread worker_thread([&io] { io.run(); });
  std::vector<double> micros;
  const std::string body = sw::testing::llm_job("synth-llm", "latency");
  for (int i = 0; i < jobs; ++i) {
    const int before = run.done;
    const auto t0 = Clock::now();
    const auto reply = studio.admin("POST", "/api/v1/jobs", body);
    const auto id = nlohmann::json::parse(reply.body).value("id", "");
    Clock::time_point seen;
    while (true) {
      {
        std::lock_guard lock(run.offers_mutex);
        if (auto it = run.offer_seen.find(id); it != run.offer_seen.end()) {
          seen = it->second;
          break;
        }
      }
      std::this_thread::yield();
    }
    micros.push_back(std::chrono::duration<double, std::micro>(seen - t0).count());
    while (run.done == before) {
      std::this_thread::yield();
    }
  }
  worker_thread.join();
  std::sort(micros.begin(), micros.end());
  figure("studio_submit_to_offer_p50", micros[micros.size() / 2] / 1000.0, "ms");
  figure("studio_submit_to_offer_p99", micros[micros.size() * 99 / 100] / 1000.0, "ms");
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

// N idle sessions against a studio-server child (so that its RSS and CPU are its own).
void idle_sessions(const std::string& server_binary, int sessions) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);                            // inherited by the child
  if (limit.rlim_cur < static_cast<rlim_t>(sessions) + 200) {  // per process: ours and the child's
    std::cerr << "idle sessions: the fd limit " << limit.rlim_cur << " is too low for " << sessions
              << " sessions; skipped\n";
    return;
  }
  sw::testing::TempDir dir;
  std::vector<sw::testing::WorkerCredentials> workers;
  {
    auto store = sw::store::StudioStore::open(dir.path() / "studio.db");
    if (!store) {
      std::cerr << store.error().message << "\n";
      return;
    }
    auto tx = sw::store::Tx::begin((*store)->db());
    for (int i = 0; i < sessions; ++i) {
      sw::store::WorkerRecord w;
      w.id = "w-idle-" + std::to_string(i);
      const std::string token = sw::random_hex(16);
      w.token_hash = sw::sha256_hex(token);
      w.install_id = w.id;
      w.capabilities_json = "{}";
      w.created_at = sw::unix_millis_now();
      (void)(*store)->insert_worker(w);
      workers.push_back({w.id, token});
    }
    (void)tx->commit();
  }
  int out[2];
  if (pipe(out) != 0) {
    return;
  }
  const pid_t pid = fork();
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
  // "studio-server <v> listening on http://127.0.0.1:<port>"
  std::string banner;
  char c = 0;
  while (read(out[0], &c, 1) == 1 && c != '\n') {
    banner.push_back(c);
  }
  const auto colon = banner.rfind(':');
  Run run;
  run.port = static_cast<std::uint16_t>(std::stoi(banner.substr(colon + 1)));
  asio::io_context io;
  run.io = &io;
  for (const auto& w : workers) {
    spawn_checked(io, protocol_worker(&run, w, true), &run);
  }
  const auto connect_start = Clock::now();
  while (run.welcomed < sessions && !run.failed) {
    io.run_one();
  }
  const double ramp = std::chrono::duration<double>(Clock::now() - connect_start).count();
  // Let the staggered heartbeats settle into their rhythm, then measure a window.
  io.run_for(6s);
  const auto before = usage_of(pid);
  const auto window_start = Clock::now();
  io.run_for(30s);
  const auto after = usage_of(pid);
  const double window = std::chrono::duration<double>(Clock::now() - window_start).count();
  run.failed = true;
  kill(pid, SIGTERM);
  io.run_for(2s);
  waitpid(pid, nullptr, 0);
  figure("studio_idle_sessions", run.welcomed, "sessions");
  figure("studio_idle_sessions_connect_seconds", ramp, "s");
  figure("studio_idle_sessions_rss", after.rss_mib, "MiB");
  figure("studio_idle_sessions_cpu", 100.0 * (after.cpu_seconds - before.cpu_seconds) / window,
         "%_of_one_core");
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int sessions = 10'000;
  int jobs = 20'000;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--idle-sessions=", 0) == 0) {
      sessions = std::stoi(arg.substr(16));
    } else if (arg.rfind("--jobs=", 0) == 0) {
      jobs = std::stoi(arg.substr(7));
    } else if (arg.rfind("--only=", 0) == 0) {
      only = arg.substr(7);
    }
  }
  sw::log::set_filter(*sw::log::Filter::parse("warn"));
  if (only.empty() || only == "json") {
    std::vector<double> runs;
    for (int i = 0; i < 3; ++i) {
      runs.push_back(throughput(false, jobs));
    }
    figure("studio_json_jobs_per_second", median(runs), "jobs/s");
  }
  if (only.empty() || only == "binary") {
    std::vector<double> runs;
    for (int i = 0; i < 3; ++i) {
      runs.push_back(throughput(true, jobs / 4));
    }
    figure("studio_binary_64k_jobs_per_second", median(runs), "jobs/s");
  }
  if (only.empty() || only == "latency") {
    offer_latency(2000);
  }
  if ((only.empty() || only == "idle") && sessions > 0) {
    idle_sessions(SW_STUDIO_SERVER_BIN, sessions);
  }
  return 0;
}
