// TrustedProxies: which TCP peers may say who the client is (--trusted-proxy).
//
// A request whose TCP peer is inside one of the trusted networks comes from
// a reverse proxy of the operator's; its X-Forwarded-For list then names
// the client. Each proxy appends the address it saw on the right, so the
// list is read from the right: addresses inside a trusted network are
// proxies of the chain and are skipped, and the first one that is not is
// the client (everything left of it came from the client itself and may be
// forged). From any other peer the header is ignored: the client is the
// peer. An entry that is not an IP address ends the walk, and the last
// trusted hop is taken as the client.
//
// Thread safety: immutable once built; any number of threads may call the
// const methods.
#ifndef PRESENCE_HTTP_TRUSTED_PROXIES_H_
#define PRESENCE_HTTP_TRUSTED_PROXIES_H_

#include <array>
#include <boost/asio/ip/address.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace presence::http {

// An IPv4 or IPv6 network: "10.0.0.0/8", "fd00::/8", or one address
// ("127.0.0.1" is 127.0.0.1/32). IPv4 networks also match IPv4-mapped IPv6
// addresses (::ffff:10.1.2.3).
class Cidr {
 public:
  // nullopt if `text` is not an address with an optional /prefix in range.
  static std::optional<Cidr> Parse(std::string_view text);

  bool Contains(const boost::asio::ip::address& a) const;

 private:
  // The network as 16 bytes (IPv4 as IPv4-mapped IPv6) and its prefix
  // length counted on those 16 bytes.
  std::array<unsigned char, 16> bytes_{};
  unsigned prefix_ = 0;
};

// An address as 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6, so that
// ::ffff:1.2.3.4 and 1.2.3.4 are one address.
std::array<unsigned char, 16> AddressBytes(const boost::asio::ip::address& a);

// `a` with an IPv4-mapped IPv6 address (a dual-stack listener's view of an
// IPv4 peer) turned into its IPv4 address; any other address as is.
boost::asio::ip::address CanonicalAddress(const boost::asio::ip::address& a);

// One X-Forwarded-For entry: an IPv4 or IPv6 address, optionally in
// brackets, optionally followed by ":port" (as some proxies write it);
// white space around it ignored; canonical (CanonicalAddress). nullopt if it is
// none of those.
std::optional<boost::asio::ip::address> ParseForwardedAddress(
    std::string_view entry);

class TrustedProxies {
 public:
  TrustedProxies() = default;

  // Adds a network given as --trusted-proxy; false (nothing added) if
  // `cidr` is malformed.
  bool Add(std::string_view cidr);

  bool empty() const { return networks_.empty(); }
  bool Contains(const boost::asio::ip::address& a) const;

  // The client of a request from TCP peer `peer` whose X-Forwarded-For
  // header fields are `forwarded_for`, in the order received (each a
  // comma-separated list). The peer itself unless it is trusted.
  boost::asio::ip::address ClientAddress(
      const boost::asio::ip::address& peer,
      std::span<const std::string_view> forwarded_for) const;

 private:
  std::vector<Cidr> networks_;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_TRUSTED_PROXIES_H_
