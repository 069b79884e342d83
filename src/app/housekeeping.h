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
// Thread safety: Start and Stop on the context's thread (or before it
// runs); the timers' handlers run there too. The status step's in-flight
// flag is atomic (it is cleared on a worker).
#ifndef PRESENCE_APP_HOUSEKEEPING_H_
#define PRESENCE_APP_HOUSEKEEPING_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
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
  void ScheduleTransitions();
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
