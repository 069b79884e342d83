#include "http/deadline_list.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/context_as.hpp>
#include <boost/asio/query.hpp>
#include <utility>

namespace presence::http {

DeadlineList::Lane& DeadlineList::LaneFor(Clock::duration after) {
  for (auto& lane : lanes_) {
    if (lane->after == after) return *lane;
  }
  lanes_.push_back(std::make_unique<Lane>());
  lanes_.back()->after = after;
  return *lanes_.back();
}

bool DeadlineList::Set(Entry& e, Clock::duration after, Clock::time_point now) {
  Clear(e);
  Lane& lane = LaneFor(after);
  e.lane_ = &lane;
  e.due_ = now + after;
  e.prev_ = lane.tail;
  e.next_ = nullptr;
  if (lane.tail != nullptr) {
    lane.tail->next_ = &e;
  } else {
    lane.head = &e;
  }
  lane.tail = &e;
  ++size_;
  return lane.head == &e;
}

void DeadlineList::Clear(Entry& e) {
  Lane* lane = e.lane_;
  if (lane == nullptr) return;
  if (e.prev_ != nullptr) {
    e.prev_->next_ = e.next_;
  } else {
    lane->head = e.next_;
  }
  if (e.next_ != nullptr) {
    e.next_->prev_ = e.prev_;
  } else {
    lane->tail = e.prev_;
  }
  e.prev_ = e.next_ = nullptr;
  e.lane_ = nullptr;
  --size_;
}

DeadlineList::Clock::time_point DeadlineList::Earliest() const {
  Clock::time_point earliest = Clock::time_point::max();
  for (const auto& lane : lanes_) {
    if (lane->head != nullptr && lane->head->due_ < earliest) {
      earliest = lane->head->due_;
    }
  }
  return earliest;
}

void DeadlineList::PopDue(Clock::time_point now, std::vector<Entry*>& due) {
  for (auto& lane : lanes_) {
    while (lane->head != nullptr && lane->head->due_ <= now) {
      Entry* e = lane->head;
      Clear(*e);
      due.push_back(e);
    }
  }
}

SessionDeadlines::SessionDeadlines(boost::asio::execution_context& context)
    : boost::asio::execution_context::service(context) {}

SessionDeadlines& SessionDeadlines::Of(
    const boost::asio::any_io_executor& executor) {
  return boost::asio::use_service<SessionDeadlines>(boost::asio::query(
      executor,
      boost::asio::execution::context_as<boost::asio::execution_context&>));
}

DeadlineList::Clock::time_point SessionDeadlines::Set(
    Slot& slot, DeadlineList::Clock::duration after,
    const boost::asio::any_io_executor& ex) {
  MutexLock lock(mu_);
  // Now is read under the lock: a lane's deadlines stay in order whatever
  // thread sets them.
  const auto now = DeadlineList::Clock::now();
  if (shut_down_) return now;
  list_.Set(slot, after, now);
  if (!timer_) timer_.emplace(ex);
  if (slot.due() < armed_at_) ArmLocked(slot.due());
  return now;
}

void SessionDeadlines::Clear(Slot& slot) {
  MutexLock lock(mu_);
  // The timer stays armed: when it fires early it finds nothing due and
  // waits for the next earliest.
  list_.Clear(slot);
}

std::size_t SessionDeadlines::size() const {
  MutexLock lock(mu_);
  return list_.size();
}

void SessionDeadlines::ArmLocked(DeadlineList::Clock::time_point at) {
  armed_at_ = at;
  // Moving the expiry cancels the pending wait (its handler sees
  // operation_aborted and does nothing).
  timer_->expires_at(at);
  timer_->async_wait([this](boost::system::error_code ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    OnTimer();
  });
}

void SessionDeadlines::OnTimer() {
  std::vector<std::shared_ptr<Owner>> passed;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    armed_at_ = DeadlineList::Clock::time_point::max();
    std::vector<DeadlineList::Entry*> due;
    list_.PopDue(DeadlineList::Clock::now(), due);
    passed.reserve(due.size());
    for (DeadlineList::Entry* e : due) {
      // Under the lock: an owner being destroyed clears its slot under it
      // too, so it is either still whole here (and kept so) or gives null.
      if (auto owner = static_cast<Slot*>(e)->owner->LockOwner()) {
        passed.push_back(std::move(owner));
      }
    }
    const auto next = list_.Earliest();
    if (next != DeadlineList::Clock::time_point::max()) ArmLocked(next);
  }
  for (auto& owner : passed) {
    boost::asio::any_io_executor ex = owner->executor();
    boost::asio::dispatch(ex, [o = std::move(owner)] { o->DeadlinePassed(); });
  }
}

void SessionDeadlines::shutdown() {
  MutexLock lock(mu_);
  shut_down_ = true;
  timer_.reset();
}

}  // namespace presence::http
