// End to end, the studio's OpenAI-compatible front door (issue 20): a studio-server and a
// studio-worker on loopback, driven by the official OpenAI client (npm `openai`, run by Node as a
// real client: tests/openai/client.mjs) and by plain HTTP where the client cannot show a detail.

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "support/farm.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using namespace sw::testing::farm;

// The client's folder (package.json, client.mjs) and its installed node_modules, or why not.
std::optional<std::string> openai_client_missing() {
  const std::filesystem::path dir = SW_OPENAI_CLIENT_DIR;
  if (std::system("node --version >/dev/null 2>&1") != 0) {
    return "no `node` on PATH (scripts/setup-openai-client.sh installs Debian's nodejs)";
  }
  if (!std::filesystem::exists(dir / "node_modules" / "openai" / "package.json")) {
    return "the openai npm package is not installed in " + dir.string() +
           " (run scripts/setup-openai-client.sh)";
  }
  return std::nullopt;
}

std::string client_key(const Studio& studio) {
  const auto reply = studio.api("POST", "/api/v1/keys", R"({"name":"openai client"})");
  EXPECT_EQ(reply.status, 201) << reply.body;
  return json::parse(reply.body, nullptr, false).value("key", "");
}

sw::testing::HttpReply as_client(const Studio& studio, const std::string& key,
                                 const std::string& method, const std::string& target,
                                 const json& body = nullptr) {
  return sw::testing::http_request(studio.port(), method, target,
                                   body.is_null() ? std::string() : body.dump(), key);
}

class OpenAiApi : public ::testing::Test {
 protected:
  void SetUp() override {
    studio_ = std::make_unique<Studio>(dir_.path() / "studio");
    studio_->add_models();
    // Synthetic jobs take 800 ms: long enough that a streamed answer's first delta arrives
    // while the job still runs.
    worker_ = std::make_unique<Worker>(dir_.path() / "worker", *studio_, 800);
    worker_id_ = studio_->approve_next();
    ASSERT_TRUE(worker_->wait_session("connected")) << worker_->log();
    key_ = client_key(*studio_);
  }

  sw::testing::TempDir dir_;
  std::unique_ptr<Studio> studio_;
  std::unique_ptr<Worker> worker_;
  std::string worker_id_;
  std::string key_;
};

TEST_F(OpenAiApi, TheOfficialClientListsChatsStreamsDrawsSpeaksAndTranscribes) {
  if (const auto why = openai_client_missing()) {
    std::printf("SKIPPED: %s\n", why->c_str());
    GTEST_SKIP() << *why;
  }
  const json models = {{"llm", "synth-llm"},
                       {"image", "synth-image"},
                       {"tts", "synth-audio_tts"},
                       {"stt", "synth-audio_stt"}};
  const auto spent = json::parse(
      studio_->api("POST", "/api/v1/keys", R"({"name":"spent","quota":{"jobs":0}})").body);
  const auto result =
      run_command({"/usr/bin/env", "node", std::string(SW_OPENAI_CLIENT_DIR) + "/client.mjs"},
                  dir_.path() / "client.log",
                  {{"STUDIO_URL", studio_->url()},
                   {"STUDIO_KEY", key_},
                   {"STUDIO_SPENT_KEY", spent.value("key", "")},
                   {"STUDIO_MODELS", models.dump()}});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // The report is the output's last line (Node may warn before it).
  const auto at = result.output.find("{\"models\"");
  ASSERT_NE(at, std::string::npos) << result.output;
  const json seen = json::parse(result.output.substr(at), nullptr, false);
  ASSERT_TRUE(seen.is_object()) << result.output;

  // Models: every enabled one, as OpenAI's model objects.
  std::set<std::string> ids;
  for (const auto& m : seen["models"]) {
    EXPECT_EQ(m["object"], "model");
    EXPECT_EQ(m["owned_by"], "studio");
    ids.insert(m.value("id", ""));
  }
  EXPECT_TRUE(ids.contains("synth-llm") && ids.contains("synth-image")) << seen["models"].dump();

  // Chat: a chat.completion with the job's id, the asked model and usage.
  const auto& chat = seen["chat"];
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_TRUE(chat.value("id", "").starts_with("chatcmpl-job-")) << chat.dump();
  EXPECT_EQ(chat["model"], "synth-llm");
  EXPECT_EQ(chat["role"], "assistant");
  EXPECT_FALSE(chat.value("content", "").empty());
  EXPECT_GT(chat["usage"].value("total_tokens", 0), 0) << chat.dump();
  // max_tokens reached the task as asked (the native view of the job shows it).
  const auto job = studio_->job(chat.value("id", "").substr(std::string("chatcmpl-").size()));
  EXPECT_EQ(job["task"].value("maxTokens", 0), 5) << job.dump();
  EXPECT_EQ(job["task"].value("seed", 0), 7) << job.dump();

  // Streaming: role first, then deltas, the finish, then usage; the first delta came while the
  // job was still running (order of events, not time).
  const auto& stream = seen["stream"];
  const auto events = stream["events"].get<std::vector<std::string>>();
  ASSERT_GE(events.size(), 3u) << stream.dump();
  EXPECT_EQ(events.front(), "role");
  EXPECT_EQ(events[1], "delta");
  EXPECT_EQ(events.back(), "usage");
  EXPECT_TRUE(events[events.size() - 2].starts_with("finish:")) << stream.dump();
  EXPECT_FALSE(stream.value("content", "").empty());
  EXPECT_GT(stream["usage"].value("total_tokens", 0), 0);
  EXPECT_EQ(stream["statusAtFirstDelta"], "claimed") << stream.dump();
  EXPECT_GT(std::count(events.begin(), events.end(), "delta"), 1) << stream.dump();

  // A client that aborted its stream cancelled the job.
  EXPECT_EQ(seen["abandoned"]["status"], "cancelled") << seen["abandoned"].dump();
  // The worker (it announced "cancel") was told, stopped the engine and answered `fail`: the run
  // did not go on to the end of the synthetic 800 ms with its result dropped.
  const auto abandoned = seen["abandoned"].value("job", "");
  EXPECT_TRUE(eventually([&] {
    return worker_->log().find("job " + abandoned + " failed: cancelled by the studio") !=
           std::string::npos;
  })) << worker_->log();
  EXPECT_EQ(worker_->log().find("job " + abandoned + " done"), std::string::npos);

  // An image as base64 PNG, speech as WAV bytes, a transcript of an uploaded file.
  EXPECT_EQ(seen["image"]["magic"], "PNG") << seen["image"].dump();
  EXPECT_EQ(seen["speech"]["magic"], "RIFF") << seen["speech"].dump();
  EXPECT_EQ(seen["speech"]["type"], "audio/wav");
  EXPECT_FALSE(seen["transcription"].value("text", "").empty()) << seen.dump();

  // Errors in OpenAI's shape, read by the client as APIError.
  EXPECT_TRUE(seen["unknownModel"]["isApiError"]);
  EXPECT_EQ(seen["unknownModel"]["status"], 404);
  EXPECT_EQ(seen["unknownModel"]["code"], "model_not_found");
  EXPECT_EQ(seen["unsupported"]["status"], 400);
  EXPECT_EQ(seen["unsupported"]["param"], "tools") << seen["unsupported"].dump();
  EXPECT_EQ(seen["badKey"]["status"], 401);
  EXPECT_EQ(seen["badKey"]["type"], "authentication_error") << seen["badKey"].dump();
  EXPECT_EQ(seen["spentQuota"]["isRateLimitError"], true) << seen["spentQuota"].dump();
  EXPECT_EQ(seen["spentQuota"]["code"], "insufficient_quota");
}

TEST_F(OpenAiApi, ParametersAreHonouredOrRefusedByName) {
  // max_completion_tokens wins over the default; temperature and stop reach the task.
  auto reply = as_client(*studio_, key_, "POST", "/v1/chat/completions",
                         {{"model", "synth-llm"},
                          {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                          {"max_completion_tokens", 7},
                          {"temperature", 0},
                          {"stop", "END"}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto body = json::parse(reply.body);
  const auto job = studio_->job(body.value("id", "").substr(std::string("chatcmpl-").size()));
  EXPECT_EQ(job["task"].value("maxTokens", 0), 7) << job.dump();
  EXPECT_EQ(job["task"].value("temperature", -1.0), 0.0);
  EXPECT_EQ(job["task"]["stop"], json::array({"END"}));

  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"frequency_penalty", 0.5}, {"logprobs", true}, {"n", 2}, {"bogus", 1}}) {
    json request = {{"model", "synth-llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    request[field] = value;
    reply = as_client(*studio_, key_, "POST", "/v1/chat/completions", request);
    EXPECT_EQ(reply.status, 400) << field << ": " << reply.body;
    const auto error = json::parse(reply.body, nullptr, false)["error"];
    EXPECT_EQ(error["param"], field) << reply.body;
    EXPECT_EQ(error["type"], "invalid_request_error");
  }
  // A model of another kind is refused with the reason.
  reply =
      as_client(*studio_, key_, "POST", "/v1/chat/completions",
                {{"model", "synth-image"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}});
  EXPECT_EQ(reply.status, 400) << reply.body;
  EXPECT_NE(reply.body.find("serves image tasks"), std::string::npos) << reply.body;
  EXPECT_EQ(json::parse(reply.body, nullptr, false)["error"]["param"], "model") << reply.body;
}

TEST_F(OpenAiApi, AJobNoWorkerCanServeIsAnswered503WithTheSchedulersReason) {
  const json model = {
      {"id", "sd-model"},
      {"kind", "image"},
      {"vramGbEstimate", 1},
      {"source",
       {{"engine", "sd-cpp"},
        {"files",
         {{{"role", "diffusion-model"},
           {"url", "https://models.example/sd-turbo.gguf"},
           {"filename", "sd-turbo.gguf"}}}},
        {"cliDefaults", {{"cfgScale", 0}, {"steps", 0}, {"width", 0}, {"height", 0}}}}}};
  ASSERT_EQ(studio_->api("POST", "/api/v1/models", model.dump()).status, 201);
  const auto reply = as_client(*studio_, key_, "POST", "/v1/images/generations",
                               {{"model", "sd-model"}, {"prompt", "a fox"}});
  EXPECT_EQ(reply.status, 503) << reply.body;
  const auto error = json::parse(reply.body, nullptr, false)["error"];
  EXPECT_NE(error.value("message", "").find("no connected worker has engine sd-cpp"),
            std::string::npos)
      << reply.body;
  // The job does not linger in the queue for a worker that may never come.
  const auto jobs = json::parse(studio_->api("GET", "/api/v1/jobs?status=queued").body);
  EXPECT_TRUE(jobs["jobs"].empty()) << jobs.dump();
}

TEST_F(OpenAiApi, TheNativeApiCanWaitForTheResult) {
  const json body = {
      {"model", "synth-llm"},
      {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}}};
  const auto reply = sw::testing::http_request(studio_->port(), "POST", "/api/v1/jobs?waitMs=20000",
                                               body.dump(), key_, "application/json", 30s);
  ASSERT_EQ(reply.status, 201) << reply.body;
  const auto job = json::parse(reply.body);
  EXPECT_EQ(job["status"], "done") << reply.body;
  EXPECT_EQ(job["result"]["json"]["object"], "chat.completion") << reply.body;
  EXPECT_EQ(sw::testing::http_request(studio_->port(), "POST", "/api/v1/jobs?waitMs=abc",
                                      body.dump(), key_)
                .status,
            400);
}

std::string header(const sw::testing::HttpReply& reply, const std::string& name) {
  for (const auto& [key, value] : reply.headers) {
    if (key.size() == name.size() &&
        std::equal(key.begin(), key.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return value;
    }
  }
  return "";
}

// Issue 20: keys act within their scope, their jobs are metered (jobs, tokens as the answers
// reported them, run time), a spent quota is answered 429 on both APIs until an admin lifts it,
// and /metrics shows each key's totals.
TEST_F(OpenAiApi, KeysAreScopedMeteredAndHeldToTheirQuota) {
  auto created =
      studio_->api("POST", "/api/v1/keys",
                   R"({"name":"app","scope":"inference","quota":{"period":"day","jobs":2}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto app = json::parse(created.body);
  EXPECT_EQ(app["scope"], "inference");
  EXPECT_EQ(app["quota"], json({{"period", "day"}, {"jobs", 2}}));
  const auto key = app.value("key", "");
  const auto key_id = app.value("id", "");

  // Scope: jobs and the model list, not the model registry or the fleet.
  EXPECT_EQ(as_client(*studio_, key, "GET", "/v1/models").status, 200);
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/models").status, 200);
  const auto model_write = as_client(*studio_, key, "DELETE", "/api/v1/models/synth-llm");
  EXPECT_EQ(model_write.status, 403) << model_write.body;
  EXPECT_NE(model_write.body.find("scope"), std::string::npos) << model_write.body;
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/workers").status, 403);
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/keys").status, 403);
  // The default scope (client) keeps the model registry, as before scopes.
  EXPECT_EQ(as_client(*studio_, key_, "GET", "/api/v1/workers").status, 403);
  const auto admin_key = json::parse(
      studio_->api("POST", "/api/v1/keys", R"({"name":"ops","scope":"admin"})").body)["key"];
  EXPECT_EQ(as_client(*studio_, admin_key, "GET", "/api/v1/workers").status, 200);

  // Two chats fit the quota; their tokens are what the answers reported.
  const json chat = {{"model", "synth-llm"},
                     {"messages", {{{"role", "user"}, {"content", "count my tokens"}}}}};
  std::int64_t prompt = 0;
  std::int64_t completion = 0;
  for (int i = 0; i < 2; ++i) {
    const auto reply = as_client(*studio_, key, "POST", "/v1/chat/completions", chat);
    ASSERT_EQ(reply.status, 200) << reply.body;
    const auto usage = json::parse(reply.body)["usage"];
    prompt += usage.value("prompt_tokens", 0);
    completion += usage.value("completion_tokens", 0);
  }
  ASSERT_GT(prompt, 0);
  ASSERT_GT(completion, 0);

  // The third is refused on both APIs, with when to come back.
  auto refused = as_client(*studio_, key, "POST", "/v1/chat/completions", chat);
  EXPECT_EQ(refused.status, 429) << refused.body;
  const auto error = json::parse(refused.body, nullptr, false)["error"];
  EXPECT_EQ(error["code"], "insufficient_quota") << refused.body;
  EXPECT_NE(error.value("message", "").find("2 of 2 jobs this day"), std::string::npos);
  EXPECT_GT(std::atoi(header(refused, "retry-after").c_str()), 0);
  EXPECT_EQ(header(refused, "x-should-retry"), "false");
  const json native = {
      {"model", "synth-llm"},
      {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}}};
  refused = as_client(*studio_, key, "POST", "/api/v1/jobs", native);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(json::parse(refused.body, nullptr, false)["error"], "quota_exceeded");
  // A refused transcription leaves no upload behind (its file was stored before the check).
  const std::string form =
      "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsynth-audio_stt\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
      "Content-Type: audio/wav\r\n\r\nRIFF-not-really-audio\r\n--B--\r\n";
  refused = sw::testing::http_request(studio_->port(), "POST", "/v1/audio/transcriptions", form,
                                      key, "multipart/form-data; boundary=B");
  EXPECT_EQ(refused.status, 429) << refused.body;
  const auto uploads = studio_->data_dir() / "uploads";
  EXPECT_TRUE(eventually([&] {
    return !std::filesystem::exists(uploads) || std::filesystem::is_empty(uploads);
  })) << "the refused request's upload is still on disk";

  // The key reads its own usage; the admin reads any key's.
  auto usage = json::parse(as_client(*studio_, key, "GET", "/api/v1/usage").body);
  EXPECT_EQ(usage["total"]["jobs"], 2) << usage.dump();
  EXPECT_EQ(usage["total"]["tokensIn"], prompt) << usage.dump();
  EXPECT_EQ(usage["total"]["tokensOut"], completion) << usage.dump();
  EXPECT_GT(usage["total"].value("seconds", 0.0), 0.5) << "two synthetic runs of 800 ms";
  EXPECT_EQ(usage["quota"]["exhausted"], true) << usage.dump();
  EXPECT_EQ(usage["days"].size(), 1u);
  const auto by_admin = json::parse(studio_->api("GET", "/api/v1/keys/" + key_id + "/usage").body);
  EXPECT_EQ(by_admin["total"], usage["total"]);
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/keys/" + key_id + "/usage").status, 403);

  // An admin lifts the quota: the key works again at once.
  const auto patched = studio_->api("PATCH", "/api/v1/keys/" + key_id, R"({"quota":null})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_TRUE(json::parse(patched.body)["quota"].is_null());
  EXPECT_EQ(as_client(*studio_, key, "POST", "/v1/chat/completions", chat).status, 200);

  // An inference key sees and cancels only its own jobs; the event stream (every job) is closed
  // to it. A client-scoped key still sees all.
  const auto other = as_client(*studio_, key_, "POST", "/api/v1/jobs", native);
  ASSERT_EQ(other.status, 201) << other.body;
  const auto other_id = json::parse(other.body).value("id", "");
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/jobs/" + other_id).status, 404);
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/jobs/" + other_id + "/result").status, 404);
  EXPECT_EQ(as_client(*studio_, key, "POST", "/api/v1/jobs/" + other_id + "/cancel").status, 404);
  const auto own = json::parse(as_client(*studio_, key, "GET", "/api/v1/jobs").body)["jobs"];
  EXPECT_EQ(own.size(), 3u) << own.dump();
  const auto all = json::parse(as_client(*studio_, key_, "GET", "/api/v1/jobs").body)["jobs"];
  EXPECT_EQ(all.size(), 4u) << all.dump();
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/events").status, 403);

  // Idempotency keys are per API key: another key sending the same one gets a job of its own, not
  // this one (nor a conflict that names it); a repeat by the same key still gets its first job.
  json once = native;
  once["idempotencyKey"] = "order-42";
  const auto mine = as_client(*studio_, key, "POST", "/api/v1/jobs", once);
  ASSERT_EQ(mine.status, 201) << mine.body;
  EXPECT_EQ(json::parse(mine.body)["idempotencyKey"], "order-42") << "shown as sent";
  const auto theirs = as_client(*studio_, key_, "POST", "/api/v1/jobs", once);
  ASSERT_EQ(theirs.status, 201) << theirs.body;
  EXPECT_NE(json::parse(theirs.body)["id"], json::parse(mine.body)["id"]);
  const auto again = as_client(*studio_, key, "POST", "/api/v1/jobs", once);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["id"], json::parse(mine.body)["id"]);
  // Another key's job is no cursor for a confined list either.
  EXPECT_EQ(as_client(*studio_, key, "GET", "/api/v1/jobs?before=" + other_id).status, 400);

  // A quota PATCH merges: the period and the other limits stay.
  auto merged = studio_->api("PATCH", "/api/v1/keys/" + key_id,
                             R"({"quota":{"period":"month","jobs":100,"tokens":1000}})");
  ASSERT_EQ(merged.status, 200) << merged.body;
  merged =
      studio_->api("PATCH", "/api/v1/keys/" + key_id, R"({"quota":{"jobs":50,"tokens":null}})");
  ASSERT_EQ(merged.status, 200) << merged.body;
  EXPECT_EQ(json::parse(merged.body)["quota"], json({{"period", "month"}, {"jobs", 50}}));

  // /metrics: every key's totals, named by id.
  const auto metrics = sw::testing::http_request(studio_->port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("studio_api_key_jobs_total{key=\"" + key_id + "\"} 4"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("studio_api_key_tokens_total{key=\"" + key_id + "\",direction=\"in\"}"),
            std::string::npos);
  EXPECT_NE(metrics.find("studio_api_key_run_seconds_total{key=\"" + key_id + "\"}"),
            std::string::npos);

  // Bodies that do not make sense are refused by name.
  for (const auto& [body, named] : std::vector<std::pair<std::string, std::string>>{
           {R"({"scope":"root"})", "scope"},
           {R"({"quota":{"jobs":-1}})", "quota.jobs"},
           {R"({"quota":{}})", "quota"},
           {R"({"quota":{"period":"week","jobs":1}})", "quota.period"},
           {R"({"owner":"x"})", "owner"},
           {"{\"name\":\"a\\u001b[31m\"}", "name"}}) {
    const auto reply = studio_->api("POST", "/api/v1/keys", body);
    EXPECT_EQ(reply.status, 400) << body;
    EXPECT_TRUE(json::parse(reply.body, nullptr, false).value("message", "").starts_with(named))
        << body << " → " << reply.body;
  }

  // A deleted key's usage stays readable for the bill.
  ASSERT_EQ(studio_->api("DELETE", "/api/v1/keys/" + key_id).status, 200);
  const auto after = studio_->api("GET", "/api/v1/keys/" + key_id + "/usage");
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(json::parse(after.body)["key"]["deleted"], true);
  EXPECT_EQ(json::parse(after.body)["total"]["jobs"], 4);
}

// Issue 20: an event stream ends once its key is deleted: it does not go on showing every job.
TEST_F(OpenAiApi, AnEventStreamEndsWhenItsKeyIsRevoked) {
  const auto created =
      json::parse(studio_->api("POST", "/api/v1/keys", R"({"name":"dashboard"})").body);
  const std::string key = created.value("key", "");
  const std::string key_id = created.value("id", "");
  const json native = {
      {"model", "synth-llm"},
      {"task", {{"kind", "llm"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}}};

  // The stream, read on a plain socket: each read returns within a second.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), studio_->port()});
  timeval limit{1, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  boost::asio::write(socket, boost::asio::buffer("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
                                                 "Authorization: Bearer " +
                                                 key + "\r\n\r\n"));
  std::string seen;
  bool closed = false;
  const auto read_until = [&](const std::string& wanted) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::array<char, 4096> chunk{};
    while (seen.find(wanted) == std::string::npos && !closed &&
           std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      const auto n = socket.read_some(boost::asio::buffer(chunk), ec);
      if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) continue;
      if (ec) {
        closed = true;
        break;
      }
      seen.append(chunk.data(), n);
    }
    return seen.find(wanted) != std::string::npos;
  };
  ASSERT_TRUE(read_until(": connected")) << seen;
  // Events flow while the key is valid…
  const auto first = as_client(*studio_, key_, "POST", "/api/v1/jobs", native);
  ASSERT_EQ(first.status, 201) << first.body;
  ASSERT_TRUE(read_until(json::parse(first.body).value("id", ""))) << seen;
  ASSERT_EQ(studio_->api("DELETE", "/api/v1/keys/" + key_id).status, 200);
  // …and the next event after the delete ends the stream instead of reaching it.
  const auto later = as_client(*studio_, key_, "POST", "/api/v1/jobs", native);
  ASSERT_EQ(later.status, 201) << later.body;
  const auto later_id = json::parse(later.body).value("id", "");
  EXPECT_FALSE(read_until(later_id)) << seen;
  EXPECT_TRUE(closed) << "the stream of a deleted key is still open";
}

}  // namespace

namespace {

// A streamed answer that takes longer than the studio's routability check (5 s) still ends with
// the finish and [DONE] (it once went quiet for good: nothing held the request once that timer
// had fired).
TEST(OpenAiApiSlow, AStreamOutlivingTheRoutabilityCheckEndsWithDone) {
  sw::testing::TempDir dir;
  Studio studio(dir.path() / "studio");
  studio.add_models();
  Worker worker(dir.path() / "worker", studio, 6500);
  studio.approve_next();
  ASSERT_TRUE(worker.wait_session("connected")) << worker.log();
  const auto key = client_key(studio);
  const json body = {{"model", "synth-llm"},
                     {"messages", {{{"role", "user"}, {"content", "a slow story"}}}},
                     {"stream", true}};
  const auto reply = sw::testing::http_request(studio.port(), "POST", "/v1/chat/completions",
                                               body.dump(), key, "application/json", 60s);
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_NE(reply.body.find(R"("finish_reason":"stop")"), std::string::npos) << reply.body;
  EXPECT_TRUE(reply.body.ends_with("data: [DONE]\n\n")) << reply.body;
}

}  // namespace
