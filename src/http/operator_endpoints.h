// Where the operator's endpoints (/admin, /metrics, /healthz with the
// store's failure text) may be served.
//
// With --admin-listen they are served there only. Without it, the main
// listener serves them when it is bound to a loopback address; on any
// other address (including 0.0.0.0 and ::) the operator must say so with
// --admin-on-main-listener, or the server refuses to start: an admin API
// and heap statistics reachable from the network by mistake cost more
// than one more flag.
//
// Thread safety: pure functions.
#ifndef PRESENCE_HTTP_OPERATOR_ENDPOINTS_H_
#define PRESENCE_HTTP_OPERATOR_ENDPOINTS_H_

#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>

namespace presence::http {

// Why presenced must not start with these settings, or nullopt if it may.
// `listen` is the main listener's address (--listen), `admin_listen`
// whether --admin-listen was given, `admin_on_main` whether
// --admin-on-main-listener was.
std::optional<std::string> OperatorEndpointsError(
    const boost::asio::ip::tcp::endpoint& listen, bool admin_listen,
    bool admin_on_main);

}  // namespace presence::http

#endif  // PRESENCE_HTTP_OPERATOR_ENDPOINTS_H_
