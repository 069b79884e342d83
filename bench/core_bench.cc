// core_bench: micro-benchmarks of presenced's core and API layer, in
// process, without sockets (Google Benchmark).
//
//   BM_PresenceWrite/N        one report that writes a row (the 55 s rule
//                             passed), through PresenceService with the
//                             EventHub listening, as in the server.
//   BM_RealmWrite/N           the same write on the Realm alone.
//   BM_PresenceWriteClient/N  BM_PresenceWrite with the client's name, as
//                             the server calls it (per-client rows).
//   BM_ClientRowMemory/N      heap bytes per user of two client rows.
//   BM_IncrementalQuery/N     Fetch + modern JSON from a cursor with 1% of
//                             the realm's rows changed since (N/100 rows).
//   BM_IncrementalPing/N      a whole POST /api/v1/users/me/presence through
//                             api::Router: Basic auth (SHA-256), parameters,
//                             the write, an incremental answer of the 10
//                             rows changed before it plus its own. The same
//                             work at every N: its cost should not grow
//                             with the realm.
//   BM_FullSnapshot/{legacy,modern}/N
//                             every row of the realm as JSON (the first
//                             fetch of a client).
//   BM_Reference_Memcpy/B     copying B bytes (the size of the modern
//                             snapshot of 100k users): the floor any
//                             snapshot cost is compared with in one run.
//   BM_FanOut/{idle,parked}/Q one presence event serialised and handed to Q
//                             queues of one realm (idle: nobody polling;
//                             parked: each queue has a parked poll to wake).
//
// Sizes: --scale=full (default) uses realms of 1k, 10k, 100k and 1M users;
// --scale=tiny uses 100 and 1000 users, for the CI smoke run. Every other
// flag is Google Benchmark's (e.g. --benchmark_out=f.json
// --benchmark_out_format=json --benchmark_min_time=0.2).
//
// The realms are built straight from a Snapshot handed to
// PresenceService::Create by an in-memory Store (building a million users
// through CreateUser would take a SHA-256 and a store call each). Time is a
// ManualClock the benchmarks move, so every "write" really writes.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/api_options.h"
#include "api/event_encoder.h"
#include "api/http_types.h"
#include "api/presence_format.h"
#include "api/router.h"
#include "bench/bench_users.h"
#include "core/event_hub.h"
#include "core/presence_service.h"
#include "core/store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace presence::bench {
namespace {

// How many users log in for real (a true SHA-256 of their key): the others
// get a cheap unique digest, since nobody authenticates as them.
constexpr std::int64_t kRealKeys = 1000;

std::uint64_t SplitMix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A Store that hands out a prepared snapshot and accepts every write.
class SnapshotStore final : public store::Store {
 public:
  explicit SnapshotStore(store::Snapshot snap) : snap_(std::move(snap)) {}
  StoreResult<store::Snapshot> Load() override { return std::move(snap_); }
  StoreResult<RealmId> InsertRealm(const store::RealmRecord&) override {
    return Errc::kStoreFailed;
  }
  StoreStatus UpdateRealm(const store::RealmRecord&) override { return {}; }
  StoreResult<UserId> InsertUser(const store::UserRecord&) override {
    return Errc::kStoreFailed;
  }
  StoreStatus UpdateUser(const store::UserRecord&) override { return {}; }
  StoreStatus SetAccess(const store::AccessRecord&) override { return {}; }
  StoreStatus ReserveUpdateIds(RealmId, UpdateId) override { return {}; }
  StoreStatus WritePresence(std::span<const store::PresenceRecord>,
                            std::span<const store::ClientPresenceRecord>,
                            std::span<const store::SequenceRecord>) override {
    return {};
  }

 private:
  store::Snapshot snap_;
};

// A parked poll that only counts its wake-ups.
class CountingWaiter final : public QueueWaiter {
 public:
  void Wake() override { wakes.fetch_add(1, std::memory_order_relaxed); }
  void Supersede() override {}
  std::atomic<std::int64_t> wakes{0};
};

// One realm of N users with a presence row each, the API on top of it.
struct World {
  explicit World(std::int64_t n) : users(n), clock(1'700'000'000'000'000) {
    store::Snapshot snap;
    store::RealmRecord realm;
    realm.id = 1;
    realm.subdomain = "";
    realm.name = "Bench";
    realm.date_created = clock.NowMicros() - SecondsToMicros(86400 * 30);
    realm.last_update_id = n;
    realm.reserved_update_id = n;
    snap.realms.push_back(realm);
    snap.users.reserve(n);
    snap.presence.reserve(n);
    const Micros seen = clock.NowMicros() - SecondsToMicros(3600);
    for (std::int64_t i = 0; i < n; ++i) {
      store::UserRecord u;
      u.id = i + 1;
      u.realm_id = 1;
      u.email = BenchEmail(i);
      u.full_name = BenchName(i);
      u.date_joined = realm.date_created;
      if (i < kRealKeys) {
        u.api_key_hash = Sha256(BenchKey(i));
      } else {
        const std::uint64_t a = SplitMix(i), b = SplitMix(a);
        std::memcpy(u.api_key_hash.data(), &a, 8);
        std::memcpy(u.api_key_hash.data() + 8, &b, 8);
      }
      snap.users.push_back(std::move(u));
      snap.presence.push_back({i + 1, 1, seen, seen, i + 1});
    }
    snapshot_store = std::make_unique<SnapshotStore>(std::move(snap));
    auto s = PresenceService::Create(snapshot_store.get(), &clock);
    if (!s) std::abort();
    service = std::move(*s);
    realm_ptr = service->FindRealmById(1);
    HubOptions hub_options;
    hub_options.max_queue_events = 100'000;
    hub = std::make_unique<EventHub>(service.get(), &encoder, hub_options);
    service->SetListener(hub.get());
    options.rate_limit_per_minute = 0;
    router = std::make_unique<api::Router>(service.get(), hub.get(), &options);
  }

  Caller CallerOf(std::int64_t i) const {
    Caller c;
    c.realm = realm_ptr;
    c.user_id = i + 1;
    return c;
  }

  // Moves time an hour on: every row is old again (every report writes).
  Micros Later() {
    clock.Advance(SecondsToMicros(3600));
    return clock.NowMicros();
  }

  const std::int64_t users;
  ManualClock clock;
  std::unique_ptr<SnapshotStore> snapshot_store;
  std::unique_ptr<PresenceService> service;
  Realm* realm_ptr = nullptr;
  api::JsonEventEncoder encoder;
  std::unique_ptr<EventHub> hub;
  api::ApiOptions options;
  std::unique_ptr<api::Router> router;
};

// Every size is built once and kept (about 1 GB for all of them), so that
// repetitions of different sizes can be interleaved
// (--benchmark_enable_random_interleaving) without rebuilding a realm.
World& WorldOf(std::int64_t n) {
  static std::map<std::int64_t, std::unique_ptr<World>> worlds;
  auto& world = worlds[n];
  if (!world) world = std::make_unique<World>(n);
  return *world;
}

// ---------------------------------------------------------------- writes

void BM_PresenceWrite(benchmark::State& state) {
  World& w = WorldOf(state.range(0));
  const std::int64_t n = w.users;
  Micros now = w.Later();
  // User u reports every n iterations; 60.6 s apart, past the 55 s rule.
  const Micros step = SecondsToMicros(60) * 101 / 100 / n + 1;
  std::int64_t i = 0;
  for (auto _ : state) {
    now += step;
    w.clock.Set(now);
    auto st = w.service->Report(w.CallerOf(i % n), ReportStatus::kActive, now);
    benchmark::DoNotOptimize(st);
    // The server's once-a-second timer, amortised over the writes.
    if (++i % 1024 == 0) w.hub->TickTransitions(now);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RealmWrite(benchmark::State& state) {
  World& w = WorldOf(state.range(0));
  const std::int64_t n = w.users;
  Micros now = w.Later();
  const Micros step = SecondsToMicros(60) * 101 / 100 / n + 1;
  std::int64_t i = 0;
  for (auto _ : state) {
    now += step;
    auto r = w.realm_ptr->RecordReport(i++ % n + 1, now, ReportStatus::kActive);
    benchmark::DoNotOptimize(r);
  }
  w.clock.Set(now);
  state.SetItemsProcessed(state.iterations());
}

// The same write as the server makes it: with the reporting client's name
// (per-client extension, issue #8). Each user has one client row, written
// in step with the user row.
void BM_PresenceWriteClient(benchmark::State& state) {
  World& w = WorldOf(state.range(0));
  const std::int64_t n = w.users;
  Micros now = w.Later();
  const Micros step = SecondsToMicros(60) * 101 / 100 / n + 1;
  std::int64_t i = 0;
  for (auto _ : state) {
    now += step;
    w.clock.Set(now);
    auto st = w.service->Report(w.CallerOf(i % n), ReportStatus::kActive, now,
                                "website");
    benchmark::DoNotOptimize(st);
    if (++i % 1024 == 0) w.hub->TickTransitions(now);
  }
  state.SetItemsProcessed(state.iterations());
}

// Heap bytes per user that two clients' rows cost (issue #8): a fresh realm
// of N users with a row each, then every user reports from a browser and,
// 10 s later, from the mobile app. Measured with glibc's mallinfo2 (bytes
// in use), so it counts the side table, the rows, their names and the
// dirty list the next flush empties.
void BM_ClientRowMemory(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  double per_user = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto w = std::make_unique<World>(n);
    const Micros t = w->Later();
    state.ResumeTiming();
    const std::size_t before = mallinfo2().uordblks;
    for (std::int64_t u = 1; u <= n; ++u) {
      (void)w->realm_ptr->RecordReport(u, t, ReportStatus::kActive, "website");
    }
    for (std::int64_t u = 1; u <= n; ++u) {
      (void)w->realm_ptr->RecordReport(u, t + SecondsToMicros(10),
                                       ReportStatus::kActive, "ZulipMobile");
    }
    const std::size_t after = mallinfo2().uordblks;
    per_user = static_cast<double>(after - before) / static_cast<double>(n);
    state.PauseTiming();
    w.reset();
    state.ResumeTiming();
  }
  state.counters["bytes_per_user"] = per_user;
}

// ---------------------------------------------------------------- reads

void BM_IncrementalQuery(benchmark::State& state) {
  World& w = WorldOf(state.range(0));
  const std::int64_t n = w.users;
  const Micros now = w.Later();
  // 1% of the rows change, spread over the realm.
  const UpdateId cursor = w.realm_ptr->last_update_id();
  const std::int64_t changed = std::max<std::int64_t>(1, n / 100);
  for (std::int64_t k = 0; k < changed; ++k) {
    (void)w.realm_ptr->RecordReport(k * (n / changed) + 1, now,
                                    ReportStatus::kActive);
  }
  FetchQuery query;
  query.last_update_id = cursor;
  const Caller viewer = w.CallerOf(n - 1);
  std::string out;
  std::size_t rows = 0;
  for (auto _ : state) {
    out.clear();
    api::AppendPresences(out, *w.service, viewer, query, /*modern=*/true, now);
    benchmark::DoNotOptimize(out.data());
  }
  w.service->Fetch(viewer, query, now, [&](const Member&) { ++rows; });
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["ns_per_row"] = benchmark::Counter(
      static_cast<double>(rows) * state.iterations() * 1e-9,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * rows);
  state.SetBytesProcessed(state.iterations() * out.size());
}

// A whole ping through the API layer. The pinging users are the first
// min(n, 1000) (they have real keys); each ping writes (60.6 s since that
// user's last) and asks for the rows changed since 10 writes ago.
void BM_IncrementalPing(benchmark::State& state) {
  World& w = WorldOf(state.range(0));
  const std::int64_t pingers = std::min<std::int64_t>(w.users, kRealKeys);
  Micros now = w.Later();
  const Micros step = SecondsToMicros(60) * 101 / 100 / pingers + 1;
  std::vector<std::string> auth(pingers);
  for (std::int64_t i = 0; i < pingers; ++i) {
    auth[i] = "Basic " + Base64Encode(BenchEmail(i) + ":" + BenchKey(i));
  }
  api::Request req;
  req.method = "POST";
  req.target = "/api/v1/users/me/presence";
  req.host = "127.0.0.1";
  req.has_authorization = true;
  req.content_type = "application/x-www-form-urlencoded";
  std::string body;
  std::int64_t i = 0, bad = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    now += step;
    w.clock.Set(now);
    const std::int64_t u = i++ % pingers;
    body = "status=active&last_update_id=" +
           std::to_string(w.realm_ptr->last_update_id() - 10);
    req.authorization = auth[u];
    req.body = body;
    api::Response r = w.router->Handle(req);
    if (r.status != 200) ++bad;
    bytes += r.body.size();
    benchmark::DoNotOptimize(r.body.data());
    if (i % 1024 == 0) w.hub->TickTransitions(now);
  }
  if (bad) state.SkipWithError("a ping did not answer 200");
  state.counters["bytes_per_answer"] =
      static_cast<double>(bytes) / std::max<std::int64_t>(1, i);
  state.SetItemsProcessed(state.iterations());
}

void BM_FullSnapshot(benchmark::State& state, bool modern) {
  World& w = WorldOf(state.range(0));
  const Micros now = w.clock.NowMicros();
  const Caller viewer = w.CallerOf(0);
  std::string out;
  for (auto _ : state) {
    out.clear();
    api::AppendPresences(out, *w.service, viewer, FetchQuery{}, modern, now);
    benchmark::DoNotOptimize(out.data());
  }
  std::size_t rows = 0;
  w.service->Fetch(viewer, FetchQuery{}, now, [&](const Member&) { ++rows; });
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["bytes"] = static_cast<double>(out.size());
  state.SetItemsProcessed(state.iterations() * rows);
  state.SetBytesProcessed(state.iterations() * out.size());
}

void BM_Reference_Memcpy(benchmark::State& state) {
  std::string src(static_cast<std::size_t>(state.range(0)), 'x');
  std::string dst;
  for (auto _ : state) {
    dst.clear();
    dst.append(src);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * src.size());
}

// ---------------------------------------------------------------- fan-out

void BM_FanOut(benchmark::State& state, bool parked) {
  World& w = WorldOf(state.range(1));
  const std::int64_t queues = state.range(0);
  // A hub of its own, so queues do not pile up in the world's.
  HubOptions hub_options;
  hub_options.max_queue_events = 1000;
  // Several queues per bench user: none may push another out.
  hub_options.max_queues_per_user = static_cast<std::size_t>(queues);
  EventHub hub(w.service.get(), &w.encoder, hub_options);
  std::vector<std::string> ids;
  std::vector<std::shared_ptr<QueueWaiter>> waiters;
  for (std::int64_t q = 0; q < queues; ++q) {
    QueueSpec spec;
    spec.realm_id = 1;
    spec.user_id = q % w.users + 1;
    spec.event_types = EventTypeSet::Of(std::vector<std::string>{"presence"});
    spec.shape = PresenceShape::kModern;
    ids.push_back(hub.Register(spec, 0));
    waiters.push_back(std::make_shared<CountingWaiter>());
  }
  std::vector<std::int64_t> last(queues, -1);
  // What the woken polls would do: take the events (acknowledging the
  // earlier ones) and, when parked, park again.
  auto park_all = [&] {
    for (std::int64_t q = 0; q < queues; ++q) {
      const UserId user = q % w.users + 1;
      auto r = hub.Poll(ids[q], user, last[q], false, nullptr, 0);
      if (!r.events.empty()) last[q] = r.events.back().id;
      if (parked) hub.Poll(ids[q], user, last[q], true, waiters[q], 0);
    }
  };
  park_all();
  PresenceChange change;
  change.realm_id = 1;
  change.user_id = w.users;  // someone who is not a watcher's own queue
  change.email = BenchEmail(w.users - 1);
  change.times = {w.clock.NowMicros(), w.clock.NowMicros()};
  change.written_at = w.clock.NowMicros();
  change.event_due = true;
  std::int64_t k = 0;
  for (auto _ : state) {
    ++change.update_id;
    hub.OnPresenceChange(change);
    if (++k % 256 == 0) {
      state.PauseTiming();
      park_all();  // acknowledge, as the woken polls would
      state.ResumeTiming();
    }
  }
  state.counters["queues"] = static_cast<double>(queues);
  state.counters["ns_per_queue"] = benchmark::Counter(
      static_cast<double>(queues) * state.iterations() * 1e-9,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * queues);
}

// ---------------------------------------------------------------- main

void RegisterAll(bool tiny) {
  const std::vector<std::int64_t> sizes =
      tiny ? std::vector<std::int64_t>{100, 1000}
           : std::vector<std::int64_t>{1000, 10'000, 100'000, 1'000'000};
  const std::int64_t snap_small = tiny ? 100 : 10'000;
  const std::int64_t snap_big = tiny ? 1000 : 100'000;
  const std::int64_t write_size = tiny ? 1000 : 10'000;
  const std::int64_t fan_queues = tiny ? 100 : 10'000;
  const std::int64_t fan_realm = tiny ? 1000 : 10'000;
  for (std::int64_t n : sizes) {
    // Read-only benchmarks first: the writing ones move rows around.
    if (n == snap_small || n == snap_big) {
      benchmark::RegisterBenchmark("BM_FullSnapshot/legacy", BM_FullSnapshot,
                                   false)
          ->Arg(n)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark("BM_FullSnapshot/modern", BM_FullSnapshot,
                                   true)
          ->Arg(n)
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark("BM_IncrementalQuery", BM_IncrementalQuery)
        ->Arg(n)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("BM_IncrementalPing", BM_IncrementalPing)
        ->Arg(n)
        ->Unit(benchmark::kMicrosecond);
    if (n == write_size) {
      benchmark::RegisterBenchmark("BM_PresenceWrite", BM_PresenceWrite)
          ->Arg(n)
          ->Unit(benchmark::kNanosecond);
      benchmark::RegisterBenchmark("BM_RealmWrite", BM_RealmWrite)
          ->Arg(n)
          ->Unit(benchmark::kNanosecond);
      benchmark::RegisterBenchmark("BM_PresenceWriteClient",
                                   BM_PresenceWriteClient)
          ->Arg(n)
          ->Unit(benchmark::kNanosecond);
      benchmark::RegisterBenchmark("BM_ClientRowMemory", BM_ClientRowMemory)
          ->Arg(n)
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
    if (n == fan_realm) {
      benchmark::RegisterBenchmark("BM_FanOut/idle", BM_FanOut, false)
          ->Args({fan_queues, fan_realm})
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark("BM_FanOut/parked", BM_FanOut, true)
          ->Args({fan_queues, fan_realm})
          ->Unit(benchmark::kMicrosecond);
    }
  }
  // The snapshot of snap_big users in modern JSON is about 64 bytes a row.
  benchmark::RegisterBenchmark("BM_Reference_Memcpy", BM_Reference_Memcpy)
      ->Arg(snap_big * 64)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace presence::bench

int main(int argc, char** argv) {
  bool tiny = false;
  // Take out our own flag before Google Benchmark sees the others.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--scale=tiny") {
      tiny = true;
    } else if (a == "--scale=full") {
      tiny = false;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  presence::bench::RegisterAll(tiny);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
