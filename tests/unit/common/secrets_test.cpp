#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <regex>
#include <set>
#include <string>

#include "common/secrets.h"

namespace sw {
namespace {

std::int64_t unix_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first 48 bits of a version 7 UUID, as Unix milliseconds.
std::int64_t uuid_millis(const std::string& uuid) {
  return std::stoll(uuid.substr(0, 8) + uuid.substr(9, 4), nullptr, 16);
}

TEST(Secrets, RandomUuidIsVersion4) {
  const std::regex shape("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(random_uuid(), shape));
}

TEST(Secrets, TimeOrderedUuidIsVersion7WithTheCreationTimeFirst) {
  const std::regex shape("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  const auto before = unix_millis();
  const std::string id = time_ordered_uuid();
  const auto after = unix_millis();
  EXPECT_TRUE(std::regex_match(id, shape)) << id;
  EXPECT_GE(uuid_millis(id), before) << id;
  EXPECT_LE(uuid_millis(id), after) << id;
}

TEST(Secrets, TimeOrderedUuidsMadeInTurnNeverGoBackInTimeAndDiffer) {
  std::set<std::string> seen;
  std::int64_t last = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = time_ordered_uuid();
    EXPECT_GE(uuid_millis(id), last) << id;
    last = uuid_millis(id);
    EXPECT_TRUE(seen.insert(id).second) << "repeated " << id;
  }
}

}  // namespace
}  // namespace sw
