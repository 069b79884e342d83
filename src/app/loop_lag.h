// LoopLag: how long a request that became readable waits before its I/O
// thread can read it, and why (issue #17 item 7, "pings first under load").
//
// Each I/O thread's context runs a timer every kPeriod; when it fires, how
// late it is (now minus the time it was due) goes to Metrics::RecordLoopLag
// (/metrics: presenced_io_loop_lag_seconds). A timer is seen by the same
// epoll turn that sees a socket become readable, and its handler waits
// behind the same work, so its lateness is what a ping read at that moment
// waits for: the handlers ahead of it in that turn (answers, re-polls,
// wake-ups) and any time the thread waited for a core.
//
// Which of the two: every kTimesEvery ticks the thread reads its own
// schedstat (/proc/thread-self/schedstat: time on a core, time runnable
// and waiting for one) and adds the deltas to Metrics::RecordIoThreadTimes
// (presenced_io_thread_cpu_seconds_total, ..._cpu_wait_seconds_total).
// Where the kernel does not report it, those lines are absent. About 100
// wake-ups and one small read a second per thread: nothing measurable.
//
// Thread safety: Watch before the contexts run; each timer, and its
// figures, belong to its own context's thread. Destroy before the contexts
// (their timers are cancelled).
#ifndef PRESENCE_APP_LOOP_LAG_H_
#define PRESENCE_APP_LOOP_LAG_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "api/metrics.h"

namespace presence::app {

class LoopLag {
 public:
  static constexpr std::chrono::milliseconds kPeriod{10};
  static constexpr int kTimesEvery = 100;  // ticks: about a second

  explicit LoopLag(api::Metrics* metrics) : metrics_(metrics) {}
  LoopLag(const LoopLag&) = delete;
  LoopLag& operator=(const LoopLag&) = delete;

  // Starts a timer on `ctx`.
  void Watch(boost::asio::io_context& ctx);

  // The calling thread's time on a core and waiting for one, in ns since
  // it started (/proc/thread-self/schedstat); nullopt where unreported.
  struct ThreadTimes {
    std::uint64_t cpu_ns = 0;
    std::uint64_t wait_ns = 0;
  };
  static std::optional<ThreadTimes> ReadThreadTimes();

 private:
  struct Probe {
    explicit Probe(boost::asio::io_context& ctx) : timer(ctx) {}
    boost::asio::steady_timer timer;
    int ticks = 0;
    std::optional<ThreadTimes> last;  // on the probe's thread only
  };
  void Arm(Probe& probe);
  void SampleTimes(Probe& probe);

  api::Metrics* metrics_;
  std::vector<std::unique_ptr<Probe>> probes_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_LOOP_LAG_H_
