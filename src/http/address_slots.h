// AddressSlots: open connections counted per client address, for
// --max-connections-per-address.
//
// The listener takes a slot for each connection it accepts, keyed by the
// TCP peer's address (never by a header: X-Forwarded-For is per request
// and chosen by the client); the slot goes back when the connection's
// session ends. One address holding its maximum gets no more slots, so one
// client cannot take the whole --max-connections budget. Loopback counts
// like any other address.
//
// Thread safety: Acquire runs on the listener's strand, a slot is released
// from whichever thread ends its session; counts_ is guarded by mu_. The
// table is shared (shared_ptr) by the slots, which may outlive the server.
#ifndef PRESENCE_HTTP_ADDRESS_SLOTS_H_
#define PRESENCE_HTTP_ADDRESS_SLOTS_H_

#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "util/mutex.h"

namespace presence::http {

class AddressSlots : public std::enable_shared_from_this<AddressSlots> {
 public:
  using Key = std::array<unsigned char, 16>;

  // One connection's slot: gives it back when destroyed. Empty (default
  // constructed) holds nothing.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&&) noexcept = default;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();

   private:
    friend class AddressSlots;
    Slot(std::shared_ptr<AddressSlots> owner, const Key& key)
        : owner_(std::move(owner)), key_(key) {}
    std::shared_ptr<AddressSlots> owner_;
    Key key_{};
  };

  // At most `max_per_address` slots per address at once (>= 1).
  static std::shared_ptr<AddressSlots> Create(std::size_t max_per_address);

  // A slot for a connection from `address`, or nullopt if that address
  // holds its maximum already.
  std::optional<Slot> Acquire(const boost::asio::ip::address& address);

  // Slots `address` holds now.
  std::size_t held(const boost::asio::ip::address& address) const;
  // Addresses holding at least one slot.
  std::size_t addresses() const;

 private:
  explicit AddressSlots(std::size_t max_per_address)
      : max_per_address_(max_per_address) {}
  void Release(const Key& key);

  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };

  const std::size_t max_per_address_;
  mutable Mutex mu_;
  boost::unordered_flat_map<Key, std::uint32_t, KeyHash> counts_
      GUARDED_BY(mu_);
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_ADDRESS_SLOTS_H_
