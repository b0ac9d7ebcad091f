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

// Records what an incremental parse reports, part by part (data runs joined).
class Recorder : public FormDataReader::Events {
 public:
  Status on_part_begin(const FormPartHead& head) override {
    parts.push_back({head.name, {}});
    return {};
  }
  Status on_part_data(std::string_view bytes) override {
    parts.back().second.append(bytes);
    return {};
  }
  Status on_part_end() override {
    ++ended;
    return {};
  }
  std::vector<std::pair<std::string, std::string>> parts;
  int ended = 0;
};

TEST(FormDataReaderTest, EverySplitOfTheBodyGivesTheSameParts) {
  // Data that holds near-delimiters: CR LF, "--", the boundary without CR LF, a trailing CR.
  const std::string data = "a\r\n--Xy\r\n-\r\n-XyZ--XyZtail\r";
  const std::string body =
      "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"ext\"\r\n\r\npng\r\n"
      "--XyZ  \r\nContent-Disposition: form-data; name=\"image\"; filename=\"f\"\r\n\r\n" +
      data + "\r\n--XyZ--\r\nepilogue";
  for (std::size_t split = 0; split <= body.size(); ++split) {
    for (std::size_t second = split; second <= body.size(); second += 7) {
      auto reader = FormDataReader::create(kType);
      ASSERT_TRUE(reader.has_value());
      Recorder recorder;
      ASSERT_TRUE(reader->feed(body.substr(0, split), recorder).has_value()) << split;
      ASSERT_TRUE(reader->feed(body.substr(split, second - split), recorder).has_value());
      ASSERT_TRUE(reader->feed(body.substr(second), recorder).has_value());
      ASSERT_TRUE(reader->finish().has_value()) << split << " " << second;
      EXPECT_TRUE(reader->done());
      ASSERT_EQ(recorder.parts.size(), 2u) << split << " " << second;
      EXPECT_EQ(recorder.parts[0], (std::pair<std::string, std::string>("ext", "png")));
      EXPECT_EQ(recorder.parts[1].second, data) << split << " " << second;
      EXPECT_EQ(recorder.ended, 2);
    }
  }
}

TEST(FormDataReaderTest, ByteAtATimeMatchesTheWholeBodyParse) {
  std::string binary(3000, '\0');
  for (std::size_t i = 0; i < binary.size(); ++i) {
    binary[i] = "\r\n-XyZ"[i % 7];
  }
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n" + binary +
      "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n\r\n--XyZ--";
  auto whole = parse_form_data(kType, body);
  ASSERT_TRUE(whole.has_value()) << whole.error().message;
  auto reader = FormDataReader::create(kType);
  Recorder recorder;
  for (const char c : body) {
    ASSERT_TRUE(reader->feed(std::string_view(&c, 1), recorder).has_value());
  }
  ASSERT_TRUE(reader->finish().has_value());
  ASSERT_EQ(recorder.parts.size(), whole->size());
  for (std::size_t i = 0; i < whole->size(); ++i) {
    EXPECT_EQ(recorder.parts[i].first, (*whole)[i].name);
    EXPECT_EQ(recorder.parts[i].second, (*whole)[i].data);
  }
  EXPECT_EQ(recorder.parts[0].second, binary);
  EXPECT_EQ(recorder.parts[1].second, "");
}

TEST(FormDataReaderTest, HeldBytesStayBoundedAndErrorsStick) {
  auto reader = FormDataReader::create(kType);
  Recorder recorder;
  ASSERT_TRUE(reader->feed("--XyZ\r\nX-Long: ", recorder).has_value());
  const std::string filler(4096, 'h');
  Status fed;
  for (int i = 0; i < 8 && fed; ++i) {
    fed = reader->feed(filler, recorder);
  }
  ASSERT_FALSE(fed.has_value());
  EXPECT_NE(fed.error().message.find("part headers exceed"), std::string::npos);
  // Once failed, it stays failed.
  EXPECT_FALSE(reader->feed("\r\n\r\n", recorder).has_value());
  EXPECT_FALSE(reader->finish().has_value());
  // A truncated part names itself at the end.
  auto truncated = FormDataReader::create(kType);
  ASSERT_TRUE(
      truncated
          ->feed("--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc", recorder)
          .has_value());
  const auto end = truncated->finish();
  ASSERT_FALSE(end.has_value());
  EXPECT_NE(end.error().message.find("\"image\" is not closed"), std::string::npos);
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
