#include "core/transition_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/event_hub.h"
#include "testing/memory_store.h"

namespace presence {
namespace {

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
constexpr Micros Sec(std::int64_t s) { return SecondsToMicros(s); }
constexpr Micros kGrace = Sec(30);

TEST(TransitionTrackerTest, StatusRules) {
  PresenceTimes active{kT0, kT0};
  EXPECT_EQ(StatusAt(active, 0, kT0 + Sec(199), kGrace),
            TrackedStatus::kActive);
  // A closed laptop: never reported idle, so it goes straight to offline,
  // but only after the grace window.
  EXPECT_EQ(StatusAt(active, 0, kT0 + Sec(229), kGrace),
            TrackedStatus::kActive);
  EXPECT_EQ(StatusAt(active, 0, kT0 + Sec(230), kGrace),
            TrackedStatus::kOffline);
  PresenceTimes idle{kT0 + Sec(120), kT0};  // idle pings after activity
  EXPECT_EQ(StatusAt(idle, 0, kT0 + Sec(200), kGrace), TrackedStatus::kIdle);
  EXPECT_EQ(StatusAt(idle, 0, kT0 + Sec(120 + 229), kGrace),
            TrackedStatus::kIdle);
  EXPECT_EQ(StatusAt(idle, 0, kT0 + Sec(120 + 230), kGrace),
            TrackedStatus::kOffline);
  PresenceTimes never_active{kT0, kNoTime};
  EXPECT_EQ(StatusAt(never_active, kT0 - Sec(1000), kT0 + Sec(10), kGrace),
            TrackedStatus::kIdle);
}

PresenceChange WriteOf(UserId user, PresenceTimes times, Micros at,
                       RealmId realm = 1) {
  PresenceChange c;
  c.realm_id = realm;
  c.user_id = user;
  c.times = times;
  c.written_at = at;
  return c;
}

// Issue #17: an active report (C == A) schedules only the offline deadline;
// A + T could not change anything, and a heap entry per write is memory at
// a million users.
TEST(TransitionTrackerTest, AnActiveReportSchedulesOneDeadline) {
  TransitionTracker tracker(kGrace);
  tracker.OnWrite(WriteOf(1, {kT0, kT0}, kT0));
  EXPECT_EQ(tracker.pending(), 1u);
  // An idle report after activity: idle at A + T, offline at C + T + grace.
  tracker.OnWrite(WriteOf(2, {kT0 + Sec(120), kT0}, kT0 + Sec(120)));
  EXPECT_EQ(tracker.pending(), 3u);
  // Connected long before the last activity (a row Zulip's rules never
  // write, but a store may hold): A + T is when it goes offline.
  tracker.OnWrite(WriteOf(3, {kT0 - Sec(100), kT0}, kT0));
  EXPECT_EQ(tracker.pending(), 5u);
}

// Issue #17: statuses sit in pages of consecutive ids; users anywhere
// (page edges, far apart, negative) are kept apart and forgotten when
// offline.
TEST(TransitionTrackerTest, StatusesOfUsersFarApartAreKeptApart) {
  TransitionTracker tracker(kGrace);
  const std::vector<UserId> users = {
      0, 1, 63, 64, 65, 1'000'000, std::int64_t{1} << 40, -1, -64, -65};
  for (UserId u : users) tracker.OnWrite(WriteOf(u, {kT0, kT0}, kT0));
  EXPECT_EQ(tracker.tracked(), users.size());
  // Every other user's next row is long offline: only those are forgotten.
  for (std::size_t i = 0; i < users.size(); i += 2) {
    tracker.OnWrite(WriteOf(users[i], {kT0, kT0}, kT0 + Sec(1000)));
  }
  EXPECT_EQ(tracker.tracked(), users.size() / 2);
  for (std::size_t i = 1; i < users.size(); i += 2) {
    tracker.OnWrite(WriteOf(users[i], {kT0, kT0}, kT0 + Sec(1000)));
  }
  EXPECT_EQ(tracker.tracked(), 0u);
}

// Issue #17: the calendar keeps ids that fit in 4 bytes as 4 bytes and any
// other id apart, at full width: a popped deadline is its own user's (its
// next write schedules it again), wherever the id lies around 2^32.
TEST(TransitionTrackerTest, DeadlinesKeepEveryIdWhole) {
  store::MemoryStore store;
  ManualClock clock{kT0};
  auto service = std::move(*PresenceService::Create(&store, &clock));
  TransitionTracker tracker(kGrace);
  const std::int64_t k32 = std::int64_t{1} << 32;
  const std::vector<UserId> users = {0,       1,         k32 - 1,      k32,
                                     k32 + 1, -1,        -k32,         k32 * 5,
                                     7,       INT64_MAX, INT64_MIN + 1};
  for (UserId u : users) tracker.OnWrite(WriteOf(u, {kT0, kT0}, kT0));
  EXPECT_EQ(tracker.pending(), users.size());
  EXPECT_FALSE(tracker.Due(kT0 + Sec(229)));
  ASSERT_TRUE(tracker.Due(kT0 + Sec(230)));
  // (None of them is a member: popped, nothing to announce.)
  EXPECT_TRUE(tracker.Tick(*service, kT0 + Sec(230)).empty());
  EXPECT_EQ(tracker.pending(), 0u);
  EXPECT_FALSE(tracker.Due(kT0 + Sec(10'000)));
  // Each user's deadline was popped, so each one's next write pushes one.
  for (UserId u : users) {
    tracker.OnWrite(
        WriteOf(u, {kT0 + Sec(231), kT0 + Sec(231)}, kT0 + Sec(231)));
  }
  EXPECT_EQ(tracker.pending(), users.size());
  // Popped in bounded steps: all of them, none twice.
  std::size_t steps = 0;
  while (tracker.Due(kT0 + Sec(461))) {
    tracker.Tick(*service, kT0 + Sec(461), 3);
    ++steps;
  }
  EXPECT_EQ(steps, (users.size() + 2) / 3);
  EXPECT_EQ(tracker.pending(), 0u);
}

class RecordingEncoder : public EventEncoder {
 public:
  std::string Presence(const PresenceChange& c, PresenceShape, Micros,
                       std::string_view t,
                       const ClientRowList*) const override {
    return std::to_string(c.user_id) + ":" + std::string(t) + "}";
  }
  std::string UserSettingsPresenceEnabled(bool) const override { return "s}"; }
  std::string GlobalNotificationsPresenceEnabled(std::string_view,
                                                 bool) const override {
    return "g}";
  }
  std::string UserStatus(UserId user,
                         const store::UserStatus& status) const override {
    (void)user;
    (void)status;
    return "s}";
  }
  std::string Heartbeat() const override { return "h}"; }
};

class TransitionHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::move(*PresenceService::Create(&store_, &clock_));
    HubOptions o;
    o.transition_grace_us = kGrace;
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, o);
    service_->SetListener(hub_.get());
    realm_ = *service_->CreateRealm("", "R");
    a_ = Add("a@example.com");
    watcher_ = Add("w@example.com");
    QueueSpec spec;
    spec.realm_id = realm_;
    spec.user_id = watcher_;
    spec.presence_transitions = true;
    q_ = hub_->Register(spec, 0);
    QueueSpec plain = spec;
    plain.presence_transitions = false;
    plain_ = hub_->Register(plain, 0);
  }

  UserId Add(std::string email) {
    NewUser u;
    u.email = email;
    u.full_name = email;
    return service_->CreateUser(realm_, u)->user_id;
  }

  void Ping(UserId u, ReportStatus s) {
    Caller c;
    c.realm = service_->FindRealmById(realm_);
    c.user_id = u;
    ASSERT_TRUE(service_->Report(c, s, clock_.NowMicros()));
  }

  // Moves the clock to T0+s and ticks; returns the new events of the queue.
  std::vector<std::string> At(std::int64_t s, const std::string& q) {
    clock_.Set(kT0 + Sec(s));
    hub_->TickTransitions(clock_.NowMicros());
    return Drain(q);
  }

  // The new events of the queue, without ticking.
  std::vector<std::string> Drain(const std::string& q) {
    auto r = hub_->Poll(q, watcher_, last_[q], false, nullptr, 0);
    std::vector<std::string> out;
    for (auto& e : r.events) {
      out.push_back(e.body->json());
      last_[q] = e.id;
    }
    return out;
  }

  ManualClock clock_{kT0};
  store::MemoryStore store_;
  RecordingEncoder encoder_;
  std::unique_ptr<PresenceService> service_;
  std::unique_ptr<EventHub> hub_;
  RealmId realm_ = 0;
  UserId a_ = 0, watcher_ = 0;
  std::string q_, plain_;
  std::map<std::string, std::optional<std::int64_t>> last_;
};

TEST_F(TransitionHubTest, ActiveThenIdleThenOffline) {
  Ping(a_, ReportStatus::kActive);
  EXPECT_THAT(At(0, q_), testing::ElementsAre("1:}"));  // Zulip's own event
  clock_.Set(kT0 + Sec(60));
  Ping(a_, ReportStatus::kIdle);
  clock_.Set(kT0 + Sec(120));
  Ping(a_, ReportStatus::kIdle);
  EXPECT_TRUE(At(199, q_).empty());
  EXPECT_THAT(At(200, q_), testing::ElementsAre("1:idle}"));
  EXPECT_TRUE(At(120 + 229, q_).empty());
  EXPECT_THAT(At(120 + 230, q_), testing::ElementsAre("1:offline}"));
  EXPECT_TRUE(At(2000, q_).empty());  // said once
  // Queues without the capability got only Zulip's event.
  EXPECT_THAT(At(2000, plain_), testing::ElementsAre("1:}"));
}

TEST_F(TransitionHubTest, RegularPingsKeepAUserOnlineWithoutEvents) {
  for (int i = 0; i <= 10; ++i) {
    clock_.Set(kT0 + Sec(60 * i));
    Ping(a_, ReportStatus::kActive);
    At(60 * i, q_);
  }
  EXPECT_TRUE(At(60 * 10 + 199, q_).empty());
  EXPECT_THAT(At(60 * 10 + 230, q_), testing::ElementsAre("1:offline}"));
}

TEST_F(TransitionHubTest, LatePingWithinGraceDoesNotFlap) {
  Ping(a_, ReportStatus::kActive);
  At(0, q_);
  // The next ping arrives 220 s later (a reconnect wave): past the 200 s
  // threshold but inside the grace window, so no offline/online pair.
  EXPECT_TRUE(At(219, q_).empty());
  clock_.Set(kT0 + Sec(220));
  Ping(a_, ReportStatus::kActive);
  auto events = At(221, q_);
  // Zulip's own "came online" event (gap > 130 s) only.
  EXPECT_THAT(events, testing::ElementsAre("1:}"));
  EXPECT_TRUE(At(300, q_).empty());
}

// Issue #17: a user who pings every minute keeps one deadline in the heap
// (not two per write), and still goes offline exactly on time.
TEST_F(TransitionHubTest, RegularPingsKeepOneDeadlineAndGoOfflineOnTime) {
  TransitionTracker tracker(kGrace);
  for (int s = 0; s <= 600; s += 60) {
    clock_.Set(kT0 + Sec(s));
    Ping(a_, ReportStatus::kActive);
    tracker.OnWrite(
        WriteOf(a_, {kT0 + Sec(s), kT0 + Sec(s)}, kT0 + Sec(s), realm_));
    EXPECT_TRUE(tracker.Tick(*service_, kT0 + Sec(s)).empty()) << s;
    EXPECT_EQ(tracker.pending(), 1u) << s;
  }
  EXPECT_TRUE(tracker.Tick(*service_, kT0 + Sec(600 + 229)).empty());
  auto due = tracker.Tick(*service_, kT0 + Sec(600 + 230));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].status, TrackedStatus::kOffline);
  EXPECT_EQ(tracker.pending(), 0u);
  EXPECT_EQ(tracker.tracked(), 0u);
  // Back online later: tracked and scheduled again.
  clock_.Set(kT0 + Sec(2000));
  Ping(a_, ReportStatus::kActive);
  tracker.OnWrite(
      WriteOf(a_, {kT0 + Sec(2000), kT0 + Sec(2000)}, kT0 + Sec(2000), realm_));
  EXPECT_EQ(tracker.pending(), 1u);
  EXPECT_EQ(tracker.Tick(*service_, kT0 + Sec(2230)).size(), 1u);
}

// Issue #17: the calendar (deadlines by whole second) announces exactly
// what re-ageing every row at every tick would: random active and idle
// pings at any microsecond, ticks once a second in random slices.
TEST_F(TransitionHubTest, CalendarAnnouncesExactlyAsReAgeingEveryRow) {
  std::vector<UserId> users;
  for (int i = 0; i < 24; ++i) {
    users.push_back(Add("u" + std::to_string(i) + "@example.com"));
  }
  TransitionTracker tracker(kGrace);
  std::map<UserId, TrackedStatus> model;  // last status announced
  std::map<UserId, std::pair<PresenceTimes, Micros>> rows;
  const Realm* realm = service_->FindRealmById(realm_);
  auto read_row = [&](UserId u) {
    std::pair<PresenceTimes, Micros> row;
    realm->WithMember(u, [&](const Member* m) {
      row = {m->times, m->date_joined};
    });
    return row;
  };
  std::mt19937_64 rng(4217);
  std::size_t announced = 0;
  std::map<UserId, std::string> history;  // for failures
  for (std::int64_t second = 0; second < 3000; ++second) {
    // Pings within this second; quiet stretches let users go idle and
    // offline.
    const bool quiet = (second / 400) % 2 == 1;
    for (UserId u : users) {
      if (rng() % (quiet ? 2000 : 40) != 0) continue;
      const Micros at =
          kT0 + Sec(second) + static_cast<Micros>(rng() % 1'000'000);
      clock_.Set(at);
      Ping(u, rng() % 3 == 0 ? ReportStatus::kIdle : ReportStatus::kActive);
      const auto row = read_row(u);
      rows[u] = row;
      PresenceChange change = WriteOf(u, row.first, at, realm_);
      change.date_joined = row.second;
      tracker.OnWrite(change);
      model[u] = StatusAt(row.first, row.second, at, kGrace);
      auto rel = [](Micros t) {
        return t == kNoTime ? std::string("none") : std::to_string(t - kT0);
      };
      history[u] += " w@" + rel(at) + "(c=" + rel(row.first.last_connected) +
                    ",a=" + rel(row.first.last_active) +
                    ",s=" + std::to_string(static_cast<int>(model[u])) + ")";
    }
    // The housekeeping's tick at the next whole second, in slices.
    const Micros now = kT0 + Sec(second + 1);
    std::map<UserId, TrackedStatus> got;
    do {
      for (const Transition& t : tracker.Tick(
               *service_, now, 1 + static_cast<std::size_t>(rng() % 4))) {
        ASSERT_TRUE(got.emplace(t.change.user_id, t.status).second);
      }
    } while (tracker.Due(now));
    std::map<UserId, TrackedStatus> want;
    for (auto& [u, row] : rows) {
      const TrackedStatus status = StatusAt(row.first, row.second, now, kGrace);
      if (status == model[u]) continue;
      model[u] = status;
      if (status != TrackedStatus::kActive) want[u] = status;
    }
    ASSERT_EQ(want, got) << "second " << second << " " << [&] {
      std::string h;
      for (auto& [u, w] : want) h += std::to_string(u) + ":" + history[u];
      for (auto& [u, g] : got) h += std::to_string(u) + ":" + history[u];
      return h;
    }();
    announced += got.size();
  }
  EXPECT_GT(announced, 100u);  // the run went through many transitions
}

TEST_F(TransitionHubTest, SeededRowsAreAnnouncedAfterARestart) {
  Ping(a_, ReportStatus::kActive);
  TransitionTracker fresh(kGrace);  // as after a restart: only the store
  fresh.Seed(*service_, kT0 + Sec(10));
  EXPECT_TRUE(fresh.Tick(*service_, kT0 + Sec(100)).empty());
  auto due = fresh.Tick(*service_, kT0 + Sec(230));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].status, TrackedStatus::kOffline);
  EXPECT_EQ(due[0].change.user_id, a_);
}

TEST_F(TransitionHubTest, SeedKeepsNothingForOfflineRows) {
  Ping(a_, ReportStatus::kActive);
  TransitionTracker fresh(kGrace);
  fresh.Seed(*service_, kT0 + Sec(1000));  // long offline
  EXPECT_EQ(fresh.tracked(), 0u);
  EXPECT_EQ(fresh.pending(), 0u);
  EXPECT_TRUE(fresh.Tick(*service_, kT0 + Sec(2000)).empty());
}

TEST_F(TransitionHubTest, OfflineUsersAreForgottenAndAnnouncedAgainLater) {
  Ping(a_, ReportStatus::kActive);
  TransitionTracker fresh(kGrace);
  fresh.Seed(*service_, kT0 + Sec(10));
  EXPECT_EQ(fresh.tracked(), 1u);
  auto due = fresh.Tick(*service_, kT0 + Sec(230));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].status, TrackedStatus::kOffline);
  EXPECT_EQ(fresh.tracked(), 0u);  // offline: nothing kept

  // Back an hour later, then gone again: offline is announced once more.
  clock_.Set(kT0 + Sec(3600));
  Ping(a_, ReportStatus::kActive);
  PresenceChange write;
  write.realm_id = realm_;
  write.user_id = a_;
  write.times = {kT0 + Sec(3600), kT0 + Sec(3600)};
  write.written_at = kT0 + Sec(3600);
  fresh.OnWrite(write);
  EXPECT_EQ(fresh.tracked(), 1u);
  EXPECT_TRUE(fresh.Tick(*service_, kT0 + Sec(3600 + 200)).empty());
  due = fresh.Tick(*service_, kT0 + Sec(3600 + 230));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].status, TrackedStatus::kOffline);
  EXPECT_EQ(fresh.tracked(), 0u);
  EXPECT_TRUE(fresh.Tick(*service_, kT0 + Sec(9000)).empty());
}

// Issue #17: a mass going-offline (every user's deadline in the same
// second) is announced in bounded steps; between two steps the hub serves
// requests at once, and once the steps are done every transition has been
// announced, each user's in order.
TEST_F(TransitionHubTest, Issue17_MassTransitionsTickInBoundedSteps) {
  constexpr int kUsers = 300;
  constexpr std::size_t kStep = 16;
  std::vector<UserId> users;
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(Add("u" + std::to_string(i) + "@example.com"));
  }
  for (UserId u : users) Ping(u, ReportStatus::kActive);
  EXPECT_EQ(Drain(q_).size(), users.size());  // Zulip's "came online"
  clock_.Set(kT0 + Sec(60));
  for (UserId u : users) Ping(u, ReportStatus::kIdle);
  Drain(q_);
  Drain(plain_);

  std::map<std::string, std::vector<std::string>> seen;  // user -> events
  auto collect = [&] {
    for (const std::string& e : Drain(q_)) {
      const auto colon = e.find(':');
      seen[e.substr(0, colon)].push_back(e.substr(colon + 1));
    }
  };
  bool served_meanwhile = false;
  // Everyone goes idle in the same second, then offline in the same one.
  for (std::int64_t at : {200, 60 + 230}) {
    clock_.Set(kT0 + Sec(at));
    const Micros now = clock_.NowMicros();
    std::size_t steps = 0;
    while (hub_->TransitionsDue(now)) {
      EXPECT_LE(hub_->TickTransitions(now, kStep), kStep);
      ++steps;
      if (!served_meanwhile) {
        // A request between two steps: a_'s first ping is answered and
        // its event reaches the plain queue while transitions still wait.
        EXPECT_TRUE(hub_->TransitionsDue(now));
        Ping(a_, ReportStatus::kActive);
        EXPECT_THAT(Drain(plain_),
                    testing::ElementsAre(std::to_string(a_) + ":}"));
        served_meanwhile = true;
      }
      collect();
    }
    EXPECT_GE(steps, users.size() / kStep) << at;
  }
  EXPECT_TRUE(served_meanwhile);
  seen.erase(std::to_string(a_));  // its own Zulip event
  ASSERT_EQ(seen.size(), users.size());
  for (UserId u : users) {
    EXPECT_THAT(seen[std::to_string(u)],
                testing::ElementsAre("idle}", "offline}"))
        << u;
  }
  // Nothing more is due, and nothing is announced twice.
  EXPECT_EQ(hub_->TickTransitions(clock_.NowMicros()), 0u);
}

// A realm whose queues all lack presence_transitions: transitions are
// still tracked (and announced once a queue asks again), but reach no queue.
TEST_F(TransitionHubTest, Issue17_TransitionsSkipRealmsWithoutTheirQueues) {
  ASSERT_TRUE(hub_->Delete(q_, watcher_));
  Ping(a_, ReportStatus::kActive);
  EXPECT_EQ(At(230, plain_).size(), 1u);  // Zulip's event only
  QueueSpec spec;
  spec.realm_id = realm_;
  spec.user_id = watcher_;
  spec.presence_transitions = true;
  const std::string again = hub_->Register(spec, 0);
  clock_.Set(kT0 + Sec(300));
  Ping(a_, ReportStatus::kActive);
  Drain(again);
  EXPECT_THAT(At(300 + 230, again),
              testing::ElementsAre(std::to_string(a_) + ":offline}"));
}

}  // namespace
}  // namespace presence
