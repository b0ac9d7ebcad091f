// Client uploads (issue 20), over real loopback sockets against the studio: a client uploads a
// job's input (raw or multipart), gets its sha256, size and URL; the file is private; only a
// worker's token fetches the bytes; a job naming an unknown upload is refused; a job naming an
// upload is offered only to a worker that announced "uploads"; the upload goes with its job
// (cancelled or done), or after the retention when no job took it; an oversized upload is 413.

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <thread>

#include "common/sha256.h"
#include "proto/codec.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Steady time as the machine's (the studio's timers wait on it), wall time shifted by the test:
// an upload's age is wall time, so the retention passes without waiting it out.
class ShiftedClock final : public Clock {
 public:
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  std::int64_t unix_millis() const override { return unix_millis_now() + offset_.load(); }
  void shift(std::chrono::milliseconds by) { offset_ += by.count(); }

 private:
  std::atomic<std::int64_t> offset_{0};
};

studio::StudioConfig uploads_config(const fs::path& dir) {
  studio::StudioConfig config;
  config.data_dir = dir;
  config.sweep_interval = 100ms;  // the upload sweep's period too
  config.upload_retention = 1h;
  return config;
}

json parse(const std::string& text) {
  return json::parse(text, nullptr, false);
}

// Waits for a condition the studio reaches on its own (a sweep, a commit), polling; false when
// it is not reached within `timeout`.
bool eventually(const std::function<bool()>& reached, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reached()) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return reached();
}

unsigned mode_of(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return 0;
  }
  return info.st_mode & 07777;
}

std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  return bytes;
}

// A worker connected with `features` in its hello; the welcome's features are checked to hold
// what the studio supports of them.
std::unique_ptr<ProtocolClient> connect_with_features(const StudioHarness& studio,
                                                      const WorkerCredentials& credentials,
                                                      std::vector<std::string> features) {
  auto client = ProtocolClient::connect(studio.port(), credentials.worker_id,
                                        ProtocolClient::Options{credentials.token, true});
  if (!client) {
    ADD_FAILURE() << "upgrade refused: " << client.error().message;
    return nullptr;
  }
  proto::Hello hello{credentials.token, test_capabilities()};
  hello.features = std::move(features);
  (*client)->send(hello);
  auto welcome = (*client)->next_frame();
  if (!welcome || !std::holds_alternative<proto::Welcome>(*welcome)) {
    ADD_FAILURE() << "no welcome for " << credentials.worker_id;
    return nullptr;
  }
  const auto& echoed = std::get<proto::Welcome>(*welcome).features;
  const bool uploads =
      std::find(hello.features.begin(), hello.features.end(), "uploads") != hello.features.end();
  EXPECT_EQ(std::find(echoed.begin(), echoed.end(), "uploads") != echoed.end(), uploads);
  return std::move(*client);
}

class StudioClientUploadsTest : public ::testing::Test {
 protected:
  // A studio on the test's data directory (again, after a stop: the model is still there).
  void start(studio::StudioConfig config) {
    studio_ = std::make_unique<StudioHarness>(std::move(config), net::ServerOptions{}, clock_);
  }
  void SetUp() override {
    start(uploads_config(dir_.path()));
    studio_->add_model("stt", "audio_stt");
  }

  StudioHarness& studio() { return *studio_; }
  fs::path file_of(const std::string& id) const { return dir_.path() / "uploads" / id; }

  // POST /api/v1/uploads with the admin token; the parsed 201 body (fails the test otherwise).
  json upload(const std::string& bytes, const std::string& content_type,
              const std::string& target = "/api/v1/uploads",
              const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    const auto reply = http_request(studio().port(), "POST", target, bytes, kTestAdminToken,
                                    content_type, 10s, headers);
    EXPECT_EQ(reply.status, 201) << reply.body;
    return parse(reply.body);
  }
  int metadata_status(const std::string& id) {
    return studio().admin("GET", "/api/v1/uploads/" + id).status;
  }
  std::string stt_job(const std::string& input_url) {
    return json{{"model", "stt"}, {"task", {{"kind", "audio_stt"}, {"inputUrl", input_url}}}}
        .dump();
  }

  TempDir dir_;
  ShiftedClock clock_;
  std::unique_ptr<StudioHarness> studio_;
};

TEST_F(StudioClientUploadsTest, ARawUploadIsHashedStoredPrivatelyAndDescribed) {
  const auto bytes = pattern(300'000);
  const auto body = upload(bytes, "audio/wav", "/api/v1/uploads?filename=take%201.wav",
                           {{"Host", "studio.test:9000"}});
  const auto id = body.value("id", "");
  ASSERT_TRUE(id.starts_with("upl-")) << body.dump();
  EXPECT_EQ(body["sha256"], sha256_hex(bytes));
  EXPECT_EQ(body["bytes"], bytes.size());
  EXPECT_EQ(body["contentType"], "audio/wav");
  EXPECT_EQ(body["filename"], "take 1.wav");
  EXPECT_EQ(body["url"], "http://studio.test:9000/graphics/api/uploads/" + id)
      << "no public_url: the request's Host";
  EXPECT_TRUE(body["expiresAt"].is_string()) << body.dump();

  ASSERT_TRUE(fs::exists(file_of(id)));
  EXPECT_EQ(fs::file_size(file_of(id)), bytes.size());
  EXPECT_EQ(mode_of(file_of(id)), 0600u);
  EXPECT_EQ(mode_of(dir_.path() / "uploads"), 0700u);

  const auto meta = studio().admin("GET", "/api/v1/uploads/" + id);
  ASSERT_EQ(meta.status, 200) << meta.body;
  EXPECT_EQ(parse(meta.body)["sha256"], sha256_hex(bytes));
  EXPECT_TRUE(parse(meta.body)["jobId"].is_null());
  EXPECT_EQ(metadata_status("upl-0123"), 404);
}

TEST_F(StudioClientUploadsTest, AMultipartUploadKeepsItsFilePartOnlyAndAnApiKeyMayUpload) {
  const auto key_reply = studio().admin("POST", "/api/v1/keys", R"({"name":"client"})");
  ASSERT_EQ(key_reply.status, 201) << key_reply.body;
  const auto key = parse(key_reply.body)["key"].get<std::string>();
  const std::string boundary = "XyZ-boundary";
  const std::string png = "\x89PNG\r\n\x1a\n" + pattern(5000);
  const std::string form = "--" + boundary +
                           "\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n"
                           "--" +
                           boundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; "
                           "filename=\"init.png\"\r\nContent-Type: image/png\r\n\r\n" +
                           png + "\r\n--" + boundary + "--\r\n";
  const auto reply = http_request(studio().port(), "POST", "/api/v1/uploads", form, key,
                                  "multipart/form-data; boundary=" + boundary);
  ASSERT_EQ(reply.status, 201) << reply.body;
  const auto body = parse(reply.body);
  EXPECT_EQ(body["sha256"], sha256_hex(png));
  EXPECT_EQ(body["bytes"], png.size());
  EXPECT_EQ(body["contentType"], "image/png");
  EXPECT_EQ(body["filename"], "init.png");
  EXPECT_EQ(fs::file_size(file_of(body["id"])), png.size());

  const std::string no_file = "--" + boundary +
                              "\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nw\r\n--" +
                              boundary + "--\r\n";
  const auto refused = http_request(studio().port(), "POST", "/api/v1/uploads", no_file, key,
                                    "multipart/form-data; boundary=" + boundary);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("no `file` part"), std::string::npos) << refused.body;
  EXPECT_EQ(http_request(studio().port(), "POST", "/api/v1/uploads", "abc").status, 401)
      << "no token";
}

TEST_F(StudioClientUploadsTest, OnlyAnApprovedWorkersTokenFetchesTheBytes) {
  const auto bytes = pattern(70'000);
  const auto id = upload(bytes, "audio/flac").value("id", "");
  const auto worker = register_worker(studio(), "install-u1");
  const std::string route = "/graphics/api/uploads/" + id;
  const auto fetched = http_request(studio().port(), "GET", route, "", worker.token);
  ASSERT_EQ(fetched.status, 200) << fetched.body;
  EXPECT_EQ(fetched.content_type, "audio/flac");
  EXPECT_EQ(fetched.body, bytes);

  EXPECT_EQ(http_request(studio().port(), "GET", route).status, 401) << "no token";
  EXPECT_EQ(http_request(studio().port(), "GET", route, "", kTestAdminToken).status, 401)
      << "a client's token is not a worker's";
  EXPECT_EQ(http_request(studio().port(), "GET", route, "", worker.token + "x").status, 401);
  EXPECT_EQ(http_request(studio().port(), "GET", "/graphics/api/uploads/upl-0123", "", worker.token)
                .status,
            404);
}

TEST_F(StudioClientUploadsTest, AJobNamingAnUnknownUploadIsRefusedNamingTheFieldAndId) {
  const auto reply =
      studio().admin("POST", "/api/v1/jobs",
                     stt_job("https://elsewhere.example/graphics/api/uploads/upl-0badc0de"));
  EXPECT_EQ(reply.status, 400) << reply.body;
  EXPECT_EQ(parse(reply.body)["error"], "invalid_job") << reply.body;
  EXPECT_NE(reply.body.find("inputUrl"), std::string::npos) << reply.body;
  EXPECT_NE(reply.body.find("upl-0badc0de"), std::string::npos) << reply.body;
  const auto junk =
      studio().admin("POST", "/api/v1/jobs", stt_job("http://h/graphics/api/uploads/..%2Fx"));
  EXPECT_EQ(junk.status, 400) << junk.body;
}

TEST_F(StudioClientUploadsTest, AJobWithAnUploadWaitsForAWorkerThatFetchesUploadsAndTakesItAlong) {
  const auto first = upload(pattern(1000), "audio/wav");
  const std::string id = first["id"];
  const auto older = register_worker(studio(), "install-old");
  auto old_client = connect_with_features(studio(), older, {"limits"});
  ASSERT_NE(old_client, nullptr);

  const auto job = studio().create_job(stt_job(first["url"]));
  ASSERT_FALSE(job.empty());
  EXPECT_EQ(studio().job_field(job, "waiting"),
            "waiting: no connected worker fetches studio uploads (feature \"uploads\")");
  const auto meta = parse(studio().admin("GET", "/api/v1/uploads/" + id).body);
  EXPECT_EQ(meta["jobId"], job);
  EXPECT_TRUE(meta["expiresAt"].is_null()) << "kept while its job lives";
  // Another job cannot take it, nor can it be deleted while its job lives.
  const auto again = studio().admin("POST", "/api/v1/jobs", stt_job(first["url"]));
  EXPECT_EQ(again.status, 400) << again.body;
  EXPECT_NE(again.body.find("already the input of job " + job), std::string::npos) << again.body;
  EXPECT_EQ(studio().admin("DELETE", "/api/v1/uploads/" + id).status, 409);

  const auto newer = register_worker(studio(), "install-new");
  auto new_client = connect_with_features(studio(), newer, {"limits", "uploads"});
  ASSERT_NE(new_client, nullptr);
  const auto offer = expect_offer(*new_client);
  ASSERT_TRUE(offer);
  EXPECT_EQ(offer->job_id, job);
  EXPECT_FALSE(old_client->next_non_ack(300ms)) << "the older worker got no offer";
  const auto fetched =
      http_request(studio().port(), "GET", "/graphics/api/uploads/" + id, "", newer.token);
  EXPECT_EQ(fetched.status, 200);

  // Cancelled: the upload and its file go.
  EXPECT_EQ(studio().admin("POST", "/api/v1/jobs/" + job + "/cancel", "{}").status, 200);
  EXPECT_TRUE(eventually([&] { return metadata_status(id) == 404; }));
  EXPECT_TRUE(eventually([&] { return !fs::exists(file_of(id)); }));
  EXPECT_EQ(
      http_request(studio().port(), "GET", "/graphics/api/uploads/" + id, "", newer.token).status,
      404);
}

TEST_F(StudioClientUploadsTest, AnUploadGoesWhenItsJobIsDone) {
  const auto body = upload(pattern(2000), "audio/wav");
  const std::string id = body["id"];
  const auto worker = register_worker(studio(), "install-done");
  auto client = connect_with_features(studio(), worker, {"uploads"});
  ASSERT_NE(client, nullptr);
  const auto job = studio().create_job(stt_job(body["url"]));
  const auto offer = expect_offer(*client);
  ASSERT_TRUE(offer);
  client->send(proto::Accept{job});
  auto result = proto::RawJson::parse(R"({"text":"hello"})");
  ASSERT_TRUE(result);
  client->send(proto::CompleteJson{job, *result, std::nullopt});
  auto ack = client->next_non_ack();
  ASSERT_TRUE(ack && std::holds_alternative<proto::CompleteAck>(*ack));
  EXPECT_EQ(studio().job_status(job), "done");
  EXPECT_TRUE(eventually([&] { return metadata_status(id) == 404; }));
  EXPECT_TRUE(eventually([&] { return !fs::exists(file_of(id)); }));
}

TEST_F(StudioClientUploadsTest, AnUploadNoJobTookIsSweptAfterTheRetentionAndOneAJobTookIsNot) {
  const auto unused = upload(pattern(100), "audio/wav").value("id", "");
  const auto used = upload(pattern(200), "audio/wav");
  const std::string used_id = used["id"];
  const auto job = studio().create_job(stt_job(used["url"]));  // no worker: it stays queued
  ASSERT_FALSE(job.empty());
  // Within the retention nothing goes.
  clock_.shift(30min);
  EXPECT_FALSE(eventually([&] { return metadata_status(unused) == 404; }, 400ms));
  clock_.shift(45min);
  EXPECT_TRUE(eventually([&] { return metadata_status(unused) == 404; }));
  EXPECT_FALSE(fs::exists(file_of(unused)));
  EXPECT_EQ(metadata_status(used_id), 200) << "its job is queued";
  EXPECT_TRUE(fs::exists(file_of(used_id)));
}

TEST_F(StudioClientUploadsTest, AnUploadLeftOverAtARestartIsSweptAtStart) {
  const auto id = upload(pattern(100), "audio/wav").value("id", "");
  studio_->stop();
  clock_.shift(2h);
  auto config = uploads_config(dir_.path());
  config.sweep_interval = 1h;  // only the sweep at start can find it
  start(config);
  EXPECT_TRUE(eventually([&] { return metadata_status(id) == 404; }));
  EXPECT_FALSE(fs::exists(file_of(id)));
}

TEST_F(StudioClientUploadsTest, AnUnusedUploadIsDeletedOnRequestAndAnOversizedOneIs413) {
  const auto id = upload("abc", "text/plain").value("id", "");
  EXPECT_EQ(studio().admin("DELETE", "/api/v1/uploads/" + id).status, 200);
  EXPECT_EQ(metadata_status(id), 404);
  EXPECT_TRUE(eventually([&] { return !fs::exists(file_of(id)); }));
  EXPECT_EQ(studio().admin("DELETE", "/api/v1/uploads/" + id).status, 404);

  studio_->stop();
  auto config = uploads_config(dir_.path());
  config.upload_body_limit = 4096;
  config.public_url = "https://studio.example.com/";
  start(config);
  const auto big = http_request(studio().port(), "POST", "/api/v1/uploads", pattern(64 * 1024),
                                kTestAdminToken, "application/octet-stream");
  EXPECT_EQ(big.status, 413) << big.body;
  const auto small = upload(pattern(4096), "application/octet-stream");
  EXPECT_EQ(small["url"],
            "https://studio.example.com/graphics/api/uploads/" + small.value("id", ""));
}

// The body of an upload is read in large reads, then the connection's buffer shrinks back to
// what it holds: a request pipelined right behind an upload (bytes already read with it) must
// survive that, whether the upload is chunked or sized.
TEST_F(StudioClientUploadsTest, RequestsPipelinedBehindLargeUploadsAreAllAnsweredWhole) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  const auto first = pattern(300'000);
  const auto second = pattern(70'000).substr(1000);
  std::string chunked;
  for (std::size_t at = 0; at < first.size(); at += 100'000) {
    const auto piece = first.substr(at, 100'000);
    chunked += fmt::format("{:x}\r\n", piece.size()) + piece + "\r\n";
  }
  chunked += "0\r\n\r\n";
  const std::string auth = "Authorization: Bearer " + kTestAdminToken + "\r\n";
  const std::string wire =
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\n" + auth +
      "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
      chunked + "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\n" + auth +
      "Content-Type: application/octet-stream\r\nContent-Length: " +
      std::to_string(second.size()) + "\r\n\r\n" + second +
      "GET /api/v1/uploads/upl-none HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n";

  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), studio().port()});
  timeval limit{10, 0};  // a studio that never answers fails the read instead of hanging it
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  asio::write(socket, asio::buffer(wire));  // one write: the requests arrive back to back
  boost::beast::flat_buffer buffer;
  std::vector<http::response<http::string_body>> answers(3);
  for (std::size_t i = 0; i < answers.size(); ++i) {
    boost::beast::error_code ec;
    http::read(socket, buffer, answers[i], ec);
    ASSERT_FALSE(ec) << "answer " << i + 1 << " of 3: " << ec.message();
  }
  ASSERT_EQ(answers[0].result_int(), 201) << answers[0].body();
  EXPECT_EQ(parse(answers[0].body())["sha256"], sha256_hex(first));
  EXPECT_EQ(parse(answers[0].body())["bytes"], first.size());
  ASSERT_EQ(answers[1].result_int(), 201) << answers[1].body();
  EXPECT_EQ(parse(answers[1].body())["sha256"], sha256_hex(second));
  EXPECT_EQ(answers[2].result_int(), 404) << answers[2].body();
}

}  // namespace
}  // namespace sw::testing
