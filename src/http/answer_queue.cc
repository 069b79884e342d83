#include "http/answer_queue.h"

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/context_as.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <utility>

namespace presence::http {

AnswerQueue& AnswerQueue::Of(const boost::asio::any_io_executor& executor) {
  return boost::asio::use_service<AnswerQueue>(boost::asio::query(
      executor,
      boost::asio::execution::context_as<boost::asio::execution_context&>));
}

void AnswerQueue::Add(std::shared_ptr<Item> item) {
  boost::asio::any_io_executor start;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    if (!posted_) {
      posted_ = true;
      start = item->executor();
    }
    items_.push_back(std::move(item));
  }
  if (start) boost::asio::post(start, [this] { RunSlice(); });
}

std::size_t AnswerQueue::waiting() const {
  MutexLock lock(mu_);
  return items_.size();
}

void AnswerQueue::RunSlice() {
  std::array<std::shared_ptr<Item>, kSlice> slice;
  std::size_t n = 0;
  boost::asio::any_io_executor next;
  {
    MutexLock lock(mu_);
    while (n < kSlice && !items_.empty()) {
      slice[n++] = std::move(items_.front());
      items_.pop_front();
    }
    if (items_.empty()) {
      posted_ = false;
    } else {
      next = items_.front()->executor();
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    boost::asio::any_io_executor ex = slice[i]->executor();
    boost::asio::dispatch(ex,
                          [item = std::move(slice[i])] { item->AnswerNow(); });
  }
  // Behind what became ready meanwhile: requests read during this slice
  // run before the next one.
  if (next) boost::asio::post(next, [this] { RunSlice(); });
}

void AnswerQueue::shutdown() {
  std::deque<std::shared_ptr<Item>> items;
  {
    MutexLock lock(mu_);
    shut_down_ = true;
    items.swap(items_);
  }
  // Destroyed here, outside the lock: the sessions' sockets close while
  // their context's other services still exist.
}

}  // namespace presence::http
