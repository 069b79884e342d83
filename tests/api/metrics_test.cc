#include "api/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "store/sqlite_store.h"
#include "store/temp_dir.h"
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

TEST(MetricsTest, ReportsSqliteMemoryOnlyWithAStore) {
  Metrics metrics;
  auto without = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(without.count("presenced_sqlite_memory_used_bytes"), 0u);

  store::TempDir dir;
  auto opened = store::SqliteStore::Open(dir.path());
  ASSERT_TRUE(opened.has_value());
  metrics.SetSqliteStore(opened->get());
  auto with = Samples(metrics.Render(nullptr, nullptr));
  const auto m = (*opened)->Memory();
  ASSERT_EQ(with.count("presenced_sqlite_memory_used_bytes"), 1u);
  EXPECT_GT(with["presenced_sqlite_memory_used_bytes"], 0);
  EXPECT_GE(with["presenced_sqlite_memory_highwater_bytes"],
            with["presenced_sqlite_memory_used_bytes"]);
  EXPECT_GT(with["presenced_sqlite_page_cache_bytes"], 0);
  EXPECT_EQ(with["presenced_sqlite_page_cache_limit_bytes"],
            static_cast<double>(m.page_cache_limit_bytes));
  EXPECT_GT(with["presenced_sqlite_page_cache_limit_bytes"], 0);
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
