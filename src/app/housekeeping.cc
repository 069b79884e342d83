#include "app/housekeeping.h"

#include <algorithm>
#include <chrono>

#include "api/events_api.h"

namespace presence::app {

Housekeeping::Housekeeping(boost::asio::io_context& ioc, EventHub& hub,
                           const PresenceService& service,
                           unsigned queue_timeout_seconds)
    : hub_(hub),
      service_(service),
      queue_timeout_seconds_(queue_timeout_seconds),
      expiry_(ioc),
      transitions_(ioc) {}

void Housekeeping::Start() {
  ScheduleExpiry();
  ScheduleTransitions();
}

void Housekeeping::Stop() {
  expiry_.cancel();
  transitions_.cancel();
}

void Housekeeping::ScheduleExpiry() {
  expiry_.expires_after(std::chrono::seconds(
      std::max(1u, std::min(10u, queue_timeout_seconds_ / 4))));
  expiry_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    hub_.Expire(api::SteadyMicros());
    ScheduleExpiry();
  });
}

void Housekeeping::ScheduleTransitions(bool more) {
  if (more) {
    transitions_.expires_after(std::chrono::seconds(0));
  } else {
    transitions_.expires_after(std::chrono::seconds(1));
  }
  transitions_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    TickTransitionsSlice();
  });
}

void Housekeeping::TickTransitionsSlice() {
  const auto start = std::chrono::steady_clock::now();
  const Micros now = service_.Now();
  bool more = true;
  while (more) {
    hub_.TickTransitions(now, kTransitionStep);
    more = hub_.TransitionsDue(now);
    if (std::chrono::steady_clock::now() - start >= kTransitionSlice) break;
  }
  ScheduleTransitions(more);
}

}  // namespace presence::app
