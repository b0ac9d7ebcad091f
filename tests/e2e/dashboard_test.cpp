// End to end, the studio's web dashboard (issue 21) over real sockets: its files as a browser
// gets them (gzip, revalidation, the security headers), the routes it reads that exist for it
// (whoami, the fleet's live fields, the jobs list's model filter), and, when Chromium and
// playwright-core are installed (scripts/setup-browser.sh), an operator's whole session in a real
// headless browser (tests/dashboard/session.mjs).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <zlib.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "support/farm.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using namespace sw::testing::farm;

std::string source_file(const std::string& name) {
  std::ifstream in(std::filesystem::path(SW_DASHBOARD_DIR) / name, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// zlib's inflate with gzip framing (windowBits 16 + 15): the bytes, or "<inflate failed>".
std::string gunzip(const std::string& data) {
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) return "<inflate failed>";
  std::string out;
  std::array<char, 16384> buffer{};
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer.data());
    stream.avail_out = static_cast<uInt>(buffer.size());
    rc = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer.data(), buffer.size() - stream.avail_out);
  }
  inflateEnd(&stream);
  return rc == Z_STREAM_END ? out : "<inflate failed>";
}

// The header `name` (given in lower case) of `reply`, matched without regard to case.
std::string header(const sw::testing::HttpReply& reply, const std::string& name) {
  for (const auto& [key, value] : reply.headers) {
    std::string lower = key;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == name) return value;
  }
  return "";
}

sw::testing::HttpReply get(const Studio& studio, const std::string& target,
                           std::vector<std::pair<std::string, std::string>> headers = {}) {
  return sw::testing::http_request(studio.port(), "GET", target, "", "", "application/json", 10s,
                                   headers);
}

// A model the synthetic engine serves (POST /api/v1/models body).
json synthetic_model(const std::string& id, const std::string& kind, double vram_gb) {
  return {{"id", id},
          {"kind", kind},
          {"vramGbEstimate", vram_gb},
          {"source",
           {{"engine", "synthetic"},
            {"files", json::array()},
            {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
}

class DashboardTest : public ::testing::Test {
 protected:
  sw::testing::TempDir dir_;
  Studio studio_{dir_.path() / "studio"};
};

TEST_F(DashboardTest, ServesEveryFileAsWrittenGzippedWhenAcceptedAndUnderAStrictPolicy) {
  for (const auto& entry : std::filesystem::directory_iterator(SW_DASHBOARD_DIR)) {
    const auto name = entry.path().filename().string();
    const auto target = name == "index.html" ? std::string("/") : "/assets/" + name;
    SCOPED_TRACE(target);
    const auto plain = get(studio_, target);
    ASSERT_EQ(plain.status, 200) << plain.body;
    EXPECT_EQ(plain.body, source_file(name));
    EXPECT_EQ(header(plain, "content-encoding"), "");
    const auto zipped = get(studio_, target, {{"Accept-Encoding", "br, gzip;q=0.8"}});
    ASSERT_EQ(zipped.status, 200);
    EXPECT_EQ(header(zipped, "content-encoding"), "gzip");
    EXPECT_EQ(gunzip(zipped.body), source_file(name));
    EXPECT_NE(header(plain, "etag"), header(zipped, "etag"));  // one per representation
    for (const auto& reply : {plain, zipped}) {
      EXPECT_EQ(header(reply, "vary"), "Accept-Encoding");
      EXPECT_EQ(header(reply, "cache-control"), "no-cache");
      EXPECT_EQ(header(reply, "x-content-type-options"), "nosniff");
      const auto policy = header(reply, "content-security-policy");
      EXPECT_NE(policy.find("default-src 'none'"), std::string::npos) << policy;
      EXPECT_NE(policy.find("script-src 'self';"), std::string::npos) << policy;
      EXPECT_NE(policy.find("frame-ancestors 'none'"), std::string::npos) << policy;
      EXPECT_EQ(policy.find("unsafe"), std::string::npos) << policy;
    }
  }
  const auto index = get(studio_, "/");
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(get(studio_, "/assets/app.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(get(studio_, "/assets/app.css").content_type, "text/css; charset=utf-8");
}

TEST_F(DashboardTest, ABrowserRevalidatesWithItsETagAndGetsNotModified) {
  const auto first = get(studio_, "/assets/app.js", {{"Accept-Encoding", "gzip, deflate"}});
  ASSERT_EQ(first.status, 200);
  const auto etag = header(first, "etag");
  ASSERT_FALSE(etag.empty());
  const auto again = get(studio_, "/assets/app.js",
                         {{"Accept-Encoding", "gzip, deflate"}, {"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(header(again, "etag"), etag);
  // The compressed copy's tag does not revalidate the plain one.
  EXPECT_EQ(get(studio_, "/assets/app.js", {{"If-None-Match", etag}}).status, 200);
  // gzip refused by q=0 gets the plain bytes.
  const auto refused = get(studio_, "/assets/app.js", {{"Accept-Encoding", "gzip;q=0, *"}});
  EXPECT_EQ(header(refused, "content-encoding"), "");
  EXPECT_EQ(refused.body, source_file("app.js"));
}

TEST_F(DashboardTest, AnUnknownFileIs404AndNoPathLeavesTheEmbeddedSet) {
  for (const std::string target :
       {"/assets/nope.js", "/assets/..%2Fstudio.db", "/assets/", "/assets/a/b.js", "/index.html"}) {
    SCOPED_TRACE(target);
    const auto reply = get(studio_, target);
    EXPECT_EQ(reply.status, 404) << reply.body;
  }
}

// Writes `requests` on one connection and reads until the studio closes it.
std::string exchange(std::uint16_t port, const std::string& requests) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::asio::write(socket, boost::asio::buffer(requests));
  std::string answer;
  boost::system::error_code ec;
  std::array<char, 8192> chunk{};
  while (!ec) {
    const auto n = socket.read_some(boost::asio::buffer(chunk), ec);
    answer.append(chunk.data(), n);
  }
  return answer;
}

TEST_F(DashboardTest, HeadAnswersGetsHeadersWithoutABodySoTheNextAnswerStaysInFrame) {
  const auto icon = source_file("icon.svg");
  const auto answer = exchange(studio_.port(),
                               "HEAD / HTTP/1.1\r\nHost: studio\r\n\r\n"
                               "HEAD /api/v1/events HTTP/1.1\r\nHost: studio\r\n\r\n"
                               "GET /assets/icon.svg HTTP/1.1\r\nHost: studio\r\n"
                               "Connection: close\r\n\r\n");
  // Three answers: the page's head (its length, no body), 405 for the endless event stream
  // (no body either), then the icon whole.
  const auto first = answer.find("HTTP/1.1 200 OK\r\n");
  const auto second = answer.find("HTTP/1.1 405", first + 1);
  const auto third = answer.find("HTTP/1.1 200 OK\r\n", second + 1);
  ASSERT_EQ(first, 0u) << answer;
  ASSERT_NE(second, std::string::npos) << answer;
  ASSERT_NE(third, std::string::npos) << answer;
  const auto head = answer.substr(0, second);
  EXPECT_NE(head.find("Content-Length: " + std::to_string(source_file("index.html").size())),
            std::string::npos)
      << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;  // nothing after the header
  EXPECT_TRUE(answer.substr(second, third - second).ends_with("\r\n\r\n"));
  EXPECT_TRUE(answer.ends_with("\r\n\r\n" + icon)) << answer.substr(third);
}

TEST_F(DashboardTest, AModelIdWithAnEscapedColonIsManagedAndDotIdsAreRefused) {
  const json model = synthetic_model("ns:name", "image", 1);
  ASSERT_EQ(studio_.api("POST", "/api/v1/models", model.dump()).status, 201);
  // What a browser's encodeURIComponent sends.
  const auto patched = studio_.api("PATCH", "/api/v1/models/ns%3Aname", R"({"enabled":false})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_FALSE(json::parse(patched.body).value("enabled", true));
  EXPECT_EQ(studio_.api("GET", "/api/v1/models/ns%3aname").status, 200);
  EXPECT_EQ(studio_.api("GET", "/api/v1/models/ns%zzname").status, 404);  // a bad escape
  for (const std::string id : {".", ".."}) {
    auto dotted = model;
    dotted["id"] = id;
    const auto refused = studio_.api("POST", "/api/v1/models", dotted.dump());
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_NE(refused.body.find("id: must not be"), std::string::npos) << refused.body;
  }
}

TEST_F(DashboardTest, WhoAmINamesTheBearersScope) {
  auto who = json::parse(studio_.api("GET", "/api/v1/whoami").body, nullptr, false);
  EXPECT_EQ(who.value("scope", ""), "admin");
  EXPECT_TRUE(who["keyId"].is_null());
  for (const std::string scope : {"client", "inference"}) {
    const auto created = studio_.api("POST", "/api/v1/keys",
                                     json{{"name", scope + " key"}, {"scope", scope}}.dump());
    ASSERT_EQ(created.status, 201) << created.body;
    const auto key = json::parse(created.body);
    const auto reply = sw::testing::http_request(studio_.port(), "GET", "/api/v1/whoami", "",
                                                 key.value("key", ""));
    ASSERT_EQ(reply.status, 200) << reply.body;
    who = json::parse(reply.body);
    EXPECT_EQ(who.value("scope", ""), scope);
    EXPECT_EQ(who.value("keyId", ""), key.value("id", "x"));
    EXPECT_EQ(who.value("name", ""), scope + " key");
  }
  EXPECT_EQ(get(studio_, "/api/v1/whoami").status, 401);
}

TEST_F(DashboardTest, TheFleetShowsWhenAWorkerConnectedAndItsLastHeartbeat) {
  Worker worker(dir_.path() / "worker", studio_);
  const auto worker_id = studio_.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  json row;
  // Heartbeats come every 5 s (reference-worker.md §1.10).
  ASSERT_TRUE(eventually(
      [&] {
        const auto list = json::parse(studio_.api("GET", "/api/v1/workers").body, nullptr, false);
        for (const auto& w : list.value("workers", json::array())) {
          if (w.value("id", "") == worker_id) row = w;
        }
        return row.contains("lastHeartbeatAt");
      },
      20s))
      << row.dump();
  EXPECT_TRUE(row.value("connected", false));
  EXPECT_LE(row.value("connectedAt", ""), row.value("lastHeartbeatAt", ""));
  worker.kill9();
  ASSERT_TRUE(eventually([&] {
    const auto list = json::parse(studio_.api("GET", "/api/v1/workers").body, nullptr, false);
    const auto& w = list["workers"][0];
    return !w.value("connected", true) && !w.contains("connectedAt");
  }));
}

TEST_F(DashboardTest, TheJobsListFiltersByModel) {
  studio_.add_models();
  const auto image = studio_.submit("image", {{"prompt", "a cat"}});
  const auto speech = studio_.submit("audio_tts", {{"text", "hello"}});
  const auto list = [&](const std::string& query) {
    std::vector<std::string> ids;
    const auto reply = studio_.api("GET", "/api/v1/jobs" + query);
    EXPECT_EQ(reply.status, 200) << reply.body;
    const auto answer = json::parse(reply.body);  // kept: a range-for over a member of a
    for (const auto& job : answer["jobs"]) {      // temporary would read freed memory
      ids.push_back(job.value("id", ""));
    }
    return ids;
  };
  EXPECT_EQ(list("?model=synth-image"), std::vector<std::string>{image});
  EXPECT_EQ(list("?model=synth-audio_tts&status=queued"), std::vector<std::string>{speech});
  EXPECT_TRUE(list("?model=nothing").empty());
  EXPECT_EQ(list("").size(), 2u);
  EXPECT_EQ(studio_.api("GET", "/api/v1/jobs?model=" + std::string(201, 'm')).status, 400);
}

TEST_F(DashboardTest, StatsCountJobsByKindAndHowTheyEndedAsMetricsDoes) {
  studio_.add_models();
  Worker worker(dir_.path() / "worker", studio_);
  studio_.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto done = studio_.submit("image", {{"prompt", "a cat"}});
  ASSERT_TRUE(studio_.wait_status(done, "done"));
  // A job no worker can hold (4000 GB): it waits, and is cancelled.
  const json huge = synthetic_model("huge", "llm", 4000);
  ASSERT_EQ(studio_.api("POST", "/api/v1/models", huge.dump()).status, 201);
  const auto waiting = studio_.api(
      "POST", "/api/v1/jobs",
      json{{"model", "huge"},
           {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}}}
          .dump());
  ASSERT_EQ(waiting.status, 201) << waiting.body;
  const auto waiting_id = json::parse(waiting.body).value("id", "");
  json stats;
  ASSERT_TRUE(eventually([&] {
    stats = json::parse(studio_.api("GET", "/api/v1/stats").body, nullptr, false);
    for (const auto& w : stats.value("waiting", json::array())) {
      if (w.value("reason", "") == "no_vram" && w.value("detail", "") == "4000") return true;
    }
    return false;
  })) << stats.dump();
  EXPECT_EQ(stats["queueDepth"].value("llm", 0), 1);
  EXPECT_EQ(stats["jobs"].value("queued", 0), 1);
  EXPECT_EQ(stats["jobs"].value("done", 0), 1);
  EXPECT_EQ(stats.value("workersConnected", 0), 1);
  ASSERT_EQ(studio_.api("POST", "/api/v1/jobs/" + waiting_id + "/cancel", "{}").status, 200);
  stats = json::parse(studio_.api("GET", "/api/v1/stats").body);
  EXPECT_EQ(stats["jobsCreated"], (json{{"image", 1}, {"llm", 1}})) << stats.dump();
  EXPECT_EQ(stats["jobsEnded"], (json{{{"kind", "image"}, {"status", "done"}, {"count", 1}},
                                      {{"kind", "llm"}, {"status", "cancelled"}, {"count", 1}}}))
      << stats.dump();
  const auto& latency = stats["offerLatency"];
  EXPECT_EQ(latency.value("count", 0), 1);  // the image job's one offer
  EXPECT_EQ(latency["buckets"].back().value("count", 0), 1);
  EXPECT_EQ(latency["buckets"].back().value("le", ""), "+Inf");
  const auto metrics = get(studio_, "/metrics").body;
  EXPECT_NE(metrics.find("studio_jobs_ended_total{kind=\"image\",status=\"done\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("studio_jobs_created_total{kind=\"llm\"} 1"), std::string::npos);
  // The page's charts read it with a client key; an inference key may not.
  const auto inference =
      json::parse(studio_.api("POST", "/api/v1/keys", R"({"name":"i","scope":"inference"})").body);
  EXPECT_EQ(sw::testing::http_request(studio_.port(), "GET", "/api/v1/stats", "",
                                      inference.value("key", ""))
                .status,
            403);
}

// Chromium and the installed playwright-core, or why not.
std::optional<std::string> browser_missing() {
  const std::filesystem::path dir = SW_BROWSER_TEST_DIR;
  if (std::system("node --version >/dev/null 2>&1") != 0) {
    return "no `node` on PATH (scripts/setup-browser.sh installs Debian's nodejs)";
  }
  if (std::system("chromium --version >/dev/null 2>&1") != 0) {
    return "no `chromium` on PATH (scripts/setup-browser.sh installs Debian's chromium)";
  }
  if (!std::filesystem::exists(dir / "node_modules" / "playwright-core" / "package.json")) {
    return "playwright-core is not installed in " + dir.string() +
           " (run scripts/setup-browser.sh)";
  }
  return std::nullopt;
}

// The operator's whole session in a real browser (tests/dashboard/session.mjs): sign in, approve
// the waiting worker and see it connect, add a model with a bad field and see the field named,
// submit a job and see its image, cancel a job that waits, filter, the keyboard, the metrics
// charts, a phone's screen, a client key's narrower view; and what break-it runs found: a reason
// typed across a refresh, focus across refreshes, pause shown live, failed reads kept on screen,
// reads that answer after newer events, the open job followed, a key narrowed while signed in. Screenshots of each view go to
// SW_TEST_ARTIFACTS_DIR/dashboard (not committed); any console error fails it.
// What session.mjs runs and types (kept in step with it).
constexpr std::size_t kSessionSteps = 23;
constexpr const char* kRejectReason = "not one of our machines, typed slowly";

TEST_F(DashboardTest, AnOperatorRunsTheFleetFromThePage) {
  if (const auto why = browser_missing()) {
    std::printf("SKIPPED: %s\n", why->c_str());
    GTEST_SKIP() << *why;
  }
  // The registration requests waiting, by request id.
  const auto pending = [&] {
    std::vector<std::string> ids;
    const auto list =
        json::parse(studio_.api("GET", "/api/v1/workers/pending").body, nullptr, false);
    for (const auto& r : list.value("pending", json::array()))
      ids.push_back(r.value("requestId", ""));
    return ids;
  };
  // Waits for the page's approval; its synthetic jobs take 300 ms.
  Worker worker(dir_.path() / "worker", studio_, 300);
  ASSERT_TRUE(eventually([&] { return pending().size() == 1; })) << worker.log();
  const auto approve_request = pending().front();
  // A second machine the page rejects, with a reason typed across a refresh of the cards.
  Worker rejected(dir_.path() / "rejected", studio_);
  std::string reject_request;
  ASSERT_TRUE(eventually([&] {
    for (const auto& id : pending()) {
      if (id != approve_request) reject_request = id;
    }
    return !reject_request.empty();
  })) << rejected.log();
  const auto created = studio_.api("POST", "/api/v1/keys",
                                   json{{"name", "dashboard client"}, {"scope", "client"}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  const auto artifacts = std::filesystem::path(SW_TEST_ARTIFACTS_DIR) / "dashboard";
  std::filesystem::create_directories(artifacts);
  ::setenv("STUDIO_URL", studio_.url().c_str(), 1);
  ::setenv("ADMIN_TOKEN", kAdmin.c_str(), 1);
  ::setenv("CLIENT_KEY", json::parse(created.body).value("key", "").c_str(), 1);
  ::setenv("ARTIFACTS", artifacts.c_str(), 1);
  ::setenv("APPROVE_REQUEST", approve_request.c_str(), 1);
  ::setenv("REJECT_REQUEST", reject_request.c_str(), 1);
  ::setenv("REJECT_REASON", kRejectReason, 1);
  const auto worker_cli =
      std::string(SW_STUDIO_WORKER_BIN) + " --config " + worker.config().string();
  ::setenv("PAUSE_COMMAND", (worker_cli + " pause").c_str(), 1);
  ::setenv("RESUME_COMMAND", (worker_cli + " resume").c_str(), 1);
  const std::string command =
      "cd " + std::string(SW_BROWSER_TEST_DIR) + " && node session.mjs 2>&1";
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe) != nullptr) output += chunk.data();
  const int status = ::pclose(pipe);
  std::printf("dashboard screenshots: %s\n", artifacts.c_str());
  const auto report = json::parse(
      output.substr(output.rfind("{\"ok\"") == std::string::npos ? 0 : output.rfind("{\"ok\"")),
      nullptr, false);
  ASSERT_TRUE(report.is_object()) << output;
  for (const auto& step : report["steps"]) {
    EXPECT_TRUE(step.value("ok", false))
        << step.value("name", "") << ": " << step.value("error", "");
  }
  EXPECT_EQ(report["steps"].size(), kSessionSteps) << output;  // every step ran
  // The reason typed on the page reached the rejected worker (its state file keeps it).
  const auto state = rejected.config().parent_path() / "state.toml";
  EXPECT_TRUE(eventually([&] { return read_file(state).find(kRejectReason) != std::string::npos; }))
      << read_file(state) << rejected.log();
  EXPECT_TRUE(report["consoleErrors"].empty()) << report["consoleErrors"].dump(2);
  EXPECT_TRUE(report.value("ok", false)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << output << "\nstudio log:\n"
      << read_file(dir_.path() / "studio" / "server.log") << "\nworker log:\n"
      << worker.log();
}

}  // namespace
