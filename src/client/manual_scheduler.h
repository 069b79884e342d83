// ManualScheduler: a Scheduler whose time moves only when told to, for
// deterministic tests of everything that waits.
//
// Thread safety: none; tests drive it from one thread.
#ifndef PRESENCE_CLIENT_MANUAL_SCHEDULER_H_
#define PRESENCE_CLIENT_MANUAL_SCHEDULER_H_

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "client/scheduler.h"

namespace presence::client {

class ManualScheduler final : public Scheduler {
 public:
  explicit ManualScheduler(Micros start) : now_(start) {}

  Micros Now() const override { return now_; }
  TimerId RunAfter(Micros delay, Task task) override;
  void Cancel(TimerId id) override;

  // Moves time forward by `delta` (>= 0), running every task that falls due
  // on the way in order of due time (ties: in order of scheduling), each
  // with Now() equal to its due time. Tasks scheduled by those tasks run too
  // if they fall due within the window.
  void AdvanceBy(Micros delta);

  // Moves time forward by `delta` without running anything, as a suspended
  // machine sees it: the next RunDue() or AdvanceBy() runs the overdue
  // tasks late, with Now() after the jump.
  void Jump(Micros delta) { now_ += std::max<Micros>(delta, 0); }

  // Runs the tasks due now (delay 0 included) without moving time.
  void RunDue() { AdvanceBy(0); }

  // How many tasks wait, and when the next one is due.
  std::size_t pending() const { return tasks_.size(); }
  std::optional<Micros> NextDue() const;

 private:
  Micros now_;
  TimerId next_id_ = 1;
  // (due, id) -> task; ids grow, so ties run in scheduling order.
  std::map<std::pair<Micros, TimerId>, Task> tasks_;
  std::map<TimerId, Micros> due_of_;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_MANUAL_SCHEDULER_H_
