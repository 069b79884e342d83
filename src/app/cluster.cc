#include "app/cluster.h"

#include <charconv>
#include <cstdio>

#include "app/log.h"

namespace presence::app {
namespace {

std::string AdvertisedAddress(const Flags& f,
                              const boost::asio::ip::tcp::endpoint& bound) {
  if (!f.advertise.empty()) return f.advertise;
  const std::string host = bound.address().to_string();
  const std::string port = std::to_string(bound.port());
  if (bound.address().is_v6()) return "[" + host + "]:" + port;
  return host + ":" + port;
}

// How long what the store said about another node is believed.
constexpr std::chrono::seconds kOwnerCacheLifetime(1);

}  // namespace

ClusterLink::ClusterLink(store::RedisStore* redis)
    : redis_(redis), owners_(kOwnerCacheLifetime) {}

ClusterLink::~ClusterLink() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  stop_cv_.NotifyAll();
  if (refresher_.joinable()) refresher_.join();
  // A clean stop ends the registration now (expiring in a millisecond), so
  // that no node relays to this one for the rest of its TTL.
  if (node_id_ != 0) {
    (void)redis_->RefreshNode(node_id_, advertise_,
                              std::chrono::milliseconds(1));
  }
}

void ClusterLink::RefreshLoop(std::chrono::milliseconds ttl,
                              std::chrono::milliseconds period) {
  for (;;) {
    {
      MutexLock lock(mu_);
      if (stop_cv_.WaitFor(mu_, period,
                           [this]() REQUIRES(mu_) { return stopping_; })) {
        return;
      }
    }
    if (auto st = redis_->RefreshNode(node_id_, advertise_, ttl); !st) {
      Log("warn", "node_refresh_failed",
          {{"node", std::to_string(node_id_)},
           {"reason", st.error().message()}});
    }
  }
}

std::optional<int> ClusterLink::Join(
    const Flags& f, const boost::asio::ip::tcp::endpoint& bound, EventHub& hub,
    api::ApiOptions& options, api::ApiOptions& admin_options) {
  const std::string advertise = AdvertisedAddress(f, bound);
  const std::chrono::milliseconds ttl =
      std::chrono::seconds(f.node_ttl_seconds);
  auto registered = redis_->RegisterNode(advertise, ttl);
  if (!registered) {
    std::fprintf(stderr, "presenced: cannot register with %s: %s\n",
                 f.store.c_str(), registered.error().message().c_str());
    return 1;
  }
  node_id_ = *registered;
  advertise_ = advertise;
  refresher_ = std::thread([this, ttl] { RefreshLoop(ttl, ttl / 3); });
  hub.SetQueueIdPrefix(std::to_string(node_id_) + ":");
  auto owner_of = [this](std::string_view queue_id) {
    return OwnerOf(queue_id);
  };
  options.queue_owner = owner_of;
  admin_options.queue_owner = owner_of;
  auto cached = [this](std::string_view queue_id) {
    return CachedOwnerOf(queue_id);
  };
  options.queue_owner_cached = cached;
  admin_options.queue_owner_cached = cached;
  if (f.test_clock) {
    // One POST /admin/v1/clock sets the group's clock: it is relayed to
    // every other live node. (A blocking store call, made off the I/O
    // threads: ApiOptions::offload.)
    auto peers = [this] {
      std::vector<std::string> out;
      auto nodes = redis_->LiveNodes();
      if (!nodes) return out;
      for (auto& [id, address] : *nodes) {
        if (id != node_id_) out.push_back(std::move(address));
      }
      return out;
    };
    options.clock_peers = peers;
    admin_options.clock_peers = peers;
  }
  Log("info", "node_registered",
      {{"node", std::to_string(node_id_)}, {"advertise", advertise}});
  return std::nullopt;
}

std::optional<std::int64_t> ClusterLink::ForeignNode(
    std::string_view queue_id) const {
  std::int64_t node = 0;
  auto colon = queue_id.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto [end, ec] =
      std::from_chars(queue_id.data(), queue_id.data() + colon, node);
  if (ec != std::errc() || end != queue_id.data() + colon || node == node_id_) {
    return std::nullopt;
  }
  return node;
}

std::optional<std::optional<std::string>> ClusterLink::CachedOwnerOf(
    std::string_view queue_id) const {
  auto node = ForeignNode(queue_id);
  if (!node) return std::optional<std::string>();
  return owners_.Find(*node, NodeAddressCache::Clock::now());
}

std::optional<std::string> ClusterLink::OwnerOf(std::string_view queue_id) {
  auto foreign = ForeignNode(queue_id);
  if (!foreign) return std::nullopt;
  const std::int64_t node = *foreign;
  const auto now = NodeAddressCache::Clock::now();
  if (auto known = owners_.Find(node, now)) return *known;
  auto address = redis_->NodeAddress(node);
  // A store error is not remembered: the next poll asks again.
  if (!address) return std::nullopt;
  owners_.Put(node, *address, now);
  return *address;
}

}  // namespace presence::app
