// The studio's caps agree with what a worker can read (issue 16): the WebSocket message cap
// follows the JSON limit, and a job whose offer (task + model source) could never be read by a
// worker is refused when submitted instead of making each worker it is offered to drop its session.

#include <gtest/gtest.h>

#include "studio/config.h"

namespace sw::studio {
namespace {

TEST(OfferLimits, AJobWhoseTaskAndModelSourceTogetherOverflowAWorkersMessageIsRefused) {
  // Each part within the largest JSON limit, together over 64 MiB (the review's case: 34 + 34).
  EXPECT_FALSE(offer_fits_a_worker(34ull << 20, 34ull << 20));
  EXPECT_FALSE(offer_fits_a_worker(kMaxJsonBodyLimit, kMaxJsonBodyLimit));
  EXPECT_TRUE(offer_fits_a_worker(1ull << 20, 1ull << 20));
  EXPECT_TRUE(offer_fits_a_worker(kWorkerMessageLimit - kOfferOverhead, 0));
  EXPECT_FALSE(offer_fits_a_worker(kWorkerMessageLimit - kOfferOverhead + 1, 0));
}

TEST(OfferLimits, TheMessageCapFollowsTheJsonLimitAndNeverFallsBelow16Mib) {
  EXPECT_EQ(frame_limit_for(1ull << 20), 16ull << 20);
  EXPECT_EQ(frame_limit_for(20ull << 20), (40ull << 20) + kFrameOverhead);
  EXPECT_LE(frame_limit_for(kMaxJsonBodyLimit), 2 * kMaxJsonBodyLimit + kFrameOverhead);
}

}  // namespace
}  // namespace sw::studio
