#include "app/backend.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/log.h"
#include "core/local_writer.h"
#include "core/replica_writer.h"

namespace presence::app {
namespace {

std::optional<int> OpenRedis(const Flags& f, const Clock* clock,
                             Backend& backend) {
  if (f.test_faults) {
    // The injector fails the writes of the embedded store (FaultyStore
    // wraps a Store) to test the sticky write-behind failure; a Redis-mode
    // node writes nothing behind and never fails sticky, so there is
    // nothing for it to act on. Refused rather than silently ignored.
    std::fprintf(stderr,
                 "presenced: --test-faults cannot apply with --store "
                 "redis://: it makes the embedded store's writes fail to "
                 "test the sticky write-behind failure, and a Redis-mode "
                 "node writes nothing behind (an unreachable Redis gives "
                 "503 until it is back); use --store sqlite, or stop the "
                 "Redis server to test failures in this mode\n");
    return 2;
  }
  store::RedisStore::Options options;
  options.wait.replicas = f.redis_wait_replicas;
  options.wait.timeout = std::chrono::milliseconds(f.redis_wait_timeout_ms);
  auto opened = store::RedisStore::Open(f.store, options);
  if (!opened) {
    std::fprintf(stderr, "presenced: cannot open the store %s: %s\n",
                 f.store.c_str(), opened.error().message().c_str());
    return 1;
  }
  backend.redis = std::move(*opened);
  // The negative cache of unknown subdomains runs on real time: the
  // presence clock may be a test clock that stands still.
  static const RealClock cache_clock;
  SharedOptions shared;
  shared.cache_clock = &cache_clock;
  // With --redis-wait-replicas every ping takes its step: one answered from
  // the replica would acknowledge a row no replica may have yet (an earlier
  // attempt's WAIT failed), which the step's WAIT checks.
  shared.fresh_for = std::chrono::milliseconds(
      f.redis_wait_replicas > 0 ? 0u : f.replica_fresh_ms);
  shared.rate_lease = f.rate_lease;
  auto service = PresenceService::Create(
      std::make_unique<ReplicaWriter>(backend.redis.get(), shared), clock,
      f.max_clients_per_user);
  if (!service) {
    std::fprintf(stderr, "presenced: cannot load the store: %s\n",
                 service.error().message().c_str());
    return 1;
  }
  backend.service = std::move(*service);
  return std::nullopt;
}

std::optional<int> OpenSqlite(const Flags& f, const Clock* clock,
                              api::ApiOptions& options, Backend& backend) {
  if (f.redis_wait_replicas > 0) {
    // Refused rather than ignored: the operator asked for a guarantee that
    // only a replicated Redis store can give.
    std::fprintf(stderr,
                 "presenced: --redis-wait-replicas needs --store redis:// "
                 "or redis-sentinel://\n");
    return 2;
  }
  auto opened = store::SqliteStore::Open(f.data);
  if (!opened) {
    std::fprintf(stderr, "presenced: cannot open the store in %s: %s\n",
                 f.data.c_str(), opened.error().message().c_str());
    return 1;
  }
  backend.sqlite = std::move(*opened);
  // With --test-faults the store is wrapped so that tests can make its
  // writes fail on demand (POST /admin/v1/faults).
  store::Store* active = backend.sqlite.get();
  if (f.test_faults) {
    backend.faulty = std::make_unique<store::FaultyStore>(active);
    active = backend.faulty.get();
    options.fault_injector = backend.faulty.get();
  }
  // The load's phases, timed and logged once it is done ("loaded": the
  // wall milliseconds each phase took and the process's CPU milliseconds
  // in it, all threads), so that a slow start says where.
  struct Phases {
    std::chrono::steady_clock::time_point start =
        std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point mark = start;
    std::clock_t cpu_start = std::clock();
    std::clock_t cpu_mark = cpu_start;
    std::string current = "realms";
    std::vector<std::pair<std::string, std::string>> fields;
  };
  auto phases = std::make_shared<Phases>();
  auto progress = [phases](std::string_view phase) {
    const auto now = std::chrono::steady_clock::now();
    const std::clock_t cpu = std::clock();
    auto ms = [](auto d) {
      return std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
    };
    auto cpu_ms = [](std::clock_t d) {
      return std::to_string(static_cast<long long>(d) * 1000 / CLOCKS_PER_SEC);
    };
    phases->fields.emplace_back(phases->current + "_ms",
                                ms(now - phases->mark));
    phases->fields.emplace_back(phases->current + "_cpu_ms",
                                cpu_ms(cpu - phases->cpu_mark));
    phases->current = phase;
    phases->mark = now;
    phases->cpu_mark = cpu;
    if (phase == "done") {
      phases->fields.emplace_back("total_ms", ms(now - phases->start));
      phases->fields.emplace_back("total_cpu_ms",
                                  cpu_ms(cpu - phases->cpu_start));
      Log("info", "loaded", phases->fields);
    }
  };
  auto service =
      PresenceService::Create(std::make_unique<LocalWriter>(active), clock,
                              f.max_clients_per_user, progress);
  if (!service) {
    std::fprintf(stderr, "presenced: cannot load the store: %s\n",
                 service.error().message().c_str());
    return 1;
  }
  backend.service = std::move(*service);
  return std::nullopt;
}

}  // namespace

std::optional<int> OpenBackend(const Flags& f, const Clock* clock,
                               api::ApiOptions& options, Backend& backend) {
  if (store::IsRedisStoreUrl(f.store)) return OpenRedis(f, clock, backend);
  if (f.store == "sqlite") return OpenSqlite(f, clock, options, backend);
  std::fprintf(stderr,
               "presenced: --store wants sqlite, "
               "redis://HOST:PORT[,HOST:PORT...] or "
               "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME, "
               "got %s\n",
               f.store.c_str());
  return 2;
}

}  // namespace presence::app
