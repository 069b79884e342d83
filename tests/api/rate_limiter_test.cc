#include "api/rate_limiter.h"

#include <gtest/gtest.h>

namespace presence::api {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000'000;
constexpr std::int64_t kSec = 1'000'000;

TEST(RateLimiterTest, TwoHundredPerMinuteThenRefusedWithRetryAfter) {
  RateLimiter limiter(200, 60);
  for (int i = 0; i < 200; ++i) {
    auto d = limiter.Check(7, kT0 + i * 10'000);  // 2 s for all of them
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 199 - i);
  }
  auto refused = limiter.Check(7, kT0 + 2 * kSec);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_NEAR(refused.retry_after, 58.0, 1e-6);  // the first leaves the window
  // Another user is not affected.
  EXPECT_TRUE(limiter.Check(8, kT0 + 2 * kSec).allowed);
  // Once the oldest request leaves the window, one more is allowed.
  EXPECT_TRUE(limiter.Check(7, kT0 + 60 * kSec + 1).allowed);
  EXPECT_FALSE(limiter.Check(7, kT0 + 60 * kSec + 2).allowed);
}

TEST(RateLimiterTest, SlowRequestsNeverHitTheLimit) {
  RateLimiter limiter(3, 60);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(limiter.Check(1, kT0 + i * 21 * kSec).allowed) << i;
  }
}

TEST(RateLimiterTest, ZeroDisables) {
  RateLimiter limiter(0, 60);
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Check(1, kT0).allowed);
}

}  // namespace
}  // namespace presence::api
