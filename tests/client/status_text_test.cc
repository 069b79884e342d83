#include "client/status_text.h"

#include <gtest/gtest.h>

namespace presence::client {
namespace {

// 2023-11-14T22:13:20Z, a Tuesday.
constexpr std::int64_t kNow = 1'700'000'000;
constexpr int kUtc = 0;

std::string Ago(std::int64_t seconds, int offset = kUtc) {
  return StatusText::RelativeTime(kNow - seconds, kNow, offset);
}

TEST(StatusTextTest, ActiveAndIdleSayTheirState) {
  EXPECT_EQ(
      StatusText::LastActive(PresenceStatus::kActive, kNow - 100, kNow, kUtc),
      "Active now");
  EXPECT_EQ(
      StatusText::LastActive(PresenceStatus::kIdle, kNow - 100, kNow, kUtc),
      "Idle");
}

TEST(StatusTextTest, OfflineSaysHowLongAgo) {
  EXPECT_EQ(
      StatusText::LastActive(PresenceStatus::kOffline, kNow - 300, kNow, kUtc),
      "5 minutes ago");
  EXPECT_EQ(StatusText::LastActive(PresenceStatus::kOffline, kNow - 2 * 86400,
                                   kNow, kUtc),
            "2 days ago");
}

TEST(StatusTextTest, OfflineWithoutDataIsNotActiveRecently) {
  EXPECT_EQ(StatusText::LastActive(PresenceStatus::kOffline, std::nullopt, kNow,
                                   kUtc),
            "Not active recently");
}

TEST(StatusTextTest, Minutes) {
  EXPECT_EQ(Ago(0), "just now");
  EXPECT_EQ(Ago(59), "just now");
  EXPECT_EQ(Ago(-30), "just now");  // a clock a little ahead
  EXPECT_EQ(Ago(60), "1 minute ago");
  EXPECT_EQ(Ago(119), "1 minute ago");
  EXPECT_EQ(Ago(5 * 60), "5 minutes ago");
  EXPECT_EQ(Ago(59 * 60 + 59), "59 minutes ago");
}

TEST(StatusTextTest, Hours) {
  EXPECT_EQ(Ago(3600), "an hour ago");
  EXPECT_EQ(Ago(2 * 3600 - 1), "an hour ago");
  EXPECT_EQ(Ago(2 * 3600), "2 hours ago");
  EXPECT_EQ(Ago(23 * 3600 + 3599), "23 hours ago");
}

TEST(StatusTextTest, CalendarDays) {
  // 24 h ago is the previous calendar day.
  EXPECT_EQ(Ago(24 * 3600), "yesterday");
  // 47 h before 22:13 is 23:13 two days back.
  EXPECT_EQ(Ago(47 * 3600), "2 days ago");
  EXPECT_EQ(Ago(89 * 86400), "89 days ago");
}

TEST(StatusTextTest, CalendarDaysFollowTheViewersZone) {
  // At UTC+3 "now" is 01:13 on Nov 15: 25 h ago (00:13 Nov 14 local) is
  // yesterday; 26 h ago (23:13 Nov 13 local) is two days back.
  EXPECT_EQ(Ago(25 * 3600, 3 * 3600), "yesterday");
  EXPECT_EQ(Ago(26 * 3600, 3 * 3600), "2 days ago");
  // In UTC, 25 h before 22:13 Nov 14 is 21:13 Nov 13: yesterday.
  EXPECT_EQ(Ago(25 * 3600), "yesterday");
}

TEST(StatusTextTest, OldDatesAreAbsolute) {
  // 90 days before 2023-11-14 is 2023-08-16: same year.
  EXPECT_EQ(Ago(90 * 86400), "Aug 16");
  // 2022-11-14: another year.
  EXPECT_EQ(Ago(365 * 86400), "Nov 14, 2022");
  EXPECT_EQ(StatusText::RelativeTime(0, kNow, kUtc), "Jan 1, 1970");
}

TEST(StatusTextTest, LocalOffsetIsPlausible) {
  const int off = StatusText::LocalUtcOffsetSeconds();
  EXPECT_GE(off, -14 * 3600);
  EXPECT_LE(off, 14 * 3600);
}

TEST(StatusTextTest, DeviceIsNamedForActiveAndIdleUsersOnly) {
  const double now = 1'700'000'000;
  EXPECT_EQ(StatusText::LastActive(PresenceStatus::kActive, 1'700'000'000,
                                   Device::kMobile, now, 0),
            "Active now on mobile");
  EXPECT_EQ(StatusText::LastActive(PresenceStatus::kIdle, 1'700'000'000,
                                   Device::kDesktop, now, 0),
            "Idle on desktop");
  EXPECT_EQ(StatusText::LastActive(PresenceStatus::kActive, 1'700'000'000,
                                   Device::kUnknown, now, 0),
            "Active now");
  EXPECT_EQ(
      StatusText::LastActive(PresenceStatus::kOffline, 1'700'000'000 - 300,
                             Device::kMobile, now, 0),
      "5 minutes ago");
}

}  // namespace
}  // namespace presence::client
