// Housekeeping: the server's periodic work on the main I/O context: frees
// event queues nobody polls any more (real time), and announces idle and
// offline transitions once a second (presence_transitions, presence time).
//
// The context is an I/O thread's: its clients' requests wait while a
// handler here runs. So the transition tick works in slices: steps of
// kTransitionStep deadlines until kTransitionSlice has passed, then, if
// more are due, the next slice on a zero-delay timer, which runs behind the
// requests that became ready meanwhile. A million users going offline at
// once (every deadline due in the same second) then costs its clients at
// most a slice of waiting per turn instead of one handler of a minute.
//
// Thread safety: Start and Stop on the context's thread (or before it
// runs); the timers' handlers run there too.
#ifndef PRESENCE_APP_HOUSEKEEPING_H_
#define PRESENCE_APP_HOUSEKEEPING_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>

#include "core/event_hub.h"
#include "core/presence_service.h"

namespace presence::app {

class Housekeeping {
 public:
  // Everything must outlive the object.
  Housekeeping(boost::asio::io_context& ioc, EventHub& hub,
               const PresenceService& service, unsigned queue_timeout_seconds);
  void Start();
  void Stop();

 private:
  void ScheduleExpiry();
  // The next transition tick, in 1 s (`more` false) or behind the ready
  // handlers (`more`: deadlines are still due).
  void ScheduleTransitions(bool more = false);
  void TickTransitionsSlice();

  // Deadlines per TickTransitions call, and the time a slice may take.
  static constexpr std::size_t kTransitionStep = 16;
  static constexpr std::chrono::microseconds kTransitionSlice{1000};

  EventHub& hub_;
  const PresenceService& service_;
  const unsigned queue_timeout_seconds_;
  boost::asio::steady_timer expiry_;
  boost::asio::steady_timer transitions_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_HOUSEKEEPING_H_
