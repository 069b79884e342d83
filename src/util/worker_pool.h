// WorkerPool: a few threads that run tasks which may wait (on the shared
// store, in scale-out mode), so that an I/O thread never does: it hands the
// task over and goes on serving its other connections (api/offload.h).
//
// The queue is bounded: a task beyond `max_queued` is refused (Post returns
// false) rather than held, so a stalled store cannot make the pool grow
// memory without limit; the caller answers its request 503.
//
// Thread safety: Post from any thread; tasks run on the pool's threads, any
// number at once (up to the thread count). mu_ guards the queue.
#ifndef PRESENCE_UTIL_WORKER_POOL_H_
#define PRESENCE_UTIL_WORKER_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class WorkerPool {
 public:
  // Starts `threads` (>= 1) threads.
  WorkerPool(std::size_t threads, std::size_t max_queued);
  // Stop().
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; false (and `task` dropped) if the queue is full or the
  // pool stopped.
  bool Post(std::function<void()> task) EXCLUDES(mu_);
  // Lets the tasks running now finish, drops the queued ones, joins the
  // threads. Later Posts are refused.
  void Stop() EXCLUDES(mu_);

  // Tasks queued and not started.
  std::size_t queued() const EXCLUDES(mu_);
  // Whether the calling thread is one of this pool's (for assertions).
  bool OnWorkerThread() const;

 private:
  void Run() EXCLUDES(mu_);

  const std::size_t max_queued_;
  mutable Mutex mu_;
  CondVar cv_;  // with mu_: a task was queued, or stopping_
  std::deque<std::function<void()>> tasks_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace presence

#endif  // PRESENCE_UTIL_WORKER_POOL_H_
