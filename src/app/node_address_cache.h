// NodeAddressCache: what this node last learnt from the shared store about
// the other nodes of its group, by node id: the address a node is registered
// at, or that it is not registered (never was, or its registration expired).
//
// Entries live for a short time only (`lifetime`): registrations expire in
// the store, so an address kept longer would keep relaying to a dead node,
// and an "unknown" kept longer would hide a node only just registered. Both
// kinds are kept so that a burst of polls naming one queue costs one store
// read, whether or not its node exists. The map is bounded (kMaxEntries):
// ids come from clients, and a client may name any number of them.
//
// Thread safety: any thread; mu_ guards the map (checked by the clang-tsa
// build).
#ifndef PRESENCE_APP_NODE_ADDRESS_CACHE_H_
#define PRESENCE_APP_NODE_ADDRESS_CACHE_H_

#include <chrono>
#include <cstddef>
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
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxEntries = 4096;

  explicit NodeAddressCache(Clock::duration lifetime) : lifetime_(lifetime) {}

  // What is known about `node` at `now`: nullopt if nothing (ask the store);
  // else the address it is registered at, or an empty optional if it is not
  // registered.
  std::optional<std::optional<std::string>> Find(std::int64_t node,
                                                 Clock::time_point now) const
      EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = by_node_.find(node);
    if (it == by_node_.end() || it->second.expires <= now) return std::nullopt;
    return it->second.address;
  }

  // Remembers, from `now` for the cache's lifetime, that `node` is
  // registered at `address` (or, empty, not registered).
  void Put(std::int64_t node, std::optional<std::string> address,
           Clock::time_point now) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    if (by_node_.size() >= kMaxEntries) {
      std::erase_if(by_node_,
                    [&](const auto& e) { return e.second.expires <= now; });
      if (by_node_.size() >= kMaxEntries) by_node_.clear();
    }
    by_node_[node] = Entry{std::move(address), now + lifetime_};
  }

  std::size_t size() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return by_node_.size();
  }

 private:
  struct Entry {
    std::optional<std::string> address;
    Clock::time_point expires;
  };
  const Clock::duration lifetime_;
  mutable Mutex mu_;  // guards by_node_
  std::unordered_map<std::int64_t, Entry> by_node_ GUARDED_BY(mu_);
};

}  // namespace presence::app

#endif  // PRESENCE_APP_NODE_ADDRESS_CACHE_H_
