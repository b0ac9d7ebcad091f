#pragma once
// API-key quotas (issue 20): when a key's period began and ends, and whether what it used leaves
// room for another job. Periods are UTC calendar days or months; usage is kept per UTC day
// (store::KeyUsageDay). Pure functions, any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "studio/store/studio_store.h"

namespace sw::studio {

// The first UTC day (days since 1970-01-01) of the period `now` falls in.
std::int64_t quota_period_first_day(store::QuotaPeriod period, store::Millis now);
// When the period `now` falls in ends (unix ms): the next UTC midnight, or the first of the next
// month.
store::Millis quota_period_end(store::QuotaPeriod period, store::Millis now);

// The usage of the days given, summed.
store::KeyUsage sum_usage(const std::vector<store::KeyUsageDay>& days);

// Why a key may not start another job now, for the client: which limit, its value, what was used
// and when the period turns; and the seconds until then (Retry-After).
struct QuotaRefusal {
  std::string message;
  std::int64_t retry_after_s = 0;
};
// Nullopt when `used` (this period's usage) is below every limit the quota sets.
std::optional<QuotaRefusal> judge_quota(const store::KeyQuota& quota, const store::KeyUsage& used,
                                        store::Millis now);

}  // namespace sw::studio
