// presenced: the presence server. Composition root: reads flags, opens the
// store with its write path (app/backend.h), builds the event hub, the API
// and the HTTP servers on the I/O threads, serves until SIGTERM/SIGINT,
// flushes, exits 0.
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/event_encoder.h"
#include "api/metrics.h"
#include "api/router.h"
#include "app/backend.h"
#include "app/cluster.h"
#include "app/demo.h"
#include "app/flags.h"
#include "app/flusher.h"
#include "app/housekeeping.h"
#include "app/io_threads.h"
#include "app/log.h"
#include "app/loop_lag.h"
#include "app/open_files.h"
#include "core/event_hub.h"
#include "http/answer_queue.h"
#include "http/forwarder.h"
#include "http/http_server.h"
#include "http/operator_endpoints.h"
#include "http/relay_auth.h"
#include "http/trusted_proxies.h"
#include "util/io_thread.h"
#include "util/worker_pool.h"

namespace presence::app {
namespace {

// Scale-out: threads that run what may wait on the shared store, and how
// many such tasks may queue before a request is answered 503.
constexpr std::size_t kStoreWorkers = 4;
constexpr std::size_t kStoreWorkQueue = 4096;

void TuneAllocator() {
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
}

HubOptions HubOptionsFrom(const Flags& f) {
  HubOptions hub;
  hub.max_queue_events = f.max_queue_events;
  hub.coalesce_presence = f.coalesce_presence_events;
  hub.queue_timeout_us = std::int64_t{f.queue_timeout_seconds} * 1'000'000;
  if (f.presence_event_user_limit > 0) {
    hub.presence_event_user_limit = f.presence_event_user_limit;
  }
  hub.transition_grace_us =
      std::int64_t{f.transition_grace_seconds} * 1'000'000;
  hub.max_queues_per_user = f.max_queues_per_user;
  hub.max_queue_bytes = f.max_queue_memory_mb << 20;
  return hub;
}

http::SessionLimits LimitsFrom(const Flags& f, api::Metrics* metrics) {
  http::SessionLimits limits;
  limits.heartbeat = std::chrono::seconds(f.heartbeat_seconds);
  limits.answer_coalesce_wait = std::chrono::milliseconds(f.answer_coalesce_ms);
  limits.answer_interval = std::chrono::milliseconds(f.answer_interval_ms);
  limits.body_limit = f.max_body_bytes;
  limits.header_limit = f.max_header_bytes;
  limits.idle_timeout = std::chrono::seconds(f.idle_timeout_seconds);
  limits.max_connections = f.max_connections;
  limits.max_connections_per_address = f.max_connections_per_address;
  limits.metrics = metrics;
  limits.on_handler_exception = [](std::string_view what,
                                   std::string_view method,
                                   std::string_view path) {
    Log("error", "handler_exception",
        {{"what", std::string(what)},
         {"method", std::string(method)},
         {"path", std::string(path)}});
  };
  limits.log =
      [](std::string_view level, std::string_view event,
         const std::vector<std::pair<std::string, std::string>>& fields) {
        Log(level, event, fields);
      };
  return limits;
}

std::string LimitText(std::uint64_t n) {
  return n == UINT64_MAX ? "unlimited" : std::to_string(n);
}

// Raises the open-file limit and lowers --max-connections to what it allows
// with `threads` I/O threads (app/open_files.h), saying so in the log.
void FitConnectionsToOpenFiles(Flags& f, unsigned threads) {
  auto limit = RaiseOpenFileLimit();
  if (!limit) {
    if (f.max_connections == 0) {
      f.max_connections = kDefaultMaxConnectionsUnknownLimit;
    }
    Log("warn", "open_files_unknown",
        {{"max_connections", std::to_string(f.max_connections)}});
    return;
  }
  if (limit->raise_failed) {
    Log("warn", "open_files_not_raised",
        {{"soft", LimitText(limit->soft)}, {"hard", LimitText(limit->hard)}});
  } else if (limit->soft != limit->soft_before) {
    Log("info", "open_files_raised",
        {{"from", LimitText(limit->soft_before)},
         {"to", LimitText(limit->soft)}});
  }
  const std::size_t allowed = ConnectionsAllowed(limit->soft, threads);
  if (f.max_connections == 0) {
    // The default follows the limit, so an operator who raises LimitNOFILE=
    // gets the connections it allows without a second knob.
    f.max_connections = DefaultMaxConnections(limit->soft, threads);
    Log("info", "max_connections",
        {{"max_connections", std::to_string(f.max_connections)},
         {"open_files", LimitText(limit->soft)},
         {"source", "open_files"}});
  } else if (f.max_connections > allowed) {
    Log("warn", "max_connections_lowered",
        {{"requested", std::to_string(f.max_connections)},
         {"max_connections", std::to_string(allowed)},
         {"open_files", LimitText(limit->soft)},
         {"reason",
          "the open-file limit leaves no more after the server's own files; "
          "raise it (ulimit -n, LimitNOFILE=) to allow more"}});
    f.max_connections = allowed;
  }
}

// Listens on `address` (a --listen or --admin-listen value); nullopt and a
// message on stderr if it cannot.
std::optional<boost::asio::ip::tcp::endpoint> Listen(
    http::HttpServer& server, const char* flag, const std::string& address) {
  auto endpoint = http::ParseListenAddress(address);
  if (!endpoint) {
    std::fprintf(stderr, "presenced: %s wants HOST:PORT, got %s\n", flag,
                 address.c_str());
    return std::nullopt;
  }
  auto bound = server.Listen(*endpoint);
  if (!bound) {
    std::fprintf(stderr, "presenced: cannot listen on %s: %s\n",
                 address.c_str(), bound.error().message().c_str());
    return std::nullopt;
  }
  return *bound;
}

// Every request that was answered is in memory: commit it all. Then the
// embedded store's presence log is merged into its tables, so that the
// next start has nothing to merge (a crash leaves the log to it).
int FinalFlush(Flusher& flusher, PresenceService& service,
               store::SqliteStore* sqlite) {
  flusher.Stop();
  auto flushed = service.Flush();
  if (!flushed) {
    Log("error", "final_flush_failed", {{"reason", service.failure()}});
    return 1;
  }
  std::string log_rows = "0";
  if (sqlite != nullptr) {
    const std::size_t rows = sqlite->log_rows();
    // The rows are durable in the log either way: a failed merge is the
    // next Load's to redo, not a loss.
    if (StoreStatus merged = sqlite->MergeLog(); !merged) {
      Log("warn", "log_merge_failed", {{"reason", merged.error().message()}});
    } else {
      log_rows = std::to_string(rows);
    }
  }
  Log("info", "stopped",
      {{"rows_flushed", std::to_string(flushed->rows)},
       {"log_rows_merged", log_rows}});
  return 0;
}

int Main(int argc, char** argv) {
  TuneAllocator();
  // hiredis writes with write(2): a Redis server gone away is an error
  // value on the connection, not a signal that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  Flags f;
  if (auto exit = ParseFlags(argc, argv, f)) return *exit;
  api::ApiOptions options;
  options.root_domain = f.root_domain;
  options.heartbeat_seconds = static_cast<int>(f.heartbeat_seconds);
  options.rate_limit_per_minute = f.rate_limit;
  options.events_poll_limit_per_minute = f.events_poll_limit;
  options.max_event_types = f.max_event_types;
  options.max_presence_user_ids = f.max_presence_user_ids;
  auto token = ReadAdminToken(f);
  if (!token) return 2;
  options.admin_token = *token;
  auto cluster_secret = ReadClusterSecret(f);
  if (!cluster_secret) return 2;
  std::optional<http::RelayAuth> relay_auth;
  if (!cluster_secret->empty()) relay_auth.emplace(std::move(*cluster_secret));
  const auto listen_endpoint = http::ParseListenAddress(f.listen);
  if (!listen_endpoint) {
    std::fprintf(stderr, "presenced: --listen wants HOST:PORT, got %s\n",
                 f.listen.c_str());
    return 2;
  }
  if (auto why = http::OperatorEndpointsError(*listen_endpoint,
                                              !f.admin_listen.empty(),
                                              f.admin_on_main_listener)) {
    std::fprintf(stderr, "presenced: %s\n", why->c_str());
    return 2;
  }
  http::TrustedProxies trusted_proxies;
  for (const std::string& cidr : f.trusted_proxies) {
    // "" (e.g. `trusted-proxy = ""` in a --config file) names none.
    if (!cidr.empty() && !trusted_proxies.Add(cidr)) {
      std::fprintf(stderr,
                   "presenced: --trusted-proxy wants an address or a CIDR "
                   "(127.0.0.1, 10.0.0.0/8, fd00::/8), got %s\n",
                   cidr.c_str());
      return 2;
    }
  }
  RealClock real_clock;
  std::unique_ptr<ManualClock> test_clock;
  const Clock* clock = &real_clock;
  if (f.test_clock) {
    test_clock = std::make_unique<ManualClock>(real_clock.NowMicros());
    options.test_clock = test_clock.get();
    clock = test_clock.get();
  }
  Backend backend;
  if (auto exit = OpenBackend(f, clock, options, backend)) return *exit;
  PresenceService& service = *backend.service;

  api::JsonEventEncoder encoder;
  EventHub hub(&service, &encoder, HubOptionsFrom(f));
  service.SetListener(&hub);
  hub.SeedTransitions(service.Now());
  api::Metrics metrics;
  if (const store::SqliteStore* sqlite = backend.sqlite.get()) {
    metrics.SetStoreMemorySource([sqlite] {
      const store::SqliteStore::MemoryStats m = sqlite->Memory();
      return api::StoreMemory{m.memory_used_bytes, m.memory_highwater_bytes,
                              m.page_cache_bytes,  m.page_cache_limit_bytes,
                              m.pages_read,        m.pages_written,
                              m.log_rows,          m.log_merges,
                              m.log_merged_rows,   m.log_merge_seconds,
                              m.log_merge_failures};
    });
  }
  options.metrics = &metrics;
  options.log = [](std::string_view event, const auto& fields) {
    Log("info", event, fields);
  };
  // Scale-out: what may wait on the shared store (admin and directory
  // writes, the first request of a realm not loaded here, a queue owner
  // not cached, the group clock's live nodes) runs on these threads, never
  // on an I/O thread (api/offload.h). Stopped once the I/O threads are.
  std::unique_ptr<WorkerPool> store_workers;
  if (backend.redis) {
    store_workers =
        std::make_unique<WorkerPool>(kStoreWorkers, kStoreWorkQueue);
    options.offload = [pool = store_workers.get()](std::function<void()> t) {
      return pool->Post(std::move(t));
    };
  }
  api::ApiOptions admin_options = options;
  if (!f.admin_listen.empty()) {
    // The main listener keeps the API and a /healthz that gives its
    // status only; the operator's endpoints are on the admin listener.
    options.serve_admin = false;
    options.serve_metrics = false;
    admin_options.serve_api = false;
  }
  api::Router router(&service, &hub, &options);
  api::Router admin_router(&service, &hub, &admin_options);
  // The API's limiters: the main router's (the admin listener, when there
  // is one, serves no API requests).
  metrics.SetRateLimiterSource([&router] { return router.RateLimiterUsage(); });

  IoThreads io(f.threads);
  if (store::RedisStore* redis = backend.redis.get()) {
    // Each I/O thread sends its requests' store steps on its own pipelined
    // connections, never waiting for a reply (store/redis_async.h).
    // Marked as I/O threads: a blocking Redis call there aborts a debug
    // build (util/io_thread.h).
    io.SetThreadHooks(
        [redis](boost::asio::io_context& ctx) {
          redis->AttachIoThread(ctx);
          MarkIoThread(true);
        },
        [redis] {
          MarkIoThread(false);
          redis->DetachIoThread();
        });
  }
  // A change that reaches many parked polls (one user coming online before
  // 10k watchers) is answered first: the wake-ups run as a task of the I/O
  // threads instead of on the thread of the request that made the change,
  // handed to each I/O thread's answer queue in batches (AnswerBatch).
  hub.SetWakeScheduler([&io](std::function<void()> task) {
    boost::asio::post(io.main(), [task = std::move(task)] {
      http::AnswerBatch batch;
      task();
    });
  });
  // /metrics: how long a readable request waits for its I/O thread.
  LoopLag loop_lag(&metrics);
  for (unsigned i = 0; i < io.size(); ++i) loop_lag.Watch(io.context(i));
  FitConnectionsToOpenFiles(f, io.size());
  http::SessionLimits limits = LimitsFrom(f, &metrics);
  limits.trusted_proxies = &trusted_proxies;
  // Destroyed before `io` (its idle connections live on io's contexts).
  std::optional<http::Forwarder> forwarder;
  if (relay_auth) {
    limits.relay_auth = &*relay_auth;
    forwarder.emplace(*relay_auth,
                      http::Forwarder::Options{
                          .max_in_flight_per_target = f.max_relays_per_node,
                          .metrics = &metrics});
    limits.forwarder = &*forwarder;
  }
  http::HttpServer server(io.main(), &router, limits, io.Picker());
  auto bound = Listen(server, "--listen", f.listen);
  if (!bound) return 1;
  http::HttpServer admin_server(io.main(), &admin_router, limits);
  if (!f.admin_listen.empty()) {
    auto admin_bound = Listen(admin_server, "--admin-listen", f.admin_listen);
    if (!admin_bound) return http::ParseListenAddress(f.admin_listen) ? 1 : 2;
    Log("info", "admin_listen", {{"url", http::EndpointUrl(*admin_bound)}});
  }
  const std::string url = http::EndpointUrl(*bound);
  ClusterLink cluster(backend.redis.get());
  if (backend.redis) {
    if (auto exit = cluster.Join(f, *bound, hub, options, admin_options)) {
      return *exit;
    }
  }

  Flusher flusher(&service, std::chrono::milliseconds(f.flush_interval_ms),
                  &metrics, std::chrono::seconds(f.malloc_trim_seconds));
  flusher.Start();
  // Status ends are directory writes: on the store workers in scale-out.
  Housekeeping housekeeping(io.main(), hub, service, f.queue_timeout_seconds,
                            options.offload);
  housekeeping.Start();
  boost::asio::signal_set signals(io.main(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    Log("info", "shutdown", {{"signal", std::to_string(sig)}});
    server.Stop();
    admin_server.Stop();
    housekeeping.Stop();
    io.Stop();
  });

  Log("info", "start",
      {{"url", url},
       {"data", f.data},
       {"store", f.store},
       {"threads", std::to_string(io.size())},
       {"test_clock", f.test_clock ? "on" : "off"}});
  std::printf("listening on %s\n", url.c_str());
  std::fflush(stdout);
  // The demo is set up before the first request is served (the I/O threads
  // start below), so its users exist by the time anyone can ping.
  if (f.demo && SetUpDemo(service, url) != 0) {
    std::fprintf(stderr, "presenced: demo set-up failed: %s\n",
                 service.failure().c_str());
    return 1;
  }
  std::fflush(stdout);
  io.Run();
  // No task may resume a request into contexts that are going away.
  if (store_workers) store_workers->Stop();
  // No feed entry may reach the hub once it is gone.
  if (backend.redis) backend.redis->Unsubscribe();
  // Requests still waiting for the replica are answered (into the stopped
  // contexts) while their I/O contexts exist.
  service.CancelWaits();
  return FinalFlush(flusher, service, backend.sqlite.get());
}

}  // namespace
}  // namespace presence::app

int main(int argc, char** argv) { return presence::app::Main(argc, argv); }
