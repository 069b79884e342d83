#include "http/trusted_proxies.h"

#include <charconv>

namespace presence::http {

namespace ip = boost::asio::ip;

namespace {

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<ip::address> ParseAddress(std::string_view s) {
  boost::system::error_code ec;
  ip::address a = ip::make_address(std::string(s), ec);
  if (ec) return std::nullopt;
  return CanonicalAddress(a);
}

}  // namespace

ip::address CanonicalAddress(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

std::array<unsigned char, 16> AddressBytes(const ip::address& a) {
  if (a.is_v6()) return a.to_v6().to_bytes();
  return ip::make_address_v6(ip::v4_mapped, a.to_v4()).to_bytes();
}

std::optional<Cidr> Cidr::Parse(std::string_view text) {
  text = TrimSpace(text);
  std::string_view host = text;
  std::optional<unsigned> prefix;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    std::string_view bits = text.substr(slash + 1);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), v);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size()) {
      return std::nullopt;
    }
    prefix = v;
  }
  auto address = ParseAddress(host);
  if (!address) return std::nullopt;
  const unsigned width = address->is_v4() ? 32 : 128;
  if (prefix.value_or(width) > width) return std::nullopt;
  Cidr c;
  c.bytes_ = AddressBytes(*address);
  // An IPv4 network sits below the 96 bits of the IPv4-mapped prefix.
  c.prefix_ = prefix.value_or(width) + (address->is_v4() ? 96 : 0);
  return c;
}

bool Cidr::Contains(const ip::address& a) const {
  const std::array<unsigned char, 16> b = AddressBytes(a);
  unsigned bits = prefix_;
  for (std::size_t i = 0; i < b.size() && bits > 0; ++i) {
    const unsigned n = bits >= 8 ? 8 : bits;
    const unsigned char mask = static_cast<unsigned char>(0xff << (8 - n));
    if ((b[i] & mask) != (bytes_[i] & mask)) return false;
    bits -= n;
  }
  return true;
}

std::optional<ip::address> ParseForwardedAddress(std::string_view entry) {
  entry = TrimSpace(entry);
  if (entry.empty()) return std::nullopt;
  if (entry.front() == '[') {
    // "[v6]" or "[v6]:port"
    auto close = entry.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = entry.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    auto a = ParseAddress(entry.substr(1, close - 1));
    if (!a) return std::nullopt;
    return a;
  }
  if (auto a = ParseAddress(entry)) return a;
  // "v4:port": one colon only (a bare IPv6 address has several).
  auto colon = entry.find(':');
  if (colon == std::string_view::npos ||
      entry.find(':', colon + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  auto a = ParseAddress(entry.substr(0, colon));
  if (!a || !a->is_v4()) return std::nullopt;
  return a;
}

bool TrustedProxies::Add(std::string_view cidr) {
  auto c = Cidr::Parse(cidr);
  if (!c) return false;
  networks_.push_back(*c);
  return true;
}

bool TrustedProxies::Contains(const ip::address& a) const {
  for (const Cidr& c : networks_) {
    if (c.Contains(a)) return true;
  }
  return false;
}

ip::address TrustedProxies::ClientAddress(
    const ip::address& peer,
    std::span<const std::string_view> forwarded_for) const {
  ip::address client = peer;
  if (!Contains(client)) return client;
  // From the last field to the first, each from its last entry to its
  // first: the order in which the proxies appended them, reversed.
  for (auto field = forwarded_for.rbegin(); field != forwarded_for.rend();
       ++field) {
    std::string_view list = *field;
    while (true) {
      const auto comma = list.rfind(',');
      const std::string_view entry =
          comma == std::string_view::npos ? list : list.substr(comma + 1);
      if (!TrimSpace(entry).empty()) {
        auto a = ParseForwardedAddress(entry);
        if (!a) return client;  // not written by a proxy of ours
        client = *a;
        if (!Contains(client)) return client;
      }
      if (comma == std::string_view::npos) break;
      list = list.substr(0, comma);
    }
  }
  return client;
}

}  // namespace presence::http
