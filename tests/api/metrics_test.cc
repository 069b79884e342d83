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

TEST(MetricsTest, LoopLagIsAHistogramOnceSampled) {
  Metrics metrics;
  EXPECT_EQ(Samples(metrics.Render(nullptr, nullptr))
                .count("presenced_io_loop_lag_seconds_count"),
            0u);
  metrics.RecordLoopLag(0.00003);  // 30 us
  metrics.RecordLoopLag(0.003);    // 3 ms
  metrics.RecordLoopLag(0.2);      // 200 ms
  auto s = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_count"], 3);
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_bucket{le=\"5e-05\"}"], 1);
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_bucket{le=\"0.0025\"}"], 1);
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_bucket{le=\"0.005\"}"], 2);
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_bucket{le=\"0.1\"}"], 2);
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_bucket{le=\"1\"}"], 3);
  EXPECT_EQ(s["presenced_io_loop_lag_seconds_bucket{le=\"+Inf\"}"], 3);
  EXPECT_NEAR(s["presenced_io_loop_lag_seconds_sum"], 0.20303, 1e-6);
  // The I/O threads' time on a core and waiting for one: only once sampled.
  EXPECT_EQ(s.count("presenced_io_thread_cpu_wait_seconds_total"), 0u);
  metrics.RecordIoThreadTimes(2'000'000'000, 500'000'000);
  metrics.RecordIoThreadTimes(1'000'000'000, 250'000'000);
  s = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_DOUBLE_EQ(s["presenced_io_thread_cpu_seconds_total"], 3.0);
  EXPECT_DOUBLE_EQ(s["presenced_io_thread_cpu_wait_seconds_total"], 0.75);
}

TEST(MetricsTest, ReportsTheFlushThreadsTimesOnceSampled) {
  Metrics metrics;
  auto s = Samples(metrics.Render(nullptr, nullptr));
  // Not exported as zeros before the flush thread has read them (or where
  // the kernel does not report them).
  EXPECT_EQ(s.count("presenced_flush_thread_cpu_seconds_total"), 0u);
  EXPECT_EQ(s.count("presenced_flush_thread_cpu_wait_seconds_total"), 0u);
  metrics.RecordFlushThreadTimes(1'500'000'000, 100'000'000);
  metrics.RecordFlushThreadTimes(500'000'000, 150'000'000);
  s = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_DOUBLE_EQ(s["presenced_flush_thread_cpu_seconds_total"], 2.0);
  EXPECT_DOUBLE_EQ(s["presenced_flush_thread_cpu_wait_seconds_total"], 0.25);
  // Its own counters: the I/O threads' stay unreported.
  EXPECT_EQ(s.count("presenced_io_thread_cpu_seconds_total"), 0u);
}

TEST(MetricsTest, ReportsStoreMemoryOnlyWithASource) {
  Metrics metrics;
  auto without = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(without.count("presenced_sqlite_memory_used_bytes"), 0u);

  int reads = 0;
  metrics.SetStoreMemorySource([&reads] {
    ++reads;
    return StoreMemory{1000, 4000, 300, 2'000'000, 70, 90, 12, 3, 500, 1.5, 2};
  });
  auto with = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(reads, 1);  // read when scraped, once
  EXPECT_EQ(with["presenced_sqlite_memory_used_bytes"], 1000);
  EXPECT_EQ(with["presenced_sqlite_memory_highwater_bytes"], 4000);
  EXPECT_EQ(with["presenced_sqlite_page_cache_bytes"], 300);
  EXPECT_EQ(with["presenced_sqlite_page_cache_limit_bytes"], 2'000'000);
  EXPECT_EQ(with["presenced_sqlite_pages_read_total"], 70);
  EXPECT_EQ(with["presenced_sqlite_pages_written_total"], 90);
  EXPECT_EQ(with["presenced_sqlite_log_rows"], 12);
  EXPECT_EQ(with["presenced_sqlite_log_merges_total"], 3);
  EXPECT_EQ(with["presenced_sqlite_log_merged_rows_total"], 500);
  EXPECT_EQ(with["presenced_sqlite_log_merge_seconds_total"], 1.5);
  EXPECT_EQ(with["presenced_sqlite_log_merge_failures_total"], 2);
}

TEST(MetricsTest, ReportsRateLimitersOnlyWithASource) {
  Metrics metrics;
  // No source: no line of the limiters at all (not even HELP or TYPE).
  EXPECT_EQ(metrics.Render(nullptr, nullptr).find("presenced_rate_limiter"),
            std::string::npos);

  int reads = 0;
  metrics.SetRateLimiterSource([&reads] {
    ++reads;
    return std::vector<LimiterUsage>{
        {.limiter = "a", .users = 10, .heap_logs = 2, .bytes = 3000},
        {.limiter = "b", .users = 1, .heap_logs = 0, .bytes = 40}};
  });
  const std::string text = metrics.Render(nullptr, nullptr);
  auto with = Samples(text);
  EXPECT_EQ(reads, 1);  // read when scraped, once
  EXPECT_EQ(with["presenced_rate_limiter_users{limiter=\"a\"}"], 10);
  EXPECT_EQ(with["presenced_rate_limiter_heap_logs{limiter=\"a\"}"], 2);
  EXPECT_EQ(with["presenced_rate_limiter_bytes{limiter=\"a\"}"], 3000);
  EXPECT_EQ(with["presenced_rate_limiter_users{limiter=\"b\"}"], 1);
  EXPECT_EQ(with["presenced_rate_limiter_bytes{limiter=\"b\"}"], 40);
  // One HELP and TYPE per metric, before its labelled samples.
  EXPECT_NE(text.find("# TYPE presenced_rate_limiter_users gauge\n"
                      "presenced_rate_limiter_users{limiter=\"a\"} 10\n"
                      "presenced_rate_limiter_users{limiter=\"b\"} 1\n"),
            std::string::npos);
}

TEST(MetricsTest, HeapGaugesAddUpWhenTheAllocatorReportsThem) {
  Metrics metrics;
  metrics.SampleHeap();
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

// Reading the heap figures takes each arena's lock (the server forces one):
// a scrape shows the flush thread's last sample and never reads them.
TEST(MetricsTest, Issue15_AScrapeDoesNotReadTheHeapItServesTheLastSample) {
  Metrics metrics;
  const std::uint64_t before = HeapStatsReads();
  auto none = Samples(metrics.Render(nullptr, nullptr));
  EXPECT_EQ(HeapStatsReads(), before);
  EXPECT_EQ(none.count("presenced_malloc_arena_bytes"), 0u);  // no sample yet
  metrics.SampleHeap();
  EXPECT_EQ(HeapStatsReads(), before + 1);
  for (int i = 0; i < 5; ++i) {
    auto s = Samples(metrics.Render(nullptr, nullptr));
    EXPECT_EQ(s.count("presenced_malloc_arena_bytes"), 1u);
    EXPECT_EQ(s["presenced_malloc_samples_total"], 1);
  }
  EXPECT_EQ(HeapStatsReads(), before + 1);
}

}  // namespace
}  // namespace presence::api
