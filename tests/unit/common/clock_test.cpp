#include "common/clock.h"

#include <gtest/gtest.h>

namespace sw {
namespace {

using namespace std::chrono_literals;

TEST(ClockTest, AManualClockMovesOnlyWhenTold) {
  ManualClock clock(SteadyTime(5s), 1'000);
  EXPECT_EQ(clock.steady_now(), SteadyTime(5s));
  EXPECT_EQ(clock.unix_millis(), 1'000);
  clock.advance(250ms);
  EXPECT_EQ(clock.steady_now(), SteadyTime(5250ms));
  EXPECT_EQ(clock.unix_millis(), 1'250);
  clock.set_unix_millis(0);  // the wall clock jumped back: steady time does not
  EXPECT_EQ(clock.unix_millis(), 0);
  EXPECT_EQ(clock.steady_now(), SteadyTime(5250ms));
}

TEST(ClockTest, TheSystemClockReadsTheMachinesClocks) {
  const Clock& clock = SystemClock::instance();
  const auto before = std::chrono::steady_clock::now();
  const auto wall_before = unix_millis_now();
  const auto steady = clock.steady_now();
  const auto wall = clock.unix_millis();
  EXPECT_GE(steady, before);
  EXPECT_LE(steady, std::chrono::steady_clock::now());
  EXPECT_GE(wall, wall_before);
  EXPECT_EQ(format_rfc3339_millis(1'767'225'600'123), "2026-01-01T00:00:00.123Z");
}

}  // namespace
}  // namespace sw
