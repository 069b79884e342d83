#include "util/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

namespace presence {
namespace {

TEST(WorkerPoolTest, RunsTasksOffTheCallingThread) {
  WorkerPool pool(2, 16);
  std::promise<bool> on_worker;
  ASSERT_TRUE(pool.Post([&] { on_worker.set_value(pool.OnWorkerThread()); }));
  auto f = on_worker.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_FALSE(pool.OnWorkerThread());
}

TEST(WorkerPoolTest, RefusesTasksBeyondItsQueue) {
  WorkerPool pool(1, 2);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  // The only thread is held by the first task; two more fill the queue.
  ASSERT_TRUE(pool.Post([&, gate] {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool.Post([&] { ++ran; }));
  EXPECT_TRUE(pool.Post([&] { ++ran; }));
  EXPECT_FALSE(pool.Post([&] { ++ran; }));
  EXPECT_EQ(pool.queued(), 2u);
  release.set_value();
  pool.Stop();  // lets the running task end; may drop the queued ones
  EXPECT_LE(ran.load(), 2);
  EXPECT_FALSE(pool.Post([] {}));
}

}  // namespace
}  // namespace presence
