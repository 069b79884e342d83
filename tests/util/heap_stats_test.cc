#include "util/heap_stats.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace presence {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

TEST(HeapTrimPolicyTest, FirstLookSettlesTheLevel) {
  HeapTrimPolicy p;
  EXPECT_FALSE(p.Due(300 * kMiB));
  EXPECT_EQ(p.settled_bytes(), 300 * kMiB);
}

TEST(HeapTrimPolicyTest, SteadyLoadIsNotTrimmed) {
  // The million run's sawtooth: RSS wanders by a few MB around a level.
  HeapTrimPolicy p;
  EXPECT_FALSE(p.Due(330 * kMiB));
  for (std::uint64_t mib : {331, 333, 335, 332, 339, 340}) {
    EXPECT_FALSE(p.Due(mib * kMiB)) << mib;
  }
}

TEST(HeapTrimPolicyTest, GrowthPastTheMarginTrimsThenSettlesAgain) {
  HeapTrimPolicy p;
  EXPECT_FALSE(p.Due(320 * kMiB));
  // 320 MiB / 32 = 10 MiB of growth allowed.
  EXPECT_FALSE(p.Due(330 * kMiB));
  EXPECT_TRUE(p.Due(331 * kMiB));
  // The first look after the trim settles the new level, whatever it is.
  EXPECT_FALSE(p.Due(400 * kMiB));
  EXPECT_EQ(p.settled_bytes(), 400 * kMiB);
  EXPECT_FALSE(p.Due(412 * kMiB));
  EXPECT_TRUE(p.Due(413 * kMiB));
}

TEST(HeapTrimPolicyTest, TheLevelFollowsRssDown) {
  HeapTrimPolicy p;
  EXPECT_FALSE(p.Due(320 * kMiB));
  EXPECT_FALSE(p.Due(200 * kMiB));
  EXPECT_EQ(p.settled_bytes(), 200 * kMiB);
  // 200 MiB / 32 = 6.25 MiB: growth from the lower level counts.
  EXPECT_FALSE(p.Due(206 * kMiB));
  EXPECT_TRUE(p.Due(207 * kMiB));
}

TEST(HeapTrimPolicyTest, SmallProcessesAllowAtLeastTheMinimum) {
  HeapTrimPolicy p;
  EXPECT_FALSE(p.Due(10 * kMiB));
  EXPECT_FALSE(p.Due(10 * kMiB + HeapTrimPolicy::kMinGrowthBytes));
  EXPECT_TRUE(p.Due(10 * kMiB + HeapTrimPolicy::kMinGrowthBytes + 1));
}

TEST(HeapTrimPolicyTest, UnknownRssTrimsAtEveryLook) {
  HeapTrimPolicy p;
  EXPECT_TRUE(p.Due(0));
  EXPECT_TRUE(p.Due(0));
}

TEST(ResidentBytesTest, GrowsWhenPagesAreTouched) {
  const std::uint64_t before = ResidentBytes();
  ASSERT_GT(before, 0u);  // Linux: /proc/self/statm is there
  std::vector<char> block(64 * kMiB);
  for (std::size_t i = 0; i < block.size(); i += 4096) block[i] = 1;
  const std::uint64_t after = ResidentBytes();
  EXPECT_GE(after, before + 32 * kMiB);
  volatile char keep = block[block.size() / 2];
  (void)keep;
}

}  // namespace
}  // namespace presence
