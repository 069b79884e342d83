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

namespace presence::client {
namespace {

// --- User status (issue #18) ------------------------------------------------

TEST(StatusTextTest, UnicodeEmojiBecomesItsCharacters) {
  EXPECT_EQ(StatusText::Emoji("grinning", "1f600", "unicode_emoji"),
            "\xf0\x9f\x98\x80");
  // A flag: two regional indicators.
  EXPECT_EQ(StatusText::Emoji("us", "1f1fa-1f1f8", "unicode_emoji"),
            "\xf0\x9f\x87\xba\xf0\x9f\x87\xb8");
  EXPECT_EQ(StatusText::Emoji("heart", "2764", ""), "\xe2\x9d\xa4");
}

TEST(StatusTextTest, OtherEmojiAreTheirNameBetweenColons) {
  EXPECT_EQ(StatusText::Emoji("zulip", "zulip", "zulip_extra_emoji"),
            ":zulip:");
  EXPECT_EQ(StatusText::Emoji("party_parrot", "42", "realm_emoji"),
            ":party_parrot:");
  // Not valid code points: the name, never garbage or controls.
  EXPECT_EQ(StatusText::Emoji("odd", "zz", "unicode_emoji"), ":odd:");
  EXPECT_EQ(StatusText::Emoji("bell", "7", "unicode_emoji"), ":bell:");
  EXPECT_EQ(StatusText::Emoji("sur", "d800", "unicode_emoji"), ":sur:");
  EXPECT_EQ(StatusText::Emoji("big", "110000", "unicode_emoji"), ":big:");
  EXPECT_EQ(StatusText::Emoji("dash", "1f600-", "unicode_emoji"), ":dash:");
  EXPECT_EQ(StatusText::Emoji("", "1f600", "unicode_emoji"), "");
}

// kNow is 2023-11-14 22:13:20 UTC.
TEST(StatusTextTest, UntilTodayIsAClockTime) {
  EXPECT_EQ(StatusText::Until(kNow + 1600, kNow, kUtc), "until 22:40");
  // 23:00 UTC is 15:00 at UTC-8, still the 14th there.
  EXPECT_EQ(StatusText::Until(kNow + 2800, kNow, -8 * 3600), "until 15:00");
}

TEST(StatusTextTest, UntilTomorrowSaysSo) {
  // 2023-11-15 15:00 UTC.
  EXPECT_EQ(StatusText::Until(1'700'060'400, kNow, kUtc),
            "until tomorrow 15:00");
  // At UTC+2 it is already the 15th (00:13), so 15:00 UTC+2 is today.
  EXPECT_EQ(StatusText::Until(1'700'053'200, kNow, 2 * 3600), "until 15:00");
}

TEST(StatusTextTest, UntilLaterIsADate) {
  EXPECT_EQ(StatusText::Until(kNow + 3 * 86400, kNow, kUtc), "until Nov 17");
  // Into next year, within a year: no year.
  EXPECT_EQ(StatusText::Until(kNow + 60 * 86400, kNow, kUtc), "until Jan 13");
  EXPECT_EQ(StatusText::Until(kNow + 400 * 86400, kNow, kUtc),
            "until Dec 18, 2024");
}

}  // namespace
}  // namespace presence::client
