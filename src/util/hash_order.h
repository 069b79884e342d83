// OrderByHash: the order in which to insert many keys into an
// open-addressing table that places a key by the high bits of its hash
// (boost::unordered_flat_* with an avalanching hasher), so that a bulk fill
// walks the table from one end to the other instead of missing the cache on
// every insert (issue #17: at ten million users, filling the indexes one
// random insert at a time was half of a restart).
//
// Thread safety: a pure function.
#ifndef PRESENCE_UTIL_HASH_ORDER_H_
#define PRESENCE_UTIL_HASH_ORDER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace presence {

// Returns 0..n-1 ordered by the top 16 bits of hash(i). `hash(i)` is
// called once per i, in increasing i. A radix sort by 8 bits, then by the
// next 8 within each of those 256 runs (each run small enough to stay in
// the cache): a single counting pass over 65,536 buckets would write as
// randomly as the inserts it is meant to order.
template <class Hash>
std::vector<std::uint32_t> OrderByHash(std::size_t n, Hash&& hash) {
  constexpr std::size_t kBuckets = 256;
  // (top 16 bits << 32 | i), scattered by the top 8 bits.
  std::vector<std::uint64_t> keyed(n);
  std::vector<std::size_t> start(kBuckets + 1, 0);
  {
    std::vector<std::uint16_t> top(n);
    for (std::size_t i = 0; i < n; ++i) {
      top[i] =
          static_cast<std::uint16_t>(static_cast<std::uint64_t>(hash(i)) >> 48);
      ++start[(top[i] >> 8) + 1];
    }
    for (std::size_t b = 1; b <= kBuckets; ++b) start[b] += start[b - 1];
    std::vector<std::size_t> next(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < n; ++i) {
      keyed[next[top[i] >> 8]++] = std::uint64_t{top[i]} << 32 | i;
    }
  }
  std::vector<std::uint32_t> order(n);
  for (std::size_t b = 0; b < kBuckets; ++b) {
    std::size_t count[kBuckets + 1] = {};
    for (std::size_t k = start[b]; k < start[b + 1]; ++k) {
      ++count[((keyed[k] >> 32) & 0xff) + 1];
    }
    for (std::size_t d = 1; d <= kBuckets; ++d) count[d] += count[d - 1];
    for (std::size_t k = start[b]; k < start[b + 1]; ++k) {
      order[start[b] + count[(keyed[k] >> 32) & 0xff]++] =
          static_cast<std::uint32_t>(keyed[k]);
    }
  }
  return order;
}

}  // namespace presence

#endif  // PRESENCE_UTIL_HASH_ORDER_H_
