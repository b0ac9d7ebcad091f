// Issue 20, the worker's side of a studio job's inputs and downloads on real loopback sockets:
// files under the studio's uploads route are read with the worker's bearer token (and only
// those), and a cancelled job's model download stops at once.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "engines/engine.h"
#include "engines/runner/input_fetch.h"
#include "support/http_test_server.h"
#include "support/temp_dir.h"
#include "transfer/download.h"

namespace sw::engines {
namespace {

const std::string kPng = std::string("\x89PNG\r\n\x1a\n", 8) + "rest of a png";

TEST(StudioInputs, AnUploadUnderTheStudioIsFetchedWithTheTokenAndNothingElseIs) {
  testing::HttpTestServer server;
  server.set_route("/graphics/api/uploads/u-1",
                   testing::serving(std::make_shared<const std::string>(kPng)));
  server.set_route("/elsewhere/u-1", testing::serving(std::make_shared<const std::string>(kPng)));
  const StudioAccess studio{server.url("/"), "worker-secret", std::nullopt};

  auto upload =
      fetch_input(server.url("/graphics/api/uploads/u-1"), {false, 1 << 20, "init image", &studio});
  ASSERT_TRUE(upload) << upload.error().message;
  EXPECT_EQ(std::string(upload->begin(), upload->end()), kPng);
  auto other = fetch_input(server.url("/elsewhere/u-1"), {false, 1 << 20, "init image", &studio});
  ASSERT_TRUE(other) << other.error().message;
  // A local job (no studio) gets no token either, even for the same URL.
  auto local = fetch_input(server.url("/graphics/api/uploads/u-1"), {true, 1 << 20, "init image"});
  ASSERT_TRUE(local) << local.error().message;

  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].authorization, "Bearer worker-secret");
  EXPECT_EQ(seen[1].authorization, "") << "the token goes to the studio's uploads only";
  EXPECT_EQ(seen[2].authorization, "");
}

TEST(StudioInputs, ARefusedUploadIsAnErrorThatDoesNotShowTheToken) {
  testing::HttpTestServer server;
  testing::Route refused;
  refused.status = 401;
  server.set_route("/graphics/api/uploads/u-2", refused);
  const StudioAccess studio{server.url(""), "worker-secret", std::nullopt};
  auto answer = fetch_input(server.url("/graphics/api/uploads/u-2"),
                            {false, 1 << 20, "audio input", &studio});
  ASSERT_FALSE(answer);
  EXPECT_THAT(answer.error().message, ::testing::HasSubstr("401"));
  EXPECT_THAT(answer.error().message, ::testing::Not(::testing::HasSubstr("worker-secret")));
}

// A model download held mid-body by the server (it would wait out its stall timeout): the job's
// cancel ends it, through DispatchRequest::download_progress.
TEST(StudioInputs, ACancelledJobsModelDownloadStops) {
  testing::HttpTestServer server;
  testing::TempDir dir;
  auto body = std::make_shared<const std::string>(std::string(4 << 20, 'x'));
  testing::Route stalls = testing::serving(body);
  stalls.stall_after = 1 << 20;
  server.set_route("/model.gguf", stalls);

  class FirstBytes final : public JobObserver {
   public:
    void download(std::uint64_t done, std::optional<std::uint64_t> total) override {
      std::lock_guard lock(mutex);
      if (done > 0) seen = true;
      last_total = total;
      changed.notify_all();
    }
    std::mutex mutex;
    std::condition_variable changed;
    bool seen = false;
    std::optional<std::uint64_t> last_total;
  };
  auto observer = std::make_shared<FirstBytes>();
  std::stop_source stop;
  DispatchRequest request;
  request.stop = stop.get_token();
  request.observer = observer;

  transfer::DownloadRequest download;
  download.url = server.url("/model.gguf");
  download.destination = dir.path() / "model.gguf";
  download.stall_timeout = std::chrono::seconds(600);  // only the cancel can end it
  download.progress_interval = std::chrono::milliseconds(0);
  download.progress = request.download_progress();
  Result<transfer::DownloadResult> result = fail(Error::internal("unset"));
  std::thread worker([&] { result = transfer::download_file(download); });
  {
    std::unique_lock lock(observer->mutex);
    observer->changed.wait(lock, [&] { return observer->seen; });
    EXPECT_EQ(observer->last_total, body->size());
  }
  stop.request_stop();
  worker.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Cancelled) << result.error().message;
  EXPECT_FALSE(std::filesystem::exists(download.destination));
  server.stop();
}

}  // namespace
}  // namespace sw::engines
