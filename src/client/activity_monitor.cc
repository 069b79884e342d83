#include "client/activity_monitor.h"

namespace presence::client {

ActivityMonitor::ActivityMonitor(const InputActivitySource* source,
                                 Micros idle_timeout)
    : source_(source), idle_timeout_(idle_timeout) {}

ActivityMonitor::Update ActivityMonitor::Poll(Micros now) {
  const auto last = source_->LastInputTime();
  // Strict, as jQuery-idle: exactly idle_timeout after the input is idle.
  const bool active = last && now - *last < idle_timeout_;
  Update u;
  u.active = active;
  u.resumed = polled_ && !active_ && active;
  active_ = active;
  polled_ = true;
  return u;
}

bool ActivityMonitor::HasNewInput() const {
  const auto last = source_->LastInputTime();
  if (!last) return false;
  return !delivered_ || *delivered_ < *last;
}

void ActivityMonitor::ReportDelivered(std::optional<Micros> mark) {
  if (!mark) return;
  if (!delivered_ || *delivered_ < *mark) delivered_ = mark;
}

}  // namespace presence::client
