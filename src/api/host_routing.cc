#include "api/host_routing.h"

#include <arpa/inet.h>

#include "core/realm.h"
#include "util/ascii.h"

namespace presence::api {
namespace {

bool IsIpv4(const std::string& s) {
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool IsIpv6(const std::string& s) {
  in6_addr a;
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

std::optional<std::string> ComputeSubdomain(std::string_view host,
                                            std::string_view root_domain) {
  std::string h = AsciiLower(host);
  if (h.empty()) return std::nullopt;
  if (h.front() == '[') {
    auto close = h.find(']');
    if (close == std::string::npos) return std::nullopt;
    std::string rest = h.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    if (IsIpv6(h.substr(1, close - 1))) return std::string();
    return std::nullopt;
  }
  if (auto colon = h.rfind(':'); colon != std::string::npos) {
    // Only a port may follow the colon: 1-5 digits.
    const std::string port = h.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    h.resize(colon);
  }
  // A host name is letters, digits, dots and hyphens, nothing else.
  if (h.empty() ||
      h.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") !=
          std::string::npos) {
    return std::nullopt;
  }
  if (IsIpv4(h)) return std::string();
  const std::string root = AsciiLower(root_domain);
  if (h == root) return std::string();
  if (h.size() > root.size() + 1 && h.ends_with(root) &&
      h[h.size() - root.size() - 1] == '.') {
    std::string sub = h.substr(0, h.size() - root.size() - 1);
    if (sub.find('.') != std::string::npos) return std::nullopt;
    return sub;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> SubdomainForHost(std::string_view host,
                                            std::string_view root_domain) {
  // A pure function, called with the same Host on nearly every request of
  // a thread: the thread keeps its last answer.
  struct Last {
    std::string host, root;
    std::optional<std::string> answer;
    bool valid = false;
  };
  thread_local Last last;
  if (last.valid && last.host == host && last.root == root_domain) {
    return last.answer;
  }
  auto answer = ComputeSubdomain(host, root_domain);
  last.host.assign(host);
  last.root.assign(root_domain);
  last.answer = answer;
  last.valid = true;
  return answer;
}

}  // namespace presence::api
