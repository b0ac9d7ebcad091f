// Data-driven golden tests: every JSON example of the spec decodes, and re-encodes to the same
// canonical JSON (golden/spec_examples.json).

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "proto/codec.h"

namespace sw::proto {
namespace {

using nlohmann::json;

struct GoldenCase {
  std::string name;
  std::string decoder;
  std::string input;
  std::string canonical;
};

// Keeps ctest's test names readable (gtest would otherwise print the struct's bytes).
void PrintTo(const GoldenCase& golden, std::ostream* os) {
  *os << golden.name;
}

std::vector<GoldenCase> load_cases() {
  std::ifstream in(std::string(SW_GOLDEN_DIR) + "/spec_examples.json");
  json doc = json::parse(in);
  std::vector<GoldenCase> cases;
  for (const json& c : doc.at("cases")) {
    GoldenCase golden;
    golden.name = c.at("name");
    golden.decoder = c.at("decoder");
    golden.input = c.at("input").dump();
    golden.canonical = c.contains("canonical") ? c.at("canonical").dump() : golden.input;
    cases.push_back(std::move(golden));
  }
  return cases;
}

// decode then encode, through the typed API for each document kind.
template <class T>
Result<std::string> round_trip(std::string_view text, Result<T> (*decode)(std::string_view)) {
  auto value = decode(text);
  if (!value) return fail(value.error());
  return encode(*value);
}

using RoundTrip = std::function<Result<std::string>(std::string_view)>;

const std::map<std::string, RoundTrip>& round_trips() {
  static const std::map<std::string, RoundTrip> table = {
      {"worker_frame", [](std::string_view t) { return round_trip(t, &decode_worker_frame); }},
      {"studio_frame", [](std::string_view t) { return round_trip(t, &decode_studio_frame); }},
      {"capabilities", [](std::string_view t) { return round_trip(t, &decode_capabilities); }},
      {"task", [](std::string_view t) { return round_trip(t, &decode_task); }},
      {"register_request",
       [](std::string_view t) { return round_trip(t, &decode_register_request); }},
      {"register_response",
       [](std::string_view t) { return round_trip(t, &decode_register_response); }},
      {"registration_poll",
       [](std::string_view t) { return round_trip(t, &decode_registration_poll); }},
      {"log_entry", [](std::string_view t) { return round_trip(t, &decode_log_entry); }},
      {"chat_completion",
       [](std::string_view t) { return round_trip(t, &decode_chat_completion); }},
      {"transcript", [](std::string_view t) { return round_trip(t, &decode_transcript); }},
  };
  return table;
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, DecodesAndReencodesToCanonicalJson) {
  const GoldenCase& golden = GetParam();
  auto it = round_trips().find(golden.decoder);
  ASSERT_NE(it, round_trips().end()) << "unknown decoder " << golden.decoder;

  auto encoded = it->second(golden.input);
  ASSERT_TRUE(encoded) << encoded.error().message;
  EXPECT_TRUE(same_json(*encoded, golden.canonical))
      << "encoded:   " << *encoded << "\ncanonical: " << golden.canonical;

  // The canonical form is a fixed point, byte for byte.
  auto again = it->second(*encoded);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *encoded);
}

TEST_P(GoldenTest, EncodingNeverWritesNull) {
  const GoldenCase& golden = GetParam();
  auto encoded = round_trips().at(golden.decoder)(golden.input);
  ASSERT_TRUE(encoded) << encoded.error().message;
  EXPECT_EQ(encoded->find("null"), std::string::npos) << *encoded;
}

INSTANTIATE_TEST_SUITE_P(SpecExamples, GoldenTest, ::testing::ValuesIn(load_cases()),
                         [](const auto& test_info) { return test_info.param.name; });

}  // namespace
}  // namespace sw::proto
