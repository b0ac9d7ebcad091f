#include <gtest/gtest.h>

#include "common/error.h"

namespace sw {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return fail(Error::invalid_argument("value {} is not positive", v));
  return v;
}

Status twice_positive(int v) {
  SW_TRY(parse_positive(v));
  SW_TRY(parse_positive(v * 2));
  return {};
}

TEST(Error, NamedConstructorsFormatTheirMessage) {
  Error e = Error::not_found("job {} in {}", "j-1", "queue");
  EXPECT_EQ(e.code, Code::NotFound);
  EXPECT_EQ(e.message, "job j-1 in queue");
  EXPECT_EQ(e.describe(), "not_found: job j-1 in queue");
}

TEST(Error, TryPropagatesTheFirstError) {
  EXPECT_TRUE(twice_positive(3));
  auto status = twice_positive(-1);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message, "value -1 is not positive");
}

}  // namespace
}  // namespace sw
