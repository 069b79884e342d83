// ClusterLink: what a node of a scale-out group needs beyond its store. It
// registers the node with the shared store, so that other nodes can relay
// the polls of its queues to it (its queue ids start with its node id), and
// sets the API's hook: where another node's queue lives. (The group's one
// rate-limit log per user is kept by the store's gate step: see
// ZulipApi::HandleGated.)
//
// A registration lasts --node-ttl-seconds; a thread of its own (never an
// I/O thread: the store call blocks) refreshes it every third of that. A
// node that dies stops refreshing, its registration expires, and from then
// on a poll naming one of its queues is answered BAD_EVENT_QUEUE_ID by
// whichever node gets it, with no relay attempted (clients register a new
// queue, as Zulip's do). What the store said about a node is cached for
// at most a second (NodeAddressCache), known or not.
//
// Thread safety: the hooks run on the I/O threads (queue_owner_cached) and
// on the store workers (queue_owner, clock_peers: they wait on the store,
// ApiOptions::offload); the cache of node
// addresses guards itself; the refresher's state is guarded by mu_.
#ifndef PRESENCE_APP_CLUSTER_H_
#define PRESENCE_APP_CLUSTER_H_

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/api_options.h"
#include "app/flags.h"
#include "app/node_address_cache.h"
#include "core/event_hub.h"
#include "store/redis_store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence::app {

class ClusterLink {
 public:
  // `redis` must outlive the link; the link must outlive every use of the
  // hooks it sets.
  explicit ClusterLink(store::RedisStore* redis);
  // Stops the refresher and ends the registration (a node killed instead
  // expires by itself after its TTL).
  ~ClusterLink();
  ClusterLink(const ClusterLink&) = delete;
  ClusterLink& operator=(const ClusterLink&) = delete;

  // Registers the node (advertising --advertise, or `bound`), gives the hub
  // its queue-id prefix and sets the hooks in both option sets. Returns the
  // exit status on failure (said on stderr).
  std::optional<int> Join(const Flags& flags,
                          const boost::asio::ip::tcp::endpoint& bound,
                          EventHub& hub, api::ApiOptions& options,
                          api::ApiOptions& admin_options);

 private:
  // The address of the node holding `queue_id`, if another node does and
  // it is registered.
  std::optional<std::string> OwnerOf(std::string_view queue_id);
  // OwnerOf's answer if it needs no store read; nullopt if it does.
  std::optional<std::optional<std::string>> CachedOwnerOf(
      std::string_view queue_id) const;
  // The node a queue id names, if it is another node's.
  std::optional<std::int64_t> ForeignNode(std::string_view queue_id) const;
  // The refresher thread's loop: refreshes every `period` until stopped.
  void RefreshLoop(std::chrono::milliseconds ttl,
                   std::chrono::milliseconds period) EXCLUDES(mu_);

  store::RedisStore* const redis_;
  std::int64_t node_id_ = 0;
  std::string advertise_;
  NodeAddressCache owners_;
  Mutex mu_;  // guards stopping_
  CondVar stop_cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread refresher_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_CLUSTER_H_
