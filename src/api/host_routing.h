// Realm routing by the Host header (the operator contract).
#ifndef PRESENCE_API_HOST_ROUTING_H_
#define PRESENCE_API_HOST_ROUTING_H_

#include <optional>
#include <string>
#include <string_view>

namespace presence::api {

// The realm subdomain a Host header names, with the port stripped and
// compared case-insensitively: an IP literal (v4, or v6 in brackets) or
// exactly `root_domain` -> "" (the root realm); "X.<root_domain>" -> "X";
// anything else (including an empty Host) -> nullopt.
std::optional<std::string> SubdomainForHost(std::string_view host,
                                            std::string_view root_domain);

}  // namespace presence::api

#endif  // PRESENCE_API_HOST_ROUTING_H_
