#include <gtest/gtest.h>

#include "net/http_types.h"

namespace sw::net {
namespace {

const std::string kType = "multipart/form-data; boundary=XyZ";

TEST(FormDataTest, SplitsTheReferencePartsWithBinaryData) {
  std::string binary("\x00\r\n--Xy\xff", 9);
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"ext\"\r\n\r\nwebp\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"j.webp\"\r\n"
      "Content-Type: image/webp\r\n\r\n" +
      binary + "\r\n--XyZ--\r\n";
  auto parts = parse_form_data(kType, body);
  ASSERT_TRUE(parts.has_value()) << parts.error().message;
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0].name, "prompt");
  EXPECT_EQ((*parts)[0].data, "a cat");
  EXPECT_EQ((*parts)[1].data, "webp");
  EXPECT_EQ((*parts)[2].name, "image");
  EXPECT_EQ((*parts)[2].filename, "j.webp");
  EXPECT_EQ((*parts)[2].content_type, "image/webp");
  EXPECT_EQ((*parts)[2].data, binary);
}

TEST(FormDataTest, QuotedBoundaryAndPreambleAreAccepted) {
  const std::string body =
      "preamble\r\n--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--";
  auto parts = parse_form_data("multipart/form-data; boundary=\"a b\"", body);
  ASSERT_TRUE(parts.has_value()) << parts.error().message;
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].data, "1");
}

TEST(FormDataTest, MalformedBodiesNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ntruncated", "not closed"},
      {"no delimiter at all", "no boundary delimiter"},
      {"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", "no form-data name"},
      {"--XyZ\r\nbroken header\r\n\r\nx\r\n--XyZ--", "malformed part header"},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n", "not terminated"},
  };
  for (const auto& [body, message] : cases) {
    auto parts = parse_form_data(kType, body);
    ASSERT_FALSE(parts.has_value()) << body;
    EXPECT_NE(parts.error().message.find(message), std::string::npos)
        << body << " → " << parts.error().message;
  }
  EXPECT_FALSE(parse_form_data("application/json", "{}").has_value());
  EXPECT_FALSE(parse_form_data("multipart/form-data", "--x--").has_value());
}

TEST(HttpRequestTest, QueryParamsAreDecodedAndBearerTokensParsed) {
  HttpRequest request;
  request.query = "status=queued&before=job-1&name=a%20b";
  request.headers.push_back({"authorization", "Bearer  tok123 "});
  EXPECT_EQ(request.query_param("status"), "queued");
  EXPECT_EQ(request.query_param("before"), "job-1");
  EXPECT_EQ(request.query_param("name"), "a b");
  EXPECT_FALSE(request.query_param("missing"));
  EXPECT_EQ(request.bearer_token(), "tok123");
  EXPECT_EQ(*request.header("Authorization"), "Bearer  tok123 ");
}

}  // namespace
}  // namespace sw::net
