// The llama streaming parser: llama-server's text/event-stream cut into event data however the
// bytes arrive (the WHATWG event-stream rules; see engines/llama/sse_splitter.h).

#include "engines/llama/sse_splitter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sw::engines::llama {
namespace {

using ::testing::ElementsAre;

// Every event's data, the stream fed in pieces of `piece` bytes.
std::vector<std::string> split(std::string_view stream, std::size_t piece) {
  SseSplitter splitter;
  std::vector<std::string> out;
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    const bool more = splitter.feed(stream.substr(at, piece), [&](std::string_view data) {
      out.emplace_back(data);
      return true;
    });
    EXPECT_TRUE(more);
  }
  return out;
}

// llama-server's own shape: one `data: {json}` per event, then `data: [DONE]`.
constexpr std::string_view kLlamaStream =
    "data: {\"choices\":[{\"delta\":{\"content\":\"Once\"}}]}\n\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\" upon\"}}]}\n\n"
    "data: [DONE]\n\n";

TEST(SseSplitter, GivesEachEventsDataWhereverTheBytesAreCut) {
  const std::vector<std::string> whole = split(kLlamaStream, kLlamaStream.size());
  ASSERT_THAT(whole, ElementsAre(R"({"choices":[{"delta":{"content":"Once"}}]})",
                                 R"({"choices":[{"delta":{"content":" upon"}}]})", "[DONE]"));
  for (std::size_t piece = 1; piece < kLlamaStream.size(); ++piece) {
    EXPECT_EQ(split(kLlamaStream, piece), whole) << "pieces of " << piece << " bytes";
  }
}

TEST(SseSplitter, AcceptsCrLfAndCrLineEndingsEvenWhenACrLfIsCutInTwo) {
  const std::string crlf = "data: a\r\n\r\ndata: b\r\n\r\n";
  for (std::size_t piece = 1; piece <= crlf.size(); ++piece) {
    EXPECT_THAT(split(crlf, piece), ElementsAre("a", "b")) << "pieces of " << piece;
  }
  EXPECT_THAT(split("data: a\r\rdata: b\r\r", 3), ElementsAre("a", "b"));
  EXPECT_THAT(split("data: a\n\r\ndata: b\r\n\n", 1), ElementsAre("a", "b"));
}

TEST(SseSplitter, SkipsCommentsKeepalivesAndOtherFields) {
  const std::string stream =
      ": keepalive\n\n"                     // a comment-only event dispatches nothing
      "event: message\nid: 7\nretry: 10\n"  // fields other than data are ignored
      ": a comment inside an event\n"
      "data: x\n\n"
      "id: 8\n\n";  // an event without data dispatches nothing
  EXPECT_THAT(split(stream, 2), ElementsAre("x"));
}

TEST(SseSplitter, JoinsMultiLineDataWithNewlines) {
  EXPECT_THAT(split("data: {\"a\":\ndata: 1}\n\n", 4), ElementsAre("{\"a\":\n1}"));
  // One space after the colon is dropped, no more; no colon is an empty value.
  EXPECT_THAT(split("data:x\n\ndata:  y\n\ndata\ndata: z\n\n", 1), ElementsAre("x", " y", "\nz"));
}

TEST(SseSplitter, AnEventCutOffByTheEndOfTheStreamIsNotDispatched) {
  EXPECT_THAT(split("data: whole\n\ndata: cut", 5), ElementsAre("whole"));
  EXPECT_THAT(split("data: whole\n\ndata: cut\n", 5), ElementsAre("whole"));
}

TEST(SseSplitter, StopsWhenTheReceiverSaysSo) {
  SseSplitter splitter;
  std::vector<std::string> seen;
  const bool more = splitter.feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", [&](std::string_view data) {
    seen.emplace_back(data);
    return data != "2";
  });
  EXPECT_FALSE(more);
  EXPECT_THAT(seen, ElementsAre("1", "2"));
}

}  // namespace
}  // namespace sw::engines::llama
