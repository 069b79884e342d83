#include "http/answer_queue.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace presence::http {
namespace {

using namespace std::chrono_literals;

// An answer that records its turn, optionally spending `cost` of CPU.
class FakeAnswer : public AnswerQueue::Item {
 public:
  FakeAnswer(boost::asio::io_context& io, std::vector<int>& log, int id,
             std::chrono::microseconds cost = 0us)
      : io_(io), log_(log), id_(id), cost_(cost) {}
  void AnswerNow() override {
    const auto until = std::chrono::steady_clock::now() + cost_;
    while (std::chrono::steady_clock::now() < until) {
    }
    log_.push_back(id_);
  }
  boost::asio::any_io_executor executor() override {
    return io_.get_executor();
  }

 private:
  boost::asio::io_context& io_;
  std::vector<int>& log_;
  const int id_;
  const std::chrono::microseconds cost_;
};

std::vector<int> Iota(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

// Answers that carry hundreds of events cost more each: a slice stops once
// it has run kSliceTime, and the rest follow in order, none lost.
TEST(AnswerQueueTest, Issue17_ASliceStopsAfterItsTime) {
  boost::asio::io_context io;
  AnswerQueue& q = AnswerQueue::Of(io.get_executor());
  std::vector<int> log;
  for (int i = 0; i < 10; ++i) {
    q.Add(std::make_shared<FakeAnswer>(io, log, i, 300us));
  }
  ASSERT_EQ(io.run_one(), 1u);  // the first slice
  EXPECT_GE(log.size(), 1u);
  EXPECT_LE(log.size(), 2u);  // 300 us each, 500 us a slice
  io.run();
  EXPECT_EQ(log, Iota(10));
  EXPECT_EQ(q.waiting(), 0u);
}

// Issue #17, item 7: under a backlog, while requests are answered on the
// thread, the queue rests after a slice (the answers wait and carry more);
// with no request competing it does not, and every answer still comes, in
// order.
TEST(AnswerQueueTest, Issue17_RestsUnderABacklogOnlyWhenRequestsCompete) {
  boost::asio::io_context io;
  AnswerQueue& q = AnswerQueue::Of(io.get_executor());
  q.Configure(10s);
  std::vector<int> log;
  constexpr int kAnswers = 200;  // > kBacklog + 2 slices
  for (int i = 0; i < kAnswers; ++i) {
    q.Add(std::make_shared<FakeAnswer>(io, log, i));
  }
  // (A slice is at most kSlice answers, fewer if the machine preempted it
  // past kSliceTime; more than kBacklog stay due either way.)
  ASSERT_EQ(io.run_one(), 1u);
  EXPECT_GE(log.size(), 1u);
  EXPECT_LE(log.size(), AnswerQueue::kSlice);
  EXPECT_EQ(q.rests(), 0u) << "a lone fan-out rested";
  q.NoteRequest();  // a ping was answered meanwhile
  ASSERT_EQ(io.run_one(), 1u);
  EXPECT_LE(log.size(), 2 * AnswerQueue::kSlice);
  EXPECT_EQ(q.rests(), 1u);
  io.run();
  EXPECT_EQ(log, Iota(kAnswers));
}

// The rest is bounded: once the oldest answer has waited the coalescing
// wait, or with the wait set to 0, slices follow each other at once.
TEST(AnswerQueueTest, Issue17_NoRestPastTheCoalescingWaitOrWhenOff) {
  for (auto wait : {std::chrono::microseconds(1ms), 0us}) {
    boost::asio::io_context io;
    AnswerQueue& q = AnswerQueue::Of(io.get_executor());
    q.Configure(wait);
    std::vector<int> log;
    for (int i = 0; i < 200; ++i) {
      q.Add(std::make_shared<FakeAnswer>(io, log, i));
    }
    std::this_thread::sleep_for(2ms);  // the oldest is past 1 ms
    for (int turn = 0; turn < 3; ++turn) {
      q.NoteRequest();
      ASSERT_EQ(io.run_one(), 1u);
    }
    EXPECT_EQ(q.rests(), 0u) << wait.count();
    io.run();
    EXPECT_EQ(log, Iota(200));
  }
}

// Issue #17: the wake-ups of a fan-out are handed over in batches. While
// an AnswerBatch is open, Add queues nothing; the batch hands each queue its
// items, in order, every kBatchFlush of them and when it closes.
TEST(AnswerBatchTest, Issue17_HandsItemsOverPerQueueInOrder) {
  boost::asio::io_context io_a;
  boost::asio::io_context io_b;
  AnswerQueue& a = AnswerQueue::Of(io_a.get_executor());
  AnswerQueue& b = AnswerQueue::Of(io_b.get_executor());
  std::vector<int> log_a;
  std::vector<int> log_b;
  constexpr int kFlush = static_cast<int>(AnswerBatch::kBatchFlush);
  {
    AnswerBatch batch;
    EXPECT_EQ(AnswerBatch::Current(), &batch);
    for (int i = 0; i < kFlush - 1; ++i) {
      a.Add(std::make_shared<FakeAnswer>(io_a, log_a, i));
      b.Add(std::make_shared<FakeAnswer>(io_b, log_b, i));
    }
    EXPECT_EQ(a.waiting(), 0u);
    EXPECT_EQ(b.waiting(), 0u);
    EXPECT_EQ(io_a.poll(), 0u) << "nothing posted before the hand-over";
    io_a.restart();  // poll() found no work and stopped the context
    // The kBatchFlush-th item of a queue hands that queue its share.
    a.Add(std::make_shared<FakeAnswer>(io_a, log_a, kFlush - 1));
    EXPECT_EQ(a.waiting(), AnswerBatch::kBatchFlush);
    EXPECT_EQ(b.waiting(), 0u);
    {
      AnswerBatch inner;  // nested: the outer one keeps collecting
      EXPECT_EQ(AnswerBatch::Current(), &batch);
      a.Add(std::make_shared<FakeAnswer>(io_a, log_a, kFlush));
    }
    EXPECT_EQ(a.waiting(), AnswerBatch::kBatchFlush);
  }
  EXPECT_EQ(AnswerBatch::Current(), nullptr);
  EXPECT_EQ(a.waiting(), AnswerBatch::kBatchFlush + 1);
  EXPECT_EQ(b.waiting(), AnswerBatch::kBatchFlush - 1);
  io_a.run();
  io_b.run();
  EXPECT_EQ(log_a, Iota(kFlush + 1));
  EXPECT_EQ(log_b, Iota(kFlush - 1));
  // Closed: Add queues at once again.
  a.Add(std::make_shared<FakeAnswer>(io_a, log_a, kFlush + 1));
  EXPECT_EQ(a.waiting(), 1u);
}

// A batch on one thread does not hold back another thread's Adds.
TEST(AnswerBatchTest, Issue17_OnlyItsOwnThread) {
  boost::asio::io_context io;
  AnswerQueue& q = AnswerQueue::Of(io.get_executor());
  std::vector<int> log;
  AnswerBatch batch;
  std::thread other([&] { q.Add(std::make_shared<FakeAnswer>(io, log, 0)); });
  other.join();
  EXPECT_EQ(q.waiting(), 1u);
}

}  // namespace
}  // namespace presence::http
