#include "util/mutex.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "util/thread_annotations.h"

namespace presence {
namespace {

// Whether another thread can take the lock right now (it gives it back at
// once). Asked from the calling thread, TryLock on a lock it holds would be
// undefined behaviour.
template <typename F>
bool OnOtherThread(F f) {
  bool result = false;
  std::thread t([&] { result = f(); });
  t.join();
  return result;
}
bool CanLock(Mutex& mu) {
  return OnOtherThread([&mu] {
    if (!mu.TryLock()) return false;
    mu.Unlock();
    return true;
  });
}
bool CanLock(SharedMutex& mu) {
  return OnOtherThread([&mu] {
    if (!mu.TryLock()) return false;
    mu.Unlock();
    return true;
  });
}
bool CanLockShared(SharedMutex& mu) {
  return OnOtherThread([&mu] {
    if (!mu.TryLockShared()) return false;
    mu.UnlockShared();
    return true;
  });
}

struct Counter {
  Mutex mu;
  long value GUARDED_BY(mu) = 0;
};

TEST(MutexTest, LockExcludesOtherThreads) {
  Counter c;
  constexpr int kThreads = 4;
  constexpr int kIncrements = 20000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&c] {
      for (int j = 0; j < kIncrements; ++j) {
        MutexLock lock(c.mu);
        // A read and a write apart: lost updates if the lock let two in.
        const long v = c.value;
        c.value = v + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  MutexLock lock(c.mu);
  EXPECT_EQ(c.value, long{kThreads} * kIncrements);
}

TEST(MutexTest, TryLockFailsWhileHeldAndSucceedsOnceReleased) {
  Mutex mu;
  {
    MutexLock lock(mu);
    EXPECT_FALSE(CanLock(mu));
  }
  EXPECT_TRUE(CanLock(mu));
}

TEST(MutexTest, ExplicitLockAndUnlock) {
  Mutex mu;
  mu.Lock();
  mu.AssertHeld();
  EXPECT_FALSE(CanLock(mu));
  mu.Unlock();
  EXPECT_TRUE(CanLock(mu));
  if (mu.TryLock()) {
    EXPECT_FALSE(CanLock(mu));
    mu.Unlock();
  } else {
    ADD_FAILURE() << "TryLock failed on a free mutex";
  }
}

TEST(SharedMutexTest, ReadersShareTheLockAndKeepWritersOut) {
  SharedMutex mu;
  {
    ReaderLock lock(mu);
    EXPECT_TRUE(CanLockShared(mu));
    EXPECT_FALSE(CanLock(mu));
  }
  EXPECT_TRUE(CanLock(mu));
}

TEST(SharedMutexTest, WriterKeepsReadersAndWritersOut) {
  SharedMutex mu;
  {
    WriterLock lock(mu);
    EXPECT_FALSE(CanLockShared(mu));
    EXPECT_FALSE(CanLock(mu));
  }
  EXPECT_TRUE(CanLockShared(mu));
  EXPECT_TRUE(CanLock(mu));
}

struct Flag {
  Mutex mu;
  CondVar cv;
  bool set GUARDED_BY(mu) = false;
  int wakeups GUARDED_BY(mu) = 0;
};

TEST(CondVarTest, WaitReturnsOnceThePredicateHolds) {
  Flag f;
  std::thread setter([&f] {
    MutexLock lock(f.mu);
    f.set = true;
    f.cv.NotifyAll();
  });
  {
    MutexLock lock(f.mu);
    f.cv.Wait(f.mu, [&f]() REQUIRES(f.mu) { return f.set; });
    EXPECT_TRUE(f.set);
  }
  setter.join();
}

TEST(CondVarTest, WaitGivesTheLockUpWhileBlocked) {
  // The setter can only get in while the waiter is blocked in Wait.
  Flag f;
  MutexLock lock(f.mu);
  std::thread setter([&f] {
    MutexLock lock(f.mu);
    f.set = true;
    f.cv.NotifyOne();
  });
  while (!f.set) f.cv.Wait(f.mu);
  EXPECT_TRUE(f.set);
  setter.join();
}

TEST(CondVarTest, WaitForReturnsTrueWhenThePredicateHoldsInTime) {
  Flag f;
  std::thread setter([&f] {
    MutexLock lock(f.mu);
    f.set = true;
    f.cv.NotifyAll();
  });
  {
    MutexLock lock(f.mu);
    EXPECT_TRUE(f.cv.WaitFor(f.mu, std::chrono::minutes(5),
                             [&f]() REQUIRES(f.mu) { return f.set; }));
  }
  setter.join();
}

TEST(CondVarTest, WaitForTimesOutWithThePredicateFalse) {
  Flag f;
  MutexLock lock(f.mu);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(
      f.cv.WaitFor(f.mu, std::chrono::milliseconds(20), [&f]() REQUIRES(f.mu) {
        ++f.wakeups;
        return f.set;
      }));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(20));
  // Checked at least before waiting and once at the deadline.
  EXPECT_GE(f.wakeups, 2);
  // Still held: another thread cannot take it.
  EXPECT_FALSE(CanLock(f.mu));
}

TEST(CondVarTest, WaitForDoesNotBlockWhenThePredicateAlreadyHolds) {
  Flag f;
  MutexLock lock(f.mu);
  f.set = true;
  EXPECT_TRUE(f.cv.WaitFor(f.mu, std::chrono::hours(1),
                           [&f]() REQUIRES(f.mu) { return f.set; }));
}

}  // namespace
}  // namespace presence
