#include "studio/quota.h"

#include <fmt/format.h>
#include <chrono>

#include "studio/json_views.h"

namespace sw::studio {

namespace {

constexpr store::Millis kDayMs = 86'400'000;

std::chrono::year_month_day civil_day(store::Millis now) {
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{store::utc_day(now)}}};
}

std::int64_t days_since_epoch(const std::chrono::year_month_day& day) {
  return std::chrono::sys_days{day}.time_since_epoch().count();
}

}  // namespace

std::int64_t quota_period_first_day(store::QuotaPeriod period, store::Millis now) {
  if (period == store::QuotaPeriod::Day) {
    return store::utc_day(now);
  }
  const auto day = civil_day(now);
  return days_since_epoch(day.year() / day.month() / std::chrono::day{1});
}

store::Millis quota_period_end(store::QuotaPeriod period, store::Millis now) {
  if (period == store::QuotaPeriod::Day) {
    return (store::utc_day(now) + 1) * kDayMs;
  }
  const auto day = civil_day(now);
  const auto next = std::chrono::year_month{day.year() / day.month()} + std::chrono::months{1};
  return days_since_epoch(next / std::chrono::day{1}) * kDayMs;
}

store::KeyUsage sum_usage(const std::vector<store::KeyUsageDay>& days) {
  store::KeyUsage total;
  for (const auto& day : days) {
    total += day.usage;
  }
  return total;
}

std::optional<QuotaRefusal> judge_quota(const store::KeyQuota& quota, const store::KeyUsage& used,
                                        store::Millis now) {
  struct Limit {
    const char* what;
    std::optional<std::int64_t> limit;
    std::int64_t used;
  };
  const Limit limits[] = {
      {"jobs", quota.jobs, used.jobs},
      {"tokens", quota.tokens, used.tokens_in + used.tokens_out},
      {"seconds of run time", quota.seconds, used.run_ms / 1000},
  };
  for (const auto& l : limits) {
    if (l.limit && l.used >= *l.limit) {
      const auto end = quota_period_end(quota.period, now);
      return QuotaRefusal{
          fmt::format("this API key's quota is used up: {} of {} {} this {} (UTC); it resets at {}",
                      l.used, *l.limit, l.what, to_string(quota.period), iso_time(end)),
          std::max<std::int64_t>(1, (end - now + 999) / 1000)};
    }
  }
  return std::nullopt;
}

}  // namespace sw::studio
