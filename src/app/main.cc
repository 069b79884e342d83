// presenced: the presence server. Composition root: reads flags, opens the
// store, loads the state, serves HTTP until SIGTERM/SIGINT, flushes, exits 0.
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif

#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "api/event_encoder.h"
#include "api/events_api.h"
#include "api/metrics.h"
#include "api/router.h"
#include "app/flusher.h"
#include "app/log.h"
#include "app/node_address_cache.h"
#include "core/event_hub.h"
#include "core/presence_service.h"
#include "http/http_server.h"
#include "store/faulty_store.h"
#include "store/redis_store.h"
#include "store/sqlite_store.h"

namespace presence::app {
namespace {

struct Flags {
  std::string listen = "127.0.0.1:9991";
  std::string data = "./var";
  std::string admin_token_file;
  std::string root_domain = "localhost";
  bool test_clock = false;
  bool demo = false;
  unsigned threads = 0;
  unsigned flush_interval_ms = 1000;
  unsigned malloc_trim_seconds = 10;
  unsigned heartbeat_seconds = 45;
  unsigned queue_timeout_seconds = 600;
  std::size_t max_queue_events = 1000;
  std::size_t max_clients_per_user = 8;
  std::size_t presence_event_user_limit = 0;  // 0: no limit
  int rate_limit = 200;
  unsigned transition_grace_seconds = 30;
  std::string admin_listen;
  std::uint64_t max_body_bytes = 1024 * 1024;
  std::uint32_t max_header_bytes = 16 * 1024;
  unsigned idle_timeout_seconds = 60;
  std::size_t max_connections = 10'000;
  bool test_faults = false;
  std::string store = "sqlite";
  std::string advertise;
};

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.pop_back();
  }
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// On an empty data directory, creates the demo organisation and prints a
// ready-to-paste ping for one of its users.
int SetUpDemo(PresenceService& service, const std::string& url) {
  if (!service.Realms().empty()) {
    std::printf(
        "demo: the data directory already has organisations; "
        "nothing created\n");
    return 0;
  }
  auto realm = service.CreateRealm("", "Demo organisation");
  if (!realm) return 1;
  std::string alice_key;
  for (auto [email, name] : {std::pair{"alice@example.com", "Alice"},
                             {"bob@example.com", "Bob"},
                             {"carol@example.com", "Carol"}}) {
    NewUser u;
    u.email = email;
    u.full_name = name;
    auto created = service.CreateUser(*realm, u);
    if (!created) return 1;
    if (alice_key.empty()) alice_key = created->api_key;
    std::printf("demo: user %s key %s\n", email, created->api_key.c_str());
  }
  std::printf(
      "demo: ping as Alice with:\n"
      "  curl -sS -u alice@example.com:%s -d status=active -d "
      "slim_presence=true "
      "%s/api/v1/users/me/presence\n",
      alice_key.c_str(), url.c_str());
  return 0;
}

int Main(int argc, char** argv) {
#if defined(M_MMAP_THRESHOLD)
  // A fixed mmap threshold. glibc raises it on its own each time a large
  // mmapped block is freed; from then on the large answers of a burst (a
  // fan-out and the polls that follow it) come from the arenas and leave
  // free holes between live objects there, which never go back to the
  // system (the soak's RSS steps, BENCHMARKS.md). Fixed, they stay mmapped
  // and are returned whole when freed.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  // One arena for every thread (unless MALLOC_ARENA_MAX says otherwise):
  // with one per I/O thread each keeps its own free memory after a burst,
  // and RSS crept up by steps in the soak; with one, the soak's RSS stayed
  // within 5% (BENCHMARKS.md). The threads are few and mostly wait on I/O.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
#endif
  Flags f;
  CLI::App cli{"presenced: a Zulip-compatible presence server"};
  cli.add_option("--listen", f.listen, "HOST:PORT to serve on (port 0: any)")
      ->capture_default_str();
  cli.add_option("--data", f.data, "data directory (SQLite file inside)")
      ->capture_default_str();
  cli.add_option("--admin-token-file", f.admin_token_file,
                 "file holding the admin API bearer token "
                 "(or env PRESENCED_ADMIN_TOKEN)");
  cli.add_option("--root-domain", f.root_domain,
                 "host name of the root realm; X.<root> is realm X")
      ->capture_default_str();
  cli.add_flag("--test-clock", f.test_clock,
               "let POST /admin/v1/clock set the presence clock");
  cli.add_option("--threads", f.threads, "I/O threads (default: hardware)");
  cli.add_option("--flush-interval-ms", f.flush_interval_ms,
                 "group-commit interval for presence rows")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3'600'000u));
  cli.add_option("--malloc-trim-seconds", f.malloc_trim_seconds,
                 "give free heap pages back to the system this often "
                 "(0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3600u));
  cli.add_option("--heartbeat-seconds", f.heartbeat_seconds,
                 "a parked GET /events answers with a heartbeat after this")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u));
  cli.add_option("--queue-timeout-seconds", f.queue_timeout_seconds,
                 "an event queue not polled for this long is freed")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  cli.add_option("--max-queue-events", f.max_queue_events,
                 "an event queue holding more unread events is dropped")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  cli.add_option("--max-clients-per-user", f.max_clients_per_user,
                 "per-client presence: client rows kept per user, the "
                 "stalest dropped")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}));
  cli.add_option("--presence-event-user-limit", f.presence_event_user_limit,
                 "Zulip's cut-off: no unforced presence event with more "
                 "recipients than this (0: no limit)")
      ->capture_default_str();
  cli.add_option("--rate-limit", f.rate_limit,
                 "API requests per user per minute (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000));
  cli.add_option("--transition-grace-seconds", f.transition_grace_seconds,
                 "presence_transitions: announce offline this long after "
                 "the threshold")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3600u));
  cli.add_option("--admin-listen", f.admin_listen,
                 "serve /admin, /healthz and /metrics on this HOST:PORT "
                 "instead of the main listener");
  cli.add_option("--max-body-bytes", f.max_body_bytes,
                 "larger request bodies get 413")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 30));
  cli.add_option("--max-header-bytes", f.max_header_bytes,
                 "larger request lines + headers get 431")
      ->capture_default_str()
      ->check(CLI::Range(std::uint32_t{1024}, std::uint32_t{1} << 20));
  cli.add_option("--idle-timeout-seconds", f.idle_timeout_seconds,
                 "a connection that sends or reads nothing this long is closed")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u));
  cli.add_option("--max-connections", f.max_connections,
                 "connections beyond this get 503")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  cli.add_flag("--test-faults", f.test_faults,
               "let POST /admin/v1/faults make store writes fail (tests)");
  cli.add_option("--store", f.store,
                 "sqlite (embedded, in --data) or "
                 "redis://HOST:PORT[,HOST:PORT...] (scale-out: several "
                 "presenced share one Redis or Redis Cluster)")
      ->capture_default_str();
  cli.add_option("--advertise", f.advertise,
                 "scale-out: HOST:PORT other nodes use to reach this node's "
                 "API (default: the --listen address as bound)");
  cli.add_flag("--demo", f.demo,
               "on an empty data directory, create a demo organisation and "
               "print a curl ping");
  CLI11_PARSE(cli, argc, argv);

  api::ApiOptions options;
  options.root_domain = f.root_domain;
  options.heartbeat_seconds = static_cast<int>(f.heartbeat_seconds);
  options.rate_limit_per_minute = f.rate_limit;
  if (!f.admin_token_file.empty()) {
    std::ifstream in(f.admin_token_file);
    if (!in) {
      std::fprintf(stderr, "presenced: cannot read --admin-token-file %s\n",
                   f.admin_token_file.c_str());
      return 2;
    }
    std::string token((std::istreambuf_iterator<char>(in)), {});
    options.admin_token = Trim(token);
  } else if (const char* env = std::getenv("PRESENCED_ADMIN_TOKEN")) {
    options.admin_token = Trim(env);
  }
  auto endpoint = http::ParseListenAddress(f.listen);
  if (!endpoint) {
    std::fprintf(stderr, "presenced: --listen wants HOST:PORT, got %s\n",
                 f.listen.c_str());
    return 2;
  }

  RealClock real_clock;
  std::unique_ptr<ManualClock> test_clock;
  const Clock* clock = &real_clock;
  if (f.test_clock) {
    test_clock = std::make_unique<ManualClock>(real_clock.NowMicros());
    options.test_clock = test_clock.get();
    clock = test_clock.get();
  }

  std::unique_ptr<store::Store> store;
  std::unique_ptr<store::RedisStore> redis;
  std::unique_ptr<store::FaultyStore> faulty;
  const store::SqliteStore* sqlite = nullptr;  // its memory goes to /metrics
  Result<std::unique_ptr<PresenceService>> service = Errc::kNotFound;
  if (f.store.rfind("redis://", 0) == 0) {
    if (f.test_faults) {
      std::fprintf(stderr, "presenced: --test-faults needs --store sqlite\n");
      return 2;
    }
    std::string why;
    auto opened = store::RedisStore::Open(f.store, &why);
    if (!opened) {
      std::fprintf(stderr, "presenced: cannot open the store %s: %s\n",
                   f.store.c_str(), why.c_str());
      return 1;
    }
    redis = std::move(*opened);
    service = PresenceService::CreateShared(redis.get(), clock);
    if (!service) {
      std::fprintf(stderr, "presenced: cannot load the store: %s %s\n",
                   service.error().message().c_str(),
                   redis->LastError().c_str());
      return 1;
    }
  } else if (f.store == "sqlite") {
    auto opened = store::SqliteStore::Open(f.data);
    if (!opened) {
      std::fprintf(stderr, "presenced: cannot open the store in %s: %s\n",
                   f.data.c_str(), opened.error().message().c_str());
      return 1;
    }
    sqlite = opened->get();
    store = std::move(*opened);
    // With --test-faults the store is wrapped so that tests can make its
    // writes fail on demand (POST /admin/v1/faults).
    store::Store* active_store = store.get();
    if (f.test_faults) {
      faulty = std::make_unique<store::FaultyStore>(store.get());
      active_store = faulty.get();
      options.faulty_store = faulty.get();
    }
    service =
        PresenceService::Create(active_store, clock, f.max_clients_per_user);
    if (!service) {
      std::fprintf(stderr, "presenced: cannot load the store: %s %s\n",
                   service.error().message().c_str(),
                   store->LastError().c_str());
      return 1;
    }
  } else {
    std::fprintf(stderr,
                 "presenced: --store wants sqlite or "
                 "redis://HOST:PORT[,HOST:PORT...], got %s\n",
                 f.store.c_str());
    return 2;
  }

  api::JsonEventEncoder encoder;
  HubOptions hub_options;
  hub_options.max_queue_events = f.max_queue_events;
  hub_options.queue_timeout_us =
      std::int64_t{f.queue_timeout_seconds} * 1'000'000;
  if (f.presence_event_user_limit > 0) {
    hub_options.presence_event_user_limit = f.presence_event_user_limit;
  }
  hub_options.transition_grace_us =
      std::int64_t{f.transition_grace_seconds} * 1'000'000;
  EventHub hub(service->get(), &encoder, hub_options);
  (*service)->SetListener(&hub);
  hub.SeedTransitions((*service)->Now());

  api::Metrics metrics;
  metrics.SetSqliteStore(sqlite);
  options.metrics = &metrics;
  options.log = [](std::string_view event, const auto& fields) {
    Log("info", event, fields);
  };
  std::optional<boost::asio::ip::tcp::endpoint> admin_endpoint;
  if (!f.admin_listen.empty()) {
    admin_endpoint = http::ParseListenAddress(f.admin_listen);
    if (!admin_endpoint) {
      std::fprintf(stderr,
                   "presenced: --admin-listen wants HOST:PORT, got %s\n",
                   f.admin_listen.c_str());
      return 2;
    }
  }
  api::ApiOptions admin_options = options;
  if (admin_endpoint) {
    options.serve_admin = false;
    admin_options.serve_api = false;
  }
  api::Router router(service->get(), &hub, &options);
  api::Router admin_router(service->get(), &hub, &admin_options);
  // One io_context per I/O thread, each run by its thread alone: a
  // connection stays on one thread, and its handlers take no lock shared
  // with the other threads (one shared io_context made every completion
  // contend on its scheduler's lock and wake sleeping threads). The first
  // one also runs the acceptors, timers and signals.
  unsigned threads =
      f.threads ? f.threads : std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<boost::asio::io_context>(1));
  }
  boost::asio::io_context& ioc = *contexts[0];
  // The others run until shutdown even with no connection yet.
  std::vector<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      keep_running;
  for (unsigned i = 1; i < threads; ++i) {
    keep_running.push_back(boost::asio::make_work_guard(*contexts[i]));
  }
  std::size_t next_context = 0;  // used on the acceptor's strand only
  http::ExecutorPicker pick_context = [&]() -> boost::asio::any_io_executor {
    return contexts[next_context++ % contexts.size()]->get_executor();
  };
  // A change that reaches many parked polls (one user coming online before
  // 10k watchers) is answered first: the wake-ups run as a task of the I/O
  // threads instead of on the thread of the request that made the change.
  // (ioc goes before hub, but nothing changes presence once ioc.run() is
  // over and the feed is unsubscribed.)
  hub.SetWakeScheduler([&ioc](std::function<void()> task) {
    boost::asio::post(ioc, std::move(task));
  });
  http::SessionLimits limits;
  limits.heartbeat = std::chrono::seconds(f.heartbeat_seconds);
  limits.body_limit = f.max_body_bytes;
  limits.header_limit = f.max_header_bytes;
  limits.idle_timeout = std::chrono::seconds(f.idle_timeout_seconds);
  limits.max_connections = f.max_connections;
  limits.metrics = &metrics;
  http::HttpServer server(ioc, &router, limits, pick_context);
  auto bound = server.Listen(*endpoint);
  if (!bound) {
    std::fprintf(stderr, "presenced: cannot listen on %s: %s\n",
                 f.listen.c_str(), bound.error().message().c_str());
    return 1;
  }
  http::HttpServer admin_server(ioc, &admin_router, limits);
  if (admin_endpoint) {
    auto admin_bound = admin_server.Listen(*admin_endpoint);
    if (!admin_bound) {
      std::fprintf(stderr, "presenced: cannot listen on %s: %s\n",
                   f.admin_listen.c_str(),
                   admin_bound.error().message().c_str());
      return 1;
    }
    Log("info", "admin_listen", {{"url", http::EndpointUrl(*admin_bound)}});
  }
  const std::string url = http::EndpointUrl(*bound);

  // Scale-out: register this node so that the others can relay polls of its
  // queues to it; its queue ids start with its node id.
  std::int64_t node_id = 0;
  app::NodeAddressCache owners;
  if (redis) {
    std::string advertise = f.advertise;
    if (advertise.empty()) {
      advertise =
          bound->address().to_string() + ":" + std::to_string(bound->port());
      if (bound->address().is_v6()) {
        advertise = "[" + bound->address().to_string() +
                    "]:" + std::to_string(bound->port());
      }
    }
    auto registered = redis->RegisterNode(advertise);
    if (!registered) {
      std::fprintf(stderr, "presenced: cannot register with %s: %s\n",
                   f.store.c_str(), redis->LastError().c_str());
      return 1;
    }
    node_id = *registered;
    hub.SetQueueIdPrefix(std::to_string(node_id) + ":");
    auto owner_of =
        [&, self = node_id](
            std::string_view queue_id) -> std::optional<std::string> {
      std::int64_t node = 0;
      auto colon = queue_id.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      auto [end, ec] =
          std::from_chars(queue_id.data(), queue_id.data() + colon, node);
      if (ec != std::errc() || end != queue_id.data() + colon || node == self) {
        return std::nullopt;
      }
      if (auto known = owners.Find(node)) return known;
      auto address = redis->NodeAddress(node);
      if (!address || !*address) return std::nullopt;
      owners.Put(node, **address);
      return *address;
    };
    options.queue_owner = owner_of;
    admin_options.queue_owner = owner_of;
    // One rate-limit log per user for the whole cluster.
    if (f.rate_limit > 0) {
      options.shared_rate_limit =
          [&, limit = std::int64_t{f.rate_limit}](
              UserId user,
              std::int64_t now) -> std::optional<api::RateDecision> {
        constexpr std::int64_t kWindow = 60'000'000;
        auto c = redis->CountRequest(user, now, limit, kWindow);
        if (!c) return std::nullopt;
        return api::MakeRateDecision(limit, kWindow, now, c->allowed,
                                     c->in_window, c->oldest);
      };
    }
    Log("info", "node_registered",
        {{"node", std::to_string(node_id)}, {"advertise", advertise}});
  }

  Flusher flusher(service->get(),
                  std::chrono::milliseconds(f.flush_interval_ms), &metrics,
                  std::chrono::seconds(f.malloc_trim_seconds));
  flusher.Start();

  // Frees event queues nobody polls any more (real time).
  boost::asio::steady_timer expiry(ioc);
  std::function<void()> schedule_expiry = [&] {
    expiry.expires_after(std::chrono::seconds(
        std::max(1u, std::min(10u, f.queue_timeout_seconds / 4))));
    expiry.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      hub.Expire(api::SteadyMicros());
      schedule_expiry();
    });
  };
  schedule_expiry();

  // Announces idle/offline transitions once a second (presence_transitions).
  boost::asio::steady_timer transitions(ioc);
  std::function<void()> schedule_transitions = [&] {
    transitions.expires_after(std::chrono::seconds(1));
    transitions.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      hub.TickTransitions((*service)->Now());
      schedule_transitions();
    });
  };
  schedule_transitions();

  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    Log("info", "shutdown", {{"signal", std::to_string(sig)}});
    server.Stop();
    admin_server.Stop();
    expiry.cancel();
    transitions.cancel();
    keep_running.clear();
    for (auto& c : contexts) c->stop();
  });

  Log("info", "start",
      {{"url", url},
       {"data", f.data},
       {"store", f.store},
       {"threads", std::to_string(threads)},
       {"test_clock", f.test_clock ? "on" : "off"}});
  std::printf("listening on %s\n", url.c_str());
  std::fflush(stdout);
  // The demo is set up before the first request is served (the I/O threads
  // start below), so its users exist by the time anyone can ping.
  if (f.demo && SetUpDemo(**service, url) != 0) {
    std::fprintf(stderr, "presenced: demo set-up failed: %s\n",
                 (*service)->failure().c_str());
    return 1;
  }
  std::fflush(stdout);

  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) {
    pool.emplace_back([&, i] { contexts[i]->run(); });
  }
  ioc.run();
  for (auto& t : pool) t.join();
  // No feed entry may reach the hub once it is gone.
  if (redis) redis->Unsubscribe();

  // Every request that was answered is in memory: commit it all.
  flusher.Stop();
  auto flushed = (*service)->Flush();
  if (!flushed) {
    Log("error", "final_flush_failed", {{"reason", (*service)->failure()}});
    return 1;
  }
  Log("info", "stopped", {{"rows_flushed", std::to_string(flushed->rows)}});
  return 0;
}

}  // namespace
}  // namespace presence::app

int main(int argc, char** argv) { return presence::app::Main(argc, argv); }
