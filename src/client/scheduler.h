// Scheduler: the client's clock and timers, injected so that tests control
// time (ManualScheduler) while programs use the real one (AsioScheduler).
//
// All tasks run on the scheduler's single logical thread, the same one on
// which the Transport delivers its answers, so the client needs no locks.
//
// Thread safety: implementations are used from their own thread only.
#ifndef PRESENCE_CLIENT_SCHEDULER_H_
#define PRESENCE_CLIENT_SCHEDULER_H_

#include <cstdint>
#include <functional>

#include "util/clock.h"

namespace presence::client {

class Scheduler {
 public:
  using TimerId = std::uint64_t;
  using Task = std::function<void()>;

  virtual ~Scheduler() = default;

  // Wall-clock time, microseconds since the Unix epoch.
  virtual Micros Now() const = 0;

  // Runs `task` once, `delay` from now (a negative delay counts as 0), never
  // from inside this call. Ids are never 0 and never reused.
  virtual TimerId RunAfter(Micros delay, Task task) = 0;

  // The task will not run. Unknown or finished ids are ignored.
  virtual void Cancel(TimerId id) = 0;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_SCHEDULER_H_
