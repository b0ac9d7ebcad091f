// Issue 20: when a key's quota period starts and turns, and what a used-up quota answers.
#include "studio/quota.h"

#include <gtest/gtest.h>

namespace sw::studio {
namespace {

using store::KeyQuota;
using store::KeyUsage;
using store::QuotaPeriod;

constexpr store::Millis kDay = 86'400'000;
// 2026-12-01T10:00:00Z: day 20788 since the epoch.
constexpr store::Millis kDec1 = 20'788 * kDay + 10 * 3'600'000;

TEST(QuotaTest, PeriodsAreUtcDaysAndCalendarMonths) {
  EXPECT_EQ(quota_period_first_day(QuotaPeriod::Day, kDec1), 20'788);
  EXPECT_EQ(quota_period_end(QuotaPeriod::Day, kDec1), 20'789 * kDay);
  EXPECT_EQ(quota_period_first_day(QuotaPeriod::Month, kDec1), 20'788) << "December 1st";
  // December has 31 days: the month turns on 2027-01-01, day 20819.
  EXPECT_EQ(quota_period_end(QuotaPeriod::Month, kDec1), 20'819 * kDay);
  const auto dec31_late = 20'818 * kDay + kDay - 1;
  EXPECT_EQ(quota_period_first_day(QuotaPeriod::Month, dec31_late), 20'788);
  EXPECT_EQ(quota_period_end(QuotaPeriod::Month, dec31_late), 20'819 * kDay);
  EXPECT_EQ(store::utc_day(20'819 * kDay), 20'819);
}

TEST(QuotaTest, AKeyIsRefusedAtItsLimitWithWhatItUsedAndWhenItResets) {
  const KeyQuota quota{QuotaPeriod::Day, 3, 1000, std::nullopt};
  EXPECT_FALSE(judge_quota(quota, KeyUsage{.jobs = 2, .tokens_in = 400, .tokens_out = 599}, kDec1));
  const auto jobs = judge_quota(quota, KeyUsage{.jobs = 3}, kDec1);
  ASSERT_TRUE(jobs);
  EXPECT_EQ(jobs->message,
            "this API key's quota is used up: 3 of 3 jobs this day (UTC); it resets at "
            "2026-12-02T00:00:00.000Z");
  EXPECT_EQ(jobs->retry_after_s, 14 * 3600);
  const auto tokens = judge_quota(quota, KeyUsage{.tokens_in = 400, .tokens_out = 600}, kDec1);
  ASSERT_TRUE(tokens);
  EXPECT_NE(tokens->message.find("1000 of 1000 tokens"), std::string::npos) << tokens->message;
  EXPECT_FALSE(judge_quota(KeyQuota{QuotaPeriod::Month, std::nullopt, std::nullopt, 60},
                           KeyUsage{.run_ms = 59'999}, kDec1));
  EXPECT_TRUE(judge_quota(KeyQuota{QuotaPeriod::Month, std::nullopt, std::nullopt, 60},
                          KeyUsage{.run_ms = 60'000}, kDec1));
  EXPECT_TRUE(judge_quota(KeyQuota{QuotaPeriod::Day, 0, std::nullopt, std::nullopt}, {}, kDec1))
      << "a limit of 0 stops the key";
}

}  // namespace
}  // namespace sw::studio
