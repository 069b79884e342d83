// NodeAddressCache: the addresses of the other nodes of a cluster, by node
// id, as read from Redis on the first poll relayed to each (a node's address
// does not change while it is registered).
//
// Thread safety: any thread; mu_ guards the map (checked by the clang-tsa
// build).
#ifndef PRESENCE_APP_NODE_ADDRESS_CACHE_H_
#define PRESENCE_APP_NODE_ADDRESS_CACHE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence::app {

class NodeAddressCache {
 public:
  // The address stored for `node`, if any.
  std::optional<std::string> Find(std::int64_t node) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = by_node_.find(node);
    if (it == by_node_.end()) return std::nullopt;
    return it->second;
  }

  void Put(std::int64_t node, std::string address) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    by_node_[node] = std::move(address);
  }

 private:
  mutable Mutex mu_;  // guards by_node_
  std::unordered_map<std::int64_t, std::string> by_node_ GUARDED_BY(mu_);
};

}  // namespace presence::app

#endif  // PRESENCE_APP_NODE_ADDRESS_CACHE_H_
