#include "client/asio_scheduler.h"

#include <algorithm>
#include <chrono>

namespace presence::client {

AsioScheduler::AsioScheduler(boost::asio::any_io_executor executor)
    : executor_(std::move(executor)) {}

AsioScheduler::~AsioScheduler() {
  for (auto& [id, timer] : timers_->by_id) timer->cancel();
  timers_->by_id.clear();
}

Micros AsioScheduler::Now() const { return clock_.NowMicros(); }

Scheduler::TimerId AsioScheduler::RunAfter(Micros delay, Task task) {
  const TimerId id = next_id_++;
  auto timer = std::make_shared<boost::asio::steady_timer>(executor_);
  timer->expires_after(std::chrono::microseconds(std::max<Micros>(delay, 0)));
  timers_->by_id[id] = timer;
  // The handler owns the timer (it must outlive the wait) but only peeks at
  // the table: a destroyed scheduler or a cancelled id runs nothing.
  std::weak_ptr<Timers> weak = timers_;
  timer->async_wait([weak, id, timer, task = std::move(task)](
                        const boost::system::error_code& ec) {
    auto timers = weak.lock();
    if (!timers) return;
    auto it = timers->by_id.find(id);
    if (it == timers->by_id.end() || it->second != timer) return;
    timers->by_id.erase(it);
    if (ec) return;
    task();
  });
  return id;
}

void AsioScheduler::Cancel(TimerId id) {
  auto it = timers_->by_id.find(id);
  if (it == timers_->by_id.end()) return;
  it->second->cancel();
  timers_->by_id.erase(it);
}

}  // namespace presence::client
