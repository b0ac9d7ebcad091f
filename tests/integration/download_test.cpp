// Downloads against a real HTTP server on 127.0.0.1 that misbehaves on purpose. After every
// failure: no file at the destination, and no .part that could be trusted.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/sha256.h"
#include "support/http_test_server.h"
#include "support/temp_dir.h"
#include "transfer/download.h"
#include "transfer/url_policy.h"

namespace sw::transfer {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::shared_ptr<const std::string> make_body(std::size_t size, std::uint8_t salt = 0) {
  std::string body(size, '\0');
  std::uint32_t x = 2463534242u + salt;
  for (char& c : body) {  // xorshift: incompressible, reproducible
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return std::make_shared<const std::string>(std::move(body));
}

std::string file_contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_contents(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

class DownloadTest : public ::testing::Test {
 protected:
  testing::HttpTestServer server;
  testing::TempDir dir;
  std::shared_ptr<const std::string> body = make_body(3 * 1024 * 1024 + 17);
  fs::path dest = dir.path() / "model.gguf";
  fs::path part = part_path_for(dest);

  DownloadRequest request_for(const std::string& path, bool with_sha = true) {
    DownloadRequest request;
    request.url = server.url(path);
    request.destination = dest;
    if (with_sha) request.sha256 = sha256_hex(*body);
    request.stall_timeout = std::chrono::seconds(2);
    return request;
  }
  void serve(const std::string& path, testing::Route route = {}) {
    if (route.body->empty()) route.body = body;
    server.set_route(path, std::move(route));
  }
  void expect_nothing_trusted() {
    EXPECT_FALSE(fs::exists(dest)) << "a failed download left the destination file";
  }
};

TEST_F(DownloadTest, HappyPathStreamsVerifiesAndRenames) {
  serve("/m");
  auto result = download_file(request_for("/m"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->bytes, body->size());
  EXPECT_EQ(result->sha256, sha256_hex(*body));
  EXPECT_EQ(result->requests, 1);
  EXPECT_EQ(file_contents(dest), *body);
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(DownloadTest, UppercaseExpectedHashIsAccepted) {
  serve("/m");
  auto request = request_for("/m");
  std::transform(request.sha256->begin(), request.sha256->end(), request.sha256->begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  EXPECT_TRUE(download_file(request));
}

TEST_F(DownloadTest, NotFoundIsAnErrorAndLeavesNothing) {
  auto result = download_file(request_for("/missing"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::NotFound);
  EXPECT_THAT(result.error().message, HasSubstr("HTTP 404"));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(DownloadTest, RefusedConnectionIsAnError) {
  auto request = request_for("/m", /*with_sha=*/false);
  request.url = "http://127.0.0.1:" + std::to_string(testing::unused_loopback_port()) + "/m";
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unavailable);
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(DownloadTest, TruncatedBodyIsASizeMismatchAndResumesLater) {
  testing::Route truncated;
  truncated.truncate_after = 1024 * 1024;
  serve("/m", truncated);
  auto first = download_file(request_for("/m"));
  ASSERT_FALSE(first);
  EXPECT_THAT(first.error().message,
              HasSubstr("size mismatch: wrote 1048576 bytes but the server declared "
                        "Content-Length " +
                        std::to_string(body->size())));
  expect_nothing_trusted();
  ASSERT_TRUE(fs::exists(part));  // kept: the final sha256 will vouch for it
  EXPECT_EQ(fs::file_size(part), 1024u * 1024u);

  serve("/m");  // the server recovers
  auto second = download_file(request_for("/m"));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->resumed_from, 1024u * 1024u);
  EXPECT_EQ(server.requests().back().range, "bytes=1048576-");
  EXPECT_EQ(file_contents(dest), *body);
}

TEST_F(DownloadTest, TruncatedBodyWithoutAHashKeepsNoPart) {
  testing::Route truncated;
  truncated.truncate_after = 1000;
  serve("/m", truncated);
  auto result = download_file(request_for("/m", /*with_sha=*/false));
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr("size mismatch"));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(DownloadTest, HashMismatchRemovesEverything) {
  serve("/m");
  auto request = request_for("/m");
  request.sha256 = std::string(64, '0');
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr("sha256 mismatch"));
  EXPECT_THAT(result.error().message, HasSubstr(sha256_hex(*body)));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(DownloadTest, CorruptPartialIsCaughtByTheWholeFileHash) {
  serve("/m");
  write_contents(part, std::string(4096, 'x'));  // not the body's first bytes
  auto result = download_file(request_for("/m"));
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr("sha256 mismatch"));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
  // The next attempt starts clean and succeeds.
  EXPECT_TRUE(download_file(request_for("/m")));
}

TEST_F(DownloadTest, RangeNotSatisfiableRestartsFromScratch) {
  testing::Route route;
  route.always_416 = true;
  serve("/m", route);
  write_contents(part, body->substr(0, 5000));
  auto result = download_file(request_for("/m"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->requests, 2);
  EXPECT_EQ(result->resumed_from, 0u);
  EXPECT_EQ(file_contents(dest), *body);
}

TEST_F(DownloadTest, ServerIgnoringRangeGivesAFullRestartInOneRequest) {
  testing::Route route;
  route.honour_range = false;
  serve("/m", route);
  write_contents(part, body->substr(0, 5000));
  auto result = download_file(request_for("/m"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->requests, 1);
  EXPECT_EQ(server.requests().back().range, "bytes=5000-");
  EXPECT_EQ(file_contents(dest), *body);
}

TEST_F(DownloadTest, MisplacedContentRangeIsDiscardedAndRestarted) {
  testing::Route route;
  route.wrong_content_range = true;
  serve("/m", route);
  write_contents(part, body->substr(0, 5000));
  auto result = download_file(request_for("/m"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->requests, 2);
  EXPECT_EQ(file_contents(dest), *body);
}

TEST_F(DownloadTest, StalledServerTimesOut) {
  testing::Route route;
  route.stall_after = 64 * 1024;
  serve("/m", route);
  auto request = request_for("/m");
  request.stall_timeout = std::chrono::seconds(1);
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Timeout);
  EXPECT_THAT(result.error().message, HasSubstr("stalled"));
  expect_nothing_trusted();
}

TEST_F(DownloadTest, RedirectsAreFollowedAndPoliced) {
  serve("/real");
  testing::Route hop;
  hop.redirect_to = "/real";
  serve("/hop", hop);
  auto result = download_file(request_for("/hop"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->requests, 2);

  testing::Route outside;
  outside.redirect_to = "http://example.com/model.gguf";
  serve("/outside", outside);
  auto refused = download_file(request_for("/outside"));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("redirect refused"));
  EXPECT_THAT(refused.error().message, HasSubstr("https"));

  testing::Route loop;
  loop.redirect_to = "/loop";
  serve("/loop", loop);
  auto looping = download_file(request_for("/loop"));
  ASSERT_FALSE(looping);
  EXPECT_THAT(looping.error().message, HasSubstr("more than 5 redirects"));
}

TEST_F(DownloadTest, OversizeBodiesAreRefused) {
  serve("/m");
  auto request = request_for("/m");
  request.max_bytes = 1024 * 1024;
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr("over the 1048576 byte cap"));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
}

// Issue 16: every size the source declares is a bound, both ways.
TEST_F(DownloadTest, AContentLengthOverTheDeclaredSizeIsRefusedBeforeWriting) {
  serve("/m");
  for (bool with_sha : {true, false}) {
    auto request = request_for("/m", with_sha);
    request.declared_bytes = 1000;
    auto result = download_file(request);
    ASSERT_FALSE(result) << "with_sha=" << with_sha;
    EXPECT_EQ(result.error().code, Code::InvalidArgument) << "the host would do it again";
    EXPECT_THAT(result.error().message,
                HasSubstr("the server declared " + std::to_string(body->size()) +
                          " bytes for model.gguf, over its approxBytes 1000 + 10% (1100 bytes)"));
    expect_nothing_trusted();
    EXPECT_FALSE(fs::exists(part));
  }
}

TEST_F(DownloadTest, AChunkedBodyIsAbortedAsItPassesTheDeclaredSize) {
  testing::Route chunked;
  chunked.chunked = true;
  serve("/m", chunked);
  auto request = request_for("/m", /*with_sha=*/false);
  request.declared_bytes = 1000;
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::InvalidArgument);
  EXPECT_THAT(result.error().message,
              HasSubstr("the body of model.gguf passed 1100 bytes, over its approxBytes 1000"));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));

  // The same chunked body, declared at its size, is fine.
  request.declared_bytes = body->size();
  auto fits = download_file(request);
  ASSERT_TRUE(fits) << fits.error().message;
  EXPECT_EQ(file_contents(dest), *body);
}

TEST_F(DownloadTest, ABodyFarShortOfTheDeclaredSizeIsRefusedUnlessAHashVouchesForIt) {
  testing::Route empty;  // 200 with an empty body
  server.set_route("/empty", empty);
  auto request = request_for("/empty", /*with_sha=*/false);
  request.declared_bytes = 1185376;
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::Unavailable) << "a host's passing fault: retryable";
  EXPECT_THAT(result.error().message,
              HasSubstr("got 0 bytes for model.gguf, under half of its approxBytes 1185376"));
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));

  // Half of the declared size is still accepted ("approx"); with a sha256 the hash decides.
  request.url = server.url("/m");
  serve("/m");
  request.declared_bytes = body->size() * 2;
  auto half = download_file(request);
  ASSERT_TRUE(half) << half.error().message;
  fs::remove(dest);
  request.declared_bytes = body->size() * 100;
  EXPECT_FALSE(download_file(request)) << "a hundredth of the declared size";
  request.sha256 = sha256_hex(*body);
  auto vouched = download_file(request);
  ASSERT_TRUE(vouched) << vouched.error().message;
  EXPECT_EQ(file_contents(dest), *body);
}

TEST_F(DownloadTest, AResumablePartAlreadyOverTheDeclaredSizeIsDiscarded) {
  serve("/m");
  write_contents(part, std::string_view(*body).substr(0, 2 * 1024 * 1024));
  auto request = request_for("/m");  // with a sha256: the part would be resumed
  request.declared_bytes = 1024 * 1024;
  auto result = download_file(request);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr("over its approxBytes 1048576 + 10%"));
  ASSERT_FALSE(server.requests().empty());
  EXPECT_EQ(server.requests().back().range, "") << "an over-sized part was resumed";
  expect_nothing_trusted();
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(DownloadTest, ProgressIsReportedAndCanCancel) {
  serve("/m");
  auto request = request_for("/m");
  request.progress_interval = std::chrono::milliseconds(0);
  std::vector<std::uint64_t> seen;
  request.progress = [&](const DownloadProgress& p) {
    seen.push_back(p.bytes_done);
    return true;
  };
  ASSERT_TRUE(download_file(request));
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), body->size());

  fs::remove(dest);
  request.progress = [](const DownloadProgress& p) { return p.bytes_done < 1024 * 1024; };
  auto cancelled = download_file(request);
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code, Code::Cancelled);
  expect_nothing_trusted();
}

TEST(UrlPolicy, HttpsAnywhereHttpOnlyToLoopback) {
  EXPECT_TRUE(check_download_url("https://huggingface.co/x/resolve/main/m.gguf"));
  EXPECT_TRUE(check_download_url("http://127.0.0.1:8080/m.gguf"));
  EXPECT_TRUE(check_download_url("http://127.3.4.5/m"));
  EXPECT_TRUE(check_download_url("http://localhost/m"));
  EXPECT_TRUE(check_download_url("http://[::1]:9/m"));
  auto plain = check_download_url("http://example.com/m.gguf");
  ASSERT_FALSE(plain);
  EXPECT_THAT(plain.error().message, HasSubstr("must be https"));
  EXPECT_FALSE(check_download_url("http://127.0.0.1.example.com/m"));
  EXPECT_FALSE(check_download_url("ftp://example.com/m"));
  EXPECT_FALSE(check_download_url("file:///etc/passwd"));
  EXPECT_FALSE(check_download_url("not a url"));
}

TEST(UrlPolicy, RedactionDropsQueryAndCredentials) {
  EXPECT_EQ(redact_url("https://user:pw@host.example/p/m.gguf?X-Amz-Signature=secret#frag"),
            "https://host.example/p/m.gguf");
}

}  // namespace
}  // namespace sw::transfer
