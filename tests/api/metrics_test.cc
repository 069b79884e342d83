#include "api/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "util/heap_stats.h"

namespace presence::api {
namespace {

// name -> value of every sample line; every line must be a comment or
// "name value" (a truncated line would not be).
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    if (space == std::string::npos) continue;
    std::size_t used = 0;
    const double v = std::stod(line.substr(space + 1), &used);
    EXPECT_EQ(used, line.size() - space - 1) << line;
    out[line.substr(0, space)] = v;
  }
  return out;
}

TEST(MetricsTest, ReportsStoreMemoryOnlyWithASource) {
  Metrics metrics;
  auto without = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(without.count("presenced_sqlite_memory_used_bytes"), 0u);

  int reads = 0;
  metrics.SetStoreMemorySource([&reads] {
    ++reads;
    return StoreMemory{1000, 4000, 300, 2'000'000};
  });
  auto with = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(reads, 1);  // read when scraped, once
  EXPECT_EQ(with["presenced_sqlite_memory_used_bytes"], 1000);
  EXPECT_EQ(with["presenced_sqlite_memory_highwater_bytes"], 4000);
  EXPECT_EQ(with["presenced_sqlite_page_cache_bytes"], 300);
  EXPECT_EQ(with["presenced_sqlite_page_cache_limit_bytes"], 2'000'000);
}

TEST(MetricsTest, HeapGaugesAddUpWhenTheAllocatorReportsThem) {
  Metrics metrics;
  auto s = Samples(metrics.Render(nullptr, nullptr));
  // glibc's figures, or the sanitizer allocator's in the ASan/TSan builds:
  // on Debian they exist in every build this project makes.
  ASSERT_TRUE(ReadHeapStats().available);
  ASSERT_EQ(s.count("presenced_malloc_arena_bytes"), 1u);
  EXPECT_GT(s["presenced_malloc_in_use_bytes"], 0);
  EXPECT_EQ(
      s["presenced_malloc_arena_bytes"],
      s["presenced_malloc_in_use_bytes"] + s["presenced_malloc_free_bytes"]);
  EXPECT_LE(s["presenced_malloc_releasable_bytes"],
            s["presenced_malloc_free_bytes"]);
  EXPECT_GE(s["presenced_malloc_arenas"], 1);
  EXPECT_EQ(s.count("presenced_malloc_mmap_bytes"), 1u);
}

}  // namespace
}  // namespace presence::api
