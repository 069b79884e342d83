#include "client/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace presence::client {
namespace {

constexpr Micros kSec = kMicrosPerSecond;

TEST(BackoffTest, CeilingDoublesUpToTheMax) {
  Backoff b(BackoffPolicy{kSec, 60 * kSec, 2.0}, [] { return 0.0; });
  std::vector<Micros> ceilings;
  for (int i = 0; i < 9; ++i) {
    ceilings.push_back(b.Ceiling());
    b.NextDelay();
  }
  EXPECT_EQ(ceilings,
            (std::vector<Micros>{kSec, 2 * kSec, 4 * kSec, 8 * kSec, 16 * kSec,
                                 32 * kSec, 60 * kSec, 60 * kSec, 60 * kSec}));
}

TEST(BackoffTest, FullJitterDrawsFromZeroToTheCeiling) {
  double u = 0.5;
  Backoff b(BackoffPolicy{kSec, 60 * kSec, 2.0}, [&] { return u; });
  EXPECT_EQ(b.NextDelay(), kSec / 2);
  EXPECT_EQ(b.NextDelay(), kSec);
  u = 0.0;
  EXPECT_EQ(b.NextDelay(), 0);
  u = 0.999999999;
  EXPECT_LT(b.NextDelay(), 8 * kSec);
  u = 1.0;  // out of contract: still below the ceiling
  EXPECT_LT(b.NextDelay(), 16 * kSec);
}

TEST(BackoffTest, ResetStartsOver) {
  Backoff b(BackoffPolicy{kSec, 60 * kSec, 2.0}, [] { return 0.5; });
  b.NextDelay();
  b.NextDelay();
  EXPECT_EQ(b.failures(), 2);
  b.Reset();
  EXPECT_EQ(b.failures(), 0);
  EXPECT_EQ(b.NextDelay(), kSec / 2);
}

TEST(BackoffTest, LongOutagesStayAtTheMax) {
  Backoff b(BackoffPolicy{kSec, 60 * kSec, 2.0}, [] { return 0.5; });
  for (int i = 0; i < 10000; ++i) b.NextDelay();
  EXPECT_EQ(b.NextDelay(), 30 * kSec);
}

TEST(BackoffTest, DefaultRandomSourceStaysInRange) {
  Backoff b;
  for (int i = 0; i < 100; ++i) {
    const Micros ceiling = b.Ceiling();
    const Micros d = b.NextDelay();
    EXPECT_GE(d, 0);
    EXPECT_LT(d, ceiling);
  }
}

TEST(BackoffTest, ClientsRestartingTogetherSpreadOut) {
  // A server restart drops 1000 clients at once. With full jitter their
  // third retries spread over the whole 4 s window instead of landing at
  // the same instant: no second of it gets much more than its share.
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> dist(0, 1);
  std::vector<int> per_second(4);
  std::set<Micros> distinct;
  for (int client = 0; client < 1000; ++client) {
    Backoff b(BackoffPolicy{kSec, 60 * kSec, 2.0}, [&] { return dist(rng); });
    b.NextDelay();
    b.NextDelay();
    const Micros d = b.NextDelay();
    ASSERT_LT(d, 4 * kSec);
    ++per_second[d / kSec];
    distinct.insert(d);
  }
  EXPECT_GT(distinct.size(), 990u);
  for (int n : per_second) {
    EXPECT_GT(n, 180);
    EXPECT_LT(n, 320);
  }
}

}  // namespace
}  // namespace presence::client
