// Flusher: the group-commit thread. Every interval it commits the presence
// rows changed since the last flush in one store transaction. Every
// `trim_interval` (0: never) it also looks whether to give the heap's free
// pages back to the system (TrimHeap), and does when RSS grew since it
// last settled (HeapTrimPolicy): on this thread, so no I/O thread waits
// for it; and once as it starts, for what loading left free. It also samples
// the heap's figures for /metrics (Metrics::SampleHeap), so that a scrape reads
// a copy and never the allocator: at most every 10 s, and no more than 0.5% of
// the time when the heap is large enough to make the walk slow. After each turn
// it adds its own time on a core and waiting for one to /metrics
// (Metrics::RecordFlushThreadTimes), where the kernel reports them.
//
// The thread is named "presenced-flush" (top -H, ps -L, perf).
//
// Thread safety: Start/Stop from the owning thread; the loop runs on its own
// thread and calls only PresenceService::Flush (which is thread-safe). mu_
// guards stopping_, the one thing both threads touch (checked by the
// clang-tsa build).
#ifndef PRESENCE_APP_FLUSHER_H_
#define PRESENCE_APP_FLUSHER_H_

#include <chrono>
#include <thread>

#include "api/metrics.h"
#include "core/presence_service.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence::app {

class Flusher {
 public:
  // `metrics` may be null.
  Flusher(PresenceService* service, std::chrono::milliseconds interval,
          api::Metrics* metrics = nullptr,
          std::chrono::seconds trim_interval = std::chrono::seconds(0));
  ~Flusher();

  void Start();
  // Stops the loop (no final flush: the caller does that after the server
  // stopped taking requests).
  void Stop() EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(mu_);
  // Waits one interval; false if Stop was called meanwhile.
  bool WaitInterval() EXCLUDES(mu_);

  PresenceService* const service_;
  api::Metrics* const metrics_;
  const std::chrono::milliseconds interval_;
  const std::chrono::seconds trim_interval_;
  // Guards stopping_; cv_ signals its change.
  Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_FLUSHER_H_
