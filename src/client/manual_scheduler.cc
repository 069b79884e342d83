#include "client/manual_scheduler.h"

#include <algorithm>

namespace presence::client {

Scheduler::TimerId ManualScheduler::RunAfter(Micros delay, Task task) {
  const TimerId id = next_id_++;
  const Micros due = now_ + std::max<Micros>(delay, 0);
  tasks_.emplace(std::make_pair(due, id), std::move(task));
  due_of_[id] = due;
  return id;
}

void ManualScheduler::Cancel(TimerId id) {
  auto it = due_of_.find(id);
  if (it == due_of_.end()) return;
  tasks_.erase({it->second, id});
  due_of_.erase(it);
}

void ManualScheduler::AdvanceBy(Micros delta) {
  const Micros target = now_ + std::max<Micros>(delta, 0);
  while (!tasks_.empty() && tasks_.begin()->first.first <= target) {
    auto node = tasks_.extract(tasks_.begin());
    due_of_.erase(node.key().second);
    now_ = std::max(now_, node.key().first);
    node.mapped()();
  }
  now_ = target;
}

std::optional<Micros> ManualScheduler::NextDue() const {
  if (tasks_.empty()) return std::nullopt;
  return tasks_.begin()->first.first;
}

}  // namespace presence::client
