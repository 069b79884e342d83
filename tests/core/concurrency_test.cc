// Several threads at once on one realm: writers, incremental readers, the
// flusher and event queues. Run under ThreadSanitizer in CI (the tsan
// preset); here it also checks that nothing is lost or handed out twice.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "core/event_hub.h"
#include "core/presence_service.h"
#include "testing/memory_store.h"

namespace presence {
namespace {

class CountingEncoder : public EventEncoder {
 public:
  std::string Presence(const PresenceChange& c, PresenceShape, Micros,
                       std::string_view, const ClientRowList*) const override {
    return "{\"u\":" + std::to_string(c.user_id) + "}";
  }
  std::string UserSettingsPresenceEnabled(bool) const override { return "{}"; }
  std::string GlobalNotificationsPresenceEnabled(std::string_view,
                                                 bool) const override {
    return "{}";
  }
  std::string UserStatus(UserId user,
                         const store::UserStatus& status) const override {
    (void)user;
    (void)status;
    return "{}";
  }
  std::string Heartbeat() const override { return "{}"; }
};

TEST(ConcurrencyTest, WritersReadersFlusherAndQueuesTogether) {
  constexpr int kWriters = 4;
  constexpr int kUsersPerWriter = 25;
  constexpr int kRounds = 40;
  ManualClock clock(SecondsToMicros(1'700'000'000));
  store::MemoryStore store;
  auto service = std::move(*PresenceService::Create(&store, &clock));
  CountingEncoder encoder;
  EventHub hub(service.get(), &encoder, HubOptions{});
  service->SetListener(&hub);
  RealmId realm = *service->CreateRealm("", "R");
  std::vector<Caller> callers;
  for (int i = 0; i < kWriters * kUsersPerWriter; ++i) {
    NewUser u;
    u.email = "u" + std::to_string(i) + "@example.com";
    u.full_name = u.email;
    Caller c;
    c.realm = service->FindRealmById(realm);
    c.user_id = service->CreateUser(realm, u)->user_id;
    callers.push_back(c);
  }
  const std::string queue = hub.Register({realm, callers[0].user_id}, 0);

  std::atomic<bool> done{false};
  std::atomic<int> writes_ok{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        for (int i = 0; i < kUsersPerWriter; ++i) {
          const Caller& c = callers[w * kUsersPerWriter + i];
          // Each round is 61 s later: every report writes.
          Micros now = SecondsToMicros(1'700'000'000 + 61 * (round + 1));
          if (service->Report(c, ReportStatus::kActive, now)) writes_ok++;
        }
      }
    });
  }
  threads.emplace_back([&] {  // incremental readers
    UpdateId cursor = -1;
    while (!done) {
      FetchQuery q;
      q.last_update_id = cursor;
      UpdateId last = -1;
      last = service->Fetch(
          callers[1], q, clock.NowMicros(),
          [&](const Member& m) { EXPECT_GT(m.last_update_id, cursor); });
      EXPECT_GE(last, cursor);
      cursor = last;
    }
  });
  threads.emplace_back([&] {  // flusher
    while (!done) ASSERT_TRUE(service->Flush());
  });
  threads.emplace_back([&] {  // a client of the queue
    std::int64_t last = -1;
    while (!done) {
      auto r = hub.Poll(queue, callers[0].user_id, last, false, nullptr, 0);
      ASSERT_EQ(r.status, PollStatus::kEvents);
      if (!r.events.empty()) last = r.events.back().id;
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done = true;
  for (std::size_t i = kWriters; i < threads.size(); ++i) threads[i].join();

  const int total = kWriters * kUsersPerWriter * kRounds;
  EXPECT_EQ(writes_ok.load(), total);
  ASSERT_TRUE(service->Flush());
  // Every write took its own id: the highest is exactly the number of writes.
  EXPECT_EQ(service->FindRealmById(realm)->last_update_id(), total);
  // What the store holds is what memory holds.
  auto snap = store.Load();
  ASSERT_TRUE(snap);
  std::set<UpdateId> ids;
  for (const auto& row : snap->presence) ids.insert(row.last_update_id);
  EXPECT_EQ(ids.size(), callers.size());
  EXPECT_EQ(*ids.rbegin(), total);
}

}  // namespace
}  // namespace presence
