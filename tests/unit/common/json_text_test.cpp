// The guarded JSON entry point (common/json_text.h): size and nesting are refused before parsing,
// with errors that name the problem and where it is (issue 16).

#include "common/json_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace sw {
namespace {

using ::testing::HasSubstr;

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonText, DepthExactlyAtTheLimitIsAccepted) {
  auto parsed = parse_json(nested(kJsonMaxDepth), "body");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->is_array());
  // Objects and arrays count alike.
  std::string mixed;
  for (std::size_t i = 0; i < kJsonMaxDepth / 2; ++i) mixed += R"({"a":[)";
  mixed += "1";
  for (std::size_t i = 0; i < kJsonMaxDepth / 2; ++i) mixed += "]}";
  EXPECT_TRUE(parse_json(mixed, "body"));
}

TEST(JsonText, OneLevelOverTheLimitIsRefusedNamingTheByte) {
  auto parsed = parse_json(nested(kJsonMaxDepth + 1), "request body");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, Code::InvalidArgument);
  EXPECT_EQ(parsed.error().message, "request body nests deeper than 64 levels at byte 64");
  auto prefixed = parse_json(R"({"source":)" + nested(100000) + "}", "request body");
  ASSERT_FALSE(prefixed);
  // The object is level 1, so the 64th bracket (offset 10 + 63) is the 65th level.
  EXPECT_EQ(prefixed.error().message, "request body nests deeper than 64 levels at byte 73");
}

TEST(JsonText, BracketsInsideStringsDoNotCount) {
  // Escaped quotes do not end the string early: the brackets after them stay inside it.
  const std::string text = R"({"a":"\")" + std::string(1000, '[') + R"(\\","b":[1]})";
  auto parsed = parse_json(text, "body");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ((*parsed)["a"].get<std::string>().size(), 1002u);
  EXPECT_EQ((*parsed)["b"], nlohmann::json::array({1}));
}

TEST(JsonText, TheSizeCapIsCheckedFirst) {
  const std::string text = R"({"a":")" + std::string(100, 'x') + R"("})";
  EXPECT_TRUE(parse_json(text, "body", JsonLimits{text.size()}));
  auto over = parse_json(text, "body", JsonLimits{text.size() - 1});
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().message,
            fmt::format("body exceeds {} bytes (it has {})", text.size() - 1, text.size()));
  // Too big and too deep: the size is what is reported, before any scan.
  EXPECT_THAT(parse_json(nested(100), "body", JsonLimits{10}).error().message,
              HasSubstr("exceeds 10 bytes"));
}

TEST(JsonText, TextThatIsNotJsonIsRefusedInTheParsersWords) {
  auto parsed = parse_json("{nope", "request body");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, Code::InvalidArgument);
  EXPECT_THAT(parsed.error().message, HasSubstr("request body is not JSON: "));
  EXPECT_THAT(parsed.error().message, HasSubstr("line 1, column 3"));
  EXPECT_FALSE(parse_json("", "body"));
  EXPECT_FALSE(parse_json("[1] [2]", "body")) << "trailing text";
  EXPECT_FALSE(parse_json("[1] // c", "body")) << "no comments";
  EXPECT_FALSE(parse_json(R"(["\)", "body")) << "a lone backslash at the end";
}

// A bad token is named, not echoed whole: a 500,000-digit number came back as a 500 KB error.
TEST(JsonText, AnErrorDoesNotEchoAHugeTokenBack) {
  const std::string body = R"({"priority": )" + std::string(500'000, '9') + "}";
  auto parsed = parse_json(body, "request body");
  ASSERT_FALSE(parsed);
  EXPECT_THAT(parsed.error().message, HasSubstr("request body is not JSON: "));
  EXPECT_LT(parsed.error().message.size(), 400u) << parsed.error().message.size();
}

TEST(JsonText, ACustomDepthLimitApplies) {
  EXPECT_TRUE(parse_json(nested(3), "body", JsonLimits{1024, 3}));
  EXPECT_EQ(check_json_text(nested(4), "body", JsonLimits{1024, 3}).error().message,
            "body nests deeper than 3 levels at byte 3");
}

}  // namespace
}  // namespace sw
