// Result uploads under hostile input (issue 16, kind 3), over real loopback sockets against the
// studio: an upload is refused from its headers when the job is not the worker's (before its body
// is read), a large body is streamed to disk and hashed as it arrives, an interrupted upload
// leaves no file behind, and the bytes in flight across uploads are capped (503 + Retry-After).

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "common/file_io.h"
#include "common/sha256.h"
#include "proto/codec.h"
#include "support/studio_harness.h"
#include "support/temp_dir.h"

namespace sw::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

studio::StudioConfig upload_config(const fs::path& dir) {
  studio::StudioConfig config;
  config.data_dir = dir;
  config.sweep_interval = 1s;
  config.reject_hold_off = 1h;
  config.fail_hold_off = 0ms;
  config.claim_grace = 150ms;
  return config;
}

// A request written by hand on a blocking socket, so that a test decides how much of the body
// goes out and when. A read gives up after 10 s without bytes (a studio that waits for the rest of
// a body never answers); poll() bounds it, as Asio's blocking reads retry past SO_RCVTIMEO.
class RawRequest {
 public:
  explicit RawRequest(std::uint16_t port) : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }
  bool send(std::string_view bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
  }
  // The next response head (status line and headers), or what arrived before a timeout/close.
  std::string read_head() {
    while (seen_.find("\r\n\r\n") == std::string::npos) {
      if (!read_more()) {
        break;
      }
    }
    const auto end = seen_.find("\r\n\r\n");
    std::string head = seen_.substr(0, end == std::string::npos ? seen_.size() : end + 4);
    seen_.erase(0, head.size());
    return head;
  }
  // Reads until `needle` has arrived; false on timeout or close.
  bool read_until(std::string_view needle) {
    while (seen_.find(needle) == std::string::npos) {
      if (!read_more()) {
        return false;
      }
    }
    return true;
  }
  // Drops the connection with a reset, as a killed worker would.
  void reset() {
    linger hard{1, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    socket_.close();
  }

 private:
  // Appends what arrives within 10 s; false on timeout, close or error.
  bool read_more() {
    pollfd ready{socket_.native_handle(), POLLIN, 0};
    if (::poll(&ready, 1, 10'000) <= 0) {
      return false;
    }
    std::array<char, 4096> chunk{};
    boost::system::error_code ec;
    const auto n = socket_.read_some(boost::asio::buffer(chunk), ec);
    if (ec) {
      return false;
    }
    seen_.append(chunk.data(), n);
    return true;
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::string seen_;
};

std::string complete_route(const std::string& worker_id, const std::string& job_id) {
  return "/graphics/api/workers/" + worker_id + "/jobs/" + job_id + "/complete";
}

std::string upload_head(const std::string& route, const std::string& token,
                        const std::string& content_type, std::uint64_t length, bool expect) {
  return "POST " + route + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
         "\r\nContent-Type: " + content_type + "\r\nContent-Length: " + std::to_string(length) +
         (expect ? "\r\nExpect: 100-continue" : "") + "\r\n\r\n";
}

std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  return bytes;
}

std::vector<std::string> upload_temp_files(const fs::path& results) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(results)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with(".upload-")) {
      names.push_back(name);
    }
  }
  return names;
}

// inotify on one directory: files appearing and going, as events rather than by polling.
class DirWatch {
 public:
  explicit DirWatch(const fs::path& dir) : fd_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
    ::inotify_add_watch(fd_.get(), dir.c_str(), IN_CREATE | IN_DELETE | IN_MOVED_FROM);
  }
  // Waits for an event in `mask` on a name starting with `prefix`; the name, or nullopt when
  // none comes within `timeout`.
  std::optional<std::string> wait(std::uint32_t mask, std::string_view prefix,
                                  std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      alignas(inotify_event) std::array<char, 4096> events{};
      const auto n = ::read(fd_.get(), events.data(), events.size());
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(events.data() + at);
        const std::string name = event->len > 0 ? std::string(event->name) : std::string();
        if ((event->mask & mask) != 0 && name.starts_with(prefix)) {
          return name;
        }
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return std::nullopt;
      }
      pollfd ready{fd_.get(), POLLIN, 0};
      ::poll(&ready, 1, static_cast<int>(left.count()));
    }
  }

 private:
  UniqueFd fd_;
};

class StudioUploadLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { start(upload_config(dir_.path())); }
  void start(studio::StudioConfig config) {
    studio_ = std::make_unique<StudioHarness>(std::move(config));
    studio_->add_model("synth-image", "image");
  }
  StudioHarness& studio() { return *studio_; }
  fs::path results() const { return dir_.path() / "results"; }

  // A worker that accepted a fresh image job: its session, credentials and the job.
  struct Holder {
    WorkerCredentials credentials;
    std::unique_ptr<ProtocolClient> client;
    std::string job;
  };
  Holder holding_worker(const std::string& install) {
    Holder holder;
    holder.credentials = register_worker(studio(), install);
    holder.client = connect_worker(studio(), holder.credentials);
    holder.job = studio().create_job(image_job("synth-image", "a cube"));
    EXPECT_TRUE(expect_offer(*holder.client));
    holder.client->send(proto::Accept{holder.job});
    return holder;
  }

  TempDir dir_;
  std::unique_ptr<StudioHarness> studio_;
};

TEST_F(StudioUploadLimitsTest, UploadToAJobTheWorkerDoesNotHoldIsRefusedBeforeItsBody) {
  auto a = holding_worker("install-u1");
  const auto b = register_worker(studio(), "install-u2");
  constexpr std::uint64_t kDeclared = 150ull << 20;
  const auto [type, head_of_form] = result_form("x", "png", pattern(64 * 1024), "f.png");

  // A job that exists nowhere (decided from the database), asking to continue: the answer is the
  // route's 409 instead of 100 Continue.
  {
    RawRequest request(studio().port());
    ASSERT_TRUE(request.send(upload_head(complete_route(b.worker_id, "job-nobody-has"), b.token,
                                         type, kDeclared, true)));
    const auto head = request.read_head();
    EXPECT_EQ(head.rfind("HTTP/1.1 409 ", 0), 0u) << head;
    ASSERT_TRUE(request.read_until("\"error\":\"conflict\""));
  }
  // Another worker's active job, without Expect: headers and a first 64 KiB of a 150 MiB body.
  // The 409 arrives while the rest has not been sent.
  {
    RawRequest request(studio().port());
    ASSERT_TRUE(request.send(
        upload_head(complete_route(b.worker_id, a.job), b.token, type, kDeclared, false)));
    ASSERT_TRUE(request.send(head_of_form));
    const auto head = request.read_head();
    EXPECT_EQ(head.rfind("HTTP/1.1 409 ", 0), 0u) << head;
    ASSERT_TRUE(request.read_until("is not claimed by this worker"));
  }
  EXPECT_TRUE(upload_temp_files(results()).empty());
  EXPECT_EQ(studio().job_status(a.job), "claimed");
}

TEST_F(StudioUploadLimitsTest, LargeUploadIsStoredWithItsSha256AndNoTemporaryFileRemains) {
  auto holder = holding_worker("install-u3");
  const std::string bytes = pattern(64u << 20);
  const auto [type, form] = result_form("a cube", "png", bytes, holder.job + ".png");
  const auto reply = http_request(studio().port(), "POST",
                                  complete_route(holder.credentials.worker_id, holder.job), form,
                                  holder.credentials.token, type, 120s);
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto digest = sha256_hex(bytes);
  const auto stored = json::parse(studio().admin("GET", "/api/v1/jobs/" + holder.job).body);
  EXPECT_EQ(stored["status"], "done");
  EXPECT_EQ(stored["result"]["sha256"], digest);
  EXPECT_EQ(stored["result"]["bytes"], bytes.size());
  const auto file = results() / digest;
  const auto on_disk = read_file_bytes(file);
  EXPECT_EQ(
      sha256_hex(std::string_view(reinterpret_cast<const char*>(on_disk.data()), on_disk.size())),
      digest);
  struct stat info {};
  ASSERT_EQ(::stat(file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_TRUE(upload_temp_files(results()).empty());
}

TEST_F(StudioUploadLimitsTest, UploadDroppedMidBodyLeavesNoFileAndTheJobCanStillComplete) {
  auto holder = holding_worker("install-u4");
  const std::string bytes = pattern(8u << 20);
  const auto [type, form] = result_form("a cube", "png", bytes, "f.png");
  const auto route = complete_route(holder.credentials.worker_id, holder.job);
  DirWatch watch(results());
  {
    RawRequest request(studio().port());
    ASSERT_TRUE(
        request.send(upload_head(route, holder.credentials.token, type, form.size(), false)));
    ASSERT_TRUE(request.send(std::string_view(form).substr(0, form.size() / 2)));
    // The image part is being written to a temporary file as it arrives...
    const auto created = watch.wait(IN_CREATE, ".upload-", 10s);
    ASSERT_TRUE(created) << "no temporary file appeared while the body streamed in";
    request.reset();
    // ...and goes when the connection does.
    EXPECT_EQ(watch.wait(IN_DELETE, *created, 10s), created);
  }
  EXPECT_TRUE(upload_temp_files(results()).empty());
  EXPECT_EQ(studio().job_status(holder.job), "claimed");
  const auto reply =
      http_request(studio().port(), "POST", route, form, holder.credentials.token, type, 60s);
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(fs::exists(results() / sha256_hex(bytes)));
  EXPECT_TRUE(upload_temp_files(results()).empty());
}

TEST_F(StudioUploadLimitsTest, UploadsOverTheBytesInFlightCapGet503WithRetryAfter) {
  auto config = upload_config(dir_.path());
  config.result_body_limit = 8u << 20;
  config.upload_in_flight_limit = 8u << 20;
  studio_.reset();  // same data directory: the model is already there
  studio_ = std::make_unique<StudioHarness>(std::move(config));
  auto holder = holding_worker("install-u5");
  const auto [type, form] = result_form("a cube", "png", pattern(6u << 20), "f.png");
  const auto route = complete_route(holder.credentials.worker_id, holder.job);

  // The first upload is admitted (100 Continue) and holds its 6 MiB of the 8 MiB budget...
  RawRequest first(studio().port());
  ASSERT_TRUE(first.send(upload_head(route, holder.credentials.token, type, form.size(), true)));
  const auto interim = first.read_head();
  ASSERT_EQ(interim.rfind("HTTP/1.1 100 Continue", 0), 0u) << interim;
  // ...so a second one does not fit: 503 with Retry-After, from its headers alone.
  {
    RawRequest second(studio().port());
    ASSERT_TRUE(
        second.send(upload_head(route, holder.credentials.token, type, form.size(), false)));
    const auto head = second.read_head();
    EXPECT_EQ(head.rfind("HTTP/1.1 503 ", 0), 0u) << head;
    std::string lower = head;  // header names are case-insensitive
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const auto retry_after = lower.find("\r\nretry-after: ");
    ASSERT_NE(retry_after, std::string::npos) << head;
    const std::string five = "\r\nretry-after: 5\r\n";
    EXPECT_EQ(lower.compare(retry_after, five.size(), five), 0)
        << "one Retry-After, the upload budget's 5 s: " << head;
    EXPECT_EQ(lower.find("\r\nretry-after: ", retry_after + 1), std::string::npos)
        << "Retry-After once: " << head;
  }
  // The first completes; the budget is free again and the retry is acknowledged as a repeat.
  ASSERT_TRUE(first.send(form));
  const auto answer = first.read_head();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  const auto retry =
      http_request(studio().port(), "POST", route, form, holder.credentials.token, type, 60s);
  EXPECT_EQ(retry.status, 200) << retry.body;
  EXPECT_NE(retry.body.find("\"repeated\":true"), std::string::npos) << retry.body;
}

TEST_F(StudioUploadLimitsTest, LateResultFromAFormerHolderOfAFinishedJobIsAcknowledgedAndDropped) {
  auto a = holding_worker("install-u6");
  const auto [type, form] = result_form("a cube", "png", pattern(100'000), "a.png");
  // A vanishes; after the claim grace the job goes to B, who finishes it.
  a.client->drop();
  const auto b = register_worker(studio(), "install-u7");
  auto b_client = connect_worker(studio(), b);
  auto offer = expect_offer(*b_client);
  ASSERT_TRUE(offer);
  ASSERT_EQ(offer->job_id, a.job);
  b_client->send(proto::Accept{a.job});
  const auto [b_type, b_form] = result_form("a cube", "png", pattern(50'000), "b.png");
  ASSERT_EQ(http_request(studio().port(), "POST", complete_route(b.worker_id, a.job), b_form,
                         b.token, b_type)
                .status,
            200);
  // A's result comes in late: acknowledged (so that A stops retrying), not stored.
  const auto reply =
      http_request(studio().port(), "POST", complete_route(a.credentials.worker_id, a.job), form,
                   a.credentials.token, type);
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_NE(reply.body.find("\"discarded\":true"), std::string::npos) << reply.body;
  EXPECT_FALSE(fs::exists(results() / sha256_hex(pattern(100'000))));
  EXPECT_TRUE(upload_temp_files(results()).empty());
}

}  // namespace
}  // namespace sw::testing
