// Housekeeping: the server's periodic work on the main I/O context: frees
// event queues nobody polls any more (real time), and announces idle and
// offline transitions once a second (presence_transitions, presence time).
//
// Thread safety: Start and Stop on the context's thread (or before it
// runs); the timers' handlers run there too.
#ifndef PRESENCE_APP_HOUSEKEEPING_H_
#define PRESENCE_APP_HOUSEKEEPING_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

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
  void ScheduleTransitions();

  EventHub& hub_;
  const PresenceService& service_;
  const unsigned queue_timeout_seconds_;
  boost::asio::steady_timer expiry_;
  boost::asio::steady_timer transitions_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_HOUSEKEEPING_H_
