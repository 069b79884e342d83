// RedisClient: a small synchronous Redis client over hiredis 0.14, with just
// enough Redis Cluster support for RedisStore.
//
// RedisConnection is one RAII connection to one host:port: it connects with a
// timeout, runs one command given as argv (binary-safe strings) and returns
// the reply as an owned RedisReply value. A connection failure is an error
// value (never an exception), the connection is dropped, and the next call
// connects again.
//
// RedisClient runs commands against a deployment given as seed addresses:
//   - standalone: one address of a server without cluster support;
//   - Redis Cluster: hiredis 0.14 has no cluster support and Debian ships no
//     C/C++ cluster client, so this implements the minimum by hand. The mode
//     is detected at Connect with CLUSTER SLOTS. Each command names the key it
//     routes by; its slot (CRC16/XMODEM of the key, or of its {hash tag}, mod
//     16384, as the Redis Cluster specification describes) selects the master
//     that serves it. A MOVED reply refreshes the slot map and retries on the
//     named node, ASK retries once on the named node after ASKING,
//     TRYAGAIN/CLUSTERDOWN retry after a short pause, and a connection error
//     refreshes the map and retries only if the command cannot have reached
//     the server (so a script never runs twice); retries are bounded
//     (kMaxAttempts). Keyless commands (PUBLISH, ...) go to any reachable
//     node. No replicas are used and no read is sent to one.
//   - Redis Sentinel (ConnectSentinel): the seeds are sentinels watching one
//     master by name. The client asks them (SENTINEL
//     get-master-addr-by-name, each in turn until one knows), checks that
//     the address it got says ROLE master, and sends every command there.
//     A connection failure or a READONLY / LOADING reply (a demoted or
//     restarting master) makes it ask the sentinels again; a command that
//     cannot have run (not sent, or refused with READONLY / LOADING) is
//     retried after a growing pause, at most kMaxAttempts times in all, so a
//     failover in progress costs a caller about half a second before it sees
//     the failure, never a hot loop. So is a command run with Rerun::kSafe
//     (a read) whose connection broke after it was sent: a demoted master
//     kills its clients, and a read cut off there is asked of the new one.
//
// Durability (RunDurable): Redis replicates asynchronously, so a master that
// dies may take with it writes it acknowledged. RunDurable follows a
// successful command with WAIT numreplicas timeout on the same connection,
// under the same lock, and fails (kStoreFailed) when fewer replicas than
// asked acknowledged in time: the command ran on the master, but the caller
// must not treat it as durable.
//
// Writes block SIGPIPE in the writing thread (hiredis uses write(2)), so a
// vanished server is an error value, never a signal that kills the process.
//
// Thread safety: RedisConnection is not thread-safe (one owner). RedisClient
// is: every Run takes mu_, which guards the connections and the slot map, so
// commands from many threads are serialized over one connection per node.
#ifndef PRESENCE_STORE_REDIS_CLIENT_H_
#define PRESENCE_STORE_REDIS_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

struct redisContext;
struct redisReply;

namespace presence::store {

// One reply, owned. `str` holds a string, a status or an error text.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kArray, kStatus, kError };
  Type type = Type::kNil;
  long long integer = 0;
  std::string str;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
};

// An owned copy of a hiredis reply.
RedisReply ConvertRedisReply(const redisReply* reply);

struct RedisAddress {
  std::string host;
  int port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const RedisAddress&, const RedisAddress&) = default;
};

// Whether a command whose connection broke after it was sent, so that it
// may or may not have run, may be sent again to the master the sentinels
// name (Redis Sentinel only, RedisClient::Run and RedisAsync::Run): kSafe
// only for a command that gives the same answer and leaves the same state
// when run twice (a read; the gate batch, which carries a token).
enum class Rerun { kNever, kSafe };

// Parses "HOST:PORT" (port 1..65535, host non-empty). nullopt if malformed.
std::optional<RedisAddress> ParseRedisAddress(std::string_view text);

// The addresses of "redis://HOST:PORT[,HOST:PORT...]". kInvalidArgument,
// saying what is wrong, if malformed.
StoreResult<std::vector<RedisAddress>> ParseRedisUrl(std::string_view url);

// The address of a "MOVED 3999 127.0.0.1:6381" or "ASK ..." error reply,
// nullopt if it names none.
std::optional<RedisAddress> RedirectTarget(std::string_view error);

// "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME": the sentinels and
// the name of the master they watch.
struct RedisSentinelUrl {
  std::vector<RedisAddress> sentinels;
  std::string master_name;
};
inline constexpr std::string_view kRedisSentinelScheme = "redis-sentinel://";
// kInvalidArgument, saying what is wrong, if malformed (no scheme, a bad
// address, no "/MASTERNAME", a name that is empty or holds '/', ',', '?',
// '#', '@', a space or a control character).
StoreResult<RedisSentinelUrl> ParseRedisSentinelUrl(std::string_view url);

// True if `url` names a Redis store (redis:// or redis-sentinel://).
bool IsRedisStoreUrl(std::string_view url);

// WAIT after each write step; replicas == 0: off.
struct RedisWait {
  int replicas = 0;
  std::chrono::milliseconds timeout{1000};
};

// The Redis Cluster hash slot of `key` (0..16383): CRC16/XMODEM of the hash
// tag (the bytes between the first '{' and the next '}', if not empty) or of
// the whole key, mod 16384.
int RedisKeySlot(std::string_view key);

struct RedisTimeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds io{3000};  // each read or write of a command
};

class RedisConnection {
 public:
  RedisConnection(RedisAddress address, RedisTimeouts timeouts);
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;
  ~RedisConnection();

  // Connects if not connected. kStoreFailed, saying why, on failure.
  StoreStatus Connect();
  // Drops the connection; the next call connects again.
  void Close();
  bool connected() const { return ctx_ != nullptr; }

  // Sends one command and reads its reply, connecting first if needed (and
  // reconnecting first if the idle connection was closed by the server). An
  // error reply is a RedisReply of type kError, not a failure. kStoreFailed
  // on a connection failure (and the connection is closed); then `*sent`
  // (if given) says whether the command may have reached the server, i.e.
  // whether retrying it could run it twice.
  StoreResult<RedisReply> Command(std::span<const std::string> argv,
                                  bool* sent = nullptr);
  // The last Command failed because no reply came within the I/O timeout:
  // the server is slow or cut off, not known to be gone.
  bool timed_out() const { return timed_out_; }

  // For a subscriber: sends a command without reading a reply.
  StoreStatus Send(std::span<const std::string> argv);
  // For a subscriber: the next reply already received, if any (nullopt if a
  // read is needed); kStoreFailed on a protocol error.
  StoreResult<std::optional<RedisReply>> Buffered();
  // For a subscriber: reads what the socket has (call when poll() says it is
  // readable). kStoreFailed on EOF or error.
  StoreStatus ReadSome();
  // The socket, or -1 if not connected.
  int fd() const;

  const RedisAddress& address() const { return address_; }

 private:
  // Closes the connection; returns kStoreFailed with "redis HOST:PORT: why".
  Error Fail(std::string_view why);

  const RedisAddress address_;
  const RedisTimeouts timeouts_;
  redisContext* ctx_ = nullptr;
  bool timed_out_ = false;
};

class RedisClient {
 public:
  static constexpr int kMaxAttempts = 5;

  // Connects to the first reachable seed and detects the mode (cluster if it
  // answers CLUSTER SLOTS). Several seeds that are not a cluster are refused
  // (kInvalidArgument). kStoreFailed if no seed answers. Errors say why.
  static StoreResult<std::unique_ptr<RedisClient>> Connect(
      std::vector<RedisAddress> seeds, RedisTimeouts timeouts);
  // Asks `sentinels` for the master named `master_name` and connects to it
  // (see the file comment). kStoreFailed, saying why, if no sentinel names
  // a reachable master that says ROLE master.
  static StoreResult<std::unique_ptr<RedisClient>> ConnectSentinel(
      std::vector<RedisAddress> sentinels, std::string master_name,
      RedisTimeouts timeouts);

  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;
  ~RedisClient();

  // Runs `argv` on the node serving `route_key` (any node if empty). The
  // reply may be an error reply (e.g. a script error); kStoreFailed if no
  // node could be reached within kMaxAttempts, or if the connection broke
  // after the command was sent (it may or may not have run), unless
  // `rerun` is kSafe with Sentinel and the connection broke rather than
  // timed out (then it is sent to the master the sentinels name); the error
  // says which node failed and how.
  StoreResult<RedisReply> Run(std::span<const std::string> argv,
                              std::string_view route_key,
                              Rerun rerun = Rerun::kNever);
  // Runs `argv` on every master (each master of a Redis Cluster's slot
  // map; the one server or master otherwise), e.g. SCRIPT LOAD, so that no
  // shard answers NOSCRIPT. The first master's reply; the first failure
  // (a connection failure or an error reply, naming the master) if any.
  StoreResult<RedisReply> RunOnEachMaster(std::span<const std::string> argv);
  // Run, then (if wait.replicas > 0 and the reply is not an error reply)
  // WAIT wait.replicas wait.timeout on the connection that ran it.
  // kStoreFailed, naming how many replicas acknowledged, if fewer than
  // wait.replicas did: the command ran but may be lost by a failover.
  StoreResult<RedisReply> RunDurable(std::span<const std::string> argv,
                                     std::string_view route_key,
                                     const RedisWait& wait);

  bool cluster() const { return cluster_; }
  bool sentinel() const { return !master_name_.empty(); }
  // Sentinel mode: the sentinels and the master's name (fixed).
  const std::vector<RedisAddress>& sentinels() const { return seeds_; }
  const std::string& master_name() const { return master_name_; }
  // The master that serves `route_key` now, as the slot map (or, with
  // Sentinel, the master last found) says, without a round trip: where an
  // asynchronous client (redis_async.h) sends the command.
  RedisAddress MasterFor(std::string_view route_key) const;
  // Where a subscriber (or another client) can connect now: the masters
  // (cluster), the server (standalone), or the current master (sentinel:
  // asked of the sentinels at each call, the last one known if none
  // answers).
  std::vector<RedisAddress> Nodes();
  RedisTimeouts timeouts() const { return timeouts_; }

 private:
  struct SlotRange {
    int first = 0;
    int last = 0;
    RedisAddress master;
  };

  RedisClient(std::vector<RedisAddress> seeds, RedisTimeouts timeouts,
              std::string master_name = {});

  // All below: mu_ held.
  // Run's body; `*used` is the connection that gave the reply (if any).
  StoreResult<RedisReply> RunLocked(std::span<const std::string> argv,
                                    std::string_view route_key, Rerun rerun,
                                    RedisConnection** used);
  // Sentinel mode: Run's body.
  StoreResult<RedisReply> RunSentinelLocked(std::span<const std::string> argv,
                                            Rerun rerun,
                                            RedisConnection** used);
  // Sentinel mode: asks the sentinels for the master and checks its ROLE;
  // sets master_. The last failure, saying why, if none named a master
  // (master_ is then left as it was).
  StoreStatus ResolveMaster();
  RedisConnection* ConnectionTo(const RedisAddress& address);
  // Reloads the slot map from any reachable node; the last failure if none
  // answered with a slot map.
  StoreStatus RefreshSlots();
  // Parses a CLUSTER SLOTS reply from `from`. False if it is not one.
  bool ParseSlots(const RedisReply& reply, const RedisAddress& from);
  // The master for `slot`, or the first seed if the map has no owner.
  RedisAddress Route(std::string_view route_key) const;

  const std::vector<RedisAddress> seeds_;  // the sentinels in sentinel mode
  const RedisTimeouts timeouts_;
  const std::string master_name_;  // sentinel mode if not empty
  bool cluster_ = false;           // fixed after Connect

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<RedisConnection>> conns_;  // mu_
  std::vector<SlotRange> slots_;  // sorted by first; guarded by mu_
  // Sentinel mode: the master last resolved; nullopt when it must be asked
  // again (after a failure). Guarded by mu_.
  std::optional<RedisAddress> master_;
  RedisAddress last_master_;  // the last one ever resolved; mu_
};

}  // namespace presence::store

#endif  // PRESENCE_STORE_REDIS_CLIENT_H_
