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

}  // namespace

std::optional<int> ClusterLink::Join(
    const Flags& f, const boost::asio::ip::tcp::endpoint& bound, EventHub& hub,
    api::ApiOptions& options, api::ApiOptions& admin_options) {
  const std::string advertise = AdvertisedAddress(f, bound);
  auto registered = redis_->RegisterNode(advertise);
  if (!registered) {
    std::fprintf(stderr, "presenced: cannot register with %s: %s\n",
                 f.store.c_str(), registered.error().message().c_str());
    return 1;
  }
  node_id_ = *registered;
  hub.SetQueueIdPrefix(std::to_string(node_id_) + ":");
  auto owner_of = [this](std::string_view queue_id) {
    return OwnerOf(queue_id);
  };
  options.queue_owner = owner_of;
  admin_options.queue_owner = owner_of;
  Log("info", "node_registered",
      {{"node", std::to_string(node_id_)}, {"advertise", advertise}});
  return std::nullopt;
}

std::optional<std::string> ClusterLink::OwnerOf(std::string_view queue_id) {
  std::int64_t node = 0;
  auto colon = queue_id.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto [end, ec] =
      std::from_chars(queue_id.data(), queue_id.data() + colon, node);
  if (ec != std::errc() || end != queue_id.data() + colon || node == node_id_) {
    return std::nullopt;
  }
  if (auto known = owners_.Find(node)) return known;
  auto address = redis_->NodeAddress(node);
  if (!address || !*address) return std::nullopt;
  owners_.Put(node, **address);
  return *address;
}

}  // namespace presence::app
