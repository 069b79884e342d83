#include "api/rate_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

namespace presence::api {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000'000;
constexpr std::int64_t kSec = 1'000'000;

TEST(RateLimiterTest, TwoHundredPerMinuteThenRefusedWithRetryAfter) {
  RateLimiter limiter(200, 60);
  for (int i = 0; i < 200; ++i) {
    auto d = limiter.Check(7, kT0 + i * 10'000);  // 2 s for all of them
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 199 - i);
  }
  auto refused = limiter.Check(7, kT0 + 2 * kSec);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_NEAR(refused.retry_after, 58.0, 1e-6);  // the first leaves the window
  // Another user is not affected.
  EXPECT_TRUE(limiter.Check(8, kT0 + 2 * kSec).allowed);
  // Once the oldest request leaves the window, one more is allowed.
  EXPECT_TRUE(limiter.Check(7, kT0 + 60 * kSec + 1).allowed);
  EXPECT_FALSE(limiter.Check(7, kT0 + 60 * kSec + 2).allowed);
}

TEST(RateLimiterTest, SlowRequestsNeverHitTheLimit) {
  RateLimiter limiter(3, 60);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(limiter.Check(1, kT0 + i * 21 * kSec).allowed) << i;
  }
}

TEST(RateLimiterTest, ZeroDisables) {
  RateLimiter limiter(0, 60);
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Check(1, kT0).allowed);
}

// Zulip's rule written the plain way (the limiter's layout before issue
// #17): one deque of request times per user.
class ReferenceLimiter {
 public:
  ReferenceLimiter(std::int64_t limit, std::int64_t window_s)
      : limit_(limit), window_us_(window_s * kSec) {}
  RateDecision Check(UserId user, std::int64_t now_us) {
    auto& log = logs_[user];
    while (!log.empty() && log.front() <= now_us - window_us_) log.pop_front();
    const bool allowed = static_cast<std::int64_t>(log.size()) < limit_;
    if (allowed) log.push_back(now_us);
    return MakeRateDecision(limit_, window_us_, now_us, allowed,
                            static_cast<std::int64_t>(log.size()), log.front());
  }

 private:
  std::int64_t limit_;
  std::int64_t window_us_;
  std::unordered_map<UserId, std::deque<std::int64_t>> logs_;
};

void ExpectSame(const RateDecision& want, const RateDecision& got, int step) {
  ASSERT_EQ(want.allowed, got.allowed) << "step " << step;
  ASSERT_EQ(want.limit, got.limit) << "step " << step;
  ASSERT_EQ(want.remaining, got.remaining) << "step " << step;
  ASSERT_EQ(want.reset_unix, got.reset_unix) << "step " << step;
  ASSERT_EQ(want.retry_after, got.retry_after) << "step " << step;
}

// The compact layout decides exactly as the plain log does, through every
// shape a log takes: inline (1-3 requests), spilled to the heap, back
// inline, swept, for limits below, at and above the inline capacity.
TEST(RateLimiterTest, DecidesExactlyAsAPlainSlidingLog) {
  for (std::int64_t limit : {1, 2, 3, 4, 5, 10, 200}) {
    RateLimiter limiter(limit, 60);
    ReferenceLimiter reference(limit, 60);
    std::mt19937_64 rng(static_cast<std::uint64_t>(limit));
    std::int64_t now = kT0;
    std::vector<std::int64_t> past;
    for (int step = 0; step < 200'000; ++step) {
      // Bursts (same microsecond, microseconds apart), a request a few
      // seconds apart, and gaps longer than the window.
      const auto kind = rng() % 100;
      if (kind < 30) {
        now += 0;
      } else if (kind < 70) {
        now += static_cast<std::int64_t>(rng() % 1000);
      } else if (kind < 97) {
        now += static_cast<std::int64_t>(rng() % (5 * kSec));
      } else if (kind < 99) {
        now += static_cast<std::int64_t>(rng() % (90 * kSec));
      } else {
        // Hours: past the range of a page's offsets.
        now += static_cast<std::int64_t>(rng() % (5 * 3600 * kSec));
      }
      // Exactly a window after an earlier request, now and then.
      if (kind == 42 && !past.empty()) {
        now = std::max(now, past[rng() % past.size()] + 60 * kSec);
      }
      if (past.size() < 64) {
        past.push_back(now);
      } else {
        past[rng() % past.size()] = now;
      }
      // Users spread over several pages and shards.
      const UserId user = static_cast<UserId>(rng() % 40) * 61;
      ExpectSame(reference.Check(user, now), limiter.Check(user, now), step);
    }
  }
}

TEST(RateLimiterTest, AUserWithManyRequestsSpillsAndComesBackInline) {
  RateLimiter limiter(200, 60);
  for (int i = 0; i < RateLimiter::kInline; ++i) {
    ASSERT_TRUE(limiter.Check(5, kT0 + i * kSec).allowed);
  }
  EXPECT_EQ(limiter.usage().users, 1u);
  EXPECT_EQ(limiter.usage().spilled, 0u);  // two fit in place
  ASSERT_TRUE(limiter.Check(5, kT0 + 3 * kSec).allowed);
  EXPECT_EQ(limiter.usage().spilled, 1u);  // the third grows a heap log
  // The log grows to the limit and refuses at it.
  for (int i = RateLimiter::kInline + 1; i < 200; ++i) {
    ASSERT_TRUE(limiter.Check(5, kT0 + 3 * kSec + i).allowed) << i;
  }
  auto refused = limiter.Check(5, kT0 + 4 * kSec);
  EXPECT_FALSE(refused.allowed);
  EXPECT_NEAR(refused.retry_after, 56.0, 1e-6);  // the first two leave first
  // A minute after the burst only the newest request is left: the log is
  // back in place and its heap memory is gone.
  auto later = limiter.Check(5, kT0 + 3 * kSec + 60 * kSec + 198);
  EXPECT_TRUE(later.allowed);
  EXPECT_EQ(later.remaining, 198);  // the burst's last one and this one
  EXPECT_EQ(limiter.usage().spilled, 0u);
  EXPECT_EQ(limiter.usage().users, 1u);
}

// A user who keeps making more than two requests a window gets its heap log
// once, as large as the limit (or 256 requests), when it first spills: the
// log's memory does not grow while the window fills, so a server's memory is
// flat as soon as its users are active, not a window later (the soak's
// criterion, issue #6).
TEST(RateLimiterTest, AHeavyUsersLogIsAllocatedOnceAtItsFirstSpill) {
  RateLimiter limiter(200, 60);
  constexpr int kUsers = 40;
  // 150 requests a minute each, as the soak's users make.
  constexpr std::int64_t kGap = 60 * kSec / 150;
  std::int64_t now = kT0;
  for (int i = 0; i < 3; ++i, now += kGap) {
    for (int u = 0; u < kUsers; ++u) ASSERT_TRUE(limiter.Check(u, now).allowed);
  }
  const auto spilled = limiter.usage();
  ASSERT_EQ(spilled.spilled, static_cast<std::size_t>(kUsers));
  // Three windows at the same rate: the bytes never move.
  for (int i = 3; i < 3 * 150; ++i, now += kGap) {
    for (int u = 0; u < kUsers; ++u) {
      ASSERT_TRUE(limiter.Check(u, now).allowed) << i;
    }
    ASSERT_EQ(limiter.usage().bytes, spilled.bytes) << i;
  }
  // A log holds the limit's times and no more: 8 bytes each.
  EXPECT_LE(spilled.bytes, kUsers * (200 * 8 + 64) + 4096);
}

// A limit above kRingStart: the ring starts at kRingStart and doubles as
// the window fills, deciding as the plain log does all the way to the limit
// and after its requests leave.
TEST(RateLimiterTest, ALimitAboveTheFirstRingGrowsItToTheLimit) {
  RateLimiter limiter(1000, 60);
  ReferenceLimiter reference(1000, 60);
  std::int64_t now = kT0;
  int step = 0;
  // 1,200 requests in 12 s (200 refused), then 1,200 more over 2 minutes.
  for (int i = 0; i < 1200; ++i, ++step, now += 10'000) {
    ExpectSame(reference.Check(7, now), limiter.Check(7, now), step);
  }
  const auto full = limiter.usage();
  EXPECT_EQ(full.spilled, 1u);
  EXPECT_GE(full.bytes, 1000u * 8);
  for (int i = 0; i < 1200; ++i, ++step, now += 100'000) {
    ExpectSame(reference.Check(7, now), limiter.Check(7, now), step);
  }
}

// usage() counts the heap logs' rings as they are allocated, grown and
// freed (a scrape of /metrics must not walk every heavy user): the count
// agrees with a walk of the logs through bursts that spill, grow rings past
// kRingStart, fall back in place, and go quiet until swept.
TEST(RateLimiterTest, TheRingCountAgreesWithTheLogsAtEveryStep) {
  RateLimiter limiter(300, 60);
  std::mt19937_64 rng(26);
  std::int64_t now = kT0;
  for (int step = 0; step < 40'000; ++step) {
    const auto user = static_cast<UserId>(rng() % 40);
    // Mostly bursts a few ms apart; now and then a gap of up to 90 s.
    now += rng() % 100 == 0 ? static_cast<std::int64_t>(rng() % (90 * kSec))
                            : static_cast<std::int64_t>(rng() % 5'000);
    limiter.Check(user, now);
    if (step % 97 == 0) {
      ASSERT_EQ(limiter.usage().ring_bytes,
                limiter.RingSlotsByWalkForTesting() * sizeof(std::int64_t))
          << step;
    }
  }
  // Two windows of quiet, then a request in each of the 16 shards' first
  // pages: every log is swept, and the count is back to 0.
  for (int s = 0; s < 16; ++s) {
    limiter.Check(s * RateLimiter::kPageUsers, now + 130 * kSec);
  }
  EXPECT_EQ(limiter.RingSlotsByWalkForTesting(), 0u);
  EXPECT_EQ(limiter.usage().ring_bytes, 0u);
  EXPECT_EQ(limiter.usage().spilled, 0u);
}

TEST(RateLimiterTest, IdleUsersAreSweptAndTheTablesShrink) {
  RateLimiter limiter(200, 60);
  constexpr int kUsers = 100'000;
  for (int u = 0; u < kUsers; ++u) {
    ASSERT_TRUE(limiter.Check(u, kT0 + u).allowed);
  }
  // A few heavy users.
  for (int i = 0; i < 10; ++i) {
    for (int u = 0; u < 16; ++u) limiter.Check(u, kT0 + kSec + i);
  }
  const auto full = limiter.usage();
  EXPECT_EQ(full.users, static_cast<std::size_t>(kUsers));
  EXPECT_EQ(full.spilled, 16u);
  // Compact: one 8-byte slot a user in full pages, plus the heavy users'
  // heap logs (issue #17).
  EXPECT_EQ(full.pages,
            (kUsers + RateLimiter::kPageUsers - 1) / RateLimiter::kPageUsers);
  EXPECT_LT(full.bytes, 10u * kUsers);
  // Two windows later, one request in each of the 16 shards' first pages:
  // everyone else is forgotten and the pages are given back.
  for (int s = 0; s < 16; ++s) {
    limiter.Check(s * RateLimiter::kPageUsers, kT0 + 120 * kSec);
  }
  const auto swept = limiter.usage();
  EXPECT_EQ(swept.users, 16u);
  EXPECT_EQ(swept.pages, 16u);
  EXPECT_EQ(swept.spilled, 0u);
  EXPECT_LT(swept.bytes, full.bytes / 10);
}

// Zulip clients ping once a minute: a user never has more than two requests
// in the window, so nobody needs a heap log, and each page holds its users'
// logs for hours, across the moves of its base.
TEST(RateLimiterTest, PingingOnceAMinuteStaysInPlaceForHours) {
  RateLimiter limiter(200, 60);
  constexpr int kUsers = 1000;
  std::mt19937_64 rng(17);
  for (int minute = 0; minute < 4 * 60; ++minute) {
    for (int u = 0; u < kUsers; ++u) {
      // Each user's ping lands anywhere in its minute, 59-61 s apart.
      const std::int64_t at = kT0 + minute * 60 * kSec + u * 50'000 +
                              static_cast<std::int64_t>(rng() % kSec);
      auto d = limiter.Check(u, at);
      ASSERT_TRUE(d.allowed);
      ASSERT_GE(d.remaining, 198) << minute << " " << u;
    }
    ASSERT_EQ(limiter.usage().spilled, 0u) << minute;
  }
  EXPECT_EQ(limiter.usage().users, static_cast<std::size_t>(kUsers));
  EXPECT_LT(limiter.usage().bytes, 12u * kUsers);
}

TEST(RateLimiterTest, AnActiveUserSurvivesTheSweep) {
  RateLimiter limiter(3, 60);
  // Users 1 and 17 share a shard; 1 keeps making requests.
  ASSERT_TRUE(limiter.Check(1, kT0).allowed);
  ASSERT_TRUE(limiter.Check(1, kT0 + 50 * kSec).allowed);
  ASSERT_TRUE(limiter.Check(1, kT0 + 55 * kSec).allowed);
  // The sweep at 61 s keeps user 1 (two requests still in the window)...
  ASSERT_TRUE(limiter.Check(17, kT0 + 61 * kSec).allowed);
  EXPECT_EQ(limiter.usage().users, 2u);
  // ...so its log still counts them: one more is allowed, then refused.
  EXPECT_TRUE(limiter.Check(1, kT0 + 62 * kSec).allowed);
  auto refused = limiter.Check(1, kT0 + 63 * kSec);
  EXPECT_FALSE(refused.allowed);
  EXPECT_NEAR(refused.retry_after, 47.0, 1e-6);  // the 50-s request leaves
}

TEST(RateLimiterTest, AWindowTooLongForOffsetsStillCountsExactly) {
  // 2 hours: longer than 32-bit microsecond offsets reach.
  RateLimiter limiter(5, 7200);
  ReferenceLimiter reference(5, 7200);
  std::int64_t now = kT0;
  for (int step = 0; step < 2000; ++step) {
    now += (step % 7) * 600 * kSec + step % 3;
    ExpectSame(reference.Check(step % 3, now), limiter.Check(step % 3, now),
               step);
  }
}

TEST(RateLimiterTest, AClockSteppingBackNeitherBreaksNorFreesTheLog) {
  RateLimiter limiter(3, 60);
  ASSERT_TRUE(limiter.Check(1, kT0 + 30 * kSec).allowed);
  ASSERT_TRUE(limiter.Check(1, kT0 + 10 * kSec).allowed);  // stepped back
  ASSERT_TRUE(limiter.Check(1, kT0 + 11 * kSec).allowed);
  EXPECT_FALSE(limiter.Check(1, kT0 + 12 * kSec).allowed);
  // All three were logged at 30 s, so they leave the window together.
  EXPECT_FALSE(limiter.Check(1, kT0 + 90 * kSec - 1).allowed);
  auto back = limiter.Check(1, kT0 + 90 * kSec);
  EXPECT_TRUE(back.allowed);
  EXPECT_EQ(back.remaining, 2);
}

// Many threads, many users, shared shards: every user gets exactly its
// limit (run under TSan by the tsan preset).
TEST(RateLimiterTest, ConcurrentUsersEachGetExactlyTheirLimit) {
  RateLimiter limiter(50, 60);
  constexpr int kThreads = 4;
  constexpr int kUsers = 64;
  std::vector<std::vector<int>> allowed(kThreads, std::vector<int>(kUsers));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        for (int u = 0; u < kUsers; ++u) {
          if (limiter.Check(u, kT0 + i).allowed) ++allowed[t][u];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int u = 0; u < kUsers; ++u) {
    int sum = 0;
    for (int t = 0; t < kThreads; ++t) sum += allowed[t][u];
    EXPECT_EQ(sum, 50) << u;
  }
  EXPECT_EQ(limiter.usage().users, static_cast<std::size_t>(kUsers));
}

}  // namespace
}  // namespace presence::api
