#include "app/flags.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <utility>

#include "http/http_server.h"
#include "http/operator_endpoints.h"
#include "http/trusted_proxies.h"
#include "presence_version.h"
#include "store/redis_client.h"

namespace presence::app {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.pop_back();
  }
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// The contents of a secret file named by `flag`, which must be readable by
// the service alone (no group or other permission bits); surrounding white
// space trimmed. nullopt, said on stderr, otherwise.
std::optional<std::string> ReadPrivateFile(const char* flag,
                                           const std::string& file) {
  const char* path = file.c_str();
  struct stat st {};
  if (::stat(path, &st) != 0) {
    std::fprintf(stderr, "presenced: cannot read %s %s\n", flag, path);
    return std::nullopt;
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    std::fprintf(stderr,
                 "presenced: %s %s must be readable only by the service "
                 "(chmod 600)\n",
                 flag, path);
    return std::nullopt;
  }
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "presenced: cannot read %s %s\n", flag, path);
    return std::nullopt;
  }
  return Trim(std::string((std::istreambuf_iterator<char>(in)), {}));
}

// --check-config: what main() would refuse before serving, checked without
// opening the store or binding a socket. 0, or 2 with the reason on stderr.
int CheckConfig(const Flags& f) {
  if (!ReadAdminToken(f) || !ReadClusterSecret(f)) return 2;
  const auto listen = http::ParseListenAddress(f.listen);
  if (!listen) {
    std::fprintf(stderr, "presenced: --listen wants HOST:PORT, got %s\n",
                 f.listen.c_str());
    return 2;
  }
  if (auto why = http::OperatorEndpointsError(*listen, !f.admin_listen.empty(),
                                              f.admin_on_main_listener)) {
    std::fprintf(stderr, "presenced: %s\n", why->c_str());
    return 2;
  }
  for (const std::string& cidr : f.trusted_proxies) {
    if (!cidr.empty() && !http::Cidr::Parse(cidr)) {
      std::fprintf(stderr,
                   "presenced: --trusted-proxy wants an address or a CIDR "
                   "(127.0.0.1, 10.0.0.0/8, fd00::/8), got %s\n",
                   cidr.c_str());
      return 2;
    }
  }
  if (!f.admin_listen.empty() && !http::ParseListenAddress(f.admin_listen)) {
    std::fprintf(stderr, "presenced: --admin-listen wants HOST:PORT, got %s\n",
                 f.admin_listen.c_str());
    return 2;
  }
  return 0;
}

}  // namespace

std::optional<int> ParseFlags(int argc, char** argv, Flags& f) {
  CLI::App cli{"presenced: a Zulip-compatible presence server"};
  cli.set_version_flag("--version", VersionLine("presenced"));
  // Every flag below may also be a key of the --config file (TOML, the
  // flag's name without the dashes: `rate-limit = 100`); the command line
  // wins, and a key that names no flag is an error, not silently ignored.
  cli.set_config("--config", "",
                 "read flags from this TOML file (command-line flags "
                 "override it; unknown keys are an error)");
  cli.allow_config_extras(CLI::config_extras_mode::error);
  cli.add_flag("--check-config", f.check_config,
               "check the flags and the files they name, print the "
               "effective settings and exit (0: fine, 2: not)")
      ->configurable(false);
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
  cli.add_option("--threads", f.threads,
                 "I/O threads (0: one per hardware thread)")
      ->capture_default_str();
  cli.add_option("--flush-interval-ms", f.flush_interval_ms,
                 "group-commit interval for presence rows")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3'600'000u));
  cli.add_option("--malloc-trim-seconds", f.malloc_trim_seconds,
                 "look this often whether RSS grew since it last settled, "
                 "and if so give free heap pages back to the system "
                 "(0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3600u));
  cli.add_option("--heartbeat-seconds", f.heartbeat_seconds,
                 "a parked GET /events answers with a heartbeat after this")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u));
  cli.add_option("--answer-coalesce-ms", f.answer_coalesce_ms,
                 "under a backlog, answers to woken long polls may wait this "
                 "much longer to leave the I/O thread to requests and carry "
                 "more events each (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10'000u));
  cli.add_option("--answer-interval-ms", f.answer_interval_ms,
                 "under a backlog, a connection's long polls are answered at "
                 "most this often, each answer carrying the events that "
                 "arrived meanwhile (0: never held)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10'000u));
  cli.add_option("--queue-timeout-seconds", f.queue_timeout_seconds,
                 "an event queue not polled for this long is freed")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  cli.add_option("--max-queue-events", f.max_queue_events,
                 "an event queue holding more unread events is dropped")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  cli.add_option("--coalesce-presence-events", f.coalesce_presence_events,
                 "in modern-shape queues, a user's newer presence event "
                 "replaces the older one no answer carried yet (false: "
                 "every event kept)")
      ->default_str("true");
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
  cli.add_option("--events-poll-limit", f.events_poll_limit,
                 "GET /events per user per minute that neither park alone on "
                 "their queue nor bring new events (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000));
  cli.add_option("--max-queues-per-user", f.max_queues_per_user,
                 "event queues per user; one more drops the stalest")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000}));
  cli.add_option("--max-queue-memory-mb", f.max_queue_memory_mb,
                 "MiB all event queues may hold; past it the largest are "
                 "dropped")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  cli.add_option("--max-event-types", f.max_event_types,
                 "entries allowed in /register's event_types, "
                 "fetch_event_types and client_capabilities")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000}));
  cli.add_option("--max-presence-user-ids", f.max_presence_user_ids,
                 "entries allowed in presence_user_ids (/register, PATCH "
                 "/events)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}));
  cli.add_option("--transition-grace-seconds", f.transition_grace_seconds,
                 "presence_transitions: announce offline this long after "
                 "the threshold")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3600u));
  cli.add_option("--admin-listen", f.admin_listen,
                 "serve the admin API, /metrics and /healthz with its failure "
                 "reason on this HOST:PORT; the main listener then serves "
                 "none of them, only a /healthz that gives its status");
  cli.add_flag("--admin-on-main-listener", f.admin_on_main_listener,
               "serve the admin API and /metrics on --listen although it is "
               "not a loopback address (without it, and without "
               "--admin-listen, such an address is refused)");
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
                 "connections beyond this get 503; 0: what the open-file "
                 "limit allows less the server's own files, at most 65536 "
                 "(a higher value is lowered at start to that allowance)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1'000'000}));
  cli.add_option("--max-connections-per-address", f.max_connections_per_address,
                 "connections one client address (the TCP peer's) may hold "
                 "at once; more get 503 (a --trusted-proxy is exempt)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  cli.add_option("--trusted-proxy", f.trusted_proxies,
                 "CIDR (repeatable) of reverse proxies whose X-Forwarded-For "
                 "names the client; from any other peer it is ignored");
  cli.add_flag("--test-faults", f.test_faults,
               "let POST /admin/v1/faults make store writes fail (tests)");
  cli.add_option("--store", f.store,
                 "sqlite (embedded, in --data), "
                 "redis://HOST:PORT[,HOST:PORT...] (scale-out: several "
                 "presenced share one Redis or Redis Cluster) or "
                 "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME "
                 "(scale-out on the master these Redis Sentinels watch)")
      ->capture_default_str();
  cli.add_option("--redis-wait-replicas", f.redis_wait_replicas,
                 "Redis store: after each write, WAIT until this many "
                 "replicas acknowledged it (0: off); a write they do not "
                 "acknowledge within --redis-wait-timeout-ms fails")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  cli.add_option("--replica-fresh-ms", f.replica_fresh_ms,
                 "Redis store: a ping that writes nothing, from a client "
                 "whose last_update_id this node has, is answered without "
                 "a Redis round trip if the node was confirmed current "
                 "less than this long ago (0: every request asks Redis)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10'000u));
  cli.add_option("--rate-lease", f.rate_lease,
                 "Redis store: the rate limit counts up to this many of a "
                 "user's requests at once in Redis (at most limit/25), "
                 "which the node then lets through without asking "
                 "(1: every request counted in Redis, exact)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  cli.add_option("--redis-wait-timeout-ms", f.redis_wait_timeout_ms,
                 "Redis store: how long a write waits for its replicas")
      ->capture_default_str()
      ->check(CLI::Range(1u, 60'000u));
  cli.add_option("--advertise", f.advertise,
                 "scale-out: HOST:PORT other nodes use to reach this node's "
                 "API (default: the --listen address as bound)");
  cli.add_option("--cluster-secret-file", f.cluster_secret_file,
                 "scale-out (required with --store redis://): file, readable "
                 "only by the service, holding the secret the nodes of one "
                 "group sign their relays with");
  cli.add_option("--node-ttl-seconds", f.node_ttl_seconds,
                 "scale-out: a node's registration lasts this long unless "
                 "refreshed (every third of it); once a dead node's has "
                 "expired, no node relays to it")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u));
  cli.add_option("--max-relays-per-node", f.max_relays_per_node,
                 "scale-out: requests relayed to one other node at once "
                 "(a relayed long poll counts until it is answered); more "
                 "get 503")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  cli.add_flag("--demo", f.demo,
               "on an empty data directory, create a demo organisation and "
               "print a curl ping");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (f.check_config) {
    if (const int status = CheckConfig(f); status != 0) return status;
    std::fputs(cli.config_to_str(/*default_also=*/true).c_str(), stdout);
    return 0;
  }
  return std::nullopt;
}

std::optional<std::string> ReadAdminToken(const Flags& f) {
  std::string token;
  const char* source = "";
  if (!f.admin_token_file.empty()) {
    auto read = ReadPrivateFile("--admin-token-file", f.admin_token_file);
    if (!read) return std::nullopt;
    token = std::move(*read);
    source = "--admin-token-file";
  } else if (const char* env = std::getenv("PRESENCED_ADMIN_TOKEN")) {
    token = Trim(env);
    source = "PRESENCED_ADMIN_TOKEN";
  }
  // Empty: no admin API at all (every call 401). A short token can be
  // guessed; refuse it rather than serve with it.
  if (!token.empty() && token.size() < kMinAdminTokenLength) {
    std::fprintf(stderr,
                 "presenced: the admin token (%s) has %zu characters; it "
                 "needs at least %zu (e.g. openssl rand -hex 32)\n",
                 source, token.size(), kMinAdminTokenLength);
    return std::nullopt;
  }
  return token;
}

std::optional<std::string> ReadClusterSecret(const Flags& f) {
  const bool scale_out = store::IsRedisStoreUrl(f.store);
  const char* path = f.cluster_secret_file.c_str();
  if (f.cluster_secret_file.empty()) {
    if (!scale_out) return std::string();
    std::fprintf(stderr,
                 "presenced: --store redis:// needs --cluster-secret-file "
                 "FILE: the secret (the same on every node, at least %zu "
                 "characters) that authenticates relays between nodes\n",
                 kMinClusterSecretLength);
    return std::nullopt;
  }
  auto read = ReadPrivateFile("--cluster-secret-file", f.cluster_secret_file);
  if (!read) return std::nullopt;
  std::string secret = std::move(*read);
  if (secret.size() < kMinClusterSecretLength) {
    std::fprintf(stderr,
                 "presenced: --cluster-secret-file %s holds fewer than %zu "
                 "characters\n",
                 path, kMinClusterSecretLength);
    return std::nullopt;
  }
  return secret;
}

}  // namespace presence::app
