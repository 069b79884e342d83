#include "util/arena.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace presence {
namespace {

TEST(ArenaTest, BytesStayWhereTheyWereWritten) {
  Arena arena;
  std::vector<std::pair<const char*, std::string>> written;
  for (int i = 0; i < 20000; ++i) {
    std::string s = "user" + std::to_string(i) + "@example.com";
    char* p = arena.Allocate(s.size());
    std::memcpy(p, s.data(), s.size());
    written.emplace_back(p, std::move(s));
  }
  for (const auto& [p, s] : written) {
    EXPECT_EQ(std::string_view(p, s.size()), s);
  }
}

TEST(ArenaTest, AllocationsDoNotOverlap) {
  Arena arena;
  std::vector<std::pair<char*, std::size_t>> blocks;
  // Sizes around the chunk boundaries and the own-chunk cut-off.
  for (std::size_t n : {1u, 7u, 1000u, 1024u, 5000u, 16384u, 16385u, 70000u, 3u,
                        0u, 65536u, 2u}) {
    char* p = arena.Allocate(n);
    std::memset(p, static_cast<int>(blocks.size() + 1), n);
    blocks.emplace_back(p, n);
  }
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const auto& [p, n] = blocks[i];
    for (std::size_t j = 0; j < n; ++j) {
      ASSERT_EQ(p[j], static_cast<char>(i + 1)) << "block " << i;
    }
  }
}

TEST(ArenaTest, SmallArenaStaysSmall) {
  Arena arena;
  EXPECT_EQ(arena.bytes_reserved(), 0u);
  arena.Allocate(30);
  arena.Allocate(30);
  EXPECT_EQ(arena.bytes_reserved(), Arena::kFirstChunk);
}

TEST(ArenaTest, ChunksGrowToTheCap) {
  Arena arena;
  std::size_t total = 0;
  while (total < 10 * Arena::kMaxChunk) {
    arena.Allocate(100);
    total += 100;
  }
  // Geometric growth up to kMaxChunk: at most one chunk's worth of slack
  // beyond what doubling to the cap costs.
  EXPECT_LT(arena.bytes_reserved(), total + 2 * Arena::kMaxChunk);
  EXPECT_GE(arena.bytes_reserved(), total);
}

}  // namespace
}  // namespace presence
