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

// Issue #17, "when answers go out": the answer interval rule alone, with
// times of the test's own. Under a backlog, a connection answered less than
// the interval ago waits until the interval has passed since that answer;
// otherwise, or when off, nothing waits.
TEST(AnswerQueueTest, Issue17_HoldUntilSpacesAnswersOnlyUnderABacklog) {
  using Clock = AnswerQueue::Clock;
  const Clock::time_point now = Clock::time_point{} + 1h;
  const std::size_t busy = AnswerQueue::kBacklog + 1;
  const std::size_t idle = AnswerQueue::kBacklog;
  // Answered 30 ms ago, 100 ms interval, backlog: due 70 ms from now.
  EXPECT_EQ(AnswerQueue::HoldUntil(now - 30ms, now, busy, 100ms), now + 70ms);
  // No backlog: at once, however recent the last answer.
  EXPECT_EQ(AnswerQueue::HoldUntil(now - 30ms, now, idle, 100ms), std::nullopt);
  // The interval has passed (or just so): at once.
  EXPECT_EQ(AnswerQueue::HoldUntil(now - 100ms, now, busy, 100ms),
            std::nullopt);
  EXPECT_EQ(AnswerQueue::HoldUntil(now - 150ms, now, busy, 100ms),
            std::nullopt);
  // Never answered, or the rule off: at once.
  EXPECT_EQ(AnswerQueue::HoldUntil(Clock::time_point{}, now, busy, 100ms),
            std::nullopt);
  EXPECT_EQ(AnswerQueue::HoldUntil(now - 1ms, now, busy, 0ms), std::nullopt);
}

// An answer that records when it ran.
class TimedAnswer : public AnswerQueue::Item {
 public:
  explicit TimedAnswer(boost::asio::io_context& io) : io_(io) {}
  void AnswerNow() override {
    runs.push_back(std::chrono::steady_clock::now());
  }
  boost::asio::any_io_executor executor() override {
    return io_.get_executor();
  }
  std::vector<std::chrono::steady_clock::time_point> runs;

 private:
  boost::asio::io_context& io_;
};

// The rule in the queue: connections answered a moment ago and due again
// under a backlog are held, then each is answered once, no sooner than the
// interval after its previous answer; one never answered is not held. No
// answer is lost.
TEST(AnswerQueueTest, Issue17_HeldUnderABacklogUntilTheInterval) {
  boost::asio::io_context io;
  AnswerQueue& q = AnswerQueue::Of(io.get_executor());
  q.ConfigureInterval(40ms);
  constexpr std::size_t kAnswers = 2 * AnswerQueue::kBacklog;
  std::vector<std::shared_ptr<TimedAnswer>> answers;
  for (std::size_t i = 0; i < kAnswers; ++i) {
    answers.push_back(std::make_shared<TimedAnswer>(io));
    q.Add(answers.back());
  }
  io.run();  // first answers: never answered before, none held
  io.restart();
  EXPECT_EQ(q.holds(), 0u);
  for (auto& a : answers) ASSERT_EQ(a->runs.size(), 1u);

  // Due again at once, all of them: the backlog builds, and once more
  // than kBacklog are due, every one added is held; one never answered
  // is not.
  for (auto& a : answers) q.Add(a);
  auto fresh = std::make_shared<TimedAnswer>(io);
  q.Add(fresh);
  constexpr std::size_t kDue = AnswerQueue::kBacklog + 1;
  EXPECT_EQ(q.waiting(), kDue + 1);
  EXPECT_EQ(q.held(), kAnswers - kDue);
  EXPECT_EQ(q.holds(), kAnswers - kDue);
  io.run();
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.waiting(), 0u);
  EXPECT_EQ(fresh->runs.size(), 1u);
  std::size_t spaced = 0;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    ASSERT_EQ(answers[i]->runs.size(), 2u) << i;
    // A held one waited its interval out (counted from its slice's clock
    // reading, which precedes its own run: some slack for a busy machine).
    if (i >= kDue) {
      EXPECT_GE(answers[i]->runs[1] - answers[i]->runs[0], 30ms) << i;
      ++spaced;
    }
  }
  EXPECT_EQ(spaced, kAnswers - kDue);
}

// With no backlog, or with the interval set to 0, an answer due again right
// after the last one is not held.
TEST(AnswerQueueTest, Issue17_NotHeldWithoutABacklogOrWhenOff) {
  for (bool off : {false, true}) {
    boost::asio::io_context io;
    AnswerQueue& q = AnswerQueue::Of(io.get_executor());
    q.ConfigureInterval(off ? 0ms : 10s);
    const std::size_t n =
        off ? 2 * AnswerQueue::kBacklog : AnswerQueue::kBacklog;
    std::vector<std::shared_ptr<TimedAnswer>> answers;
    for (std::size_t i = 0; i < n; ++i) {
      answers.push_back(std::make_shared<TimedAnswer>(io));
      q.Add(answers.back());
    }
    io.run();
    io.restart();
    for (auto& a : answers) q.Add(a);
    EXPECT_EQ(q.held(), 0u) << off;
    io.run();  // would take 10 s if held
    for (auto& a : answers) EXPECT_EQ(a->runs.size(), 2u) << off;
    EXPECT_EQ(q.holds(), 0u) << off;
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
