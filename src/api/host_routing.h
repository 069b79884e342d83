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
// anything else (an empty Host, a port that is not 1-5 digits, a name with
// characters other than [a-z0-9.-]) -> nullopt. So a Host that routes is
// always plain ASCII, safe to echo.
std::optional<std::string> SubdomainForHost(std::string_view host,
                                            std::string_view root_domain);

}  // namespace presence::api

#endif  // PRESENCE_API_HOST_ROUTING_H_
