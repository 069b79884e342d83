#include "http/address_slots.h"

#include <string_view>

#include "http/trusted_proxies.h"

namespace presence::http {

AddressSlots::Slot& AddressSlots::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (owner_) owner_->Release(key_);
    owner_ = std::move(other.owner_);
    key_ = other.key_;
  }
  return *this;
}

AddressSlots::Slot::~Slot() {
  if (owner_) owner_->Release(key_);
}

std::shared_ptr<AddressSlots> AddressSlots::Create(
    std::size_t max_per_address) {
  return std::shared_ptr<AddressSlots>(
      new AddressSlots(max_per_address < 1 ? 1 : max_per_address));
}

std::size_t AddressSlots::KeyHash::operator()(const Key& k) const noexcept {
  return std::hash<std::string_view>()(
      std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
}

std::optional<AddressSlots::Slot> AddressSlots::Acquire(
    const boost::asio::ip::address& address) {
  const Key key = AddressBytes(address);
  {
    MutexLock lock(mu_);
    std::uint32_t& n = counts_[key];
    if (n >= max_per_address_) return std::nullopt;
    ++n;
  }
  return Slot(shared_from_this(), key);
}

void AddressSlots::Release(const Key& key) {
  MutexLock lock(mu_);
  auto it = counts_.find(key);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);
}

std::size_t AddressSlots::held(const boost::asio::ip::address& address) const {
  MutexLock lock(mu_);
  auto it = counts_.find(AddressBytes(address));
  return it == counts_.end() ? 0 : it->second;
}

std::size_t AddressSlots::addresses() const {
  MutexLock lock(mu_);
  return counts_.size();
}

}  // namespace presence::http
