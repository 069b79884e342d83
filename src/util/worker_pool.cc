#include "util/worker_pool.h"

#include <algorithm>
#include <utility>

namespace presence {
namespace {

thread_local const WorkerPool* tls_pool = nullptr;

}  // namespace

WorkerPool::WorkerPool(std::size_t threads, std::size_t max_queued)
    : max_queued_(max_queued) {
  threads = std::max<std::size_t>(1, threads);
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Run(); });
  }
}

WorkerPool::~WorkerPool() { Stop(); }

bool WorkerPool::Post(std::function<void()> task) {
  {
    MutexLock lock(mu_);
    if (stopping_ || tasks_.size() >= max_queued_) return false;
    tasks_.push_back(std::move(task));
  }
  cv_.NotifyOne();
  return true;
}

void WorkerPool::Stop() {
  std::deque<std::function<void()>> dropped;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    dropped.swap(tasks_);
  }
  cv_.NotifyAll();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Destroyed here, outside the lock: a task may own what it resumes.
  dropped.clear();
}

std::size_t WorkerPool::queued() const {
  MutexLock lock(mu_);
  return tasks_.size();
}

bool WorkerPool::OnWorkerThread() const { return tls_pool == this; }

void WorkerPool::Run() {
  tls_pool = this;
  MutexLock lock(mu_);
  while (true) {
    if (tasks_.empty()) {
      if (stopping_) return;
      cv_.Wait(mu_);
      continue;
    }
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    mu_.Unlock();
    task();
    task = nullptr;  // what it owns is released outside the lock
    mu_.Lock();
  }
}

}  // namespace presence
