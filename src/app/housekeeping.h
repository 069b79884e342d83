// Housekeeping: the server's periodic work on the main I/O context: frees
// event queues nobody polls any more (real time), announces idle and
// offline transitions once a second (presence_transitions, presence time),
// and clears user statuses whose end came (issue #18's extensions, presence
// time), once a second.
//
// Clearing a status is a directory write: with an `offload` (scale-out, the
// store workers) it runs there, never on the I/O thread; without one
// (embedded) it runs in the timer's handler, as other embedded directory
// writes run on their I/O thread. At most one such step runs at a time.
//
// The context is an I/O thread's: its clients' requests wait while a
// handler here runs. So the transition tick works in slices: steps of
// kTransitionStep deadline until kTransitionSlice has passed, then, if
// more are due, the next slice on a zero-delay timer, which runs behind the
// requests that became ready meanwhile. A million users going offline at
// once (every deadline due in the same second) then costs its clients at
// most a slice of waiting per turn instead of one handler of a minute.
//
// Thread safety: Start and Stop on the context's thread (or before it
// runs); the timers' handlers run there too. The status step's in-flight
// flag is atomic (it is cleared on a worker).
#ifndef PRESENCE_APP_HOUSEKEEPING_H_
#define PRESENCE_APP_HOUSEKEEPING_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "core/event_hub.h"
#include "core/presence_service.h"

namespace presence::app {

class Housekeeping {
 public:
  // Runs `task` on a thread that may block; false if it was refused.
  using Offload = std::function<bool(std::function<void()>)>;

  // Everything must outlive the object (and the offload's tasks).
  Housekeeping(boost::asio::io_context& ioc, EventHub& hub,
               PresenceService& service, unsigned queue_timeout_seconds,
               Offload offload = {});
  void Start();
  void Stop();

 private:
  void ScheduleExpiry();
  // The next transition tick, in 1 s (`more` false) or behind the ready
  // handlers (`more`: deadlines are still due).
  void ScheduleTransitions(bool more = false);
  void TickTransitionsSlice();

  // Deadlines per TickTransitions call, and the time a slice may take. One
  // deadline a step: most are stale (the user wrote since) and cost well
  // under a microsecond, but one that announces a transition fans it out to
  // every watcher of the realm, 3-4 ms with 19,000 parked polls; with 16 a
  // step, the first step of a tick announced up to 16 of them at once and
  // held the I/O thread 60 ms at the median, up to 190 ms (issue #17: the
  // million run's slow pings came in the first 200 ms of each tick). A
  // slice now ends after the first fan-out that takes it past its time.
  static constexpr std::size_t kTransitionStep = 1;
  static constexpr std::chrono::microseconds kTransitionSlice{1000};
  void ScheduleStatusEnds();
  void ExpireStatuses();

  EventHub& hub_;
  PresenceService& service_;
  const unsigned queue_timeout_seconds_;
  const Offload offload_;
  boost::asio::steady_timer expiry_;
  boost::asio::steady_timer transitions_;
  boost::asio::steady_timer status_ends_;
  // Shared with a step still running on a worker after Stop.
  std::shared_ptr<std::atomic<bool>> status_step_running_ =
      std::make_shared<std::atomic<bool>>(false);
};

}  // namespace presence::app

#endif  // PRESENCE_APP_HOUSEKEEPING_H_
