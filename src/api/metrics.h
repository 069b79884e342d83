// Metrics: counters and latency histograms, exposed at GET /metrics in the
// Prometheus text format (version 0.0.4).
//
// Requests are counted by endpoint and status and timed per endpoint; the
// gauges (queues, parked polls), the store's state and SQLite's memory are
// read from their owners when scraped; the C allocator's heap figures are
// sampled by the flush thread (SampleHeap) and a scrape shows the last
// sample.
//
// Thread safety: every counter is an atomic; Record and Render may run on
// any thread at once. SetStoreMemorySource is called once, before serving.
#ifndef PRESENCE_API_METRICS_H_
#define PRESENCE_API_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/heap_stats.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {
class EventHub;
class PresenceService;
}  // namespace presence

namespace presence::api {

enum class Endpoint : std::uint8_t {
  kPostPresence,
  kRealmPresence,
  kUserPresence,
  kUsers,
  kSettings,
  kServerSettings,
  kRegister,
  kGetEvents,
  kDeleteEvents,
  kPatchEvents,
  kPostMyStatus,
  kUserStatus,
  kAdmin,
  kHealth,
  kMetrics,
  kWeb,
  kOther,
  kCount,
};

std::string_view EndpointName(Endpoint e);

// The embedded store's memory, as /metrics reports it (presenced_sqlite_*).
struct StoreMemory {
  // Every byte the store's engine holds in this process, and the most it
  // has held at once since start.
  std::int64_t memory_used_bytes = 0;
  std::int64_t memory_highwater_bytes = 0;
  // The store connection's page cache, and the most it may hold.
  std::int64_t page_cache_bytes = 0;
  std::int64_t page_cache_limit_bytes = 0;
  // Pages the store connection read from its files (cache misses) and wrote
  // to its log, since start.
  std::int64_t pages_read = 0;
  std::int64_t pages_written = 0;
  // The presence log (SQLite): rows not merged yet; merges, rows merged and
  // their time since start.
  std::int64_t log_rows = 0;
  std::int64_t log_merges = 0;
  std::int64_t log_merged_rows = 0;
  double log_merge_seconds = 0;
  // Merges that failed and were rolled back (tried again at the next
  // write).
  std::int64_t log_merge_failures = 0;
};

// One rate limiter's state (RateLimiter::Usage), for /metrics.
struct LimiterUsage {
  const char* limiter = "";   // the label: the flag that sets its limit
  std::size_t users = 0;      // users with a log
  std::size_t heap_logs = 0;  // of them, users whose log is on the heap
  std::size_t bytes = 0;      // its tables and heap logs, approximately
};

class Metrics {
 public:
  // Bucket upper bounds of the latency histograms, in seconds.
  static constexpr std::array<double, 12> kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
      0.005,   0.01,   0.025,   0.05,   0.1,   1.0};

  void RecordRequest(Endpoint e, unsigned status, double seconds);
  // How late an I/O thread ran a timer due `seconds` ago (app/loop_lag.h):
  // about how long a request that became readable then waited before its
  // thread could read it.
  void RecordLoopLag(double seconds);
  // Time the I/O threads ran on a core and waited for one (runnable, not
  // running: the kernel's schedstat run_delay), in ns since the last call;
  // sampled by app/loop_lag.h where the kernel reports it.
  void RecordIoThreadTimes(std::uint64_t cpu_ns, std::uint64_t wait_ns) {
    io_cpu_ns_.fetch_add(cpu_ns, kRelaxed);
    io_wait_ns_.fetch_add(wait_ns, kRelaxed);
    io_times_sampled_.store(true, kRelaxed);
  }
  void RecordRateLimited() { rate_limited_.fetch_add(1, kRelaxed); }
  void RecordFlush(std::size_t rows, double seconds, bool ok);
  // Time the flush thread (group commits, heap trims and samples) ran on a
  // core and waited for one, in ns since the last call; sampled by
  // app/flusher.h after each turn where the kernel reports it. Beside the
  // I/O threads' times: where the server's CPU goes, and how much of it
  // the group commit takes from answering.
  void RecordFlushThreadTimes(std::uint64_t cpu_ns, std::uint64_t wait_ns) {
    flush_cpu_ns_.fetch_add(cpu_ns, kRelaxed);
    flush_wait_ns_.fetch_add(wait_ns, kRelaxed);
    flush_times_sampled_.store(true, kRelaxed);
  }
  void RecordConnectionRefused() {
    connections_refused_.fetch_add(1, kRelaxed);
  }
  // A connection refused over --max-connections-per-address.
  void RecordConnectionRefusedPerAddress() {
    connections_refused_per_address_.fetch_add(1, kRelaxed);
  }
  // An accept that failed (e.g. out of file descriptors).
  void RecordAcceptError() { accept_errors_.fetch_add(1, kRelaxed); }
  void RecordSlowConsumer() { slow_consumers_.fetch_add(1, kRelaxed); }
  // A request body read in full (`bytes` long); a request answered from
  // its head alone, its large body left unread (Router::Precheck).
  void RecordBodyRead(std::size_t bytes) {
    body_bytes_.fetch_add(bytes, kRelaxed);
  }
  void RecordRefusedBeforeBody() {
    refused_before_body_.fetch_add(1, kRelaxed);
  }
  // Scale-out relays: a new connection to another node; a relay refused
  // over --max-relays-per-node.
  void RecordRelayConnectionOpened() {
    relay_connections_opened_.fetch_add(1, kRelaxed);
  }
  void RecordRelayRefused() { relays_refused_.fetch_add(1, kRelaxed); }
  // One TrimHeap() call that took `seconds`.
  void RecordHeapTrim(double seconds);
  // One look of the flush thread at whether to trim (HeapTrimPolicy),
  // trimmed or not.
  void RecordHeapTrimCheck() { heap_trim_checks_.fetch_add(1, kRelaxed); }
  // Reads the C allocator's figures (ReadHeapStats, which takes each
  // arena's lock) and keeps them for Render: called by the flush thread,
  // once as it starts and then every flush interval, so that a scrape
  // never runs mallinfo2()/malloc_info() (issue #15). Until the first
  // sample the presenced_malloc_* gauges are absent.
  void SampleHeap() EXCLUDES(heap_mu_);
  void ConnectionOpened() {
    connections_.fetch_add(1, kRelaxed);
    connections_accepted_.fetch_add(1, kRelaxed);
  }
  void ConnectionClosed() { connections_.fetch_sub(1, kRelaxed); }
  std::int64_t connections() const { return connections_.load(kRelaxed); }

  // Where /metrics reads the store's memory (presenced_sqlite_*) when
  // scraped; empty (the default): no such lines. It must never block and
  // must stay callable until the last Render.
  void SetStoreMemorySource(std::function<StoreMemory()> source) {
    store_memory_ = std::move(source);
  }

  // Where /metrics reads the rate limiters' state (presenced_rate_limiter_*)
  // when scraped; empty (the default): no such lines. The same rules as
  // SetStoreMemorySource.
  void SetRateLimiterSource(std::function<std::vector<LimiterUsage>()> source) {
    limiters_ = std::move(source);
  }

  // The whole exposition. `service` and `hub` may be null.
  std::string Render(const PresenceService* service, const EventHub* hub) const;

 private:
  static constexpr auto kRelaxed = std::memory_order_relaxed;
  static constexpr int kStatusClasses = 5;  // 1xx..5xx
  static constexpr int kEndpoints = static_cast<int>(Endpoint::kCount);

  void RenderRequests(std::string& out) const;
  void RenderLatency(std::string& out) const;
  void RenderLoopLag(std::string& out) const;
  void RenderCounters(std::string& out) const;
  void RenderHeap(std::string& out) const EXCLUDES(heap_mu_);
  void RenderStoreMemory(std::string& out) const;
  void RenderRateLimiters(std::string& out) const;

  struct Histogram {
    std::array<std::atomic<std::uint64_t>, kBuckets.size()> buckets{};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_ns{0};
  };

  std::array<std::array<std::atomic<std::uint64_t>, kStatusClasses>, kEndpoints>
      requests_{};
  std::array<Histogram, kEndpoints> latency_{};
  Histogram loop_lag_{};
  std::atomic<std::uint64_t> io_cpu_ns_{0};
  std::atomic<std::uint64_t> io_wait_ns_{0};
  std::atomic<bool> io_times_sampled_{false};
  std::atomic<std::uint64_t> flush_cpu_ns_{0};
  std::atomic<std::uint64_t> flush_wait_ns_{0};
  std::atomic<bool> flush_times_sampled_{false};
  std::atomic<std::uint64_t> rate_limited_{0};
  std::atomic<std::uint64_t> flushes_{0};
  std::atomic<std::uint64_t> flush_failures_{0};
  std::atomic<std::uint64_t> flushed_rows_{0};
  std::atomic<std::uint64_t> flush_ns_{0};
  std::atomic<std::uint64_t> connections_refused_{0};
  std::atomic<std::uint64_t> connections_refused_per_address_{0};
  std::atomic<std::uint64_t> accept_errors_{0};
  std::atomic<std::uint64_t> slow_consumers_{0};
  std::atomic<std::uint64_t> body_bytes_{0};
  std::atomic<std::uint64_t> refused_before_body_{0};
  std::atomic<std::uint64_t> heap_trims_{0};
  std::atomic<std::uint64_t> heap_trim_checks_{0};
  std::atomic<std::uint64_t> heap_trim_ns_{0};
  // The last SampleHeap()'s figures and how many samples were taken.
  mutable Mutex heap_mu_;
  HeapStats heap_ GUARDED_BY(heap_mu_);
  std::uint64_t heap_samples_ GUARDED_BY(heap_mu_) = 0;
  std::atomic<std::int64_t> connections_{0};
  std::atomic<std::uint64_t> connections_accepted_{0};
  std::atomic<std::uint64_t> relay_connections_opened_{0};
  std::atomic<std::uint64_t> relays_refused_{0};
  std::function<StoreMemory()> store_memory_;
  std::function<std::vector<LimiterUsage>()> limiters_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_METRICS_H_
