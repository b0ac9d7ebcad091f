// studio-server against a worker-side protocol client over real loopback sockets and a real
// SQLite file: registration, session rules, offers and every requeue path, results, restarts.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <array>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <thread>
#include <tuple>

#include "common/sha256.h"
#include "proto/codec.h"
#include "studio/store/studio_store.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

using nlohmann::json;

// The job's attempts reach `n` (an accept is counted when the studio reads the frame).
bool eventually_attempts(const StudioHarness& studio, const std::string& id, int n) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (studio.job_attempts(id) != n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// The job's `waiting` reason reaches `reason` (the scheduler's view, polled through the API).
bool eventually_waiting(const StudioHarness& studio, const std::string& id,
                        const std::string& reason) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (studio.job_field(id, "waiting") != reason) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

studio::StudioConfig test_config(const std::filesystem::path& dir) {
  studio::StudioConfig config;
  config.data_dir = dir;
  config.offer_timeout = 30s;
  config.session_silence_timeout = 30s;
  config.sweep_interval = 1s;
  config.reject_hold_off = 1h;  // deterministic: a rejecting worker gets nothing more
  config.fail_hold_off = 0ms;   // a failed job may go straight back (tests that need it set it)
  config.claim_grace = 150ms;   // a vanished holder's job comes back quickly
  return config;
}

json parse(const std::string& text) {
  return json::parse(text, nullptr, false);
}

class StudioProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override { start(test_config(dir_.path())); }

  void start(studio::StudioConfig config) {
    studio_ = std::make_unique<StudioHarness>(std::move(config));
    studio_->add_model("synth-llm", "llm");
    studio_->add_model("synth-image", "image");
  }
  // Same data directory, new settings: models and workers are already there.
  void restart(studio::StudioConfig config) {
    studio_.reset();
    studio_ = std::make_unique<StudioHarness>(std::move(config));
  }

  StudioHarness& studio() { return *studio_; }

  TempDir dir_;
  std::unique_ptr<StudioHarness> studio_;
};

// ---- registration (reference §2.1–2.2) ----

TEST_F(StudioProtocolTest, RegistrationGoesPendingThenApprovedWithARotatingToken) {
  const std::string secret = "s3cret";
  json request = {{"installId", "install-1"},
                  {"registrationSecretHash", sha256_hex(secret)},
                  {"capabilities", parse(proto::encode(test_capabilities()))},
                  {"userAgent", "studio-worker/9.9"},
                  {"label", "ignored"}};
  auto reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                            request.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto request_id = parse(reply.body)["requestId"].get<std::string>();
  EXPECT_EQ(parse(reply.body)["status"], "pending");
  EXPECT_EQ(request_id.rfind("rr-", 0), 0u);

  // A retry of the same install and secret is the same request.
  reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                       request.dump());
  EXPECT_EQ(parse(reply.body)["requestId"], request_id);

  const std::string poll_path = "/graphics/api/workers/register-requests/" + request_id;
  reply = http_request(studio().port(), "GET", poll_path, "", secret);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, R"({"status":"pending"})");
  EXPECT_EQ(http_request(studio().port(), "GET", poll_path, "", "wrong-secret").status, 401);
  EXPECT_EQ(http_request(studio().port(), "GET", poll_path).status, 401);
  EXPECT_EQ(http_request(studio().port(), "GET",
                         "/graphics/api/workers/register-requests/rr-unknown", "", secret)
                .status,
            404);

  const auto pending = parse(studio().admin("GET", "/api/v1/workers/pending").body);
  ASSERT_EQ(pending["pending"].size(), 1u);
  EXPECT_EQ(pending["pending"][0]["installId"], "install-1");

  reply = studio().admin("POST", "/api/v1/workers/pending/" + request_id + "/approve");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto worker_id = parse(reply.body)["workerId"].get<std::string>();
  EXPECT_EQ(studio().admin("POST", "/api/v1/workers/pending/" + request_id + "/approve").status,
            409);

  reply = http_request(studio().port(), "GET", poll_path, "", secret);
  auto first = proto::decode_registration_poll(reply.body);
  ASSERT_TRUE(first.has_value()) << reply.body;
  const auto& approved = std::get<proto::RegistrationApproved>(*first);
  EXPECT_EQ(approved.worker_id, worker_id);
  EXPECT_EQ(approved.auth_token.size(), 64u);

  // Every approved poll mints a fresh token; the older one stops working.
  reply = http_request(studio().port(), "GET", poll_path, "", secret);
  const auto second =
      std::get<proto::RegistrationApproved>(*proto::decode_registration_poll(reply.body));
  EXPECT_NE(second.auth_token, approved.auth_token);
  auto stale = ProtocolClient::connect(studio().port(), worker_id, {approved.auth_token, true});
  ASSERT_FALSE(stale.has_value());
  EXPECT_NE(stale.error().message.find("HTTP 401"), std::string::npos) << stale.error().message;
  EXPECT_NE(connect_worker(studio(), {worker_id, second.auth_token}), nullptr);
}

// `?waitMs=` (ours, issue 17): a poll of a pending request is held open, the pending list says
// its worker is waiting, and the operator's decision answers the held poll at once: approved.
// The reference studio ignores the parameter; without it a poll is answered at once.
TEST_F(StudioProtocolTest, AHeldPollIsAnsweredByTheApproval) {
  const std::string secret = "held";
  json request = {{"installId", "install-held"},
                  {"registrationSecretHash", sha256_hex(secret)},
                  {"capabilities", parse(proto::encode(test_capabilities()))},
                  {"userAgent", "studio-worker/9.9"}};
  auto reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                            request.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto request_id = parse(reply.body)["requestId"].get<std::string>();
  const std::string poll_path = "/graphics/api/workers/register-requests/" + request_id;
  EXPECT_EQ(http_request(studio().port(), "GET", poll_path + "?waitMs=-1", "", secret).status, 400);

  HttpReply held;
  std::thread poller([&] {
    held = http_request(studio().port(), "GET", poll_path + "?waitMs=30000", "", secret,
                        "application/json", 40s);
  });
  const auto waiting = [&] {
    const auto pending = parse(studio().admin("GET", "/api/v1/workers/pending").body);
    return pending["pending"].size() == 1 && pending["pending"][0].value("waiting", false);
  };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!waiting() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  const bool was_waiting = waiting();
  reply = studio().admin("POST", "/api/v1/workers/pending/" + request_id + "/approve");
  poller.join();
  ASSERT_TRUE(was_waiting) << "the held poll never showed in the pending list";
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto worker_id = parse(reply.body)["workerId"].get<std::string>();
  ASSERT_EQ(held.status, 200) << held.body;
  auto decoded = proto::decode_registration_poll(held.body);
  ASSERT_TRUE(decoded.has_value()) << held.body;
  const auto* approved = std::get_if<proto::RegistrationApproved>(&*decoded);
  ASSERT_NE(approved, nullptr) << held.body;
  EXPECT_EQ(approved->worker_id, worker_id);
  EXPECT_NE(connect_worker(studio(), {worker_id, approved->auth_token}), nullptr);
}

TEST_F(StudioProtocolTest, RejectedRequestsSayWhy) {
  const std::string secret = "another";
  json request = {{"installId", "install-2"},
                  {"registrationSecretHash", sha256_hex(secret)},
                  {"capabilities", parse(proto::encode(test_capabilities()))},
                  {"userAgent", "studio-worker/9.9"}};
  auto reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                            request.dump());
  const auto request_id = parse(reply.body)["requestId"].get<std::string>();
  reply = studio().admin("POST", "/api/v1/workers/pending/" + request_id + "/reject",
                         R"({"reason":"unknown contributor"})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  reply = http_request(studio().port(), "GET",
                       "/graphics/api/workers/register-requests/" + request_id, "", secret);
  EXPECT_EQ(reply.body, R"({"status":"rejected","reason":"unknown contributor"})");
}

TEST_F(StudioProtocolTest, RegisterRequestsAreValidatedAndRateLimitedPerAddress) {
  auto reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                            R"({"installId":"x"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("registrationSecretHash"), std::string::npos) << reply.body;
  json request = {{"installId", "install-3"},
                  {"registrationSecretHash", "NOT-HEX"},
                  {"capabilities", parse(proto::encode(test_capabilities()))},
                  {"userAgent", "x"}};
  reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                       request.dump());
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("registrationSecretHash"), std::string::npos) << reply.body;
  // 2 requests so far from 127.0.0.1; the limit is 10 per 60 s.
  int accepted = 0;
  int limited = 0;
  for (int i = 0; i < 10; ++i) {
    request["installId"] = "install-rate-" + std::to_string(i);
    request["registrationSecretHash"] = sha256_hex("s" + std::to_string(i));
    reply = http_request(studio().port(), "POST", "/graphics/api/workers/register-request",
                         request.dump());
    accepted += reply.status == 200;
    limited += reply.status == 429;
  }
  EXPECT_EQ(accepted, 8);
  EXPECT_EQ(limited, 2);
}

// ---- sessions (reference §1, §8) ----

TEST_F(StudioProtocolTest, UpgradeNeedsTheBearerAndEchoesTheSubprotocol) {
  const auto worker = register_worker(studio(), "install-s1");
  auto no_token = ProtocolClient::connect(studio().port(), worker.worker_id, {"", true});
  ASSERT_FALSE(no_token.has_value());
  EXPECT_NE(no_token.error().message.find("HTTP 401"), std::string::npos);
  EXPECT_NE(no_token.error().message.find("reference"), std::string::npos)
      << "failed upgrades carry a reference id: " << no_token.error().message;
  auto wrong_worker = ProtocolClient::connect(studio().port(), "w-other", {worker.token, true});
  ASSERT_FALSE(wrong_worker.has_value());

  auto client = ProtocolClient::connect(studio().port(), worker.worker_id, {worker.token, true});
  ASSERT_TRUE(client.has_value()) << client.error().message;
  EXPECT_EQ((*client)->subprotocol(), "studio-worker-v1");
}

TEST_F(StudioProtocolTest, HelloWithAWrongTokenGetsAuthFailedThen4001) {
  const auto worker = register_worker(studio(), "install-s2");
  auto client = ProtocolClient::connect(studio().port(), worker.worker_id, {worker.token, true});
  ASSERT_TRUE(client.has_value());
  (*client)->send(proto::Hello{"not-the-token", test_capabilities()});
  auto frame = (*client)->next_frame();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame));
  EXPECT_EQ(std::get<proto::ErrorFrame>(*frame).code, proto::WorkerErrorCode::AuthFailed);
  EXPECT_EQ((*client)->wait_closed(), 4001);
}

TEST_F(StudioProtocolTest, FramesBeforeHelloAreProtocolViolations) {
  const auto worker = register_worker(studio(), "install-s3");
  auto client = ProtocolClient::connect(studio().port(), worker.worker_id, {worker.token, true});
  ASSERT_TRUE(client.has_value());
  (*client)->send(proto::Heartbeat{test_capabilities(), std::nullopt});
  auto frame = (*client)->next_frame();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame));
  const auto& error = std::get<proto::ErrorFrame>(*frame);
  EXPECT_EQ(error.code, proto::WorkerErrorCode::ProtocolViolation);
  EXPECT_NE(error.message.find("hello"), std::string::npos) << error.message;
  EXPECT_EQ((*client)->wait_closed(), 4002);
}

TEST_F(StudioProtocolTest, MalformedUnknownAndBinaryFramesEndTheSessionWith4002) {
  const auto worker = register_worker(studio(), "install-s4");
  for (const std::string bad :
       {"{not json", R"({"type":"teleport"})", R"({"type":"accept"})", "[1,2,3]"}) {
    auto client = connect_worker(studio(), worker);
    ASSERT_NE(client, nullptr);
    client->send_text(bad);
    auto frame = client->next_non_ack();
    ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame)) << bad;
    EXPECT_EQ(std::get<proto::ErrorFrame>(*frame).code, proto::WorkerErrorCode::ProtocolViolation);
    EXPECT_FALSE(std::get<proto::ErrorFrame>(*frame).message.empty());
    EXPECT_EQ(client->wait_closed(), 4002) << bad;
  }
  auto client = connect_worker(studio(), worker);
  ASSERT_NE(client, nullptr);
  client->send_binary("\x01\x02");
  auto frame = client->next_non_ack();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame));
  EXPECT_EQ(client->wait_closed(), 4002);
  // The studio is unharmed: the worker connects again and works.
  EXPECT_NE(connect_worker(studio(), worker), nullptr);
}

TEST_F(StudioProtocolTest, ASecondSessionClosesTheFirstWithDuplicateWorker) {
  const auto worker = register_worker(studio(), "install-s5");
  auto first = connect_worker(studio(), worker);
  auto second = connect_worker(studio(), worker);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  auto frame = first->next_non_ack();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame));
  EXPECT_EQ(std::get<proto::ErrorFrame>(*frame).code, proto::WorkerErrorCode::DuplicateWorker);
  EXPECT_EQ(first->wait_closed(), 4003);
  second->send(proto::Heartbeat{test_capabilities(), std::nullopt});
  frame = second->next_frame();
  ASSERT_TRUE(frame && std::holds_alternative<proto::HeartbeatAck>(*frame));
}

TEST_F(StudioProtocolTest, DeletingAWorkerClosesItsSessionWithWorkerDeleted) {
  const auto worker = register_worker(studio(), "install-s6");
  auto client = connect_worker(studio(), worker);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(studio().admin("DELETE", "/api/v1/workers/" + worker.worker_id).status, 200);
  auto frame = client->next_non_ack();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame));
  EXPECT_EQ(std::get<proto::ErrorFrame>(*frame).code, proto::WorkerErrorCode::WorkerDeleted);
  EXPECT_EQ(client->wait_closed(), 4004);
  auto again = ProtocolClient::connect(studio().port(), worker.worker_id, {worker.token, true});
  EXPECT_FALSE(again.has_value());
}

TEST_F(StudioProtocolTest, DeletingAWorkerRequeuesItsJobsAtOnceWithoutCountingAnAttempt) {
  auto config = test_config(dir_.path());
  config.claim_grace = 1h;  // a vanished holder's claim would wait for it
  restart(config);
  const auto holder = register_worker(studio(), "install-r1");
  const auto other = register_worker(studio(), "install-r2");
  auto running = connect_worker(studio(), holder);
  const auto held = studio().create_job(llm_job("synth-llm", "held by a live session"));
  ASSERT_TRUE(expect_offer(*running));
  running->send(proto::Accept{held});
  running->drop();  // gone: its claim waits out the grace
  // Once the studio saw it go, the claim is detached, not released.
  const auto connected = [&] {
    const auto listed = parse(studio().admin("GET", "/api/v1/workers").body);
    for (const auto& w : listed["workers"]) {  // bound first: a range-for's temporary dies early
      if (w.value("id", "") == holder.worker_id) return w.value("connected", false);
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (connected() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(connected());
  EXPECT_EQ(studio().job_status(held), "claimed");

  EXPECT_EQ(studio().admin("DELETE", "/api/v1/workers/" + holder.worker_id).status, 200);
  // At once: the job is queued again (its one run started does not fail it), and another worker
  // is offered it.
  EXPECT_EQ(studio().job_status(held), "queued");
  EXPECT_EQ(studio().job_attempts(held), 1);
  auto next = connect_worker(studio(), other);
  auto offer = expect_offer(*next);
  ASSERT_TRUE(offer);
  EXPECT_EQ(offer->job_id, held);
}

TEST_F(StudioProtocolTest, AWorkerWhoseRowWentBehindTheStudiosBackIsCutOffAtHelloAndAtTheClaim) {
  const auto a = register_worker(studio(), "install-v1");
  const auto b = register_worker(studio(), "install-v2");
  auto first = connect_worker(studio(), a);
  ASSERT_NE(first, nullptr);
  // A writer outside the studio (an older studio-server CLI, a sqlite3 shell) removes both rows:
  // the data directory's lock keeps studio-server's own commands from doing this.
  {
    auto store = open_test_store(dir_.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->delete_worker(a.worker_id).value_or(false));
    ASSERT_TRUE(store->delete_worker(b.worker_id).value_or(false));
  }
  // b's token is still in the studio's cache and upgrades, but hello re-reads the row. On
  // PostgreSQL the studio is told of the delete (as of another studio process's, issue 18) and
  // may have dropped the token already: then the upgrade itself is refused. Cut off either way.
  auto late = ProtocolClient::connect(studio().port(), b.worker_id, {b.token, true});
  if (late.has_value() || !studio_tests_on_postgres()) {
    ASSERT_TRUE(late.has_value()) << late.error().message;
    (*late)->send(proto::Hello{b.token, test_capabilities()});
    auto refused = (*late)->next_frame();
    ASSERT_TRUE(refused && std::holds_alternative<proto::ErrorFrame>(*refused));
    EXPECT_EQ(std::get<proto::ErrorFrame>(*refused).code, proto::WorkerErrorCode::WorkerDeleted);
    EXPECT_EQ((*late)->wait_closed(), 4004);
  } else {
    EXPECT_NE(late.error().message.find("401"), std::string::npos) << late.error().message;
  }

  // a was welcomed before; the claim re-reads its row: a is cut off and never sees the offer.
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  auto frame = first->next_non_ack();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame))
      << "the deleted worker was offered the job";
  EXPECT_EQ(std::get<proto::ErrorFrame>(*frame).code, proto::WorkerErrorCode::WorkerDeleted);
  EXPECT_EQ(first->wait_closed(), 4004);
  EXPECT_EQ(studio().job_status(job), "queued");
  EXPECT_EQ(studio().job_attempts(job), 0);
  EXPECT_FALSE(ProtocolClient::connect(studio().port(), a.worker_id, {a.token, true}).has_value());
  // A worker whose row is there takes it.
  const auto c = register_worker(studio(), "install-v3");
  auto third = connect_worker(studio(), c);
  auto offer = expect_offer(*third);
  ASSERT_TRUE(offer);
  EXPECT_EQ(offer->job_id, job);
}

TEST_F(StudioProtocolTest, HeartbeatsAreAckedAndPersisted) {
  const auto worker = register_worker(studio(), "install-s7");
  auto client = connect_worker(studio(), worker);
  ASSERT_NE(client, nullptr);
  auto caps = test_capabilities();
  caps.machine_name = "renamed-host";
  caps.vram_threshold_gb = 7.5;
  client->send(proto::Heartbeat{caps, std::string("job-elsewhere")});
  auto frame = client->next_frame();
  ASSERT_TRUE(frame && std::holds_alternative<proto::HeartbeatAck>(*frame));
  // The write is committed before the next request is answered (one writer, in order).
  const auto workers = parse(studio().admin("GET", "/api/v1/workers").body)["workers"];
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0]["connected"], true);
  EXPECT_EQ(workers[0]["capabilities"]["machineName"], "renamed-host");
  EXPECT_EQ(workers[0]["capabilities"]["vramThresholdGb"], 7.5);
}

TEST_F(StudioProtocolTest, SilentSessionsAreClosedAndTheirJobReleased) {
  auto config = test_config(dir_.path());
  config.session_silence_timeout = 300ms;
  config.sweep_interval = 50ms;
  restart(config);
  const auto worker = register_worker(studio(), "install-s8");
  auto client = connect_worker(studio(), worker);
  ASSERT_NE(client, nullptr);
  const auto job = studio().create_job(llm_job("synth-llm", "hello"));
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  // Nothing more from the worker: a half-open connection as the studio sees it.
  EXPECT_TRUE(client->wait_closed(10s).has_value());
  EXPECT_TRUE(studio().wait_job_status(job, "queued"));
  EXPECT_EQ(studio().job_attempts(job), 0) << "offered, never accepted: no run";
  EXPECT_NE(studio().job_field(job, "error").find("silent"), std::string::npos);
}

// ---- offers and results ----

TEST_F(StudioProtocolTest, JsonJobRunsEndToEnd) {
  const auto worker = register_worker(studio(), "install-j1");
  auto client = connect_worker(studio(), worker);
  ASSERT_NE(client, nullptr);
  const auto job = studio().create_job(
      llm_job("synth-llm", "write a haiku", 0, R"({"gameId":"g1","assetName":"poem"})"));
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, job);
  EXPECT_EQ(claim->model, "synth-llm");
  EXPECT_EQ(claim->game_id, "g1");
  EXPECT_EQ(claim->asset_name, "poem");
  EXPECT_EQ(claim->model_source.engine, "synthetic");
  ASSERT_EQ(claim->task.kind(), proto::TaskKind::Llm);
  EXPECT_EQ(std::get<proto::LlmParams>(claim->task.params).messages[0].content, "write a haiku");
  EXPECT_EQ(studio().job_status(job), "claimed");
  EXPECT_EQ(studio().job_field(job, "workerId"), worker.worker_id);

  client->send(proto::Accept{job});
  auto result = proto::RawJson::parse(R"({"object":"chat.completion","choices":[]})");
  ASSERT_TRUE(result);
  client->send(proto::CompleteJson{job, *result, std::string("write a haiku")});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_EQ(std::get<proto::CompleteAck>(*ack).job_id, job);
  EXPECT_EQ(studio().job_status(job), "done");
  const auto body = parse(studio().admin("GET", "/api/v1/jobs/" + job).body);
  EXPECT_EQ(body["result"]["json"]["object"], "chat.completion");
  const auto bytes = studio().admin("GET", "/api/v1/jobs/" + job + "/result");
  EXPECT_EQ(bytes.status, 200);
  EXPECT_TRUE(proto::same_json(bytes.body, result->text()));

  // A repeated completion is acknowledged again and changes nothing.
  client->send(proto::CompleteJson{job, *result, std::string("write a haiku")});
  ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
}

TEST_F(StudioProtocolTest, BinaryResultsAreStoredBySha256AndRepeatsAreIdempotent) {
  const auto a = register_worker(studio(), "install-b1");
  const auto b = register_worker(studio(), "install-b2");
  auto client = connect_worker(studio(), a);
  ASSERT_NE(client, nullptr);
  const auto job = studio().create_job(image_job("synth-image", "a red cube"));
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  client->send(proto::Accept{job});
  std::string bytes(65536, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>(i * 7 + 3);
  }
  const std::string route = "/graphics/api/workers/" + a.worker_id + "/jobs/" + job + "/complete";
  const auto [content_type, form] = result_form("a red cube", "webp", bytes, job + ".webp");

  // Another worker's token is not this worker's route; and another worker's route is a 409.
  EXPECT_EQ(http_request(studio().port(), "POST", route, form, b.token, content_type).status, 401);
  EXPECT_EQ(http_request(studio().port(), "POST",
                         "/graphics/api/workers/" + b.worker_id + "/jobs/" + job + "/complete",
                         form, b.token, content_type)
                .status,
            409);

  auto reply = http_request(studio().port(), "POST", route, form, a.token, content_type);
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(parse(reply.body)["ok"], true);
  const auto stored = parse(studio().admin("GET", "/api/v1/jobs/" + job).body);
  EXPECT_EQ(stored["status"], "done");
  EXPECT_EQ(stored["result"]["contentType"], "image/webp");
  EXPECT_EQ(stored["result"]["bytes"], 65536);
  EXPECT_EQ(stored["result"]["sha256"], sha256_hex(bytes));
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "results" / sha256_hex(bytes)));
  const auto fetched = studio().admin("GET", "/api/v1/jobs/" + job + "/result");
  EXPECT_EQ(fetched.status, 200);
  EXPECT_EQ(fetched.content_type, "image/webp");
  EXPECT_EQ(fetched.body, bytes);

  // The same upload again (a worker retrying after a lost answer) is a 200; other bytes a 409.
  reply = http_request(studio().port(), "POST", route, form, a.token, content_type);
  EXPECT_EQ(reply.status, 200) << reply.body;
  const auto [other_type, other_form] = result_form("a red cube", "webp", "different", "x.webp");
  EXPECT_EQ(http_request(studio().port(), "POST", route, other_form, a.token, other_type).status,
            409);

  // The worker is free again: the next job is offered to it.
  const auto next = studio().create_job(image_job("synth-image", "a blue cube"));
  auto second = expect_offer(*client);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->job_id, next);
}

TEST_F(StudioProtocolTest, UploadsWithExpectContinueGetTheInterimAnswerFirst) {
  // libcurl sends `Expect: 100-continue` before large bodies and waits for the interim answer.
  const auto worker = register_worker(studio(), "install-b4");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(image_job("synth-image", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  const auto [type, form] = result_form("x", "png", std::string(200'000, 'p'), "f.png");
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), studio().port()});
  timeval limit{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  const std::string head = "POST /graphics/api/workers/" + worker.worker_id + "/jobs/" + job +
                           "/complete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                           worker.token + "\r\nContent-Type: " + type +
                           "\r\nContent-Length: " + std::to_string(form.size()) +
                           "\r\nExpect: 100-continue\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(head));
  std::string seen;
  std::array<char, 4096> chunk{};
  while (seen.find("\r\n\r\n") == std::string::npos) {
    seen.append(chunk.data(), socket.read_some(boost::asio::buffer(chunk)));
  }
  EXPECT_EQ(seen.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << seen;
  boost::asio::write(socket, boost::asio::buffer(form));
  seen.clear();
  while (seen.find("{\"ok\":true}") == std::string::npos) {
    seen.append(chunk.data(), socket.read_some(boost::asio::buffer(chunk)));
  }
  EXPECT_EQ(seen.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << seen;
  EXPECT_EQ(studio().job_status(job), "done");
}

TEST_F(StudioProtocolTest, MalformedUploadsAre400AndChangeNothing) {
  const auto worker = register_worker(studio(), "install-b3");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(image_job("synth-image", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  const std::string route =
      "/graphics/api/workers/" + worker.worker_id + "/jobs/" + job + "/complete";
  auto [type, form] = result_form("x", "webp", "bytes", "f.webp");
  // Truncated: no closing boundary.
  auto reply = http_request(studio().port(), "POST", route, form.substr(0, form.size() - 30),
                            worker.token, type);
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("multipart body"), std::string::npos) << reply.body;
  reply = http_request(studio().port(), "POST", route, form, worker.token, "application/json");
  EXPECT_EQ(reply.status, 400);
  auto [type2, no_ext] = result_form("x", "../../etc", "bytes", "f");
  reply = http_request(studio().port(), "POST", route, no_ext, worker.token, type2);
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("ext:"), std::string::npos) << reply.body;
  EXPECT_EQ(studio().job_status(job), "claimed");
  // The real upload still lands.
  EXPECT_EQ(http_request(studio().port(), "POST", route, form, worker.token, type).status, 200);
}

TEST_F(StudioProtocolTest, RejectBusyRequeuesWithoutAnAttemptToAnotherWorker) {
  const auto a = register_worker(studio(), "install-r1");
  const auto b = register_worker(studio(), "install-r2");
  auto first = connect_worker(studio(), a);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  auto claim = expect_offer(*first);
  ASSERT_TRUE(claim);
  first->send(proto::Reject{job, "worker already has an in-flight job", proto::RejectCode::Busy});
  auto second = connect_worker(studio(), b);
  auto again = expect_offer(*second);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, job);
  EXPECT_EQ(studio().job_attempts(job), 0);
}

// Issue 17: a rejected offer is no run: it neither counts an attempt nor uses up maxAttempts.
TEST_F(StudioProtocolTest, PlainRejectIsNoRunAndLeavesTheJobQueued) {
  const auto a = register_worker(studio(), "install-r3");
  auto client = connect_worker(studio(), a);
  const auto job = studio().create_job(llm_job("synth-llm", "x", 0, R"({"maxAttempts":1})"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Reject{job, "model unloaded", std::nullopt});
  // No ack for a reject; the job's state tells.
  EXPECT_TRUE(studio().wait_job_status(job, "queued"));
  EXPECT_EQ(studio().job_attempts(job), 0);
  EXPECT_NE(studio().job_field(job, "error").find("model unloaded"), std::string::npos);
}

// Issue 17: an unanswered offer is no run: requeued without an attempt, never failing the job.
TEST_F(StudioProtocolTest, UnansweredOffersAreRequeuedWithoutAnAttempt) {
  auto config = test_config(dir_.path());
  config.offer_timeout = 200ms;
  config.reject_hold_off = 0ms;
  restart(config);
  const auto worker = register_worker(studio(), "install-t1");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(llm_job("synth-llm", "x", 0, R"({"maxAttempts":2})"));
  ASSERT_TRUE(expect_offer(*client));
  // Never answered: requeued and offered again (this worker is idle), twice and more.
  for (int i = 0; i < 3; ++i) {
    auto again = expect_offer(*client);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->job_id, job);
  }
  EXPECT_EQ(studio().job_attempts(job), 0);
  EXPECT_NE(studio().job_status(job), "failed");
  EXPECT_NE(studio().job_field(job, "error").find("offer not answered"), std::string::npos);
}

TEST_F(StudioProtocolTest, FailIsRequeuedWhenRetryableAndTerminalWhenNot) {
  const auto worker = register_worker(studio(), "install-f1");
  auto client = connect_worker(studio(), worker);
  const auto retryable = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{retryable});
  client->send(proto::Fail{retryable, "runner crashed", true});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));
  // Requeued and offered again to the only worker.
  auto again = expect_offer(*client);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, retryable);
  EXPECT_EQ(studio().job_attempts(retryable), 1);
  client->send(proto::Accept{retryable});
  client->send(proto::Fail{retryable, "prompt longer than the context", false});
  ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));
  EXPECT_EQ(studio().job_status(retryable), "failed");
  EXPECT_EQ(studio().job_field(retryable, "error"), "prompt longer than the context");
}

// A worker that fails a job (retryable) is not offered it again while the hold lasts; another
// worker is. Without the hold a broken box takes the job back at once, every time.
TEST_F(StudioProtocolTest, AJobFailedByOneWorkerGoesToAnotherNotBackToTheSameOne) {
  auto config = test_config(dir_.path());
  config.fail_hold_off = 1h;
  restart(std::move(config));
  const auto broken = register_worker(studio(), "install-fh1");
  auto broken_client = connect_worker(studio(), broken);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  auto offered = expect_offer(*broken_client);
  ASSERT_TRUE(offered);
  broken_client->send(proto::Accept{job});
  broken_client->send(proto::Fail{job, "cannot start llama-server", true});
  auto ack = broken_client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));
  // The only worker failed it: the job waits instead of going back to it.
  EXPECT_TRUE(studio().wait_job_status(job, "queued"));
  const auto healthy = register_worker(studio(), "install-fh2");
  auto healthy_client = connect_worker(studio(), healthy);
  auto again = expect_offer(*healthy_client);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, job);
  EXPECT_EQ(studio().job_attempts(job), 1);
}

TEST_F(StudioProtocolTest, ACompletionForAJobNotHeldIsAProtocolViolation) {
  const auto a = register_worker(studio(), "install-v1");
  const auto b = register_worker(studio(), "install-v2");
  auto holder = connect_worker(studio(), a);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*holder));
  auto thief = connect_worker(studio(), b);
  auto empty = proto::RawJson::parse("{}");
  ASSERT_TRUE(empty);
  thief->send(proto::CompleteJson{job, *empty, std::nullopt});
  auto frame = thief->next_non_ack();
  ASSERT_TRUE(frame && std::holds_alternative<proto::ErrorFrame>(*frame));
  EXPECT_EQ(std::get<proto::ErrorFrame>(*frame).code, proto::WorkerErrorCode::ProtocolViolation);
  EXPECT_EQ(thief->wait_closed(), 4002);
  EXPECT_EQ(studio().job_status(job), "claimed");
  auto other = connect_worker(studio(), b);
  other->send(proto::Accept{job});
  EXPECT_EQ(other->wait_closed(), 4002);
}

TEST_F(StudioProtocolTest, AWorkerThatVanishesMidJobLosesItToAnother) {
  const auto a = register_worker(studio(), "install-k1");
  const auto b = register_worker(studio(), "install-k2");
  auto first = connect_worker(studio(), a);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*first));
  first->send(proto::Accept{job});
  first->drop();  // no close frame: a killed process
  auto second = connect_worker(studio(), b);
  auto again = expect_offer(*second);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, job);
  EXPECT_EQ(studio().job_attempts(job), 1);
}

// ---- nothing lost: claim grace, late and repeated completions (issue 7) ----

TEST_F(StudioProtocolTest, AClaimSurvivesAShortDisconnectAndTheHolderFinishesIt) {
  auto config = test_config(dir_.path());
  config.claim_grace = 30s;
  restart(config);
  const auto worker = register_worker(studio(), "install-g1");
  const auto other = register_worker(studio(), "install-g2");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  client->drop();  // Wi-Fi gone
  // Another idle worker is not offered the job while its holder may come back.
  auto bystander = connect_worker(studio(), other);
  ASSERT_NE(bystander, nullptr);
  // The holder is back and says it still runs the job: the claim is its own again.
  auto back = connect_worker(studio(), worker);
  ASSERT_NE(back, nullptr);
  back->send(proto::Heartbeat{test_capabilities(), job});
  back->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"n":1})"), std::nullopt});
  auto ack = back->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_TRUE(studio().wait_job_status(job, "done"));
  EXPECT_EQ(studio().job_attempts(job), 1) << "one run, survived a disconnect";
  EXPECT_EQ(studio().job_field(job, "workerId"), worker.worker_id);
  EXPECT_FALSE(bystander->next_non_ack(300ms).has_value()) << "the bystander got an offer";
}

// A holder that comes back without the job (killed and restarted) is not waited for over the
// whole claim grace: past a short wait for its outbox, the job goes out again (here to it).
TEST_F(StudioProtocolTest, AHolderBackWithoutItsJobGivesItUpAfterAShortWaitNotTheWholeGrace) {
  auto config = test_config(dir_.path());
  config.claim_grace = 1h;
  config.returned_without_job_grace = 200ms;
  restart(config);
  const auto worker = register_worker(studio(), "install-r1");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  client->drop();  // kill -9
  auto back = connect_worker(studio(), worker);
  ASSERT_NE(back, nullptr);
  back->send(proto::Heartbeat{test_capabilities(), std::nullopt});  // it runs nothing
  auto offer = expect_offer(*back);
  ASSERT_TRUE(offer) << "the job waited for the hour's grace";
  EXPECT_EQ(offer->job_id, job);
  const auto view = studio().admin("GET", "/api/v1/jobs/" + job).body;
  EXPECT_NE(view.find("came back without the job"), std::string::npos) << view;
}

TEST_F(StudioProtocolTest, ALateResultForARequeuedJobIsTakenAndTheNewClaimWithdrawn) {
  const auto first = register_worker(studio(), "install-l1");
  const auto second = register_worker(studio(), "install-l2");
  auto a = connect_worker(studio(), first);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*a));
  a->send(proto::Accept{job});
  a->drop();
  // The grace passes; the job goes to the second worker, which accepts it.
  auto b = connect_worker(studio(), second);
  auto offer = expect_offer(*b);
  ASSERT_TRUE(offer);
  ASSERT_EQ(offer->job_id, job);
  b->send(proto::Accept{job});
  EXPECT_TRUE(eventually_attempts(studio(), job, 2)) << "two runs started";
  // The first worker comes back with its finished result: it is taken.
  auto a2 = connect_worker(studio(), first);
  auto late = proto::RawJson::parse(R"({"from":"first"})");
  ASSERT_TRUE(late);
  a2->send(proto::CompleteJson{job, *late, std::nullopt});
  auto ack = a2->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_TRUE(studio().wait_job_status(job, "done"));
  EXPECT_EQ(studio().job_field(job, "workerId"), first.worker_id);
  // The second worker's own result is acknowledged and dropped; its session carries on.
  b->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"second"})"), std::nullopt});
  auto ack2 = b->next_non_ack();
  ASSERT_TRUE(ack2 && std::holds_alternative<proto::CompleteAck>(*ack2));
  EXPECT_FALSE(b->closed());
  auto result =
      http_request(studio().port(), "GET", "/api/v1/jobs/" + job + "/result", "", kTestAdminToken);
  EXPECT_EQ(result.body, R"({"from":"first"})");
  // The freed second worker takes new work (the first, preferred for this model, takes one too).
  const auto next = studio().create_job(llm_job("synth-llm", "y"));
  const auto after = studio().create_job(llm_job("synth-llm", "z"));
  auto offer2 = expect_offer(*b);
  ASSERT_TRUE(offer2);
  EXPECT_TRUE(offer2->job_id == next || offer2->job_id == after) << offer2->job_id;
}

// Issue 18: the run limit decides when to try elsewhere, not whose result counts. Two runs that
// outlast the limit fail the job; the first valid late result from either holder completes it,
// and the other's is acknowledged and dropped.
class LateResultAfterRunLimitTest : public StudioProtocolTest {
 protected:
  void SetUp() override {
    auto config = test_config(dir_.path());
    config.default_run_limit = 500ms;
    start(config);
  }

  // Worker `a` accepts the job and pauses (so the requeued job goes to `b`), `b` accepts it; both
  // runs outlast the run limit and the job fails. Returns the clients of `a` and `b`.
  std::pair<std::unique_ptr<ProtocolClient>, std::unique_ptr<ProtocolClient>> fail_two_runs(
      const WorkerCredentials& first, const WorkerCredentials& second, const std::string& body,
      std::string& job) {
    auto a = connect_worker(studio(), first);
    job = studio().create_job(body);
    auto offer = expect_offer(*a);
    EXPECT_TRUE(offer && offer->job_id == job);
    auto paused = test_capabilities();
    paused.auto_enabled = false;
    a->send(proto::Accept{job});
    a->send(proto::Heartbeat{paused, job});
    auto b = connect_worker(studio(), second);
    offer = expect_offer(*b);  // a's run outlasted the limit: requeued, and a is paused
    EXPECT_TRUE(offer && offer->job_id == job);
    b->send(proto::Accept{job});
    EXPECT_TRUE(studio().wait_job_status(job, "failed")) << "b's run outlasted the limit too";
    EXPECT_EQ(studio().job_attempts(job), 2);
    return {std::move(a), std::move(b)};
  }
};

TEST_F(LateResultAfterRunLimitTest, AJsonResultAfterTheJobFailedCompletesItAndALaterOneIsDropped) {
  const auto first = register_worker(studio(), "install-rl1");
  const auto second = register_worker(studio(), "install-rl2");
  std::string job;
  auto [a, b] =
      fail_two_runs(first, second, llm_job("synth-llm", "x", 0, R"({"maxAttempts":2})"), job);
  ASSERT_TRUE(a && b);

  a->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"a"})"), std::nullopt});
  auto ack = a->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_TRUE(studio().wait_job_status(job, "done"));
  EXPECT_EQ(studio().job_field(job, "workerId"), first.worker_id);
  EXPECT_EQ(studio().admin("GET", "/api/v1/jobs/" + job + "/result").body, R"({"from":"a"})");

  b->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"b"})"), std::nullopt});
  ack = b->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_FALSE(b->closed());
  EXPECT_EQ(studio().job_status(job), "done");
  EXPECT_EQ(studio().admin("GET", "/api/v1/jobs/" + job + "/result").body, R"({"from":"a"})");
  // a's repeat is still a repeat: acknowledged again.
  a->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"a"})"), std::nullopt});
  ack = a->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
}

// The worker whose run outlasted the limit declines the re-offer (it is still running it),
// another worker's run outlasts the limit too and the job fails; then the first worker's result
// arrives. The job is done, and its history shows the run that made the result done and the
// declined offer still rejected (a review found the declined offer relabelled done instead).
TEST_F(LateResultAfterRunLimitTest, ALateResultClosesTheRunThatMadeItNotALaterDeclinedOffer) {
  const auto first = register_worker(studio(), "install-rl5");
  const auto second = register_worker(studio(), "install-rl6");
  auto a = connect_worker(studio(), first);
  const auto job = studio().create_job(llm_job("synth-llm", "x", 0, R"({"maxAttempts":2})"));
  auto offer = expect_offer(*a);
  ASSERT_TRUE(offer && offer->job_id == job);
  a->send(proto::Accept{job});
  offer = expect_offer(*a);  // the run limit passed: requeued, and offered to `a` again
  ASSERT_TRUE(offer && offer->job_id == job);
  auto paused = test_capabilities();
  paused.auto_enabled = false;
  a->send(proto::Heartbeat{paused, job});  // first: the declined job then goes to `b`
  const std::string busy = "worker already has an in-flight job";
  a->send(proto::Reject{job, busy, proto::RejectCode::Busy});
  auto b = connect_worker(studio(), second);
  offer = expect_offer(*b);
  ASSERT_TRUE(offer && offer->job_id == job);
  b->send(proto::Accept{job});
  ASSERT_TRUE(studio().wait_job_status(job, "failed")) << "b's run outlasted the limit too";

  a->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"a"})"), std::nullopt});
  auto ack = a->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  ASSERT_TRUE(studio().wait_job_status(job, "done"));
  const auto view = parse(studio().admin("GET", "/api/v1/jobs/" + job).body);
  const auto& history = view["attemptHistory"];
  ASSERT_EQ(history.size(), 3u) << view.dump();
  EXPECT_EQ(history[0]["workerId"], first.worker_id);
  EXPECT_EQ(history[0]["outcome"], "done") << view.dump();
  EXPECT_TRUE(history[0].contains("startedAt"));
  EXPECT_EQ(history[0]
                .value("reason", "")
                .rfind("result arrived after the attempt had ended as requeued (", 0),
            0u)
      << view.dump();
  EXPECT_EQ(history[1]["workerId"], first.worker_id);
  EXPECT_EQ(history[1]["outcome"], "rejected") << view.dump();
  EXPECT_EQ(history[1]["reason"], busy);
  EXPECT_EQ(history[2]["workerId"], second.worker_id);
  EXPECT_EQ(history[2]["outcome"], "failed") << view.dump();
}

// A fresh review found the job offered straight back to the worker whose run had just passed the
// limit (still connected, so most likely still running it): it started a second run of the same
// job, and its first result then met a job being claimed again. The holder is now kept off the
// job for as long as a run may take; its late result ends the job, with one run counted.
class RunLimitRequeueTest : public StudioProtocolTest {
 protected:
  void SetUp() override {
    auto config = test_config(dir_.path());
    config.default_run_limit = 2s;
    start(config);
  }

  // A job of five attempts offered to `worker` and accepted: its run has started.
  std::string accepted_job(ProtocolClient& worker) {
    const auto job = studio().create_job(llm_job("synth-llm", "x", 0, R"({"maxAttempts":5})"));
    const auto offer = expect_offer(worker);
    EXPECT_TRUE(offer && offer->job_id == job);
    worker.send(proto::Accept{job});
    return job;
  }
};

TEST_F(RunLimitRequeueTest, TheWorkerStillRunningAJobPastItsLimitIsNotOfferedItAgain) {
  const auto worker = register_worker(studio(), "install-rq1");
  auto a = connect_worker(studio(), worker);
  const auto job = accepted_job(*a);
  // Requeued by the run limit, and waiting with the holder kept off it (not offered again).
  ASSERT_TRUE(eventually_waiting(studio(), job, "waiting: all eligible workers kept off this job"))
      << studio().job_status(job) << ": " << studio().job_field(job, "waiting");

  a->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"late":true})"), std::nullopt});
  auto ack = a->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  ASSERT_TRUE(studio().wait_job_status(job, "done"));
  EXPECT_EQ(studio().job_attempts(job), 1) << "one run";
  const auto view = parse(studio().admin("GET", "/api/v1/jobs/" + job).body);
  ASSERT_EQ(view["attemptHistory"].size(), 1u) << view.dump();
  EXPECT_EQ(view["attemptHistory"][0]["outcome"], "done") << view.dump();
}

// The first worker's late result completes the job while a second worker runs it: the second's
// claim is withdrawn, and, having announced "cancel", it is told to stop (a review found it ran
// on to the end, its engine busy and its slot offered new work meanwhile).
TEST_F(RunLimitRequeueTest, AWorkerWhoseClaimIsWithdrawnByALateResultIsToldToStop) {
  const auto first = register_worker(studio(), "install-rq2");
  const auto second = register_worker(studio(), "install-rq3");
  auto a = connect_worker(studio(), first);
  const auto job = accepted_job(*a);
  auto b = connect_worker(studio(), second, test_capabilities(), {"cancel"});
  const auto offer = expect_offer(*b);  // a's run passed the limit, and a is kept off the job
  ASSERT_TRUE(offer && offer->job_id == job);
  b->send(proto::Accept{job});
  ASSERT_TRUE(eventually_attempts(studio(), job, 2)) << "b's run started";

  a->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"a"})"), std::nullopt});
  auto ack = a->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  auto stop = b->next_non_ack();
  ASSERT_TRUE(stop && std::holds_alternative<proto::CancelJob>(*stop));
  EXPECT_EQ(std::get<proto::CancelJob>(*stop).job_id, job);
  EXPECT_EQ(std::get<proto::CancelJob>(*stop).reason,
            "worker " + first.worker_id + " delivered the job's result first");
  EXPECT_EQ(studio().job_status(job), "done");
  EXPECT_EQ(studio().job_field(job, "workerId"), first.worker_id);
}

// The other way round: the worker whose run passed the limit (and is kept off the job) is still
// running it when another worker's result completes the job; having announced "cancel", it is
// told to stop (a review found it ran on to the end), and its own result later is dropped.
TEST_F(RunLimitRequeueTest, AWorkerStillRunningPastItsLimitIsToldToStopWhenAnotherCompletes) {
  const auto first = register_worker(studio(), "install-rq4");
  const auto second = register_worker(studio(), "install-rq5");
  auto a = connect_worker(studio(), first, test_capabilities(), {"cancel"});
  const auto job = accepted_job(*a);
  auto b = connect_worker(studio(), second);
  const auto offer = expect_offer(*b);  // a's run passed the limit, and a is kept off the job
  ASSERT_TRUE(offer && offer->job_id == job);
  b->send(proto::Accept{job});
  b->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"b"})"), std::nullopt});
  auto ack = b->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  auto stop = a->next_non_ack();
  ASSERT_TRUE(stop && std::holds_alternative<proto::CancelJob>(*stop));
  EXPECT_EQ(std::get<proto::CancelJob>(*stop).job_id, job);
  EXPECT_EQ(std::get<proto::CancelJob>(*stop).reason,
            "worker " + second.worker_id + " delivered the job's result first");
  a->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"from":"a"})"), std::nullopt});
  ack = a->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_EQ(studio().admin("GET", "/api/v1/jobs/" + job + "/result").body, R"({"from":"b"})");
}

TEST_F(LateResultAfterRunLimitTest, AnUploadAfterTheJobFailedCompletesItAndALaterOneIsDropped) {
  const auto first = register_worker(studio(), "install-rl3");
  const auto second = register_worker(studio(), "install-rl4");
  std::string job;
  auto [a, b] =
      fail_two_runs(first, second, image_job("synth-image", "x", R"({"maxAttempts":2})"), job);
  ASSERT_TRUE(a && b);
  const auto upload = [&](const WorkerCredentials& worker, const std::string& bytes) {
    const auto [type, form] = result_form("x", "png", bytes, "f.png");
    return http_request(studio().port(), "POST",
                        "/graphics/api/workers/" + worker.worker_id + "/jobs/" + job + "/complete",
                        form, worker.token, type);
  };

  auto reply = upload(second, "bytes from b");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(parse(reply.body).value("discarded", false), false) << reply.body;
  EXPECT_EQ(studio().job_status(job), "done");
  EXPECT_EQ(studio().job_field(job, "workerId"), second.worker_id);

  reply = upload(first, "bytes from a");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(parse(reply.body)["discarded"], true) << reply.body;
  const auto fetched = studio().admin("GET", "/api/v1/jobs/" + job + "/result");
  EXPECT_EQ(fetched.status, 200);
  EXPECT_EQ(fetched.body, "bytes from b");
  // b's repeat (its answer was lost) is still a repeat.
  reply = upload(second, "bytes from b");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(parse(reply.body)["repeated"], true) << reply.body;
}

TEST_F(StudioProtocolTest, RepeatedCompletionsAreAcknowledgedAgainAndChangeNothing) {
  const auto worker = register_worker(studio(), "install-r1");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  for (int i = 0; i < 3; ++i) {
    client->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"v":1})"), std::nullopt});
    auto ack = client->next_non_ack();
    ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack)) << i;
  }
  EXPECT_EQ(studio().job_status(job), "done");
  // Different bytes for the same job are not a repeat: refused.
  client->send(proto::CompleteJson{job, *proto::RawJson::parse(R"({"v":2})"), std::nullopt});
  auto error = client->next_non_ack();
  ASSERT_TRUE(error && std::holds_alternative<proto::ErrorFrame>(*error));
  auto result =
      http_request(studio().port(), "GET", "/api/v1/jobs/" + job + "/result", "", kTestAdminToken);
  EXPECT_EQ(result.body, R"({"v":1})");
}

TEST_F(StudioProtocolTest, AfterAStudioRestartTheHolderKeepsItsClaimWithinTheGrace) {
  auto config = test_config(dir_.path());
  config.claim_grace = 30s;
  restart(config);
  const auto worker = register_worker(studio(), "install-h1");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(image_job("synth-image", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  EXPECT_EQ(studio().job_status(job), "claimed");
  studio_->crash();
  client.reset();
  studio_ = std::make_unique<StudioHarness>(config);
  EXPECT_EQ(studio().job_status(job), "claimed");
  // The worker finished meanwhile and uploads after the restart: taken, no attempt lost.
  const auto [type, form] = result_form("x", "png", "png-bytes", "f.png");
  const auto reply =
      http_request(studio().port(), "POST",
                   "/graphics/api/workers/" + worker.worker_id + "/jobs/" + job + "/complete", form,
                   worker.token, type);
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(studio().job_status(job), "done");
  EXPECT_EQ(studio().job_attempts(job), 1);
  // The same upload again (its answer was lost): 200, repeated.
  const auto again =
      http_request(studio().port(), "POST",
                   "/graphics/api/workers/" + worker.worker_id + "/jobs/" + job + "/complete", form,
                   worker.token, type);
  EXPECT_EQ(again.status, 200);
  EXPECT_NE(again.body.find("repeated"), std::string::npos) << again.body;
}

// ---- scheduling rules ----

TEST_F(StudioProtocolTest, JobsGoOutByPriorityThenAge) {
  const auto worker = register_worker(studio(), "install-p1");
  const auto low_old = studio().create_job(llm_job("synth-llm", "a", 0));
  const auto high = studio().create_job(llm_job("synth-llm", "b", 5));
  const auto low_new = studio().create_job(llm_job("synth-llm", "c", 0));
  auto client = connect_worker(studio(), worker);
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    auto claim = expect_offer(*client);
    ASSERT_TRUE(claim);
    order.push_back(claim->job_id);
    client->send(proto::Accept{claim->job_id});
    client->send(proto::CompleteJson{claim->job_id, *proto::RawJson::parse("{}"), std::nullopt});
    auto ack = client->next_non_ack();
    ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  }
  EXPECT_EQ(order, (std::vector<std::string>{high, low_old, low_new}));
}

TEST_F(StudioProtocolTest, IneligibleWorkersAreSkipped) {
  studio().add_model("big-llm", "llm", 48);
  const auto worker = register_worker(studio(), "install-e1");
  // Queue first, so that the eligible job can only arrive by skipping the ineligible ones.
  studio().create_job(llm_job("big-llm", "needs 48 GB", 10));
  studio().create_job(
      image_job("synth-image", "this worker has no image kind", R"({"priority":9})"));
  const auto fits = studio().create_job(llm_job("synth-llm", "fits", 0));
  auto client = connect_worker(studio(), worker, test_capabilities({proto::TaskKind::Llm}));
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, fits);
}

TEST_F(StudioProtocolTest, PausedAndNotIdleWorkersGetNothingUntilTheyReportOtherwise) {
  const auto worker = register_worker(studio(), "install-e2");
  auto caps = test_capabilities();
  caps.auto_enabled = false;
  auto client = connect_worker(studio(), worker, caps);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  caps.auto_enabled = true;
  caps.only_when_idle = true;
  caps.user_presence = proto::UserPresence::Active;
  client->send(proto::Heartbeat{caps, std::nullopt});
  auto frame = client->next_frame();
  ASSERT_TRUE(frame && std::holds_alternative<proto::HeartbeatAck>(*frame))
      << "no offer while paused or while the user is active";
  caps.user_presence = proto::UserPresence::Idle;
  client->send(proto::Heartbeat{caps, std::nullopt});
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, job);
}

TEST_F(StudioProtocolTest, AWorkerWarmOnAModelIsPreferredOverAnEarlierOne) {
  studio().add_model("other-llm", "llm");
  const auto a = register_worker(studio(), "install-a1");
  const auto b = register_worker(studio(), "install-a2");
  auto first = connect_worker(studio(), a);
  auto second = connect_worker(studio(), b);
  auto run = [](ProtocolClient& client) {
    auto claim = expect_offer(client);
    ASSERT_TRUE(claim);
    client.send(proto::Accept{claim->job_id});
    client.send(proto::CompleteJson{claim->job_id, *proto::RawJson::parse("{}"), std::nullopt});
    auto ack = client.next_non_ack();
    ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  };
  studio().create_job(llm_job("synth-llm", "to a (earliest connected)"));
  run(*first);
  studio().create_job(llm_job("synth-llm", "to a again"));
  run(*first);
  // Keep `a` busy so that `b` takes the other model, then free it.
  const auto hold = studio().create_job(llm_job("synth-llm", "a holds this"));
  auto held = expect_offer(*first);
  ASSERT_TRUE(held);
  studio().create_job(llm_job("other-llm", "to b"));
  run(*second);
  first->send(proto::Accept{hold});
  first->send(proto::CompleteJson{hold, *proto::RawJson::parse("{}"), std::nullopt});
  ASSERT_TRUE(first->next_non_ack());
  // Both idle; `a` connected first, but `b` last ran other-llm.
  const auto warm = studio().create_job(llm_job("other-llm", "should go to b"));
  auto claim = expect_offer(*second);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, warm);
}

// ---- engines across a mixed fleet (issue 14) ----

// A model served by a real engine (the harness's models are synthetic), with the one file its
// engine needs (llama-cpp: a .gguf) so that registration accepts it.
void add_engine_model(const StudioHarness& studio, const std::string& id, const std::string& kind,
                      const std::string& engine, double vram_gb = 0) {
  const json body = {
      {"id", id},
      {"kind", kind},
      {"vramGbEstimate", vram_gb},
      {"source",
       {{"engine", engine},
        {"files",
         {{{"role", "model"},
           {"url", "https://models.example/" + id + ".gguf"},
           {"filename", id + ".gguf"}}}},
        {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
  const auto reply = studio.admin("POST", "/api/v1/models", body.dump());
  ASSERT_EQ(reply.status, 201) << reply.body;
}

// The reference's own hello (reference-worker.md §1.3/§1.5, tests/unit/proto/golden): per kind it
// lists `llama-cpp:*`, `sd-cpp:*`, `onnx:*` and the synthetic engine's names.
json reference_hello() {
  std::ifstream in(std::string(SW_GOLDEN_DIR) + "/spec_examples.json");
  const auto golden = json::parse(in, nullptr, false);
  for (const auto& c : golden.value("cases", json::array())) {
    if (c.value("name", "") == "hello") {
      return c.at("input");
    }
  }
  ADD_FAILURE() << "no hello case in spec_examples.json";
  return json::object();
}

// The same hello with only the synthetic engine's entries: a box without llama-server or sd-cli.
json synthetic_only_hello() {
  auto hello = reference_hello();
  auto& caps = hello["capabilities"];
  auto keep = [](const json& list) {
    json out = json::array();
    for (const auto& entry : list) {
      if (entry.get<std::string>().rfind("synthetic", 0) == 0) {
        out.push_back(entry);
      }
    }
    return out;
  };
  caps["supportedModels"] = keep(caps["supportedModels"]);
  for (auto& [kind, list] : caps["supportedModelsPerKind"].items()) {
    list = keep(list);
  }
  return hello;
}

// The same hello as an older reference sends it: no per-kind lists at all.
json old_reference_hello() {
  auto hello = reference_hello();
  hello["capabilities"].erase("supportedModelsPerKind");
  return hello;
}

std::unique_ptr<ProtocolClient> connect_with_hello(const StudioHarness& studio,
                                                   const WorkerCredentials& worker, json hello) {
  auto client = ProtocolClient::connect(studio.port(), worker.worker_id, {worker.token, true});
  if (!client) {
    ADD_FAILURE() << client.error().message;
    return nullptr;
  }
  hello["authToken"] = worker.token;
  (*client)->send_text(hello.dump());
  auto welcome = (*client)->next_frame();
  if (!welcome || !std::holds_alternative<proto::Welcome>(*welcome)) {
    ADD_FAILURE() << "no welcome for " << worker.worker_id;
    return nullptr;
  }
  return std::move(*client);
}

// A heartbeat answered by its ack and nothing before it: the studio had no offer for this worker
// (the heartbeat path offers an idle worker the best job it can take).
void expect_no_offer(ProtocolClient& client, const json& hello) {
  const auto caps = proto::decode_worker_frame(hello.dump());
  ASSERT_TRUE(caps.has_value());
  client.send(proto::Heartbeat{std::get<proto::Hello>(*caps).capabilities, std::nullopt});
  auto frame = client.next_frame();
  ASSERT_TRUE(frame.has_value());
  EXPECT_TRUE(std::holds_alternative<proto::HeartbeatAck>(*frame)) << proto::encode(*frame);
}

void run_to_done(ProtocolClient& client, const std::string& job) {
  client.send(proto::Accept{job});
  client.send(proto::CompleteJson{job, *proto::RawJson::parse("{}"), std::nullopt});
  auto ack = client.next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
}

json job_view(const StudioHarness& studio, const std::string& id) {
  return parse(studio.admin("GET", "/api/v1/jobs/" + id).body);
}

TEST_F(StudioProtocolTest, ReferenceHellosGetOnlyTheJobsOfTheEnginesTheyList) {
  add_engine_model(studio(), "qwen-llama", "llm", "llama-cpp");
  const auto synthetic = register_worker(studio(), "install-n1");
  const auto reference = register_worker(studio(), "install-n2");
  const auto old = register_worker(studio(), "install-n3");
  // Connected first, so it would win every tie: it must still not get a llama job.
  auto synthetic_client = connect_with_hello(studio(), synthetic, synthetic_only_hello());
  ASSERT_NE(synthetic_client, nullptr);
  const auto llama = studio().create_job(llm_job("qwen-llama", "x"));
  expect_no_offer(*synthetic_client, synthetic_only_hello());
  EXPECT_EQ(studio().job_status(llama), "queued");

  auto reference_client = connect_with_hello(studio(), reference, reference_hello());
  ASSERT_NE(reference_client, nullptr);
  auto claim = expect_offer(*reference_client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, llama);
  EXPECT_EQ(claim->model_source.engine, "llama-cpp");
  reference_client->send(proto::Accept{llama});

  // An older reference lists no per-kind models: kind and VRAM decide, as before.
  auto old_client = connect_with_hello(studio(), old, old_reference_hello());
  ASSERT_NE(old_client, nullptr);
  const auto second = studio().create_job(llm_job("qwen-llama", "y"));
  claim = expect_offer(*old_client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, second);

  // The synthetic engine's own jobs still go to the synthetic-only worker.
  const auto synth = studio().create_job(llm_job("synth-llm", "z"));
  claim = expect_offer(*synthetic_client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, synth);
}

TEST_F(StudioProtocolTest, SixLlamaJobsOnAMixedFleetAllEndDoneOnTheWorkerWithTheEngine) {
  add_engine_model(studio(), "qwen-llama", "llm", "llama-cpp");
  const auto without = register_worker(studio(), "install-n4");
  const auto with = register_worker(studio(), "install-n5");
  auto without_client = connect_with_hello(studio(), without, synthetic_only_hello());
  auto with_client = connect_with_hello(studio(), with, reference_hello());
  ASSERT_TRUE(without_client && with_client);
  std::vector<std::string> jobs;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back(studio().create_job(llm_job("qwen-llama", "burst " + std::to_string(i))));
  }
  for (int i = 0; i < 6; ++i) {
    auto claim = expect_offer(*with_client);
    ASSERT_TRUE(claim);
    EXPECT_EQ(claim->job_id, jobs[static_cast<std::size_t>(i)]);
    run_to_done(*with_client, claim->job_id);
  }
  expect_no_offer(*without_client, synthetic_only_hello());
  for (const auto& job : jobs) {
    const auto view = job_view(studio(), job);
    EXPECT_EQ(view["status"], "done");
    EXPECT_EQ(view["workerId"], with.worker_id);
    ASSERT_EQ(view["attemptHistory"].size(), 1u) << view.dump();
    EXPECT_EQ(view["attemptHistory"][0]["workerId"], with.worker_id);
  }
}

TEST_F(StudioProtocolTest, AQueuedJobSaysWhyNoWorkerTakesItInTheViewAndInMetrics) {
  add_engine_model(studio(), "qwen-llama", "llm", "llama-cpp");
  add_engine_model(studio(), "big-llama", "llm", "llama-cpp", 24);
  auto waiting = [&](const std::string& job) {
    return job_view(studio(), job).value("waiting", "");
  };
  const auto job = studio().create_job(llm_job("qwen-llama", "x"));
  EXPECT_EQ(waiting(job), "waiting: no worker connected");

  const auto painter = register_worker(studio(), "install-w1");
  auto painter_client =
      connect_worker(studio(), painter, test_capabilities({proto::TaskKind::Image}));
  EXPECT_EQ(waiting(job), "waiting: no connected worker serves kind llm");

  const auto synthetic = register_worker(studio(), "install-w2");
  auto synthetic_client = connect_with_hello(studio(), synthetic, synthetic_only_hello());
  EXPECT_EQ(waiting(job), "waiting: no connected worker has engine llama-cpp");
  const auto list = parse(studio().admin("GET", "/api/v1/jobs?status=queued").body);
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["waiting"], "waiting: no connected worker has engine llama-cpp");
  auto metrics = http_request(studio().port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("studio_jobs_waiting{reason=\"no_engine\",engine=\"llama-cpp\"} 1"),
            std::string::npos)
      << metrics;

  // The reference hello's threshold is 12 GB: the small job is offered, the big one waits.
  const auto big = studio().create_job(llm_job("big-llama", "y"));
  const auto reference = register_worker(studio(), "install-w3");
  auto reference_client = connect_with_hello(studio(), reference, reference_hello());
  auto claim = expect_offer(*reference_client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, job);
  EXPECT_FALSE(job_view(studio(), job).contains("waiting")) << "offered: not waiting";
  EXPECT_EQ(waiting(big), "waiting: no connected worker has ≥ 24 GB free");

  const auto third = studio().create_job(llm_job("qwen-llama", "z"));
  EXPECT_EQ(waiting(third), "waiting: all eligible workers busy");
  metrics = http_request(studio().port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("studio_jobs_waiting{reason=\"no_vram\",vram_gb=\"24\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("studio_jobs_waiting{reason=\"busy\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("studio_jobs_waiting{reason=\"no_worker\"} 0"), std::string::npos)
      << metrics;
}

TEST_F(StudioProtocolTest, AnEngineRejectIsRecordedAndAnotherWorkerDoesTheJob) {
  add_engine_model(studio(), "qwen-llama", "llm", "llama-cpp");
  const auto a = register_worker(studio(), "install-h1");
  const auto b = register_worker(studio(), "install-h2");
  // Both send no per-kind lists (an older worker), so the studio cannot know `a` lacks the engine.
  auto first = connect_worker(studio(), a);
  const auto job = studio().create_job(llm_job("qwen-llama", "x", 0, R"({"maxAttempts":1})"));
  ASSERT_TRUE(expect_offer(*first));
  const std::string reason =
      "no `llama-cpp` engine in this worker (model `qwen-llama` requires it)";
  first->send(proto::Reject{job, reason, std::nullopt});
  auto second = connect_worker(studio(), b);
  auto claim = expect_offer(*second);
  ASSERT_TRUE(claim) << "requeued, and not failed although maxAttempts is 1";
  EXPECT_EQ(claim->job_id, job);
  EXPECT_EQ(studio().job_attempts(job), 0) << "a missing engine is not the job's fault";
  run_to_done(*second, job);

  const auto view = job_view(studio(), job);
  EXPECT_EQ(view["status"], "done");
  EXPECT_EQ(view["workerId"], b.worker_id);
  const auto& history = view["attemptHistory"];
  ASSERT_EQ(history.size(), 2u) << view.dump();
  EXPECT_EQ(history[0]["workerId"], a.worker_id);
  EXPECT_EQ(history[0]["outcome"], "rejected");
  EXPECT_EQ(history[0]["reason"], reason);
  EXPECT_TRUE(history[0].contains("offeredAt") && history[0].contains("endedAt"));
  EXPECT_FALSE(history[0].contains("startedAt")) << "never accepted";
  EXPECT_EQ(history[1]["workerId"], b.worker_id);
  EXPECT_EQ(history[1]["outcome"], "done");
  EXPECT_TRUE(history[1].contains("startedAt") && history[1].contains("endedAt"));
  EXPECT_FALSE(history[1].contains("reason"));
}

TEST_F(StudioProtocolTest, AFailedJobShowsWhichWorkerFailedItAndWhy) {
  const auto worker = register_worker(studio(), "install-h3");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(llm_job("synth-llm", "x", 0, R"({"maxAttempts":2})"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  client->send(proto::Fail{job, "runner crashed", true});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Fail{job, "out of memory", true});  // never accepted this time
  ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));

  const auto view = job_view(studio(), job);
  EXPECT_EQ(view["status"], "failed");
  EXPECT_EQ(view["workerId"], worker.worker_id) << "the last worker, although it let go";
  EXPECT_EQ(view["error"], "out of memory");
  const auto& history = view["attemptHistory"];
  ASSERT_EQ(history.size(), 2u) << view.dump();
  for (const auto& attempt : history) {
    EXPECT_EQ(attempt["workerId"], worker.worker_id);
    EXPECT_EQ(attempt["outcome"], "failed");
    EXPECT_TRUE(attempt.contains("endedAt"));
  }
  EXPECT_EQ(history[0]["reason"], "runner crashed");
  EXPECT_TRUE(history[0].contains("startedAt"));
  EXPECT_EQ(history[1]["reason"], "out of memory");
}

// ---- client API ----

TEST_F(StudioProtocolTest, CancellingAQueuedJobIsImmediateAndAClaimedOneDropsItsResult) {
  const auto queued = studio().create_job(llm_job("synth-llm", "never runs"));
  auto reply = studio().admin("POST", "/api/v1/jobs/" + queued + "/cancel");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(parse(reply.body)["status"], "cancelled");

  const auto worker = register_worker(studio(), "install-c1");
  auto client = connect_worker(studio(), worker);
  const auto claimed = studio().create_job(llm_job("synth-llm", "runs"));
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->job_id, claimed) << "the cancelled job is never offered";
  client->send(proto::Accept{claimed});
  EXPECT_EQ(studio().admin("POST", "/api/v1/jobs/" + claimed + "/cancel").status, 200);
  client->send(proto::CompleteJson{claimed, *proto::RawJson::parse(R"({"x":1})"), std::nullopt});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_EQ(studio().job_status(claimed), "cancelled");
  EXPECT_EQ(studio().admin("GET", "/api/v1/jobs/" + claimed + "/result").status, 410);
  EXPECT_EQ(studio().admin("POST", "/api/v1/jobs/job-nope/cancel").status, 404);
}

// Issue 17: the same key with the same request returns the first job; with another request it is
// a 409 naming the key (it used to return the first job silently).
TEST_F(StudioProtocolTest, IdempotencyKeysReturnTheFirstJobAndRefuseAnotherBody) {
  auto first = studio().admin("POST", "/api/v1/jobs",
                              llm_job("synth-llm", "x", 0, R"({"idempotencyKey":"k-1"})"));
  ASSERT_EQ(first.status, 201);
  // The same job, written differently (key order, the default priority spelled out).
  const std::string same =
      R"({"idempotencyKey":"k-1","task":{"messages":[{"content":"x","role":"user"}],)"
      R"("kind":"llm"},"model":"synth-llm"})";
  auto again = studio().admin("POST", "/api/v1/jobs", same);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(parse(first.body)["id"], parse(again.body)["id"]);
  auto other = studio().admin("POST", "/api/v1/jobs",
                              llm_job("synth-llm", "different", 0, R"({"idempotencyKey":"k-1"})"));
  EXPECT_EQ(other.status, 409) << other.body;
  EXPECT_EQ(parse(other.body)["error"], "idempotency_key_reused");
  const auto message = parse(other.body)["message"].get<std::string>();
  EXPECT_NE(message.find("idempotencyKey \"k-1\""), std::string::npos) << message;
  EXPECT_NE(message.find("differs in: task"), std::string::npos) << message;
  auto priority = studio().admin("POST", "/api/v1/jobs",
                                 llm_job("synth-llm", "x", 5, R"({"idempotencyKey":"k-1"})"));
  EXPECT_EQ(priority.status, 409) << priority.body;
  EXPECT_NE(parse(priority.body)["message"].get<std::string>().find("differs in: priority"),
            std::string::npos)
      << priority.body;
}

// Issue 17: the result of a job that failed says so and why, not `not_ready`.
TEST_F(StudioProtocolTest, TheResultOfAFailedJobSaysItFailedAndWhy) {
  const auto worker = register_worker(studio(), "install-rf1");
  auto client = connect_worker(studio(), worker);
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{job});
  client->send(proto::Fail{job, "prompt longer than the context", false});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));
  const auto reply = studio().admin("GET", "/api/v1/jobs/" + job + "/result");
  EXPECT_EQ(reply.status, 410) << reply.body;
  const auto body = parse(reply.body);
  EXPECT_EQ(body["error"], "job_failed");
  EXPECT_EQ(body["status"], "failed");
  EXPECT_NE(body["message"].get<std::string>().find("prompt longer than the context"),
            std::string::npos)
      << reply.body;
}

// Issue 17: `attempts` is the number of runs started (offers a worker accepted): 1 after a
// successful first run, 1 after one failed run; a declined offer is no run.
TEST_F(StudioProtocolTest, AttemptsCountRunsStarted) {
  const auto worker = register_worker(studio(), "install-at1");
  auto client = connect_worker(studio(), worker);
  const auto ok = studio().create_job(llm_job("synth-llm", "x"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{ok});
  client->send(proto::CompleteJson{ok, *proto::RawJson::parse(R"({"n":1})"), std::nullopt});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_EQ(studio().job_status(ok), "done");
  EXPECT_EQ(studio().job_attempts(ok), 1) << "one run";

  const auto once = studio().create_job(llm_job("synth-llm", "y", 0, R"({"maxAttempts":1})"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{once});
  client->send(proto::Fail{once, "runner crashed", true});
  ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::FailAck>(*ack));
  EXPECT_EQ(studio().job_status(once), "failed") << "its one run is used up";
  EXPECT_EQ(studio().job_attempts(once), 1);
}

TEST_F(StudioProtocolTest, InvalidJobsAre400sNamingTheFieldAndStoreNothing) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "request body is not JSON: "},
      {R"({"task":{"kind":"llm","messages":[]}})", "model: missing required field"},
      {R"({"model":"nope","task":{"kind":"llm","messages":[]}})", "model: unknown model"},
      {R"({"model":"synth-llm"})", "task: missing required object"},
      {R"({"model":"synth-llm","task":{"kind":"image","prompt":"x"}})", "task.kind"},
      {R"({"model":"synth-llm","task":{"kind":"llm"}})", "task.messages"},
      {R"({"model":"synth-llm","task":{"kind":"llm","messages":[]},"priority":"high"})",
       "priority: must be an integer"},
      {R"({"model":"synth-llm","task":{"kind":"llm","messages":[]},"maxAttempts":0})",
       "maxAttempts: must be between 1 and 100"},
  };
  for (const auto& [body, message] : cases) {
    const auto reply = studio().admin("POST", "/api/v1/jobs", body);
    EXPECT_EQ(reply.status, 400) << body;
    EXPECT_EQ(parse(reply.body)["error"], "invalid_job") << reply.body;
    EXPECT_NE(reply.body.find(message), std::string::npos) << body << " → " << reply.body;
  }
  EXPECT_EQ(parse(studio().admin("GET", "/api/v1/jobs").body).at("jobs"), json::array());
}

// Issue 16: one 200 KB body of 100,000 nested arrays used to overflow the stack (the route parsed
// it without a depth limit, then serialised it recursively). Every JSON route refuses it before
// parsing, names the depth, and the studio keeps serving on the same connection's port.
TEST_F(StudioProtocolTest, DeeplyNestedBodiesAre400sNamingTheDepthAndTheStudioKeepsServing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/api/v1/models",
       R"({"id":"deep","kind":"llm","source":{"engine":"synthetic","files":)" + deep + "}}"},
      {"/api/v1/models", R"({"id":"deep","kind":"llm","source":)" + deep + "}"},
      {"/api/v1/jobs", R"({"model":"synth-llm","task":{"kind":"llm","messages":)" + deep + "}}"},
      {"/api/v1/keys", R"({"name":)" + deep + "}"},
  };
  for (const auto& [target, body] : cases) {
    const auto reply = studio().admin("POST", target, body);
    EXPECT_EQ(reply.status, 400) << target;
    EXPECT_NE(reply.body.find("request body nests deeper than 64 levels at byte "),
              std::string::npos)
        << target << " → " << reply.body.substr(0, 300);
  }
  const auto not_json = studio().admin("POST", "/api/v1/models", R"({"id":)");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_NE(not_json.body.find("request body is not JSON: "), std::string::npos) << not_json.body;
  EXPECT_EQ(studio().admin("GET", "/healthz").status, 200);
  EXPECT_EQ(parse(studio().admin("GET", "/api/v1/models").body).at("models").size(), 2u);
}

// A model no worker could ever run (an unknown engine, an engine that does not serve its kind)
// is refused when it is registered, naming why, instead of queueing jobs that wait forever.
TEST_F(StudioProtocolTest, ModelsWhoseEngineCannotServeTheirKindAreRefused) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"image", "llama-cpp", "source.engine: llama-cpp does not serve image tasks"},
      {"llm", "llama.cpp", "source.engine: unknown engine \"llama.cpp\""},
      {"audio_tts", "whisper-cpp", "source.engine: whisper-cpp does not serve audio_tts tasks"},
      {"audio_stt", "parakeet", "source.engine: parakeet does not serve audio_stt tasks"},
  };
  for (const auto& [kind, engine, message] : cases) {
    const json body = {
        {"id", "m-" + kind},
        {"kind", kind},
        {"source",
         {{"engine", engine},
          {"files", json::array()},
          {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
    const auto reply = studio().admin("POST", "/api/v1/models", body.dump());
    EXPECT_EQ(reply.status, 400) << reply.body;
    EXPECT_NE(parse(reply.body).value("message", "").find(message), std::string::npos)
        << reply.body;
  }
  const json ok = {
      {"id", "espeak"},
      {"kind", "audio_tts"},
      {"source",
       {{"engine", "espeak-ng"},
        {"files", json::array()},
        {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
  EXPECT_EQ(studio().admin("POST", "/api/v1/models", ok.dump()).status, 201);
}

TEST_F(StudioProtocolTest, OversizeBodiesAreRefusedBeforeBuffering) {
  const std::string huge(2u << 20, 'x');
  const auto reply = studio().admin("POST", "/api/v1/jobs", huge);
  EXPECT_EQ(reply.status, 413);
  EXPECT_NE(reply.body.find("exceeds the limit"), std::string::npos) << reply.body;
}

TEST_F(StudioProtocolTest, ApiKeysAuthoriseClientsButNotAdminRoutes) {
  EXPECT_EQ(http_request(studio().port(), "GET", "/api/v1/jobs").status, 401);
  auto reply = studio().admin("POST", "/api/v1/keys", R"({"name":"ci"})");
  ASSERT_EQ(reply.status, 201) << reply.body;
  const auto key = parse(reply.body)["key"].get<std::string>();
  const auto key_id = parse(reply.body)["id"].get<std::string>();
  EXPECT_EQ(http_request(studio().port(), "GET", "/api/v1/jobs", "", key).status, 200);
  EXPECT_EQ(http_request(studio().port(), "GET", "/api/v1/workers", "", key).status, 403);
  EXPECT_EQ(studio().admin("DELETE", "/api/v1/keys/" + key_id).status, 200);
  EXPECT_EQ(http_request(studio().port(), "GET", "/api/v1/jobs", "", key).status, 401);
}

TEST_F(StudioProtocolTest, JobListsPageNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(studio().create_job(llm_job("synth-llm", "x" + std::to_string(i))));
  }
  auto page = parse(studio().admin("GET", "/api/v1/jobs?limit=2").body);
  ASSERT_EQ(page["jobs"].size(), 2u);
  EXPECT_EQ(page["jobs"][0]["id"], ids[4]);
  EXPECT_EQ(page["jobs"][1]["id"], ids[3]);
  page = parse(
      studio()
          .admin("GET", "/api/v1/jobs?limit=2&before=" + page["nextBefore"].get<std::string>())
          .body);
  EXPECT_EQ(page["jobs"][0]["id"], ids[2]);
  EXPECT_EQ(studio().admin("GET", "/api/v1/jobs?status=bogus").status, 400);
  EXPECT_EQ(parse(studio().admin("GET", "/api/v1/jobs?status=queued&kind=image").body).at("jobs"),
            json::array());
}

TEST_F(StudioProtocolTest, LogBatchesAreStoredPerWorker) {
  const auto worker = register_worker(studio(), "install-l1");
  auto client = connect_worker(studio(), worker);
  client->send(proto::LogBatch{{proto::LogEntry{"2026-05-25T12:00:00.123Z", "info", "ws",
                                                "server welcomed", std::string("job-1")},
                                proto::LogEntry{"2026-05-25T12:00:01.000Z", "warn", "logs",
                                                "dropped 3 lines", std::nullopt}}});
  client->send(proto::Heartbeat{test_capabilities(), std::nullopt});
  ASSERT_TRUE(client->next_frame());
  const auto logs =
      parse(studio().admin("GET", "/api/v1/workers/" + worker.worker_id + "/logs").body)["logs"];
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_EQ(logs[0]["message"], "server welcomed");
  EXPECT_EQ(logs[0]["jobId"], "job-1");
  EXPECT_EQ(logs[1]["level"], "warn");
}

TEST_F(StudioProtocolTest, MetricsExposeQueueDepthAndWorkers) {
  studio().create_job(llm_job("synth-llm", "x"));
  const auto reply = http_request(studio().port(), "GET", "/metrics");
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.body.find("studio_queue_depth{kind=\"llm\"} 1"), std::string::npos) << reply.body;
  EXPECT_NE(reply.body.find("studio_jobs{status=\"queued\"} 1"), std::string::npos);
  EXPECT_NE(reply.body.find("studio_workers_connected 0"), std::string::npos);
}

// ---- restart: the database is the truth ----

TEST_F(StudioProtocolTest, ARestartKeepsEveryJobAndRequeuesClaimedOnesAfterTheGrace) {
  const auto worker = register_worker(studio(), "install-x1");
  auto client = connect_worker(studio(), worker);
  const auto done = studio().create_job(llm_job("synth-llm", "done"));
  auto claim = expect_offer(*client);
  ASSERT_TRUE(claim);
  client->send(proto::Accept{done});
  client->send(proto::CompleteJson{done, *proto::RawJson::parse("{}"), std::nullopt});
  ASSERT_TRUE(client->next_non_ack());
  const auto held = studio().create_job(llm_job("synth-llm", "held"));
  ASSERT_TRUE(expect_offer(*client));
  client->send(proto::Accept{held});
  const auto cancelled = studio().create_job(llm_job("synth-llm", "cancelled"));
  ASSERT_EQ(studio().admin("POST", "/api/v1/jobs/" + cancelled + "/cancel").status, 200);
  const auto queued = studio().create_job(llm_job("synth-llm", "queued", -1));
  EXPECT_EQ(studio().job_status(held), "claimed");

  studio_->crash();
  client.reset();
  studio_ = std::make_unique<StudioHarness>(test_config(dir_.path()));

  EXPECT_EQ(studio().job_status(done), "done");
  EXPECT_EQ(studio().job_status(cancelled), "cancelled");
  EXPECT_EQ(studio().job_status(queued), "queued");
  // The holder had the claim grace to come back; it did not, so the job is requeued.
  EXPECT_TRUE(studio().wait_job_status(held, "queued"));
  EXPECT_EQ(studio().job_attempts(held), 1);
  EXPECT_NE(studio().job_field(held, "error").find("the studio restarted"), std::string::npos);
  // Credentials and models survived too; the requeued job goes out first (priority 0 > -1).
  auto again = connect_worker(studio(), worker);
  ASSERT_NE(again, nullptr);
  auto claim2 = expect_offer(*again);
  ASSERT_TRUE(claim2);
  EXPECT_EQ(claim2->job_id, held);
}

TEST_F(StudioProtocolTest, GracefulShutdownClosesSessionsWith1000) {
  const auto worker = register_worker(studio(), "install-x2");
  auto client = connect_worker(studio(), worker);
  ASSERT_NE(client, nullptr);
  std::thread stopper([&] { studio_->stop(); });
  EXPECT_EQ(client->wait_closed(), 1000);
  stopper.join();
}

TEST_F(StudioProtocolTest, EventsStreamJobChanges) {
  // Read the SSE stream on a raw socket until the job event shows up.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), studio().port()});
  timeval limit{10, 0};  // a missing event fails the read instead of hanging the test
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  const std::string request = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                              kTestAdminToken + "\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(request));
  std::string seen;
  std::array<char, 4096> chunk{};
  while (seen.find(": connected") == std::string::npos) {
    seen.append(chunk.data(), socket.read_some(boost::asio::buffer(chunk)));
  }
  EXPECT_NE(seen.find("text/event-stream"), std::string::npos) << seen;
  const auto job = studio().create_job(llm_job("synth-llm", "x"));
  while (seen.find(job) == std::string::npos) {
    seen.append(chunk.data(), socket.read_some(boost::asio::buffer(chunk)));
  }
  EXPECT_NE(seen.find("event: job\ndata: {"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\"status\":\"queued\""), std::string::npos) << seen;
}

}  // namespace
}  // namespace sw::testing
