#include "client/activity_monitor.h"

#include <gtest/gtest.h>

namespace presence::client {
namespace {

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
constexpr Micros kMin = SecondsToMicros(60);

TEST(ActivityMonitorTest, NoInputEverIsIdle) {
  ManualInputSource input;
  ActivityMonitor m(&input);
  EXPECT_FALSE(m.Poll(kT0).active);
  EXPECT_FALSE(m.HasNewInput());
}

TEST(ActivityMonitorTest, IdleAfterFiveMinutesWithoutInputByDefault) {
  EXPECT_EQ(ActivityMonitor::kDefaultIdleTimeout, 5 * kMin);
  ManualInputSource input;
  input.RecordInput(kT0);
  ActivityMonitor m(&input);
  EXPECT_TRUE(m.Poll(kT0).active);
  EXPECT_TRUE(m.Poll(kT0 + 5 * kMin - 1).active);
  // Exactly five minutes without input: idle.
  EXPECT_FALSE(m.Poll(kT0 + 5 * kMin).active);
  EXPECT_FALSE(m.active());
}

TEST(ActivityMonitorTest, IdleTimeoutIsConfigurable) {
  ManualInputSource input;
  input.RecordInput(kT0);
  ActivityMonitor m(&input, kMin);
  EXPECT_TRUE(m.Poll(kT0 + kMin - 1).active);
  EXPECT_FALSE(m.Poll(kT0 + kMin).active);
}

TEST(ActivityMonitorTest, ResumedOnceWhenInputFollowsIdle) {
  ManualInputSource input;
  input.RecordInput(kT0);
  ActivityMonitor m(&input);
  EXPECT_FALSE(m.Poll(kT0).resumed);  // the first poll never resumes
  EXPECT_FALSE(m.Poll(kT0 + 6 * kMin).resumed);
  input.RecordInput(kT0 + 7 * kMin);
  auto u = m.Poll(kT0 + 7 * kMin);
  EXPECT_TRUE(u.active);
  EXPECT_TRUE(u.resumed);
  EXPECT_FALSE(m.Poll(kT0 + 7 * kMin + 1).resumed);
}

TEST(ActivityMonitorTest, FirstPollIsNeverAResume) {
  ManualInputSource input;
  ActivityMonitor m(&input);
  input.RecordInput(kT0);
  auto u = m.Poll(kT0);
  EXPECT_TRUE(u.active);
  EXPECT_FALSE(u.resumed);
}

TEST(ActivityMonitorTest, NewUserInputUntilAReportIsDelivered) {
  ManualInputSource input;
  ActivityMonitor m(&input);
  input.RecordInput(kT0);
  EXPECT_TRUE(m.HasNewInput());
  const auto mark = m.InputMark();
  input.RecordInput(kT0 + 10);  // while the report is in flight
  m.ReportDelivered(mark);
  EXPECT_TRUE(m.HasNewInput());  // the later input is not covered
  m.ReportDelivered(m.InputMark());
  EXPECT_FALSE(m.HasNewInput());
  // An older mark does not undo a newer delivery.
  m.ReportDelivered(kT0);
  EXPECT_FALSE(m.HasNewInput());
}

TEST(ActivityMonitorTest, ManualInputSourceNeverGoesBack) {
  ManualInputSource input;
  EXPECT_EQ(input.LastInputTime(), std::nullopt);
  input.RecordInput(kT0 + 5);
  input.RecordInput(kT0);
  EXPECT_EQ(input.LastInputTime(), kT0 + 5);
}

}  // namespace
}  // namespace presence::client
