#pragma once
// An in-process studio (Studio + HttpServer) on 127.0.0.1:<ephemeral>, its io_context on a
// background thread, a real SQLite file under a data directory the harness may share across
// restarts. Plus helpers that take a worker from register-request to a welcomed session.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "net/http_server.h"
#include "studio/config.h"
#include "studio/store/studio_store.h"
#include "support/protocol_client.h"

namespace sw::testing {

inline const std::string kTestAdminToken = "test-admin-token";

// The studio's backend in tests: SQLite at <data_dir>/studio.db (the default) or, when the
// environment says SW_TEST_STUDIO_DATABASE=postgres (ctest's *OnPostgres entries), PostgreSQL:
// a fresh database on the shared test server (support/postgres_server.h) for each data
// directory, the same one again when a test restarts a studio on that directory.
bool studio_tests_on_postgres();
// Sets config.database_uri for the PostgreSQL run (unless the test set one); nothing on SQLite.
// Fails the current test when the server cannot be started. StudioHarness calls it.
void use_test_database(studio::StudioConfig& config);
// The store a studio on `data_dir` opens, for tests that change rows behind its back (as an
// outside writer would). Fails the test (null) when it cannot be opened.
std::unique_ptr<store::StudioStore> open_test_store(const std::filesystem::path& data_dir);

class StudioHarness {
 public:
  // Starts a studio on `config.data_dir` (admin token kTestAdminToken). Fails the test on error.
  // `clock` (outliving the harness) is the studio's time (Studio::create).
  explicit StudioHarness(studio::StudioConfig config, net::ServerOptions options = {},
                         const Clock& clock = SystemClock::instance());
  ~StudioHarness();  // graceful shutdown
  StudioHarness(const StudioHarness&) = delete;
  StudioHarness& operator=(const StudioHarness&) = delete;

  std::uint16_t port() const { return port_; }
  // Graceful stop (sessions closed with 1000, writes committed); the port is released.
  void stop();
  // Stops the loop without the graceful path, as close to a crash as a process can get in-process:
  // sockets are dropped, nothing more is written.
  void crash();

  HttpReply admin(const std::string& method, const std::string& target,
                  const std::string& body = "") const;
  // POST /api/v1/models with a synthetic source.
  void add_model(const std::string& id, const std::string& kind, double vram_gb = 0) const;
  // POST /api/v1/jobs; returns the job id (fails the test on a non-201).
  std::string create_job(const std::string& body) const;
  // GET /api/v1/jobs/:id as parsed fields: status, attempts, error.
  std::string job_status(const std::string& id) const;
  int job_attempts(const std::string& id) const;
  std::string job_field(const std::string& id, const std::string& field) const;
  // Waits until the job reaches `status`: subscribes to /api/v1/events first, then checks the
  // current state, then reads events. False on timeout.
  bool wait_job_status(const std::string& id, const std::string& status,
                       std::chrono::milliseconds timeout = 10s) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

struct WorkerCredentials {
  std::string worker_id;
  std::string token;
};

// register-request → admin approve → poll: a worker's credentials.
WorkerCredentials register_worker(const StudioHarness& studio, const std::string& install_id);

proto::WorkerCapabilities test_capabilities(std::vector<proto::TaskKind> kinds = {
                                                proto::TaskKind::Image, proto::TaskKind::Llm,
                                                proto::TaskKind::AudioStt,
                                                proto::TaskKind::AudioTts, proto::TaskKind::Video});

// Connects, sends hello (announcing `features`), and waits for welcome (fails the test
// otherwise).
std::unique_ptr<ProtocolClient> connect_worker(
    const StudioHarness& studio, const WorkerCredentials& credentials,
    const proto::WorkerCapabilities& capabilities = test_capabilities(),
    std::vector<std::string> features = {});

// Waits for an offer (skipping heartbeatAcks); fails the test if another frame or nothing comes.
std::optional<proto::JobOfferClaim> expect_offer(ProtocolClient& client,
                                                 std::chrono::milliseconds timeout = 10s);

// A synthetic llm task body for POST /api/v1/jobs.
std::string llm_job(const std::string& model, const std::string& prompt, int priority = 0,
                    const std::string& extra = "");
std::string image_job(const std::string& model, const std::string& prompt,
                      const std::string& extra = "");

}  // namespace sw::testing
