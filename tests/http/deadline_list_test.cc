#include "http/deadline_list.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <memory>
#include <vector>

namespace presence::http {
namespace {

using namespace std::chrono_literals;
using Clock = DeadlineList::Clock;

TEST(DeadlineListTest, EntriesOfOneDurationFallDueInTheOrderTheyWereSet) {
  DeadlineList list;
  DeadlineList::Entry a, b, c;
  const Clock::time_point t0{};
  EXPECT_TRUE(list.Set(a, 10s, t0));        // the head of its lane
  EXPECT_FALSE(list.Set(b, 10s, t0 + 1s));  // behind a
  EXPECT_FALSE(list.Set(c, 10s, t0 + 2s));
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list.Earliest(), t0 + 10s);
  std::vector<DeadlineList::Entry*> due;
  list.PopDue(t0 + 11s, due);
  EXPECT_EQ(due, (std::vector<DeadlineList::Entry*>{&a, &b}));
  EXPECT_FALSE(a.linked());
  EXPECT_TRUE(c.linked());
  EXPECT_EQ(list.Earliest(), t0 + 12s);
  due.clear();
  list.PopDue(t0 + 11s, due);
  EXPECT_TRUE(due.empty());
}

TEST(DeadlineListTest, SettingAgainMovesTheEntryBehindTheOthers) {
  DeadlineList list;
  DeadlineList::Entry a, b;
  const Clock::time_point t0{};
  list.Set(a, 10s, t0);
  list.Set(b, 10s, t0 + 1s);
  list.Set(a, 10s, t0 + 5s);  // a request came: its idle timeout restarts
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.Earliest(), t0 + 11s);
  std::vector<DeadlineList::Entry*> due;
  list.PopDue(t0 + 20s, due);
  EXPECT_EQ(due, (std::vector<DeadlineList::Entry*>{&b, &a}));
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(list.Earliest(), Clock::time_point::max());
}

TEST(DeadlineListTest, DurationsHaveLanesOfTheirOwn) {
  DeadlineList list;
  DeadlineList::Entry parked, reading;
  const Clock::time_point t0{};
  EXPECT_TRUE(list.Set(parked, 45s, t0));
  // Set later, due earlier: a lane of its own, at its head.
  EXPECT_TRUE(list.Set(reading, 5s, t0 + 1s));
  EXPECT_EQ(list.Earliest(), t0 + 6s);
  std::vector<DeadlineList::Entry*> due;
  list.PopDue(t0 + 6s, due);
  EXPECT_EQ(due, (std::vector<DeadlineList::Entry*>{&reading}));
  // Moving an entry to another lane leaves the first.
  list.Set(parked, 5s, t0 + 7s);
  EXPECT_EQ(list.Earliest(), t0 + 12s);
  EXPECT_EQ(list.size(), 1u);
}

TEST(DeadlineListTest, ClearingUnlinksFromAnywhereInTheLane) {
  DeadlineList list;
  DeadlineList::Entry e[4];
  const Clock::time_point t0{};
  for (int i = 0; i < 4; ++i) list.Set(e[i], 10s, t0 + i * 1s);
  list.Clear(e[1]);  // middle
  list.Clear(e[3]);  // tail
  list.Clear(e[0]);  // head
  list.Clear(e[0]);  // not linked: nothing
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(list.Earliest(), t0 + 12s);
  DeadlineList::Entry f;
  list.Set(f, 10s, t0 + 5s);  // the tail is right after a cleared tail
  std::vector<DeadlineList::Entry*> due;
  list.PopDue(t0 + 100s, due);
  EXPECT_EQ(due, (std::vector<DeadlineList::Entry*>{&e[2], &f}));
}

// An owner that counts its deadlines and may set itself again.
class CountingOwner : public SessionDeadlines::Owner,
                      public std::enable_shared_from_this<CountingOwner> {
 public:
  CountingOwner(boost::asio::io_context& ioc, SessionDeadlines& deadlines)
      : ioc_(ioc), deadlines_(deadlines) {
    slot.owner = this;
  }
  ~CountingOwner() override { deadlines_.Clear(slot); }
  void DeadlinePassed() override {
    passed_at.push_back(Clock::now());
    if (again > 0) {
      --again;
      deadlines_.Set(slot, 20ms, executor());
    }
  }
  boost::asio::any_io_executor executor() override {
    return ioc_.get_executor();
  }
  std::shared_ptr<SessionDeadlines::Owner> LockOwner() override {
    return weak_from_this().lock();
  }

  SessionDeadlines::Slot slot;
  std::vector<Clock::time_point> passed_at;
  int again = 0;

 private:
  boost::asio::io_context& ioc_;
  SessionDeadlines& deadlines_;
};

TEST(SessionDeadlinesTest, OneTimerTellsEachOwnerWhenItsDeadlinePasses) {
  boost::asio::io_context ioc;
  SessionDeadlines& deadlines = SessionDeadlines::Of(ioc.get_executor());
  auto slow = std::make_shared<CountingOwner>(ioc, deadlines);
  auto fast = std::make_shared<CountingOwner>(ioc, deadlines);
  auto cleared = std::make_shared<CountingOwner>(ioc, deadlines);
  const auto start = Clock::now();
  deadlines.Set(slow->slot, 120ms, ioc.get_executor());
  deadlines.Set(fast->slot, 30ms, ioc.get_executor());
  deadlines.Set(cleared->slot, 10ms, ioc.get_executor());
  deadlines.Clear(cleared->slot);
  fast->again = 2;  // set again twice from its own DeadlinePassed
  EXPECT_EQ(deadlines.size(), 2u);
  ioc.run();  // returns once no deadline is left
  ASSERT_EQ(slow->passed_at.size(), 1u);
  ASSERT_EQ(fast->passed_at.size(), 3u);
  EXPECT_TRUE(cleared->passed_at.empty());
  EXPECT_GE(slow->passed_at[0] - start, 120ms);
  EXPECT_GE(fast->passed_at[0] - start, 30ms);
  EXPECT_GE(fast->passed_at[2] - start, 70ms);
  EXPECT_EQ(deadlines.size(), 0u);
}

TEST(SessionDeadlinesTest, AnOwnerDestroyedBeforeItsDeadlineIsNotTold) {
  boost::asio::io_context ioc;
  SessionDeadlines& deadlines = SessionDeadlines::Of(ioc.get_executor());
  auto stays = std::make_shared<CountingOwner>(ioc, deadlines);
  {
    auto goes = std::make_shared<CountingOwner>(ioc, deadlines);
    deadlines.Set(goes->slot, 10ms, ioc.get_executor());
  }  // clears its slot
  deadlines.Set(stays->slot, 20ms, ioc.get_executor());
  EXPECT_EQ(deadlines.size(), 1u);
  ioc.run();
  EXPECT_EQ(stays->passed_at.size(), 1u);
}

}  // namespace
}  // namespace presence::http
