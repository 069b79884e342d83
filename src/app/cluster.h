// ClusterLink: what a node of a scale-out group needs beyond its store. It
// registers the node with the shared store, so that other nodes can relay
// the polls of its queues to it (its queue ids start with its node id), and
// sets the API's hook: where another node's queue lives. (The group's one
// rate-limit log per user is kept by the store's gate step: see
// ZulipApi::HandleGated.)
//
// Thread safety: the hooks run on the I/O threads; the cache of node
// addresses guards itself.
#ifndef PRESENCE_APP_CLUSTER_H_
#define PRESENCE_APP_CLUSTER_H_

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_options.h"
#include "app/flags.h"
#include "app/node_address_cache.h"
#include "core/event_hub.h"
#include "store/redis_store.h"

namespace presence::app {

class ClusterLink {
 public:
  // `redis` must outlive the link; the link must outlive every use of the
  // hooks it sets.
  explicit ClusterLink(store::RedisStore* redis) : redis_(redis) {}
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
  // The address of the node holding `queue_id`, if another node does.
  std::optional<std::string> OwnerOf(std::string_view queue_id);

  store::RedisStore* const redis_;
  std::int64_t node_id_ = 0;
  NodeAddressCache owners_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_CLUSTER_H_
