#include "client/presence_status.h"

#include <gtest/gtest.h>

namespace presence::client {
namespace {

constexpr double kNow = 1'700'000'000.5;
constexpr int kT = 200;

RawPresence Raw(std::optional<std::int64_t> active,
                std::optional<std::int64_t> idle, double server = kNow) {
  return RawPresence{{active, idle}, server};
}

TEST(StatusFromRawTest, FreshActiveTimestampIsActive) {
  auto c = StatusFromRaw(Raw(1'700'000'000 - 10, 1'700'000'000), kT);
  EXPECT_EQ(c.status, PresenceStatus::kActive);
  EXPECT_EQ(c.last_active, 1'700'000'000 - 10);
}

TEST(StatusFromRawTest, ComparisonIsStrict) {
  // Exactly T seconds old is offline; a hair younger is active.
  RawPresence exact{{1000, 1000}, 1000.0 + kT};
  EXPECT_EQ(StatusFromRaw(exact, kT).status, PresenceStatus::kOffline);
  RawPresence younger{{1000, 1000}, 1000.0 + kT - 0.000001};
  EXPECT_EQ(StatusFromRaw(younger, kT).status, PresenceStatus::kActive);
}

TEST(StatusFromRawTest, OnlyIdleFreshIsIdleWithLatestOfBoth) {
  auto c = StatusFromRaw(Raw(1'700'000'000 - 500, 1'700'000'000 - 30), kT);
  EXPECT_EQ(c.status, PresenceStatus::kIdle);
  EXPECT_EQ(c.last_active, 1'700'000'000 - 30);
}

TEST(StatusFromRawTest, IdleBoundaryIsStrictToo) {
  RawPresence r{{100, 1000}, 1000.0 + kT};
  EXPECT_EQ(StatusFromRaw(r, kT).status, PresenceStatus::kOffline);
}

TEST(StatusFromRawTest, OfflineLastActiveIsActiveTimestamp) {
  auto c = StatusFromRaw(Raw(1'600'000'000, 1'600'000'100), kT);
  EXPECT_EQ(c.status, PresenceStatus::kOffline);
  // The idle timestamp does not count once offline, as in the web app.
  EXPECT_EQ(c.last_active, 1'600'000'000);
}

TEST(StatusFromRawTest, OfflineFallsBackToDateJoined) {
  auto c = StatusFromRaw(Raw(std::nullopt, 1'600'000'100), kT, 1'650'000'000);
  EXPECT_EQ(c.status, PresenceStatus::kOffline);
  EXPECT_EQ(c.last_active, 1'650'000'000);
  auto d = StatusFromRaw(Raw(1'660'000'000, std::nullopt), kT, 1'650'000'000);
  EXPECT_EQ(d.last_active, 1'660'000'000);
}

TEST(StatusFromRawTest, NothingKnownIsOfflineWithoutLastActive) {
  auto c = StatusFromRaw(Raw(std::nullopt, std::nullopt), kT);
  EXPECT_EQ(c.status, PresenceStatus::kOffline);
  EXPECT_EQ(c.last_active, std::nullopt);
}

TEST(StatusFromRawTest, FutureTimestampCountsAsFresh) {
  // Negative age (the server's clock stepped back): fresh.
  auto c = StatusFromRaw(Raw(1'700'000'100, 1'700'000'100), kT);
  EXPECT_EQ(c.status, PresenceStatus::kActive);
  auto d = StatusFromRaw(Raw(1, 1'700'000'100), kT);
  EXPECT_EQ(d.status, PresenceStatus::kIdle);
}

TEST(StatusFromRawTest, AgesAreMeasuredAgainstTheServerTimestamp) {
  // The same times: active at the server's time, offline 200 s later. No
  // local clock is involved.
  EXPECT_EQ(StatusFromRaw(Raw(1000, 1000, 1100), kT).status,
            PresenceStatus::kActive);
  EXPECT_EQ(StatusFromRaw(Raw(1000, 1000, 1200), kT).status,
            PresenceStatus::kOffline);
}

TEST(StatusFromRawTest, OldServerThresholdOf140) {
  EXPECT_EQ(kFallbackOfflineThresholdSeconds, 140);
  EXPECT_EQ(StatusFromRaw(Raw(1000, 1000, 1139), 140).status,
            PresenceStatus::kActive);
  EXPECT_EQ(StatusFromRaw(Raw(1000, 1000, 1140), 140).status,
            PresenceStatus::kOffline);
}

TEST(StatusFromRawTest, StatusNames) {
  EXPECT_EQ(StatusName(PresenceStatus::kActive), "active");
  EXPECT_EQ(StatusName(PresenceStatus::kIdle), "idle");
  EXPECT_EQ(StatusName(PresenceStatus::kOffline), "offline");
}

}  // namespace
}  // namespace presence::client
