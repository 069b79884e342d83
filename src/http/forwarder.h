// Forwarder: relays one HTTP request to another presenced node and hands
// back that node's answer.
//
// Scale-out: an event queue lives on the node that created it. A poll (or a
// delete or patch of the queue) that a load balancer sends to another node is
// relayed to the owner, whose address the API layer found in the shared
// store. The relayed request carries X-Presenced-Forwarded, signed with the
// group's secret (http/relay_auth.h), so that the owner answers it itself and
// a stale address can never make two nodes relay to each other; a client's
// own header, unsigned, is not trusted as one. The session's copy of the
// request carries, as its only X-Forwarded-For, the client that node found
// (HttpSession::CopyRequest), never the client's own fields.
//
// Connections are kept alive and reused: each I/O context keeps its own idle
// connections per target (a connection stays on the context that opened it,
// as sessions do), at most `max_idle_per_target` of them; an idle connection
// keeps a one-byte read pending, so one the target closes leaves the pool at
// once. A request that fails on a reused connection before any byte of the
// answer came back is sent once more on a new one (the target may have
// closed it just as it was taken). Relays in flight to one target, over
// every context, are bounded by `max_in_flight_per_target`: a parked poll
// holds its relay for up to the heartbeat, so this bounds the connections
// one node opens to another; a relay beyond it is refused at once
// (Errc::kUnavailable, answered 503), never queued.
//
// Thread safety: Forward may be called on any I/O thread; the relay runs on
// the executor it is given (the session's) and calls `done` there, exactly
// once. mu_ guards the idle lists, the in-flight counts and the counters.
// The forwarder must outlive every relay and must be destroyed only when no
// I/O context runs any more (after IoThreads::Run returned, or in a test
// after its context stopped); it closes the idle connections then.
#ifndef PRESENCE_HTTP_FORWARDER_H_
#define PRESENCE_HTTP_FORWARDER_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/metrics.h"
#include "http/relay_auth.h"
#include "util/mutex.h"
#include "util/result.h"
#include "util/thread_annotations.h"

namespace presence::http {

inline constexpr const char* kForwardedHeader = "X-Presenced-Forwarded";

using ForwardRequest =
    boost::beast::http::request<boost::beast::http::string_body>;
using ForwardResponse =
    boost::beast::http::response<boost::beast::http::string_body>;

class Forwarder {
 public:
  struct Options {
    // Relays in flight to one target (all I/O threads together).
    std::size_t max_in_flight_per_target = 1024;
    // Idle keep-alive connections kept per target and I/O context.
    std::size_t max_idle_per_target = 8;
    // Counts new connections and refusals too; may be null.
    api::Metrics* metrics = nullptr;
  };

  // What the forwarder did so far (for tests and metrics).
  struct Counters {
    std::uint64_t connections_opened = 0;  // new TCP connections
    std::uint64_t connections_reused = 0;  // relays sent on an idle one
    std::uint64_t refused = 0;             // over max_in_flight_per_target
    std::size_t idle = 0;                  // idle connections now
    std::size_t in_flight = 0;             // relays in flight now
  };

  // `auth` must outlive the forwarder.
  Forwarder(const RelayAuth& auth, Options options);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Sends `request` to `address` ("host:port"), its X-Presenced-Forwarded
  // (any the request had replaced) signed, as HTTP/1.1 keep-alive, and calls
  // `done` with the answer; with Errc::kUnavailable if `max_in_flight` relays
  // to `address` are already in flight (nothing is sent); with Errc::kIoError
  // if the node could not be reached or did not answer within `timeout`
  // (connect, write and read together).
  void Forward(boost::asio::any_io_executor executor,
               const std::string& address, ForwardRequest request,
               std::chrono::milliseconds timeout,
               std::function<void(Result<ForwardResponse>)> done) EXCLUDES(mu_);

  Counters counters() const EXCLUDES(mu_);

  class Connection;  // one keep-alive connection (forwarder.cc)
  class Relay;       // one relay in progress (forwarder.cc)

 private:
  // Idle connections are kept per (I/O context, target).
  using PoolKey = std::pair<const void*, std::string>;

  // An idle connection for `key`, or null.
  std::shared_ptr<Connection> TakeIdle(const PoolKey& key) EXCLUDES(mu_);
  // Keeps `c` for reuse (or closes it if the pool for `key` is full).
  void PutIdle(const PoolKey& key, std::shared_ptr<Connection> c) EXCLUDES(mu_);
  // Drops `c` from the idle list of `key` if it is there (its peer closed).
  void DropIdle(const PoolKey& key, const Connection* c) EXCLUDES(mu_);
  void Opened() EXCLUDES(mu_);
  void Finished(const std::string& address) EXCLUDES(mu_);

  const RelayAuth& auth_;
  const Options options_;
  mutable Mutex mu_;  // guards everything below
  std::map<PoolKey, std::vector<std::shared_ptr<Connection>>> idle_
      GUARDED_BY(mu_);
  std::map<std::string, std::size_t> in_flight_ GUARDED_BY(mu_);
  Counters counters_ GUARDED_BY(mu_);
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_FORWARDER_H_
