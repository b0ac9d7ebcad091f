// Many clients submitting while many workers complete, over real sockets: no job is offered to
// two workers at once, none is lost, none completes twice, and stored bytes are the uploaded ones.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/sha256.h"
#include "proto/codec.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

constexpr int kWorkers = 6;
constexpr int kClients = 4;
constexpr int kJobsPerClient = 50;

struct Ledger {
  std::mutex mutex;
  std::map<std::string, std::string> holder;  // job → worker holding it right now
  std::map<std::string, int> completions;
  std::map<std::string, std::string> uploaded_sha256;
  std::vector<std::string> violations;
};

void run_worker(const StudioHarness& studio, const WorkerCredentials& credentials, Ledger& ledger) {
  auto client = connect_worker(studio, credentials);
  if (!client) {
    return;
  }
  while (auto frame = client->next_non_ack(60s)) {
    if (!std::holds_alternative<proto::Offer>(*frame)) {
      std::lock_guard lock(ledger.mutex);
      ledger.violations.push_back("unexpected frame " + proto::encode(*frame));
      continue;
    }
    const auto claim = std::get<proto::Offer>(*frame).claim;
    {
      std::lock_guard lock(ledger.mutex);
      auto [it, fresh] = ledger.holder.emplace(claim.job_id, credentials.worker_id);
      if (!fresh) {
        ledger.violations.push_back(claim.job_id + " offered to " + credentials.worker_id +
                                    " while " + it->second + " holds it");
      }
    }
    client->send(proto::Accept{claim.job_id});
    if (claim.task.kind() == proto::TaskKind::Llm) {
      client->send(proto::CompleteJson{
          claim.job_id, *proto::RawJson::parse(R"({"object":"chat.completion","n":1})"),
          std::nullopt});
      auto ack = client->next_non_ack(30s);
      if (!ack || !std::holds_alternative<proto::CompleteAck>(*ack)) {
        std::lock_guard lock(ledger.mutex);
        ledger.violations.push_back("no completeAck for " + claim.job_id);
        return;
      }
    } else {
      const std::string bytes = "image bytes of " + claim.job_id;
      const auto [type, form] = result_form("p", "png", bytes, claim.job_id + ".png");
      const auto reply = http_request(
          studio.port(), "POST",
          "/graphics/api/workers/" + credentials.worker_id + "/jobs/" + claim.job_id + "/complete",
          form, credentials.token, type);
      std::lock_guard lock(ledger.mutex);
      if (reply.status != 200) {
        ledger.violations.push_back("upload of " + claim.job_id + " got " +
                                    std::to_string(reply.status));
      }
      ledger.uploaded_sha256[claim.job_id] = sha256_hex(bytes);
    }
    std::lock_guard lock(ledger.mutex);
    ledger.holder.erase(claim.job_id);
    ++ledger.completions[claim.job_id];
  }
}

TEST(StudioConcurrencyTest, ManyClientsAndWorkersLoseNothingAndNeverDoubleOffer) {
  TempDir dir;
  studio::StudioConfig config;
  config.data_dir = dir.path();
  StudioHarness studio(config);
  studio.add_model("synth-llm", "llm");
  studio.add_model("synth-image", "image");

  std::vector<WorkerCredentials> credentials;
  for (int i = 0; i < kWorkers; ++i) {
    credentials.push_back(register_worker(studio, "install-" + std::to_string(i)));
  }
  Ledger ledger;
  std::vector<std::thread> workers;
  for (const auto& c : credentials) {
    workers.emplace_back([&studio, c, &ledger] { run_worker(studio, c, ledger); });
  }

  std::mutex ids_mutex;
  std::set<std::string> submitted;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int j = 0; j < kJobsPerClient; ++j) {
        const auto prompt = "client " + std::to_string(c) + " job " + std::to_string(j);
        const auto id = j % 2 == 0 ? studio.create_job(llm_job("synth-llm", prompt, j % 3))
                                   : studio.create_job(image_job("synth-image", prompt));
        std::lock_guard lock(ids_mutex);
        submitted.insert(id);
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  ASSERT_EQ(submitted.size(), static_cast<std::size_t>(kClients * kJobsPerClient));
  for (const auto& id : submitted) {
    ASSERT_TRUE(studio.wait_job_status(id, "done", 60s)) << id << " never finished";
  }
  studio.stop();  // closes the sessions: the worker threads end
  for (auto& t : workers) {
    t.join();
  }

  std::lock_guard lock(ledger.mutex);
  EXPECT_TRUE(ledger.violations.empty()) << ledger.violations.front();
  EXPECT_EQ(ledger.completions.size(), submitted.size());
  for (const auto& [id, count] : ledger.completions) {
    EXPECT_EQ(count, 1) << id << " completed more than once";
  }
  // Restart on the same database: every job is done and every stored result is the upload.
  StudioHarness reopened(config);
  for (const auto& [id, sha] : ledger.uploaded_sha256) {
    const auto reply = reopened.admin("GET", "/api/v1/jobs/" + id + "/result");
    ASSERT_EQ(reply.status, 200) << id;
    EXPECT_EQ(sha256_hex(reply.body), sha) << id;
  }
  const auto done = nlohmann::json::parse(
      reopened.admin("GET", "/api/v1/jobs?status=done&limit=500").body, nullptr, false);
  EXPECT_EQ(done["jobs"].size(), submitted.size());
}

}  // namespace
}  // namespace sw::testing
