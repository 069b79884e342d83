#include "core/presence_rules.h"

#include <gtest/gtest.h>

#include "core/constants.h"

namespace presence {
namespace {

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
constexpr Micros S(double s) { return static_cast<Micros>(s * 1e6); }

TEST(PresenceRulesTest, FirstIdleReportCreatesRowWithNullActive) {
  auto out = ApplyReport(std::nullopt, kT0, ReportStatus::kIdle);
  EXPECT_TRUE(out.created);
  EXPECT_TRUE(out.wrote);
  EXPECT_FALSE(out.became_online);
  EXPECT_EQ(out.after.last_connected, kT0);
  EXPECT_EQ(out.after.last_active, kNoTime);
}

TEST(PresenceRulesTest, FirstActiveReportSetsBothTimes) {
  auto out = ApplyReport(std::nullopt, kT0, ReportStatus::kActive);
  EXPECT_TRUE(out.created);
  EXPECT_TRUE(out.wrote);
  // Creation alone triggers the event; the "came online" gap is 0 here.
  EXPECT_FALSE(out.became_online);
  EXPECT_EQ(out.after.last_connected, kT0);
  EXPECT_EQ(out.after.last_active, kT0);
}

TEST(PresenceRulesTest, ReportWithin55SecondsWritesNothing) {
  PresenceTimes row{kT0, kT0};
  for (Micros dt : {S(0), S(1), S(54.9), S(55)}) {
    auto out = ApplyReport(row, kT0 + dt, ReportStatus::kActive);
    EXPECT_FALSE(out.wrote) << dt;
    EXPECT_EQ(out.after, row);
  }
}

TEST(PresenceRulesTest, ReportJustOver55SecondsWrites) {
  PresenceTimes row{kT0, kT0};
  auto out = ApplyReport(row, kT0 + S(55) + 1, ReportStatus::kActive);
  EXPECT_TRUE(out.wrote);
  EXPECT_FALSE(out.created);
  EXPECT_EQ(out.after.last_active, kT0 + S(55) + 1);
  EXPECT_EQ(out.after.last_connected, kT0 + S(55) + 1);
}

TEST(PresenceRulesTest, PingEverySixtySecondsWritesEveryTime) {
  PresenceTimes row{kT0, kT0};
  for (int i = 1; i <= 5; ++i) {
    auto out = ApplyReport(row, kT0 + S(60 * i), ReportStatus::kActive);
    ASSERT_TRUE(out.wrote);
    EXPECT_FALSE(out.became_online);
    row = out.after;
  }
}

TEST(PresenceRulesTest, IdleReportMovesOnlyConnectedTime) {
  PresenceTimes row{kT0, kT0};
  auto out = ApplyReport(row, kT0 + S(300), ReportStatus::kIdle);
  EXPECT_TRUE(out.wrote);
  EXPECT_EQ(out.after.last_active, kT0);
  EXPECT_EQ(out.after.last_connected, kT0 + S(300));
  EXPECT_FALSE(out.became_online);
}

TEST(PresenceRulesTest, ActiveAfterMoreThan130SecondsIsComingOnline) {
  PresenceTimes row{kT0, kT0};
  EXPECT_FALSE(
      ApplyReport(row, kT0 + S(130), ReportStatus::kActive).became_online);
  EXPECT_TRUE(
      ApplyReport(row, kT0 + S(130) + 1, ReportStatus::kActive).became_online);
}

TEST(PresenceRulesTest, ActiveAfterIdleOnlyRowIsComingOnline) {
  PresenceTimes row{kT0, kNoTime};
  auto out = ApplyReport(row, kT0 + S(10), ReportStatus::kActive);
  EXPECT_TRUE(out.became_online);
  EXPECT_TRUE(out.wrote);
  EXPECT_EQ(out.after.last_active, kT0 + S(10));
  // Connected stays within 55 s of its old value unless active moves it:
  // active > connected is never allowed, so it moves too.
  EXPECT_EQ(out.after.last_connected, kT0 + S(10));
}

TEST(PresenceRulesTest, ActiveUpdateKeepsConnectedNotBehindActive) {
  // Idle pings kept connected fresh; active is old.
  PresenceTimes row{kT0 + S(100), kT0};
  auto out = ApplyReport(row, kT0 + S(120), ReportStatus::kActive);
  EXPECT_TRUE(out.wrote);
  EXPECT_EQ(out.after.last_active, kT0 + S(120));
  EXPECT_EQ(out.after.last_connected, kT0 + S(120));
  EXPECT_GE(out.after.last_connected, out.after.last_active);
}

TEST(PresenceRulesTest, OlderReportNeverMovesTimesBackwards) {
  PresenceTimes row{kT0, kT0};
  auto out = ApplyReport(row, kT0 - S(600), ReportStatus::kActive);
  EXPECT_FALSE(out.wrote);
  EXPECT_EQ(out.after, row);
}

TEST(PresenceRulesTest, LegacyActiveWithin70Seconds) {
  auto v = ComputeLegacy({kT0 + S(70), kT0}, 0);
  EXPECT_TRUE(v.active);
  EXPECT_EQ(v.timestamp, kT0 / kMicrosPerSecond);
  auto w = ComputeLegacy({kT0 + S(70) + 1, kT0}, 0);
  EXPECT_FALSE(w.active);
  EXPECT_EQ(w.timestamp, (kT0 + S(70)) / kMicrosPerSecond);
}

TEST(PresenceRulesTest, LegacyNullActiveFallsBackToDateJoined) {
  const Micros joined = kT0 - S(1000);
  auto v = ComputeLegacy({kT0, kNoTime}, joined);
  EXPECT_FALSE(v.active);
  EXPECT_EQ(v.timestamp, kT0 / kMicrosPerSecond);
  // Joined within 70 s of the idle report: reads "active" at date_joined.
  auto w = ComputeLegacy({kT0, kNoTime}, kT0 - S(30));
  EXPECT_TRUE(w.active);
  EXPECT_EQ(w.timestamp, (kT0 - S(30)) / kMicrosPerSecond);
}

TEST(PresenceRulesTest, TimestampsAreTruncated) {
  EXPECT_EQ(SecondsOrJoined(S(1656958520.9), 0), 1656958520);
  EXPECT_EQ(SecondsOrJoined(kNoTime, S(12.7)), 12);
}

TEST(PresenceRulesTest, GoingInvisibleWithoutRowDoesNothing) {
  EXPECT_FALSE(ApplyGoInvisible(std::nullopt, kT0).has_value());
}

TEST(PresenceRulesTest, GoingInvisibleWhenAlreadyOldDoesNothing) {
  PresenceTimes row{kT0 - S(265), kT0 - S(300)};
  EXPECT_FALSE(ApplyGoInvisible(row, kT0).has_value());
}

TEST(PresenceRulesTest, GoingInvisibleWhileActiveBackdatesBothTimes) {
  PresenceTimes row{kT0 - S(5), kT0 - S(5)};
  auto after = ApplyGoInvisible(row, kT0);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->last_active, kT0 - S(265));
  EXPECT_EQ(after->last_connected, kT0 - S(265));
  EXPECT_TRUE(ComputeLegacy(*after, 0).active);
}

TEST(PresenceRulesTest, GoingInvisibleWhileIdleBackdatesOnlyConnected) {
  PresenceTimes row{kT0 - S(5), kT0 - S(3600)};
  auto after = ApplyGoInvisible(row, kT0);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->last_active, kT0 - S(3600));
  EXPECT_EQ(after->last_connected, kT0 - S(265));
}

TEST(PresenceRulesTest, BecomingVisibleIsAnActiveReportNow) {
  PresenceTimes row{kT0 - S(600), kT0 - S(600)};
  auto out = ApplyBecomeVisible(row, kT0);
  EXPECT_TRUE(out.wrote);
  EXPECT_EQ(out.after.last_active, kT0);
  EXPECT_EQ(out.after.last_connected, kT0);
}

TEST(PresenceRulesTest, TheToggleWritesTheVisibleReportOrTheBackdatedRow) {
  PresenceTimes active{kT0 - S(5), kT0 - S(5)};
  auto hidden = ApplyPresenceEnabled(active, /*enabled=*/false, kT0);
  ASSERT_TRUE(hidden.has_value());
  EXPECT_EQ(*hidden, (PresenceTimes{kT0 - S(265), kT0 - S(265)}));
  auto shown = ApplyPresenceEnabled(*hidden, /*enabled=*/true, kT0 + S(1));
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(*shown, (PresenceTimes{kT0 + S(1), kT0 + S(1)}));
}

TEST(PresenceRulesTest, TheToggleWritesNothingWhereTheRulesDoNot) {
  EXPECT_FALSE(ApplyPresenceEnabled(std::nullopt, false, kT0).has_value());
  PresenceTimes old{kT0 - S(265), kT0 - S(300)};
  EXPECT_FALSE(ApplyPresenceEnabled(old, false, kT0).has_value());
}

}  // namespace
}  // namespace presence
