#include "http/answer_queue.h"

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/context_as.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <utility>

namespace presence::http {

AnswerQueue& AnswerQueue::Of(const boost::asio::any_io_executor& executor) {
  return boost::asio::use_service<AnswerQueue>(boost::asio::query(
      executor,
      boost::asio::execution::context_as<boost::asio::execution_context&>));
}

namespace {
thread_local AnswerBatch* current_batch = nullptr;
}  // namespace

AnswerBatch::AnswerBatch() {
  if (current_batch == nullptr) {
    current_batch = this;
    outermost_ = true;
  }
}

AnswerBatch::~AnswerBatch() {
  if (!outermost_) return;
  Flush();
  current_batch = nullptr;
}

AnswerBatch* AnswerBatch::Current() { return current_batch; }

void AnswerBatch::Collect(AnswerQueue* queue,
                          std::shared_ptr<AnswerQueue::Item> item) {
  auto g = std::find_if(groups_.begin(), groups_.end(),
                        [&](const Group& x) { return x.queue == queue; });
  if (g == groups_.end()) {
    groups_.push_back({queue, {}});
    g = groups_.end() - 1;
    g->items.reserve(kBatchFlush);
  }
  g->items.push_back(std::move(item));
  if (g->items.size() >= kBatchFlush) queue->AddMany(g->items);
}

void AnswerBatch::Flush() {
  for (Group& g : groups_) {
    if (!g.items.empty()) g.queue->AddMany(g.items);
  }
}

std::optional<AnswerQueue::Clock::time_point> AnswerQueue::HoldUntil(
    Clock::time_point last_run, Clock::time_point now, std::size_t backlog,
    Clock::duration interval) {
  if (interval <= Clock::duration::zero() || backlog <= kBacklog ||
      last_run == Clock::time_point{}) {
    return std::nullopt;
  }
  const Clock::time_point due = last_run + interval;
  if (due <= now) return std::nullopt;
  return due;
}

void AnswerQueue::Enqueue(std::shared_ptr<Item> item, Clock::time_point now,
                          boost::asio::any_io_executor& start,
                          boost::asio::any_io_executor& hold) {
  const Clock::time_point last_run{std::chrono::nanoseconds(
      item->last_run_ns_.load(std::memory_order_relaxed))};
  const std::optional<Clock::time_point> due = HoldUntil(
      last_run, now, items_.size() + held_.size(),
      std::chrono::microseconds(interval_us_.load(std::memory_order_relaxed)));
  if (due) {
    holds_.fetch_add(1, std::memory_order_relaxed);
    if (!holding_) {
      holding_ = true;
      hold = item->executor();
    }
    held_.push_back({*due, held_seq_++, std::move(item)});
    std::push_heap(held_.begin(), held_.end());
    return;
  }
  if (!posted_) {
    posted_ = true;
    start = item->executor();
  }
  items_.push_back({std::move(item), now});
}

void AnswerQueue::Add(std::shared_ptr<Item> item) {
  if (AnswerBatch* batch = current_batch) {
    return batch->Collect(this, std::move(item));
  }
  boost::asio::any_io_executor start, hold;
  {
    const Clock::time_point now = Clock::now();
    MutexLock lock(mu_);
    if (shut_down_) return;
    Enqueue(std::move(item), now, start, hold);
  }
  if (start) boost::asio::post(start, [this] { RunSlice(); });
  if (hold) boost::asio::post(hold, [this, hold] { ReleaseHeld(hold); });
}

void AnswerQueue::AddMany(std::vector<std::shared_ptr<Item>>& items) {
  if (items.empty()) return;
  boost::asio::any_io_executor start, hold;
  {
    const Clock::time_point now = Clock::now();
    MutexLock lock(mu_);
    if (!shut_down_) {
      for (auto& item : items) Enqueue(std::move(item), now, start, hold);
    }
  }
  // Outside the lock: after a shutdown the items (sessions) go here.
  items.clear();
  if (start) boost::asio::post(start, [this] { RunSlice(); });
  if (hold) boost::asio::post(hold, [this, hold] { ReleaseHeld(hold); });
}

void AnswerQueue::ReleaseHeld(boost::asio::any_io_executor ex) {
  const Clock::time_point now = Clock::now();
  boost::asio::any_io_executor start;
  Clock::time_point next;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    while (!held_.empty() && held_.front().due <= now) {
      std::pop_heap(held_.begin(), held_.end());
      items_.push_back({std::move(held_.back().item), now});
      held_.pop_back();
    }
    if (!posted_ && !items_.empty()) {
      posted_ = true;
      start = items_.front().item->executor();
    }
    if (held_.empty()) {
      holding_ = false;
    } else {
      // An item held after the timer was armed may be due before it.
      next = std::min(held_.front().due, now + kHoldTick);
    }
  }
  if (start) boost::asio::post(start, [this] { RunSlice(); });
  if (next == Clock::time_point{}) return;
  auto timer = std::make_shared<boost::asio::steady_timer>(ex);
  timer->expires_at(next);
  timer->async_wait([this, timer, ex](const boost::system::error_code& ec) {
    if (!ec) ReleaseHeld(ex);
  });
}

std::size_t AnswerQueue::held() const {
  MutexLock lock(mu_);
  return held_.size();
}

std::size_t AnswerQueue::waiting() const {
  MutexLock lock(mu_);
  return items_.size();
}

void AnswerQueue::RunSlice() {
  std::array<Queued, kSlice> slice;
  std::size_t n = 0;
  {
    MutexLock lock(mu_);
    while (n < kSlice && !items_.empty()) {
      slice[n++] = std::move(items_.front());
      items_.pop_front();
    }
  }
  const Clock::time_point start = Clock::now();
  const std::int64_t start_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          start.time_since_epoch())
          .count();
  std::size_t ran = 0;
  while (ran < n) {
    slice[ran].item->last_run_ns_.store(start_ns, std::memory_order_relaxed);
    boost::asio::any_io_executor ex = slice[ran].item->executor();
    boost::asio::dispatch(
        ex, [item = std::move(slice[ran].item)] { item->AnswerNow(); });
    ++ran;
    if (ran < n && Clock::now() - start >= kSliceTime) break;
  }
  const Clock::time_point end = Clock::now();
  boost::asio::any_io_executor next;
  bool rest = false;
  {
    MutexLock lock(mu_);
    // Not run in this slice's time: first in the next one, in order.
    for (std::size_t i = n; i > ran; --i) {
      items_.push_front(std::move(slice[i - 1]));
    }
    if (items_.empty()) {
      posted_ = false;
    } else {
      next = items_.front().item->executor();
      const std::chrono::microseconds wait(
          coalesce_wait_us_.load(std::memory_order_relaxed));
      const std::uint64_t requests = requests_.load(std::memory_order_relaxed);
      rest = wait.count() > 0 && items_.size() > kBacklog &&
             requests != requests_seen_ && end - items_.front().added < wait;
      requests_seen_ = requests;
    }
  }
  if (!next) return;
  if (rest) {
    // As long as the slice took: the requests get at least half of the
    // thread, and the waiting polls gather more events meanwhile.
    rests_.fetch_add(1, std::memory_order_relaxed);
    auto timer = std::make_shared<boost::asio::steady_timer>(next);
    timer->expires_after(
        std::max<Clock::duration>(end - start, std::chrono::microseconds(50)));
    timer->async_wait([this, timer](const boost::system::error_code& ec) {
      if (!ec) RunSlice();
    });
    return;
  }
  // Behind what became ready meanwhile: requests read during this slice
  // run before the next one.
  boost::asio::post(next, [this] { RunSlice(); });
}

void AnswerQueue::shutdown() {
  std::deque<Queued> items;
  std::vector<Held> held;
  {
    MutexLock lock(mu_);
    shut_down_ = true;
    items.swap(items_);
    held.swap(held_);
  }
  // Destroyed here, outside the lock: the sessions' sockets close while
  // their context's other services still exist.
}

}  // namespace presence::http
