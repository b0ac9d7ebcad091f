#include "support/studio_harness.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>

#include "common/sha256.h"
#include "net/http_server.h"
#include "proto/codec.h"
#include "studio/store/pg_studio_store.h"
#include "studio/studio.h"
#include "support/postgres_server.h"

namespace sw::testing {

struct StudioHarness::Impl {
  boost::asio::io_context io{1};
  // Keeps run() going while the studio shuts down and no socket or timer is pending.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::shared_ptr<studio::Studio> studio;
  std::unique_ptr<net::HttpServer> server;
  std::thread thread;
  bool stopped = false;
};

bool studio_tests_on_postgres() {
  const char* which = std::getenv("SW_TEST_STUDIO_DATABASE");
  return which != nullptr && std::string_view(which) == "postgres";
}

namespace {
// The database of each data directory in this test process (PostgreSQL run only).
std::optional<std::string> database_of(const std::filesystem::path& data_dir, bool create) {
  static std::mutex mu;
  static std::map<std::string, std::string> databases;
  static int created = 0;
  std::lock_guard lock(mu);
  const auto key = std::filesystem::absolute(data_dir).lexically_normal().string();
  if (auto it = databases.find(key); it != databases.end()) {
    return it->second;
  }
  if (!create) {
    return std::nullopt;
  }
  if (const auto absent = PostgresServer::unavailable_reason(); !absent.empty()) {
    const char* ci = std::getenv("CI");
    if (ci == nullptr || std::string_view(ci) != "true") {
      // Outside CI a machine without the server skips (the studio then runs on SQLite).
      std::cout << "SKIPPED: " << absent << "\n";
      [&] { GTEST_SKIP() << absent; }();
      return std::nullopt;
    }
  }
  std::string why;
  PostgresServer* server = shared_postgres(&why);
  if (server == nullptr) {
    ADD_FAILURE() << "SW_TEST_STUDIO_DATABASE=postgres, and PostgreSQL cannot start: " << why;
    return std::nullopt;
  }
  auto uri = server->create_database("studio_" + std::to_string(++created));
  if (!uri) {
    ADD_FAILURE() << "cannot create a test database: " << uri.error().describe();
    return std::nullopt;
  }
  databases.emplace(key, *uri);
  return *uri;
}
}  // namespace

void use_test_database(studio::StudioConfig& config) {
  if (!studio_tests_on_postgres() || config.database_uri) {
    return;
  }
  config.database_uri = database_of(config.data_dir, true);
}

std::unique_ptr<store::StudioStore> open_test_store(const std::filesystem::path& data_dir) {
  Result<std::unique_ptr<store::StudioStore>> opened = fail(Error::internal("unset"));
  if (auto uri = studio_tests_on_postgres() ? database_of(data_dir, true) : std::nullopt) {
    auto pg = store::PgStudioStore::open(*uri);
    opened = pg ? Result<std::unique_ptr<store::StudioStore>>(std::move(*pg))
                : fail(std::move(pg).error());
  } else {
    auto lite = store::SqliteStudioStore::open(data_dir / "studio.db");
    opened = lite ? Result<std::unique_ptr<store::StudioStore>>(std::move(*lite))
                  : fail(std::move(lite).error());
  }
  if (!opened) {
    ADD_FAILURE() << "cannot open the studio's store: " << opened.error().describe();
    return nullptr;
  }
  return std::move(*opened);
}

StudioHarness::StudioHarness(studio::StudioConfig config, net::ServerOptions options,
                             const Clock& clock)
    : impl_(std::make_unique<Impl>()) {
  config.admin_token = kTestAdminToken;
  use_test_database(config);
  auto created = studio::Studio::create(impl_->io.get_executor(), std::move(config), clock);
  if (!created) {
    ADD_FAILURE() << "studio did not start: " << created.error().describe();
    impl_->stopped = true;
    return;
  }
  impl_->studio = std::move(*created);
  auto server =
      net::HttpServer::start(impl_->io.get_executor(), options, impl_->studio->http_handler());
  if (!server) {
    ADD_FAILURE() << "server did not start: " << server.error().describe();
    impl_->stopped = true;
    return;
  }
  impl_->server = std::move(*server);
  port_ = impl_->server->port();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

StudioHarness::~StudioHarness() {
  stop();
}

void StudioHarness::stop() {
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  std::promise<void> done;
  boost::asio::post(impl_->io, [&] {
    impl_->server->stop();
    impl_->studio->shutdown([&] { done.set_value(); });
  });
  done.get_future().wait();
  // Give the close frames their handshake, bounded by the server's own close timeout.
  std::promise<void> drained;
  std::function<void()> poll = [&] {
    if (impl_->studio->open_sessions() == 0) {
      drained.set_value();
      return;
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(impl_->io, 10ms);
    timer->async_wait([&, timer](const boost::system::error_code&) { poll(); });
  };
  boost::asio::post(impl_->io, poll);
  drained.get_future().wait_for(15s);
  impl_->io.stop();
  impl_->thread.join();
  impl_->server.reset();
  impl_->studio.reset();
}

void StudioHarness::crash() {
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  impl_->io.stop();
  impl_->thread.join();
  impl_->studio->halt_threads_for_test();
  // Destroying the loop's pending work drops every socket without a close frame.
  impl_->server.reset();
  impl_->studio.reset();
}

HttpReply StudioHarness::admin(const std::string& method, const std::string& target,
                               const std::string& body) const {
  return http_request(port_, method, target, body, kTestAdminToken);
}

void StudioHarness::add_model(const std::string& id, const std::string& kind,
                              double vram_gb) const {
  nlohmann::json body = {
      {"id", id},
      {"kind", kind},
      {"vramGbEstimate", vram_gb},
      {"source",
       {{"engine", "synthetic"},
        {"files", nlohmann::json::array()},
        {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
  const auto reply = admin("POST", "/api/v1/models", body.dump());
  ASSERT_EQ(reply.status, 201) << reply.body;
}

std::string StudioHarness::create_job(const std::string& body) const {
  const auto reply = admin("POST", "/api/v1/jobs", body);
  EXPECT_EQ(reply.status, 201) << reply.body;
  auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
  return parsed.is_object() ? parsed.value("id", "") : "";
}

std::string StudioHarness::job_field(const std::string& id, const std::string& field) const {
  const auto reply = admin("GET", "/api/v1/jobs/" + id);
  EXPECT_EQ(reply.status, 200) << reply.body;
  auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
  if (!parsed.is_object() || !parsed.contains(field)) {
    return "";
  }
  const auto& value = parsed[field];
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string StudioHarness::job_status(const std::string& id) const {
  return job_field(id, "status");
}

int StudioHarness::job_attempts(const std::string& id) const {
  const auto text = job_field(id, "attempts");
  return text.empty() ? -1 : std::stoi(text);
}

bool StudioHarness::wait_job_status(const std::string& id, const std::string& status,
                                    std::chrono::milliseconds timeout) const {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
  if (ec) {
    return false;
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timeval limit{static_cast<time_t>(seconds.count()),
                static_cast<suseconds_t>((timeout - seconds).count() * 1000)};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  const std::string request = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                              kTestAdminToken + "\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(request), ec);
  std::string seen;
  std::array<char, 4096> chunk{};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (seen.find(": connected") == std::string::npos) {
    const auto n = socket.read_some(boost::asio::buffer(chunk), ec);
    if (ec || std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    seen.append(chunk.data(), n);
  }
  if (job_status(id) == status) {
    return true;
  }
  // Each event is "event: job\ndata: {json}\n\n"; look at complete data lines only.
  std::size_t scanned = 0;
  while (true) {
    for (auto end = seen.find('\n', scanned); end != std::string::npos;
         end = seen.find('\n', scanned)) {
      const std::string line = seen.substr(scanned, end - scanned);
      scanned = end + 1;
      if (line.rfind("data: ", 0) != 0) {
        continue;
      }
      const auto event = nlohmann::json::parse(line.substr(6), nullptr, false);
      if (event.is_object() && event.value("id", "") == id && event.value("status", "") == status) {
        return true;
      }
    }
    const auto n = socket.read_some(boost::asio::buffer(chunk), ec);
    if (ec || std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    seen.append(chunk.data(), n);
  }
}

WorkerCredentials register_worker(const StudioHarness& studio, const std::string& install_id) {
  const std::string secret = "secret-of-" + install_id;
  nlohmann::json request = {
      {"installId", install_id},
      {"registrationSecretHash", sha256_hex(secret)},
      {"capabilities", nlohmann::json::parse(proto::encode(test_capabilities()))},
      {"userAgent", "studio-worker-test/1"}};
  auto reply =
      http_request(studio.port(), "POST", "/graphics/api/workers/register-request", request.dump());
  EXPECT_EQ(reply.status, 200) << reply.body;
  const auto request_id = nlohmann::json::parse(reply.body, nullptr, false).value("requestId", "");
  reply = studio.admin("POST", "/api/v1/workers/pending/" + request_id + "/approve");
  EXPECT_EQ(reply.status, 200) << reply.body;
  reply = http_request(studio.port(), "GET",
                       "/graphics/api/workers/register-requests/" + request_id, "", secret);
  EXPECT_EQ(reply.status, 200) << reply.body;
  auto poll = proto::decode_registration_poll(reply.body);
  EXPECT_TRUE(poll.has_value()) << reply.body;
  if (!poll || !std::holds_alternative<proto::RegistrationApproved>(*poll)) {
    ADD_FAILURE() << "not approved: " << reply.body;
    return {};
  }
  const auto& approved = std::get<proto::RegistrationApproved>(*poll);
  return WorkerCredentials{approved.worker_id, approved.auth_token};
}

proto::WorkerCapabilities test_capabilities(std::vector<proto::TaskKind> kinds) {
  proto::WorkerCapabilities caps;
  caps.machine_name = "test-host";
  caps.username = "tester";
  caps.agent_version = "0.0.0-test";
  caps.vram_total_gb = 24;
  caps.vram_threshold_gb = 24;
  caps.task_kinds = std::move(kinds);
  return caps;
}

std::unique_ptr<ProtocolClient> connect_worker(const StudioHarness& studio,
                                               const WorkerCredentials& credentials,
                                               const proto::WorkerCapabilities& capabilities,
                                               std::vector<std::string> features) {
  auto client = ProtocolClient::connect(studio.port(), credentials.worker_id,
                                        ProtocolClient::Options{credentials.token, true});
  if (!client) {
    ADD_FAILURE() << "upgrade refused: " << client.error().message;
    return nullptr;
  }
  proto::Hello hello{credentials.token, capabilities};
  hello.features = std::move(features);
  (*client)->send(hello);
  auto welcome = (*client)->next_frame();
  if (!welcome || !std::holds_alternative<proto::Welcome>(*welcome)) {
    ADD_FAILURE() << "no welcome for " << credentials.worker_id;
    return nullptr;
  }
  EXPECT_EQ(std::get<proto::Welcome>(*welcome).worker_id, credentials.worker_id);
  return std::move(*client);
}

std::optional<proto::JobOfferClaim> expect_offer(ProtocolClient& client,
                                                 std::chrono::milliseconds timeout) {
  auto frame = client.next_non_ack(timeout);
  if (!frame) {
    ADD_FAILURE() << "no offer arrived";
    return std::nullopt;
  }
  if (!std::holds_alternative<proto::Offer>(*frame)) {
    ADD_FAILURE() << "expected an offer, got " << proto::encode(*frame);
    return std::nullopt;
  }
  return std::get<proto::Offer>(*frame).claim;
}

std::string llm_job(const std::string& model, const std::string& prompt, int priority,
                    const std::string& extra) {
  nlohmann::json body = {
      {"model", model},
      {"priority", priority},
      {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", prompt}}}}}}};
  if (!extra.empty()) {
    body.update(nlohmann::json::parse(extra));
  }
  return body.dump();
}

std::string image_job(const std::string& model, const std::string& prompt,
                      const std::string& extra) {
  nlohmann::json body = {
      {"model", model},
      {"task", {{"kind", "image"}, {"prompt", prompt}, {"width", 64}, {"height", 64}}}};
  if (!extra.empty()) {
    body.update(nlohmann::json::parse(extra));
  }
  return body.dump();
}

}  // namespace sw::testing
