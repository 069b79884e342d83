// Flags: presenced's command line (the operator contract of issue #2: names,
// defaults and ranges stay exactly as documented in README.md).
#ifndef PRESENCE_APP_FLAGS_H_
#define PRESENCE_APP_FLAGS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace presence::app {

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
  unsigned answer_coalesce_ms = 50;
  unsigned answer_interval_ms = 100;
  unsigned queue_timeout_seconds = 600;
  std::size_t max_queue_events = 1000;
  bool coalesce_presence_events = true;
  std::size_t max_clients_per_user = 8;
  std::size_t presence_event_user_limit = 0;  // 0: no limit
  int rate_limit = 200;
  // Hostile-input limits (README, "Limits").
  int events_poll_limit = 120;
  std::size_t max_queues_per_user = 20;
  std::size_t max_queue_memory_mb = 1024;
  std::size_t max_event_types = 100;
  std::size_t max_presence_user_ids = 10'000;
  unsigned transition_grace_seconds = 30;
  std::string admin_listen;
  // Serve the admin API and /metrics on a main listener that is not on
  // loopback (without --admin-listen); refused at start otherwise.
  bool admin_on_main_listener = false;
  std::uint64_t max_body_bytes = 1024 * 1024;
  std::uint32_t max_header_bytes = 16 * 1024;
  unsigned idle_timeout_seconds = 60;
  // 0: what the open-file limit allows (app/open_files.h), set at start.
  std::size_t max_connections = 0;
  std::size_t max_connections_per_address = 2000;
  // --trusted-proxy CIDR, repeatable: peers whose X-Forwarded-For is read.
  std::vector<std::string> trusted_proxies;
  bool test_faults = false;
  std::string store = "sqlite";
  std::string advertise;
  std::string cluster_secret_file;
  // Redis store: WAIT for this many replicas after each write (0: off).
  int redis_wait_replicas = 0;
  unsigned redis_wait_timeout_ms = 1000;
  // Redis store: a ping that writes nothing is answered from the replica
  // if it was confirmed current less than this long ago (0: never).
  unsigned replica_fresh_ms = 100;
  // Redis store: the most requests of a user one rate-limit count in Redis
  // counts at once for the node to let through (1: exact counting).
  unsigned rate_lease = 8;
  unsigned node_ttl_seconds = 15;
  std::size_t max_relays_per_node = 1024;
  // --check-config: validate everything, print the effective settings, exit.
  bool check_config = false;
};

// Parses argv into `flags`, after the TOML file of --config if one is given
// (a flag on the command line overrides the file's value; a key that names
// no flag is an error). Returns nullopt to go on, or the exit status to end
// with at once (0 after --help or --version; CLI11's non-zero code after a
// bad flag, a missing --config file or a bad key in it, CLI11 having
// printed why). With --check-config it also reads the admin token
// and cluster secret files and checks the listen addresses, prints the
// effective settings (TOML) on stdout and returns 0, or 2 and the reason on
// stderr.
std::optional<int> ParseFlags(int argc, char** argv, Flags& flags);

// The admin API token: from --admin-token-file, else PRESENCED_ADMIN_TOKEN,
// else empty (admin API closed); surrounding white space trimmed. nullopt,
// said on stderr, if the file cannot be read or is readable by group or
// others (it must be the service's alone: chmod 600), or if the token is
// shorter than kMinAdminTokenLength characters.
inline constexpr std::size_t kMinAdminTokenLength = 32;
std::optional<std::string> ReadAdminToken(const Flags& flags);

// The secret the nodes of a scale-out group sign their relays with, from
// --cluster-secret-file (surrounding white space trimmed). Empty with
// --store sqlite and no file. nullopt, said on stderr, if a Redis store has
// no file, or the file cannot be read, is readable by group or others, or
// holds fewer than kMinClusterSecretLength characters.
inline constexpr std::size_t kMinClusterSecretLength = 16;
std::optional<std::string> ReadClusterSecret(const Flags& flags);

}  // namespace presence::app

#endif  // PRESENCE_APP_FLAGS_H_
