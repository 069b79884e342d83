#include "util/hash_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace presence {
namespace {

// The order is a permutation of 0..n-1 in which the top 16 bits of the
// hashes never decrease (what makes a bulk fill walk the table), ties in
// their original order.
TEST(HashOrderTest, OrdersEveryIndexByTheTopSixteenBits) {
  for (std::size_t n : {0, 1, 7, 100'000}) {
    SCOPED_TRACE(n);
    std::mt19937_64 rng(n);
    std::vector<std::uint64_t> hashes(n);
    for (auto& h : hashes) h = rng();
    std::size_t calls = 0;
    std::vector<std::uint32_t> order = OrderByHash(n, [&](std::size_t i) {
      EXPECT_EQ(i, calls++);
      return hashes[i];
    });
    ASSERT_EQ(order.size(), n);
    std::vector<std::uint32_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
    for (std::size_t i = 1; i < n; ++i) {
      const auto a = hashes[order[i - 1]] >> 48;
      const auto b = hashes[order[i]] >> 48;
      ASSERT_LE(a, b);
      if (a == b) {
        ASSERT_LT(order[i - 1], order[i]);
      }
    }
  }
}

}  // namespace
}  // namespace presence
