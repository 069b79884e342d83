// Mutex, SharedMutex, their scoped locks and CondVar: std::mutex,
// std::shared_mutex and std::condition_variable with Clang's thread-safety
// annotations (util/thread_annotations.h), which libstdc++'s types lack.
//
// Use them for every lock in src/ and tools/, and mark what each lock
// protects:
//
//   mutable Mutex mu_;                      // guards queues_ and stats_
//   std::vector<Queue> queues_ GUARDED_BY(mu_);
//   void DropLocked(Queue& q) REQUIRES(mu_);
//
//   MutexLock lock(mu_);                    // held until the end of scope
//
// The `clang-tsa` preset then fails the build when guarded data is touched
// without its lock, a REQUIRES function is called without it, or a lock is
// taken twice. Under g++ the annotations vanish and every method here is an
// inline call of the std type's: no size or time overhead over using the std
// types directly.
//
// Thread safety: these are the locks.
#ifndef PRESENCE_UTIL_MUTEX_H_
#define PRESENCE_UTIL_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "util/thread_annotations.h"

namespace presence {

// An exclusive, non-recursive lock.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // True if the lock was free and is now held by the caller.
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // Tells the analysis the caller holds the lock where it cannot see it
  // (e.g. a callback run under it). Not checked at run time.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// A reader/writer lock: many readers (LockShared) or one writer (Lock).
class CAPABILITY("mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }
  bool TryLockShared() TRY_ACQUIRE_SHARED(true) {
    return mu_.try_lock_shared();
  }

  // Not checked at run time (see Mutex::AssertHeld).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}
  void AssertReaderHeld() const ASSERT_SHARED_CAPABILITY(this) {}

 private:
  std::shared_mutex mu_;
};

// Holds `mu` from construction to the end of the scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// Holds `mu` exclusively to the end of the scope.
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~WriterLock() RELEASE() { mu_.Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mu_;
};

// Holds `mu` shared to the end of the scope.
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ACQUIRE_SHARED(mu) : mu_(mu) {
    mu_.LockShared();
  }
  // RELEASE(), not RELEASE_SHARED(): a scoped capability's destructor
  // releases whatever it holds, and clang-14 reports the shared form there
  // as a mismatch.
  ~ReaderLock() RELEASE() { mu_.UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mu_;
};

// A condition variable whose waits take a held Mutex. Each wait gives the
// lock up while blocked and holds it again when it returns, so to the
// analysis the caller holds it throughout. A predicate that reads guarded
// data is a lambda marked REQUIRES(mu), since it runs with the lock held:
//
//   cv_.Wait(mu_, [this]() REQUIRES(mu_) { return stopping_; });
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void NotifyOne() noexcept { cv_.notify_one(); }
  void NotifyAll() noexcept { cv_.notify_all(); }

  // Blocks until notified (or woken spuriously).
  void Wait(Mutex& mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held, and still owned by the caller's lock
  }

  // Blocks until `pred()` is true. (The analysis cannot tie the predicate's
  // REQUIRES(mu_) to the parameter `mu`, so it skips the body here; callers
  // are still checked for holding `mu`.)
  template <typename Predicate>
  void Wait(Mutex& mu, Predicate pred) REQUIRES(mu) NO_THREAD_SAFETY_ANALYSIS {
    while (!pred()) Wait(mu);
  }

  // Blocks until `pred()` is true or `timeout` has passed; returns pred().
  // (Body skipped by the analysis, as for Wait above.)
  template <typename Rep, typename Period, typename Predicate>
  bool WaitFor(Mutex& mu, std::chrono::duration<Rep, Period> timeout,
               Predicate pred) REQUIRES(mu) NO_THREAD_SAFETY_ANALYSIS {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    bool result = true;
    while (!pred()) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        result = pred();
        break;
      }
    }
    lock.release();
    return result;
  }

 private:
  std::condition_variable cv_;
};

static_assert(sizeof(Mutex) == sizeof(std::mutex));
static_assert(sizeof(SharedMutex) == sizeof(std::shared_mutex));
static_assert(sizeof(CondVar) == sizeof(std::condition_variable));

}  // namespace presence

#endif  // PRESENCE_UTIL_MUTEX_H_
