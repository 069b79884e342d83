#include "app/flusher.h"

#include "app/log.h"
#include "util/heap_stats.h"

namespace presence::app {

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
  bool reported = false;
  auto last_trim = std::chrono::steady_clock::now();
  auto last_sample = last_trim;  // Start() took the first sample
  constexpr auto kHeapSampleEvery = std::chrono::seconds(10);
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
    // it does not stop the steps (BENCHMARKS.md, "Soak").
    const auto now = std::chrono::steady_clock::now();
    if (trim_interval_.count() > 0 && now - last_trim >= trim_interval_) {
      last_trim = now;
      if (TrimHeap() && metrics_ != nullptr) {
        metrics_->RecordHeapTrim(std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - now)
                                     .count());
      }
    }
    // Here, not per scrape: reading the figures takes every arena's lock,
    // which no request should wait for, however often /metrics is read.
    // And at most every kHeapSampleEvery: mallinfo2 and malloc_info walk
    // every free chunk under that lock, which with 10k parked polls took
    // 10-20% of the server's CPU in a fan-out profile and stalled every
    // allocation of the I/O threads meanwhile (issue #17).
    if (metrics_ != nullptr && now - last_sample >= kHeapSampleEvery) {
      last_sample = now;
      metrics_->SampleHeap();
    }
  }
}

bool Flusher::WaitInterval() {
  MutexLock lock(mu_);
  return !cv_.WaitFor(mu_, interval_,
                      [this]() REQUIRES(mu_) { return stopping_; });
}

}  // namespace presence::app
