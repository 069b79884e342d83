#include "http/operator_endpoints.h"

#include "http/trusted_proxies.h"

namespace presence::http {

std::optional<std::string> OperatorEndpointsError(
    const boost::asio::ip::tcp::endpoint& listen, bool admin_listen,
    bool admin_on_main) {
  if (admin_listen && admin_on_main) {
    return "--admin-listen and --admin-on-main-listener exclude each other: "
           "the admin API, /metrics and the detailed /healthz are served on "
           "one listener";
  }
  if (admin_listen || admin_on_main) return std::nullopt;
  if (CanonicalAddress(listen.address()).is_loopback()) return std::nullopt;
  return "--listen " + listen.address().to_string() +
         " is not a loopback address: say which listener serves the admin "
         "API and /metrics, with --admin-listen HOST:PORT (e.g. "
         "127.0.0.1:9992) or, to serve them on this address, "
         "--admin-on-main-listener";
}

}  // namespace presence::http
