#include "api/metrics.h"

#include <cstdio>

#include "core/event_hub.h"
#include "core/presence_service.h"
#include "util/heap_stats.h"

namespace presence::api {

std::string_view EndpointName(Endpoint e) {
  switch (e) {
    case Endpoint::kPostPresence:
      return "post_users_me_presence";
    case Endpoint::kRealmPresence:
      return "get_realm_presence";
    case Endpoint::kUserPresence:
      return "get_user_presence";
    case Endpoint::kUsers:
      return "get_users";
    case Endpoint::kSettings:
      return "patch_settings";
    case Endpoint::kServerSettings:
      return "get_server_settings";
    case Endpoint::kRegister:
      return "post_register";
    case Endpoint::kGetEvents:
      return "get_events";
    case Endpoint::kDeleteEvents:
      return "delete_events";
    case Endpoint::kPatchEvents:
      return "patch_events";
    case Endpoint::kPostMyStatus:
      return "post_users_me_status";
    case Endpoint::kUserStatus:
      return "user_status";
    case Endpoint::kAdmin:
      return "admin";
    case Endpoint::kHealth:
      return "healthz";
    case Endpoint::kMetrics:
      return "metrics";
    case Endpoint::kWeb:
      return "web";
    case Endpoint::kOther:
    case Endpoint::kCount:
      break;
  }
  return "other";
}

void Metrics::RecordRequest(Endpoint e, unsigned status, double seconds) {
  const int ei = static_cast<int>(e);
  int cls = static_cast<int>(status / 100) - 1;
  if (cls < 0 || cls >= kStatusClasses) cls = kStatusClasses - 1;
  requests_[ei][cls].fetch_add(1, kRelaxed);
  Histogram& h = latency_[ei];
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      h.buckets[i].fetch_add(1, kRelaxed);
      break;
    }
  }
  h.count.fetch_add(1, kRelaxed);
  h.sum_ns.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), kRelaxed);
}

void Metrics::RecordLoopLag(double seconds) {
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      loop_lag_.buckets[i].fetch_add(1, kRelaxed);
      break;
    }
  }
  loop_lag_.count.fetch_add(1, kRelaxed);
  loop_lag_.sum_ns.fetch_add(static_cast<std::uint64_t>(seconds * 1e9),
                             kRelaxed);
}

void Metrics::RecordFlush(std::size_t rows, double seconds, bool ok) {
  flushes_.fetch_add(1, kRelaxed);
  if (!ok) flush_failures_.fetch_add(1, kRelaxed);
  flushed_rows_.fetch_add(rows, kRelaxed);
  flush_ns_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), kRelaxed);
}

void Metrics::RecordHeapTrim(double seconds) {
  heap_trims_.fetch_add(1, kRelaxed);
  heap_trim_ns_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), kRelaxed);
}

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

void Line(std::string& out, const char* fmt, auto... args) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n > 0) out.append(buf, std::min<std::size_t>(n, sizeof buf - 1));
}

void Counter(std::string& out, const char* name, const char* help,
             std::uint64_t v) {
  Line(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
       name, static_cast<unsigned long long>(v));
}

// A counter that sums durations: monotonic, so TYPE counter (Prometheus
// reserves the _total suffix for counters; promtool rejects it on a gauge).
void CounterSeconds(std::string& out, const char* name, const char* help,
                    double v) {
  Line(out, "# HELP %s %s\n# TYPE %s counter\n%s %.17g\n", name, help, name,
       name, v);
}

void Gauge(std::string& out, const char* name, const char* help, double v) {
  Line(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
       v);
}

double Seconds(const std::atomic<std::uint64_t>& ns) {
  return static_cast<double>(ns.load(kRelaxed)) / 1e9;
}

void RenderHub(std::string& out, const EventHub& hub) {
  HubStats s = hub.Stats();
  Gauge(out, "presenced_event_queues", "Event queues.",
        static_cast<double>(s.queues));
  Gauge(out, "presenced_parked_polls", "Long polls waiting for an event.",
        static_cast<double>(s.parked));
  Counter(out, "presenced_events_total", "Events appended to queues.",
          s.events_enqueued);
  Counter(out, "presenced_queues_overflowed_total",
          "Queues dropped for holding too many unread events.",
          s.queues_overflowed);
  Counter(out, "presenced_events_coalesced_total",
          "Presence events replaced in their queue by a newer event of the "
          "same user before any answer carried them.",
          s.events_coalesced);
  Counter(out, "presenced_queues_expired_total",
          "Queues freed for not being polled.", s.queues_expired);
  Gauge(out, "presenced_event_queue_bytes",
        "Bytes the event queues hold (each shared event counted in full).",
        static_cast<double>(s.queue_bytes));
  Gauge(out, "presenced_event_queue_bytes_limit",
        "The cap on presenced_event_queue_bytes (--max-queue-memory-mb).",
        static_cast<double>(s.max_queue_bytes));
  Counter(out, "presenced_queues_evicted_per_user_total",
          "Queues dropped to make room for a newer queue of the same user "
          "(--max-queues-per-user).",
          s.queues_evicted_per_user);
  Counter(out, "presenced_queues_evicted_memory_total",
          "Queues dropped because all queues held more than "
          "--max-queue-memory-mb.",
          s.queues_evicted_memory);
  Counter(out, "presenced_event_polls_refused_total",
          "GET /events refused with 429 (--events-poll-limit).",
          s.polls_refused);
}

}  // namespace

void Metrics::RenderRequests(std::string& out) const {
  out +=
      "# HELP presenced_requests_total HTTP requests by endpoint and status "
      "class.\n# TYPE presenced_requests_total counter\n";
  static constexpr const char* kClass[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int e = 0; e < kEndpoints; ++e) {
    const std::string name(EndpointName(static_cast<Endpoint>(e)));
    for (int c = 0; c < kStatusClasses; ++c) {
      auto v = requests_[e][c].load(kRelaxed);
      if (v == 0) continue;
      Line(out,
           "presenced_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
           name.c_str(), kClass[c], static_cast<unsigned long long>(v));
    }
  }
}

void Metrics::RenderLoopLag(std::string& out) const {
  const auto count = loop_lag_.count.load(kRelaxed);
  if (count == 0) return;
  out +=
      "# HELP presenced_io_loop_lag_seconds How late an I/O thread ran a "
      "timer that was due (about how long a readable request waits).\n"
      "# TYPE presenced_io_loop_lag_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += loop_lag_.buckets[i].load(kRelaxed);
    Line(out, "presenced_io_loop_lag_seconds_bucket{le=\"%g\"} %llu\n",
         kBuckets[i], static_cast<unsigned long long>(cumulative));
  }
  Line(out, "presenced_io_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n",
       static_cast<unsigned long long>(count));
  Line(out, "presenced_io_loop_lag_seconds_sum %.9f\n",
       Seconds(loop_lag_.sum_ns));
  Line(out, "presenced_io_loop_lag_seconds_count %llu\n",
       static_cast<unsigned long long>(count));
  if (!io_times_sampled_.load(kRelaxed)) return;
  CounterSeconds(out, "presenced_io_thread_cpu_seconds_total",
                 "Time the I/O threads ran on a core.", Seconds(io_cpu_ns_));
  CounterSeconds(out, "presenced_io_thread_cpu_wait_seconds_total",
                 "Time the I/O threads were ready to run and waited for a "
                 "core (the kernel's run delay).",
                 Seconds(io_wait_ns_));
}

void Metrics::RenderLatency(std::string& out) const {
  out +=
      "# HELP presenced_request_duration_seconds Time to answer a request "
      "(parked long-poll waiting excluded).\n"
      "# TYPE presenced_request_duration_seconds histogram\n";
  for (int e = 0; e < kEndpoints; ++e) {
    const Histogram& h = latency_[e];
    const auto count = h.count.load(kRelaxed);
    if (count == 0) continue;
    const std::string name(EndpointName(static_cast<Endpoint>(e)));
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += h.buckets[i].load(kRelaxed);
      Line(
          out,
          "presenced_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"}"
          " %llu\n",
          name.c_str(), kBuckets[i],
          static_cast<unsigned long long>(cumulative));
    }
    Line(
        out,
        "presenced_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"}"
        " %llu\n",
        name.c_str(), static_cast<unsigned long long>(count));
    Line(out, "presenced_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n",
         name.c_str(), Seconds(h.sum_ns));
    Line(out,
         "presenced_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
         name.c_str(), static_cast<unsigned long long>(count));
  }
}

void Metrics::RenderCounters(std::string& out) const {
  Counter(
      out, "presenced_pings_total", "Presence reports answered with success.",
      requests_[static_cast<int>(Endpoint::kPostPresence)][1].load(kRelaxed));
  Counter(out, "presenced_rate_limited_total", "Requests refused with 429.",
          rate_limited_.load(kRelaxed));
  Counter(out, "presenced_flushes_total", "Group commits of presence rows.",
          flushes_.load(kRelaxed));
  Counter(out, "presenced_flush_failures_total", "Group commits that failed.",
          flush_failures_.load(kRelaxed));
  Counter(out, "presenced_flushed_rows_total", "Presence rows committed.",
          flushed_rows_.load(kRelaxed));
  CounterSeconds(out, "presenced_flush_seconds_total",
                 "Time spent in group commits.", Seconds(flush_ns_));
  if (flush_times_sampled_.load(kRelaxed)) {
    CounterSeconds(out, "presenced_flush_thread_cpu_seconds_total",
                   "Time the flush thread (group commits, heap trims and "
                   "samples) ran on a core.",
                   Seconds(flush_cpu_ns_));
    CounterSeconds(out, "presenced_flush_thread_cpu_wait_seconds_total",
                   "Time the flush thread was ready to run and waited for "
                   "a core (the kernel's run delay).",
                   Seconds(flush_wait_ns_));
  }
  Counter(out, "presenced_connections_accepted_total",
          "HTTP connections accepted (each relay connection of another "
          "node counts once, however many requests it carries).",
          connections_accepted_.load(kRelaxed));
  Counter(out, "presenced_relay_connections_opened_total",
          "Connections opened to other nodes to relay requests (kept "
          "alive and reused).",
          relay_connections_opened_.load(kRelaxed));
  Counter(out, "presenced_relays_refused_total",
          "Relays refused over --max-relays-per-node (answered 503).",
          relays_refused_.load(kRelaxed));
  Counter(out, "presenced_connections_refused_total",
          "Connections refused over --max-connections.",
          connections_refused_.load(kRelaxed));
  Counter(out, "presenced_connections_refused_per_address_total",
          "Connections refused over --max-connections-per-address.",
          connections_refused_per_address_.load(kRelaxed));
  Counter(out, "presenced_accept_errors_total",
          "Accepts that failed (e.g. out of file descriptors); each retried "
          "after a pause.",
          accept_errors_.load(kRelaxed));
  Counter(out, "presenced_slow_consumers_total",
          "Connections cut off because they did not read their answer.",
          slow_consumers_.load(kRelaxed));
  Counter(out, "presenced_request_body_bytes_total",
          "Bytes of request bodies read in full.", body_bytes_.load(kRelaxed));
  Counter(out, "presenced_refused_before_body_total",
          "Requests answered (401) from their head alone, their large body "
          "left unread.",
          refused_before_body_.load(kRelaxed));
  Gauge(out, "presenced_connections", "Open HTTP connections.",
        static_cast<double>(connections_.load(kRelaxed)));
}

// Memory, so that a soak can tell what grows when RSS does.
void Metrics::SampleHeap() {
  const HeapStats sample = ReadHeapStats();  // outside the lock: it is slow
  MutexLock lock(heap_mu_);
  heap_ = sample;
  ++heap_samples_;
}

void Metrics::RenderHeap(std::string& out) const {
  HeapStats heap;
  std::uint64_t samples = 0;
  {
    MutexLock lock(heap_mu_);
    heap = heap_;
    samples = heap_samples_;
  }
  if (!heap.available) return;
  auto bytes = [](std::uint64_t v) { return static_cast<double>(v); };
  Gauge(out, "presenced_malloc_arena_bytes",
        "Bytes the C allocator holds in its arenas (in use + free; "
        "mallinfo2 arena).",
        bytes(heap.arena_bytes));
  Gauge(out, "presenced_malloc_in_use_bytes",
        "Bytes of arena memory allocated by the program (mallinfo2 "
        "uordblks).",
        bytes(heap.in_use_bytes));
  Gauge(out, "presenced_malloc_free_bytes",
        "Bytes of arena memory freed but kept by the allocator (mallinfo2 "
        "fordblks).",
        bytes(heap.free_bytes));
  Gauge(out, "presenced_malloc_releasable_bytes",
        "Free bytes at the top of the main arena that trimming would "
        "return (mallinfo2 keepcost).",
        bytes(heap.releasable_bytes));
  Gauge(out, "presenced_malloc_mmap_bytes",
        "Bytes in blocks the allocator mmapped on their own (mallinfo2 "
        "hblkhd).",
        bytes(heap.mmap_bytes));
  Gauge(out, "presenced_malloc_arenas", "Arenas of the C allocator.",
        bytes(heap.arenas));
  Counter(out, "presenced_malloc_samples_total",
          "Times the flush thread read the figures above (a scrape shows "
          "the last reading).",
          samples);
  Counter(out, "presenced_malloc_trims_total",
          "Times free heap pages were given back (at start, and when RSS "
          "grew since it last settled).",
          heap_trims_.load(kRelaxed));
  Counter(out, "presenced_malloc_trim_checks_total",
          "Times the flush thread looked whether to trim "
          "(every --malloc-trim-seconds).",
          heap_trim_checks_.load(kRelaxed));
  CounterSeconds(out, "presenced_malloc_trim_seconds_total",
                 "Time spent giving them back.", Seconds(heap_trim_ns_));
}

void Metrics::RenderStoreMemory(std::string& out) const {
  if (!store_memory_) return;
  const StoreMemory m = store_memory_();
  Gauge(out, "presenced_sqlite_memory_used_bytes",
        "Bytes SQLite holds in this process (sqlite3_status64 MEMORY_USED).",
        static_cast<double>(m.memory_used_bytes));
  Gauge(out, "presenced_sqlite_memory_highwater_bytes",
        "Most bytes SQLite has held at once since start.",
        static_cast<double>(m.memory_highwater_bytes));
  Gauge(out, "presenced_sqlite_page_cache_bytes",
        "Bytes in the store connection's page cache after its last "
        "transaction (DBSTATUS_CACHE_USED).",
        static_cast<double>(m.page_cache_bytes));
  Gauge(out, "presenced_sqlite_page_cache_limit_bytes",
        "The most the store connection's page cache may hold (PRAGMA "
        "cache_size).",
        static_cast<double>(m.page_cache_limit_bytes));
  Counter(out, "presenced_sqlite_pages_read_total",
          "Pages the store connection read from its files because its page "
          "cache lacked them (DBSTATUS_CACHE_MISS).",
          static_cast<std::uint64_t>(m.pages_read));
  Counter(out, "presenced_sqlite_pages_written_total",
          "Pages the store connection wrote to its WAL, spills included "
          "(DBSTATUS_CACHE_WRITE; checkpoints not counted).",
          static_cast<std::uint64_t>(m.pages_written));
  Gauge(out, "presenced_sqlite_log_rows",
        "Presence rows in the log: not merged into the tables yet, or "
        "merged by a round still under way.",
        static_cast<double>(m.log_rows));
  Counter(out, "presenced_sqlite_log_merges_total",
          "Merge transactions of the presence log into the tables (a "
          "slice of a round each).",
          static_cast<std::uint64_t>(m.log_merges));
  Counter(out, "presenced_sqlite_log_merged_rows_total",
          "Log rows those merges applied.",
          static_cast<std::uint64_t>(m.log_merged_rows));
  CounterSeconds(out, "presenced_sqlite_log_merge_seconds_total",
                 "Time those merges took (part of the flushes' time).",
                 m.log_merge_seconds);
  Counter(out, "presenced_sqlite_log_merge_failures_total",
          "Merges of the presence log that failed and were rolled back: "
          "their rows stay in the log, the next flush tries again.",
          static_cast<std::uint64_t>(m.log_merge_failures));
}

std::string Metrics::Render(const PresenceService* service,
                            const EventHub* hub) const {
  std::string out;
  out.reserve(16 * 1024);
  RenderRequests(out);
  RenderLatency(out);
  RenderLoopLag(out);
  RenderCounters(out);
  if (hub != nullptr) RenderHub(out, *hub);
  if (service != nullptr) {
    Gauge(out, "presenced_store_failed",
          "1 once a store write failed (sticky until restart).",
          service->failed() ? 1 : 0);
  }
  RenderHeap(out);
  RenderStoreMemory(out);
  RenderRateLimiters(out);
  return out;
}

void Metrics::RenderRateLimiters(std::string& out) const {
  if (!limiters_) return;
  const std::vector<LimiterUsage> all = limiters_();
  struct Figure {
    const char* name;
    const char* help;
    std::size_t LimiterUsage::*field;
  };
  static constexpr Figure kFigures[] = {
      {"presenced_rate_limiter_users",
       "Users the rate limiter holds request times for (a user's times are "
       "forgotten within two windows of their last request).",
       &LimiterUsage::users},
      {"presenced_rate_limiter_heap_logs",
       "Of them, users with more than two requests in the window, whose "
       "times are in a ring as large as the limit.",
       &LimiterUsage::heap_logs},
      {"presenced_rate_limiter_bytes",
       "Memory of the rate limiter's tables and rings, approximately.",
       &LimiterUsage::bytes},
  };
  for (const Figure& f : kFigures) {
    Line(out, "# HELP %s %s\n# TYPE %s gauge\n", f.name, f.help, f.name);
    for (const LimiterUsage& l : all) {
      Line(out, "%s{limiter=\"%s\"} %llu\n", f.name, l.limiter,
           static_cast<unsigned long long>(l.*(f.field)));
    }
  }
}

}  // namespace presence::api
