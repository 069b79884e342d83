#include "app/flusher.h"

#include <pthread.h>

#include <algorithm>
#include <optional>

#include "app/log.h"
#include "app/loop_lag.h"
#include "util/heap_stats.h"

namespace presence::app {

namespace {
// A heap sample may take at most 1/200 of the flush thread's time.
constexpr int kSampleGapFactor = 200;
}  // namespace

Flusher::Flusher(PresenceService* service, std::chrono::milliseconds interval,
                 api::Metrics* metrics, std::chrono::seconds trim_interval)
    : service_(service),
      metrics_(metrics),
      interval_(interval),
      trim_interval_(trim_interval) {}

Flusher::~Flusher() { Stop(); }

void Flusher::Start() {
  // The heap figures /metrics shows are this thread's samples: the first
  // one before any scrape can come.
  if (metrics_ != nullptr) metrics_->SampleHeap();
  thread_ = std::thread([this] { Run(); });
}

void Flusher::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void Flusher::Run() {
  pthread_setname_np(pthread_self(), "presenced-flush");
  bool reported = false;
  // This thread's time on a core and waiting for one, read after each
  // turn (one small read a second) for /metrics.
  std::optional<LoopLag::ThreadTimes> times = LoopLag::ReadThreadTimes();
  auto last_trim = std::chrono::steady_clock::now();
  HeapTrimPolicy trim_policy;
  constexpr auto kHeapSampleEvery = std::chrono::seconds(10);
  // Start() took the first sample.
  auto next_sample = last_trim + kHeapSampleEvery;
  if (trim_interval_.count() > 0) {
    // Loading leaves the store snapshot's per-record strings and vectors
    // free among the realms' tables (about 60 MB at a million users, issue
    // #4): give their pages back now rather than a trim interval later.
    const auto start = std::chrono::steady_clock::now();
    if (TrimHeap() && metrics_ != nullptr) {
      metrics_->RecordHeapTrim(std::chrono::duration<double>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
    }
  }
  while (WaitInterval()) {
    const auto start = std::chrono::steady_clock::now();
    auto stats = service_->Flush();
    if (metrics_ != nullptr && (!stats || stats->rows > 0)) {
      metrics_->RecordFlush(stats ? stats->rows : 0,
                            std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - start)
                                .count(),
                            static_cast<bool>(stats));
    }
    if (!stats && !reported) {
      // Sticky: say it once, loudly; /healthz keeps saying it.
      Log("error", "store_failed", {{"reason", service_->failure()}});
      reported = true;
    }
    // In the soak (issue #6) the heap in use was flat while the arenas'
    // free bytes, and RSS with them, stepped up after bursts; glibc by
    // itself returns only the top of the main arena. Trimming gives back
    // the whole free pages among them: about 0.7 MiB (2% of RSS) there.
    // It cannot return free space that shares pages with live objects, so
    // it does not stop the steps (BENCHMARKS.md, "Soak"). Every interval
    // the thread looks; it trims only when RSS grew since it last settled
    // (HeapTrimPolicy: trimming at every look made RSS a sawtooth).
    const auto now = std::chrono::steady_clock::now();
    if (trim_interval_.count() > 0 && now - last_trim >= trim_interval_) {
      last_trim = now;
      if (metrics_ != nullptr) metrics_->RecordHeapTrimCheck();
      if (trim_policy.Due(ResidentBytes()) && TrimHeap() &&
          metrics_ != nullptr) {
        metrics_->RecordHeapTrim(std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - now)
                                     .count());
      }
    }
    // Here, not per scrape: reading the figures takes every arena's lock,
    // which no request should wait for, however often /metrics is read.
    // The walk's cost grows with the heap: with 10k parked polls it took
    // 10-20% of the server's CPU in a fan-out profile when done every
    // second, and about 95 ms a sample at a million users (a quarter of the
    // server's CPU in the million-person run), stalling the I/O threads'
    // allocations meanwhile (issue #17). So: at most every
    // kHeapSampleEvery, and the next sample waits at least 200 times the
    // last one's duration (at most 0.5% of the time in the walk).
    if (metrics_ != nullptr &&
        std::chrono::steady_clock::now() >= next_sample) {
      const auto begin = std::chrono::steady_clock::now();
      metrics_->SampleHeap();
      const auto took = std::chrono::steady_clock::now() - begin;
      next_sample = begin + std::max<std::chrono::steady_clock::duration>(
                                kHeapSampleEvery, kSampleGapFactor * took);
    }
    if (metrics_ != nullptr && times) {
      const std::optional<LoopLag::ThreadTimes> now_times =
          LoopLag::ReadThreadTimes();
      if (now_times && now_times->cpu_ns >= times->cpu_ns &&
          now_times->wait_ns >= times->wait_ns) {
        metrics_->RecordFlushThreadTimes(now_times->cpu_ns - times->cpu_ns,
                                         now_times->wait_ns - times->wait_ns);
      }
      times = now_times;
    }
  }
}

bool Flusher::WaitInterval() {
  MutexLock lock(mu_);
  return !cv_.WaitFor(mu_, interval_,
                      [this]() REQUIRES(mu_) { return stopping_; });
}

}  // namespace presence::app
