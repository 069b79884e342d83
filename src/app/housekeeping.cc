#include "app/housekeeping.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "api/events_api.h"

namespace presence::app {

Housekeeping::Housekeeping(boost::asio::io_context& ioc, EventHub& hub,
                           PresenceService& service,
                           unsigned queue_timeout_seconds, Offload offload)
    : hub_(hub),
      service_(service),
      queue_timeout_seconds_(queue_timeout_seconds),
      offload_(std::move(offload)),
      expiry_(ioc),
      transitions_(ioc),
      status_ends_(ioc) {}

void Housekeeping::Start() {
  ScheduleExpiry();
  ScheduleTransitions();
  ScheduleStatusEnds();
}

void Housekeeping::Stop() {
  expiry_.cancel();
  transitions_.cancel();
  status_ends_.cancel();
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

void Housekeeping::ScheduleStatusEnds() {
  status_ends_.expires_after(std::chrono::seconds(1));
  status_ends_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    ExpireStatuses();
    ScheduleStatusEnds();
  });
}

void Housekeeping::ExpireStatuses() {
  if (!offload_) {
    // Embedded: the step runs here, and nothing is shared with a worker.
    // (No shared_ptr is copied on this path either: UBSan's vptr check of
    // a type it has not seen yet probes the memory through a pipe, and
    // with every descriptor in use that probe fails and the check reports
    // a false "invalid vptr"; blackbox.test_exposure exhausts them.)
    (void)ExpireDueStatuses(hub_.status_deadlines(), service_);
    return;
  }
  // The previous step is still at it (a slow store): its ends are taken,
  // the next ones wait for the next tick.
  if (status_step_running_->exchange(true)) return;
  auto step = [&deadlines = hub_.status_deadlines(), &service = service_,
               running = status_step_running_] {
    (void)ExpireDueStatuses(deadlines, service);
    running->store(false);
  };
  if (!offload_(step)) {
    status_step_running_->store(false);  // refused (queue full): next tick
  }
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
