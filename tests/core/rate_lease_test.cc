// RateLease: the node's local budget of the shared rate limit (issue #14).
#include "core/rate_lease.h"

#include <gtest/gtest.h>

namespace presence {
namespace {

constexpr RealmId kRealm = 3;
constexpr UserId kUser = 7;
constexpr Micros kNow = 1'700'000'000'000'000;
constexpr Micros kWindow = 60'000'000;

store::RateCount Counted(std::int64_t charged, std::int64_t in_window) {
  return {.allowed = true,
          .in_window = in_window,
          .oldest = kNow,
          .charged = charged};
}

TEST(RateLeaseTest, TheLeaseIsAShareOfTheLimitUpToEight) {
  EXPECT_EQ(RateLease::Lease(200), 8);
  EXPECT_EQ(RateLease::Lease(1'000'000), 8);
  EXPECT_EQ(RateLease::Lease(50), 2);
  EXPECT_EQ(RateLease::Lease(24), 1);  // a low limit stays exact
  EXPECT_EQ(RateLease::Lease(1), 1);
  EXPECT_EQ(RateLease::Lease(200, 4), 4);  // --rate-lease
  EXPECT_EQ(RateLease::Lease(200, 1), 1);
}

TEST(RateLeaseTest, AChargeLetsItsLeaseThroughThenAsksAgain) {
  RateLease lease;
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow));
  ASSERT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 8);
  const store::RateCount got = Counted(8, 8);
  lease.Settle(kRealm, kUser, 8, &got, kNow, kWindow);
  for (int i = 0; i < 7; ++i) {
    auto spent = lease.Spend(kRealm, kUser, kNow + i);
    ASSERT_TRUE(spent) << i;
    EXPECT_TRUE(spent->allowed);
    EXPECT_EQ(spent->in_window, 8);  // the headers tell the counted window
  }
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow + 8));
  // Another user has nothing leased.
  EXPECT_FALSE(lease.Spend(kRealm, kUser + 1, kNow));
  EXPECT_FALSE(lease.Spend(kRealm + 1, kUser, kNow));
}

TEST(RateLeaseTest, OneChargePerUserInFlight) {
  RateLease lease;
  ASSERT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 8);
  // The user's next request while the first is in flight counts itself
  // only: the unspent requests per node stay below the lease.
  EXPECT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 1);
  EXPECT_EQ(lease.Charge(kRealm, kUser + 1, RateLease::Lease(200)), 8);
  const store::RateCount one = Counted(1, 9);
  lease.Settle(kRealm, kUser, 1, &one, kNow, kWindow);
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow));
  // A failed charge leases nothing and ends the charge in flight.
  lease.Settle(kRealm, kUser, 8, nullptr, kNow, kWindow);
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow));
  EXPECT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 8);
}

TEST(RateLeaseTest, ALeaseEndsWhenItsChargeLeavesTheWindow) {
  RateLease lease;
  ASSERT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 8);
  const store::RateCount got = Counted(8, 8);
  lease.Settle(kRealm, kUser, 8, &got, kNow, kWindow);
  EXPECT_TRUE(lease.Spend(kRealm, kUser, kNow + kWindow - 1));
  // The store no longer counts the charge: neither may the node.
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow + kWindow));
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow + kWindow - 1));
}

TEST(RateLeaseTest, NearTheLimitTheLeaseIsWhatTheStoreCounted) {
  RateLease lease;
  ASSERT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 8);
  const store::RateCount three = Counted(3, 200);  // 197 counted before
  lease.Settle(kRealm, kUser, 8, &three, kNow, kWindow);
  EXPECT_TRUE(lease.Spend(kRealm, kUser, kNow));
  EXPECT_TRUE(lease.Spend(kRealm, kUser, kNow));
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow));
  // A refused request leases nothing.
  ASSERT_EQ(lease.Charge(kRealm, kUser, RateLease::Lease(200)), 8);
  const store::RateCount refused{
      .allowed = false, .in_window = 200, .oldest = kNow, .charged = 0};
  lease.Settle(kRealm, kUser, 8, &refused, kNow, kWindow);
  EXPECT_FALSE(lease.Spend(kRealm, kUser, kNow));
}

}  // namespace
}  // namespace presence
