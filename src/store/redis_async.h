// RedisAsync: non-blocking, pipelined Redis commands on one Asio
// io_context, for the I/O thread that runs it.
//
// hiredis's asynchronous API (redisAsyncContext) does the protocol; a small
// adapter here drives it from the io_context: hiredis asks for readability
// and writability through its ev hooks, and the adapter waits for them on
// the connection's socket (posix::stream_descriptor::async_wait) and calls
// redisAsyncHandleRead/Write. A command is appended to the connection's
// output buffer and written when the socket is writable; its reply is
// matched in order, so any number of commands are in flight on one
// connection at once and nothing ever waits for the network on the thread.
//
// Where commands go: RedisClient (redis_client.h), the synchronous client
// of the same deployment, keeps the topology (the server, the Redis Cluster
// slot map, the current master). Run sends a command to
// RedisClient::MasterFor(route_key) over this thread's connection to that
// address, connecting (asynchronously) if there is none. In a cluster, a
// MOVED reply retries on the named node and remembers it for the slot, an
// ASK reply retries once on the named node after ASKING, TRYAGAIN and
// CLUSTERDOWN (not run: a slot being moved) retry after a growing pause;
// all of these are bounded together (kMaxRedirects). A connection that breaks
// fails every command in flight on it with kStoreFailed (never retried: a
// script may have run), and the next command connects again. A connection with
// commands in flight that receives nothing for the I/O timeout is dropped the
// same way.
//
// Redis Sentinel: a command refused by a server that is no longer the
// master (READONLY, LOADING), or sent on a connection that never connected
// (so it cannot have run), asks the sentinels again, asynchronously, after a
// short pause (SENTINEL get-master-addr-by-name, each sentinel in turn), and
// is sent to the master they name; this thread then keeps to that master.
// So is a command run with Rerun::kSafe whose connection broke in flight
// (Sentinel kills the clients of the master it demotes): the caller says
// running it twice is harmless (the gate script keeps its answer under a
// token and gives it again). Bounded like redirects.
//
// Thread safety: none; every call, and every callback, on the io_context's
// thread. Callbacks run once each, from the io_context (or from the
// destructor, which fails the commands still in flight).
#ifndef PRESENCE_STORE_REDIS_ASYNC_H_
#define PRESENCE_STORE_REDIS_ASYNC_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/redis_client.h"
#include "util/error.h"

namespace presence::store {

class RedisAsync {
 public:
  static constexpr int kMaxRedirects = 5;
  using Callback = std::function<void(StoreResult<RedisReply>)>;

  // `topology` must outlive this object.
  RedisAsync(boost::asio::io_context& io, const RedisClient* topology,
             RedisTimeouts timeouts);
  RedisAsync(const RedisAsync&) = delete;
  RedisAsync& operator=(const RedisAsync&) = delete;
  // Closes every connection; commands in flight fail (their callbacks run
  // here).
  ~RedisAsync();

  // Sends `argv` to the master serving `route_key` (any if empty). `done`
  // gets the reply (an error reply is a reply, not a failure) or
  // kStoreFailed, saying which server failed and how.
  //
  // Rerun::kSafe (Sentinel only here): a command whose connection broke
  // after it was sent, which may have run, is still sent to the master the
  // sentinels name; only for a command that gives the same answer and
  // effect when run again (redis_client.h).
  using Rerun = store::Rerun;
  void Run(std::vector<std::string> argv, std::string route_key, Callback done,
           Rerun rerun = Rerun::kNever);

  // Commands sent and not yet answered, on every connection.
  std::size_t in_flight() const { return in_flight_; }

 private:
  struct Connection;
  struct Command;

  Connection* ConnectionTo(const RedisAddress& address);
  void Send(std::shared_ptr<Command> cmd, const RedisAddress& to, bool asking);
  void OnReply(const std::shared_ptr<Command>& cmd, Connection* conn,
               const void* reply);
  void Drop(Connection* conn);
  // Sentinel: asks the sentinels for the master, then sends `cmd` there.
  void Rediscover(std::shared_ptr<Command> cmd, std::string why);
  void ArmWatchdog(Connection* conn);

  boost::asio::io_context& io_;
  const RedisClient* const topology_;
  const RedisTimeouts timeouts_;
  std::unordered_map<std::string, std::unique_ptr<Connection>> conns_;
  // Slots a MOVED reply moved since the topology was read (cluster).
  std::map<int, RedisAddress> moved_;
  // Sentinel: the master the sentinels last named to this thread.
  std::optional<RedisAddress> master_;
  std::size_t next_sentinel_ = 0;
  std::size_t in_flight_ = 0;
  // Set false in the destructor: callbacks from hiredis that run during it
  // touch nothing else.
  std::shared_ptr<bool> alive_;
};

}  // namespace presence::store

#endif  // PRESENCE_STORE_REDIS_ASYNC_H_
