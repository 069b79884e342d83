#include "client/manual_scheduler.h"

#include <gtest/gtest.h>

#include <vector>

namespace presence::client {
namespace {

TEST(ManualSchedulerTest, RunsTasksInDueOrderAtTheirTime) {
  ManualScheduler s(1000);
  std::vector<std::pair<int, Micros>> ran;
  s.RunAfter(30, [&] { ran.push_back({3, s.Now()}); });
  s.RunAfter(10, [&] { ran.push_back({1, s.Now()}); });
  s.RunAfter(10, [&] { ran.push_back({2, s.Now()}); });
  s.AdvanceBy(25);
  EXPECT_EQ(ran, (std::vector<std::pair<int, Micros>>{{1, 1010}, {2, 1010}}));
  EXPECT_EQ(s.Now(), 1025);
  s.AdvanceBy(5);
  EXPECT_EQ(ran.back(), (std::pair<int, Micros>{3, 1030}));
}

TEST(ManualSchedulerTest, CancelledTasksDoNotRun) {
  ManualScheduler s(0);
  bool ran = false;
  auto id = s.RunAfter(10, [&] { ran = true; });
  s.Cancel(id);
  s.Cancel(id);
  s.Cancel(12345);
  s.AdvanceBy(100);
  EXPECT_FALSE(ran);
  EXPECT_EQ(s.pending(), 0u);
}

TEST(ManualSchedulerTest, TasksScheduledByTasksRunIfDueInTheWindow) {
  ManualScheduler s(0);
  std::vector<Micros> ran;
  std::function<void()> again = [&] {
    ran.push_back(s.Now());
    s.RunAfter(10, again);
  };
  s.RunAfter(10, again);
  s.AdvanceBy(35);
  EXPECT_EQ(ran, (std::vector<Micros>{10, 20, 30}));
  EXPECT_EQ(s.NextDue(), 40);
}

TEST(ManualSchedulerTest, ZeroAndNegativeDelaysRunOnRunDue) {
  ManualScheduler s(50);
  int n = 0;
  s.RunAfter(0, [&] { ++n; });
  s.RunAfter(-5, [&] { ++n; });
  EXPECT_EQ(n, 0);  // never from inside RunAfter
  s.RunDue();
  EXPECT_EQ(n, 2);
  EXPECT_EQ(s.Now(), 50);
}

TEST(ManualSchedulerTest, JumpRunsNothingUntilAsked) {
  ManualScheduler s(0);
  std::vector<Micros> ran;
  s.RunAfter(10, [&] { ran.push_back(s.Now()); });
  s.RunAfter(20, [&] { ran.push_back(s.Now()); });
  s.Jump(1000);
  EXPECT_TRUE(ran.empty());
  s.RunDue();
  // Both ran late, at the time after the jump.
  EXPECT_EQ(ran, (std::vector<Micros>{1000, 1000}));
}

}  // namespace
}  // namespace presence::client
