// GateBatcher: one store call in flight per realm, the requests that arrive
// meanwhile together in the next one, bounded, each answered with its own
// result; a whole call's error fails its batch only.
#include "core/gate_batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

namespace presence {
namespace {

using store::GateBatchCallback;
using store::GateBatchResult;
using store::GateRequest;
using store::GateResult;

// A store whose calls the test answers by hand, in the order it likes.
struct ManualStore {
  struct Call {
    RealmId realm;
    std::vector<UserId> users;  // the requests, in the call's order
    GateBatchCallback done;
  };
  std::deque<Call> calls;

  GateBatcher::SendBatch Sender() {
    return [this](RealmId realm, std::span<const GateRequest> requests,
                  GateBatchCallback done) {
      Call c{realm, {}, std::move(done)};
      for (const GateRequest& r : requests) c.users.push_back(r.user);
      calls.push_back(std::move(c));
    };
  }
  // Answers the oldest call: request i gets log number `first_seq + i`.
  void AnswerOldest(UpdateId first_seq = 100) {
    Call c = std::move(calls.front());
    calls.pop_front();
    std::vector<StoreResult<GateResult>> out;
    for (std::size_t i = 0; i < c.users.size(); ++i) {
      out.push_back(
          GateResult{.write = {.wrote = true,
                               .seq = first_seq + static_cast<UpdateId>(i)}});
    }
    c.done(std::move(out));
  }
};

// What each request was answered.
struct Answers {
  std::vector<std::optional<StoreResult<GateResult>>> got;
  store::GateCallback For(std::size_t i) {
    if (got.size() <= i) got.resize(i + 1);
    return [this, i](StoreResult<GateResult> r) { got[i] = std::move(r); };
  }
};

GateRequest From(UserId user) { return GateRequest{.user = user}; }

TEST(GateBatcherTest, ARequestOfAQuietRealmIsSentAtOnceAlone) {
  ManualStore store;
  GateBatcher batcher(store.Sender());
  Answers a;
  batcher.Submit(1, From(10), a.For(0));
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0].users, std::vector<UserId>{10});
  store.AnswerOldest(7);
  ASSERT_TRUE(a.got[0].has_value());
  ASSERT_TRUE(a.got[0]->has_value());
  EXPECT_EQ((*a.got[0])->write.seq, 7);
  // The realm is idle again: the next request goes at once too.
  batcher.Submit(1, From(11), a.For(1));
  EXPECT_EQ(store.calls.size(), 1u);
}

TEST(GateBatcherTest, RequestsArrivingDuringACallGoTogetherInOrder) {
  ManualStore store;
  GateBatcher batcher(store.Sender());
  Answers a;
  batcher.Submit(1, From(10), a.For(0));
  for (UserId u : {11, 12, 13, 14}) {
    batcher.Submit(1, From(u), a.For(static_cast<std::size_t>(u - 10)));
  }
  // One call in flight per realm: the four wait.
  ASSERT_EQ(store.calls.size(), 1u);
  store.AnswerOldest(100);
  // The next call carries the four, in the order they came.
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0].users, (std::vector<UserId>{11, 12, 13, 14}));
  for (std::size_t i = 1; i < 5; ++i) EXPECT_FALSE(a.got[i].has_value());
  store.AnswerOldest(200);
  // Each got its own answer (its own log position).
  for (std::size_t i = 1; i < 5; ++i) {
    ASSERT_TRUE(a.got[i].has_value());
    ASSERT_TRUE(a.got[i]->has_value());
    EXPECT_EQ((*a.got[i])->write.seq, 200 + static_cast<UpdateId>(i - 1));
  }
  EXPECT_TRUE(store.calls.empty());
}

TEST(GateBatcherTest, ABatchIsBoundedAndTheRestWaitForTheNextCall) {
  ManualStore store;
  GateBatcher batcher(store.Sender(), /*max_batch=*/3);
  Answers a;
  for (std::size_t i = 0; i < 8; ++i) {
    batcher.Submit(1, From(static_cast<UserId>(i)), a.For(i));
  }
  std::vector<std::vector<UserId>> sent;
  while (!store.calls.empty()) {
    ASSERT_EQ(store.calls.size(), 1u);  // never two at once for a realm
    sent.push_back(store.calls.front().users);
    store.AnswerOldest();
  }
  EXPECT_EQ(sent,
            (std::vector<std::vector<UserId>>{{0}, {1, 2, 3}, {4, 5, 6}, {7}}));
  for (const auto& g : a.got) ASSERT_TRUE(g.has_value() && g->has_value());
}

TEST(GateBatcherTest, RealmsDoNotWaitForEachOther) {
  ManualStore store;
  GateBatcher batcher(store.Sender());
  Answers a;
  batcher.Submit(1, From(10), a.For(0));
  batcher.Submit(2, From(20), a.For(1));
  batcher.Submit(1, From(11), a.For(2));
  ASSERT_EQ(store.calls.size(), 2u);
  EXPECT_EQ(store.calls[0].realm, 1);
  EXPECT_EQ(store.calls[1].realm, 2);
}

TEST(GateBatcherTest, OneFailingStepFailsOnlyItsRequest) {
  ManualStore store;
  GateBatcher batcher(store.Sender());
  Answers a;
  batcher.Submit(1, From(10), a.For(0));
  for (std::size_t i = 1; i <= 3; ++i) {
    batcher.Submit(1, From(static_cast<UserId>(10 + i)), a.For(i));
  }
  store.AnswerOldest();
  ManualStore::Call c = std::move(store.calls.front());
  store.calls.pop_front();
  std::vector<StoreResult<GateResult>> out;
  out.push_back(GateResult{.write = {.seq = 5}});
  out.push_back(Error(Errc::kStoreFailed, "gate step: WRONGTYPE"));
  out.push_back(GateResult{.write = {.seq = 6}});
  c.done(std::move(out));
  ASSERT_TRUE(a.got[1].has_value() && a.got[1]->has_value());
  EXPECT_EQ((*a.got[1])->write.seq, 5);
  ASSERT_TRUE(a.got[2].has_value());
  ASSERT_FALSE(a.got[2]->has_value());
  EXPECT_EQ(a.got[2]->error(), Errc::kStoreFailed);
  EXPECT_EQ(a.got[2]->error().detail(), "gate step: WRONGTYPE");
  ASSERT_TRUE(a.got[3].has_value() && a.got[3]->has_value());
  EXPECT_EQ((*a.got[3])->write.seq, 6);
}

TEST(GateBatcherTest, AFailedCallFailsItsBatchAndTheNextCallStillGoes) {
  ManualStore store;
  GateBatcher batcher(store.Sender());
  Answers a;
  batcher.Submit(1, From(10), a.For(0));
  batcher.Submit(1, From(11), a.For(1));
  batcher.Submit(1, From(12), a.For(2));
  store.AnswerOldest();
  // The call of {11, 12} fails as a whole; 13 arrived while it was in
  // flight.
  batcher.Submit(1, From(13), a.For(3));
  ManualStore::Call c = std::move(store.calls.front());
  store.calls.pop_front();
  c.done(Error(Errc::kStoreFailed, "redis 127.0.0.1:1: connection closed"));
  for (std::size_t i : {1u, 2u}) {
    ASSERT_TRUE(a.got[i].has_value());
    ASSERT_FALSE(a.got[i]->has_value());
    EXPECT_EQ(a.got[i]->error().detail(),
              "redis 127.0.0.1:1: connection closed");
  }
  // 13 is not failed with them: it goes in the next call.
  EXPECT_FALSE(a.got[3].has_value());
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0].users, std::vector<UserId>{13});
  store.AnswerOldest(9);
  ASSERT_TRUE(a.got[3].has_value() && a.got[3]->has_value());
}

TEST(GateBatcherTest, AnAnswerOfTheWrongSizeFailsTheBatch) {
  ManualStore store;
  GateBatcher batcher(store.Sender());
  Answers a;
  batcher.Submit(1, From(10), a.For(0));
  ManualStore::Call c = std::move(store.calls.front());
  store.calls.pop_front();
  c.done(std::vector<StoreResult<GateResult>>{});
  ASSERT_TRUE(a.got[0].has_value());
  ASSERT_FALSE(a.got[0]->has_value());
  EXPECT_EQ(a.got[0]->error(), Errc::kCorrupt);
}

// A store that answers before GateBatch returns, while a request waits
// behind every call (submitted during the call, as another thread would):
// every one is answered, in order, one call each, without the stack
// growing per batch.
TEST(GateBatcherTest, AStoreThatAnswersAtOnceDoesNotRecurse) {
  constexpr UserId kChain = 200'000;
  std::size_t calls = 0;
  UserId submitted = 0;
  std::vector<UserId> order;
  GateBatcher* self = nullptr;
  std::function<void()> submit_next = [&] {
    const UserId u = submitted++;
    self->Submit(1, From(u), [&order, u](StoreResult<GateResult> r) {
      ASSERT_TRUE(r.has_value());
      order.push_back(u);
    });
  };
  GateBatcher batcher([&](RealmId, std::span<const GateRequest> requests,
                          GateBatchCallback done) {
    ++calls;
    if (submitted < kChain) submit_next();  // waits behind this call
    done(std::vector<StoreResult<GateResult>>(requests.size(), GateResult{}));
  });
  self = &batcher;
  submit_next();
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kChain));
  for (UserId u = 0; u < kChain; ++u) ASSERT_EQ(order[u], u);
  EXPECT_EQ(calls, static_cast<std::size_t>(kChain));
}

// Submitted from several threads while answers come from another: every
// request is answered exactly once, and a realm never has two calls in
// flight.
TEST(GateBatcherTest, ConcurrentSubmitsAreAllAnsweredOnce) {
  Mutex mu;
  std::deque<std::pair<std::size_t, GateBatchCallback>> pending;
  std::atomic<int> in_flight{0};
  std::atomic<int> most{0};
  GateBatcher batcher(
      [&](RealmId, std::span<const GateRequest> requests,
          GateBatchCallback done) {
        const int now = ++in_flight;
        int was = most.load();
        while (now > was && !most.compare_exchange_weak(was, now)) {
        }
        MutexLock lock(mu);
        pending.emplace_back(requests.size(), std::move(done));
      },
      /*max_batch=*/16);
  constexpr int kThreads = 4;
  constexpr int kEach = 2000;
  std::atomic<int> answered{0};
  std::atomic<bool> submitting{true};
  std::thread answerer([&] {
    for (;;) {
      std::optional<std::pair<std::size_t, GateBatchCallback>> call;
      {
        MutexLock lock(mu);
        if (!pending.empty()) {
          call = std::move(pending.front());
          pending.pop_front();
        }
      }
      if (!call) {
        if (!submitting && answered == kThreads * kEach) return;
        std::this_thread::yield();
        continue;
      }
      --in_flight;
      call->second(
          std::vector<StoreResult<GateResult>>(call->first, GateResult{}));
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        batcher.Submit(1, From(i), [&](StoreResult<GateResult> r) {
          EXPECT_TRUE(r.has_value());
          ++answered;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  submitting = false;
  answerer.join();
  EXPECT_EQ(answered, kThreads * kEach);
  EXPECT_EQ(most, 1);
}

}  // namespace
}  // namespace presence
