// studio-server's memory while result uploads come in (issue 16, kind 3). A studio-server child
// (so that its RSS is its own) with one worker holding one job; then
//   1. three concurrent 150 MiB uploads to a job the worker does not hold (answered 409), and
//   2. one 150 MiB upload of the held job's result (answered 200),
// each sent whole by the client unless the studio stops it. The peak RSS of each phase (VmHWM,
// reset between phases through /proc/<pid>/clear_refs) is printed as `<name>: <value> <unit>`.
//
//   cmake --build build/ci --target upload_bench && build/ci/bench/upload_bench [MiB per upload]
// STUDIO_SERVER_BIN=<path> measures that studio-server binary instead of this build's.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "sql/sqlite.h"
#include "studio/store/studio_store.h"
#include "support/protocol_client.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;

constexpr const char* kAdminToken = "bench-admin-token";

double status_mib(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stod(line.substr(field.size() + 1)) / 1024.0;
    }
  }
  return 0;
}

void reset_peak(pid_t pid) {
  std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5";
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const auto n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// POSTs a multipart result of `mib` MiB, streamed from a small buffer, sending all of it unless
// the studio closes first; returns the status of the answer (0: none could be read).
int upload(std::uint16_t port, const std::string& worker_id, const std::string& token,
           const std::string& job_id, std::size_t mib) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return 0;
  }
  timeval limit{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  const std::string boundary = "bench-" + sw::random_hex(8);
  const std::string prefix =
      "--" + boundary + "\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nbench\r\n--" +
      boundary + "\r\nContent-Disposition: form-data; name=\"ext\"\r\n\r\npng\r\n--" + boundary +
      "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"r.png\"\r\n\r\n";
  const std::string suffix = "\r\n--" + boundary + "--\r\n";
  const std::size_t image = mib << 20;
  const std::string head = fmt::format(
      "POST /graphics/api/workers/{}/jobs/{}/complete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={}\r\n"
      "Content-Length: {}\r\nConnection: close\r\n\r\n",
      worker_id, job_id, token, boundary, prefix.size() + image + suffix.size());
  std::string chunk(1 << 20, '\0');
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    chunk[i] = static_cast<char>((i * 2654435761u) >> 11);
  }
  bool sending =
      send_all(fd, head.data(), head.size()) && send_all(fd, prefix.data(), prefix.size());
  for (std::size_t sent = 0; sending && sent < image; sent += chunk.size()) {
    sending = send_all(fd, chunk.data(), chunk.size());
  }
  if (sending) {
    send_all(fd, suffix.data(), suffix.size());
  }
  std::string answer(256, '\0');
  const auto n = ::recv(fd, answer.data(), answer.size(), 0);
  ::close(fd);
  if (n < 12 || answer.rfind("HTTP/1.1 ", 0) != 0) {
    return 0;
  }
  return std::atoi(answer.c_str() + 9);
}

struct Studio {
  pid_t pid = -1;
  std::uint16_t port = 0;
};

Studio start_studio(const std::string& binary, const std::filesystem::path& dir) {
  int out[2];
  if (::pipe(out) != 0) {
    return {};
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    const std::string data = "--data-dir=" + dir.string();
    ::setenv("STUDIO_WORKER_LOG", "warn", 1);
    ::setenv("STUDIO_SERVER_ADMIN_TOKEN", kAdminToken, 1);
    ::execl(binary.c_str(), binary.c_str(), "serve", "--listen", "127.0.0.1:0", data.c_str(),
            static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(out[1]);
  // "studio-server <v> listening on http://127.0.0.1:<port>"
  std::string banner;
  char c = 0;
  while (::read(out[0], &c, 1) == 1 && c != '\n') {
    banner.push_back(c);
  }
  const auto colon = banner.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(banner.c_str() + colon + 1);
  return Studio{pid, static_cast<std::uint16_t>(port > 0 && port < 65536 ? port : 0)};
}

int fail(const Studio& studio, const std::string& why) {
  std::fprintf(stderr, "upload_bench: %s\n", why.c_str());
  if (studio.pid > 0) {
    ::kill(studio.pid, SIGTERM);
    ::waitpid(studio.pid, nullptr, 0);
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  const std::size_t mib = argc > 1 ? std::stoul(argv[1]) : 150;
  sw::testing::TempDir dir;
  const std::string worker_id = "w-bench";
  const std::string token = sw::random_hex(16);
  {
    auto store = sw::store::SqliteStudioStore::open(dir.path() / "studio.db");
    if (!store) return fail({}, store.error().message);
    sw::store::WorkerRecord w;
    w.id = worker_id;
    w.token_hash = sw::sha256_hex(token);
    w.install_id = worker_id;
    w.capabilities_json = "{}";
    w.created_at = sw::unix_millis_now();
    if (auto inserted = (*store)->insert_worker(w); !inserted) {
      return fail({}, inserted.error().message);
    }
  }
  // STUDIO_SERVER_BIN measures another build (e.g. main's, for the before figure).
  const char* binary = std::getenv("STUDIO_SERVER_BIN");
  const Studio studio = start_studio(binary != nullptr ? binary : SW_STUDIO_SERVER_BIN, dir.path());
  if (studio.port == 0) return fail(studio, "studio-server did not say where it listens");

  const nlohmann::json model = {
      {"id", "synth-image"},
      {"kind", "image"},
      {"source",
       {{"engine", "synthetic"},
        {"files", nlohmann::json::array()},
        {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
  if (sw::testing::http_request(studio.port, "POST", "/api/v1/models", model.dump(), kAdminToken)
          .status != 201) {
    return fail(studio, "cannot add the model");
  }
  const std::string job_body =
      R"({"model":"synth-image","task":{"kind":"image","prompt":"x","width":64,"height":64}})";
  std::vector<std::string> jobs;
  for (int i = 0; i < 2; ++i) {
    const auto reply =
        sw::testing::http_request(studio.port, "POST", "/api/v1/jobs", job_body, kAdminToken);
    const auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
    if (reply.status != 201 || !parsed.is_object()) return fail(studio, "cannot create a job");
    jobs.push_back(parsed.value("id", ""));
  }
  auto client = sw::testing::ProtocolClient::connect(
      studio.port, worker_id, sw::testing::ProtocolClient::Options{token, true});
  if (!client) return fail(studio, "upgrade refused: " + client.error().message);
  (*client)->send(
      sw::proto::Hello{token, sw::testing::test_capabilities({sw::proto::TaskKind::Image})});
  auto welcome = (*client)->next_frame();
  if (!welcome || !std::holds_alternative<sw::proto::Welcome>(*welcome)) {
    return fail(studio, "no welcome");
  }
  auto offer = (*client)->next_non_ack();
  if (!offer || !std::holds_alternative<sw::proto::Offer>(*offer)) {
    return fail(studio, "no offer");
  }
  const std::string held = std::get<sw::proto::Offer>(*offer).claim.job_id;
  const std::string not_held = held == jobs[0] ? jobs[1] : jobs[0];
  (*client)->send(sw::proto::Accept{held});

  const double idle = status_mib(studio.pid, "VmRSS");
  reset_peak(studio.pid);
  std::vector<int> statuses(3);
  {
    std::vector<std::thread> threads;
    for (auto& status : statuses) {
      threads.emplace_back(
          [&, s = &status] { *s = upload(studio.port, worker_id, token, not_held, mib); });
    }
    for (auto& t : threads) t.join();
  }
  const double refused_peak = status_mib(studio.pid, "VmHWM");
  reset_peak(studio.pid);
  const int accepted = upload(studio.port, worker_id, token, held, mib);
  const double accepted_peak = status_mib(studio.pid, "VmHWM");
  ::kill(studio.pid, SIGTERM);
  ::waitpid(studio.pid, nullptr, 0);
  if (accepted != 200) return fail({}, fmt::format("the held job's upload got {}", accepted));

  std::printf("studio_idle_rss: %.1f MiB\n", idle);
  std::printf("studio_refused_uploads_peak_rss: %.1f MiB\n", refused_peak);
  std::printf("studio_accepted_upload_peak_rss: %.1f MiB\n", accepted_peak);
  std::printf("refused_upload_answers: %d %d %d status\n", statuses[0], statuses[1], statuses[2]);
  std::printf("upload_size: %zu MiB\n", mib);
  return 0;
}
