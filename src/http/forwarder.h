// Forwarder: relays one HTTP request to another presenced node and hands
// back that node's answer.
//
// Scale-out: an event queue lives on the node that created it. A poll (or a
// delete or patch of the queue) that a load balancer sends to another node is
// relayed to the owner, whose address the API layer found in the shared
// store. The relayed request carries X-Presenced-Forwarded, signed with the
// group's secret (http/relay_auth.h), so that the owner answers it itself and
// a stale address can never make two nodes relay to each other; a client's
// own header, unsigned, is not trusted as one.
//
// Thread safety: the forwarder runs on the executor it is given (the
// session's strand) and calls `done` there, exactly once.
#ifndef PRESENCE_HTTP_FORWARDER_H_
#define PRESENCE_HTTP_FORWARDER_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "http/relay_auth.h"

namespace presence::http {

inline constexpr const char* kForwardedHeader = "X-Presenced-Forwarded";

using ForwardRequest =
    boost::beast::http::request<boost::beast::http::string_body>;
using ForwardResponse =
    boost::beast::http::response<boost::beast::http::string_body>;

// Sends `request` to `address` ("host:port") over a new connection, its
// X-Presenced-Forwarded (any the request had replaced) signed by `auth`, and
// calls `done` with the answer, or with nullopt if the node could not be
// reached or did not answer within `timeout` (connect, write and read
// together). `auth` must outlive the call to `done`.
void Forward(boost::asio::any_io_executor executor, const std::string& address,
             ForwardRequest request, const RelayAuth& auth,
             std::chrono::milliseconds timeout,
             std::function<void(std::optional<ForwardResponse>)> done);

}  // namespace presence::http

#endif  // PRESENCE_HTTP_FORWARDER_H_
