// The API layer's view of an HTTP exchange, free of any socket library.
//
// The HTTP layer fills a Request from the wire and writes the Response back;
// everything in between (routing, auth, parameters, JSON) is a pure function
// of these values, which is what the API tests exercise.
#ifndef PRESENCE_API_HTTP_TYPES_H_
#define PRESENCE_API_HTTP_TYPES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/types.h"

namespace presence {
struct EventQueue;
class QueueWaiter;
class Realm;
}  // namespace presence

namespace presence::api {

class AuthCache;
struct ConnectionAuth;

struct Request {
  std::string_view method;  // "GET", "POST", ... as sent
  std::string_view target;  // origin-form: path with optional ?query
  std::string_view host;    // Host header, possibly with :port
  std::string_view authorization;
  bool has_authorization = false;
  std::string_view content_type;
  std::string_view user_agent;
  std::string_view body;
  // The client's IP address as text: the TCP peer's, or, where the peer is
  // a --trusted-proxy, the one its X-Forwarded-For names: what logs show,
  // and what a per-address request limit is to count. Empty where unknown
  // (in-process tests).
  std::string_view client_address;
  // The connection, for a long poll that has to wait (GET /events). Null
  // where waiting is impossible: then polls answer at once.
  std::shared_ptr<QueueWaiter> waiter;
  // A poll that was superseded by a newer one on its queue: answer at once.
  bool force_nonblocking = false;
  // A parked poll handled again after its queue woke it.
  bool resumed = false;
  // The HTTP layer answers long polls in turns behind other requests
  // (http/answer_queue.h): a blocking poll whose events are already waiting
  // parks all the same, with Response::ready set, instead of being answered
  // at once.
  bool answer_in_turn = false;
  // Relayed by another node (scale-out): never relay it further.
  bool forwarded = false;
  // Recent authentications of this I/O thread (see auth_cache.h); may be
  // null.
  AuthCache* auth_cache = nullptr;
  // The connection's last authentication (see auth_cache.h); may be null.
  ConnectionAuth* connection_auth = nullptr;
};

// A GET /events that parked: what answering it needs once its queue wakes
// it, so that the answer is written without routing, parsing or
// authenticating the request again (Router::Resume).
struct ParkedPoll {
  std::string queue_id;
  // Where the hub keeps that queue (EventHub::Poll's handle): resuming
  // finds it without a lookup by id. Filled and used by EventsApi only; a
  // cache, hence mutable (a poll is resumed through a const reference).
  mutable std::weak_ptr<EventQueue> queue;
  std::optional<std::int64_t> last_event_id;
  // The authenticated caller: its realm, id, and the realm's directory
  // generation read before authenticating (Caller::directory_generation).
  const Realm* realm = nullptr;
  UserId user_id = 0;
  std::uint64_t directory_generation = 0;
  // The end of the answer after its queue_id: the ignored parameters, if
  // any, and the closing brace.
  std::string tail;
};

struct Response;

// Continues a deferred request (Response::deferred) on its connection's own
// thread: `next` runs there and gives the answer, which may park, relay or
// defer again like any other.
using Continue = std::function<void(std::function<Response()> next)>;

// Zulip's X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset
// fields of an answer to a rate-counted request, as numbers: the HTTP layer
// formats them straight into the head (issue #17: three strings per answer
// were three allocations, the longest names past the short-string buffer).
struct RateFields {
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  std::int64_t reset_unix = 0;
  friend bool operator==(const RateFields&, const RateFields&) = default;
};

struct Response {
  unsigned status = 200;
  std::string body;
  // Static text (a literal or a web asset's type): never owned.
  std::string_view content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  // Written before `headers`.
  std::optional<RateFields> rate;
  // GET /events parked the poll on its queue: send nothing now; the queue
  // wakes `waiter`, which then answers through Router::Resume with
  // `parked_poll` (or handles the request again).
  bool parked = false;
  ParkedPoll parked_poll;
  // With `parked`: events are waiting already (Request::answer_in_turn).
  // The poll is not the queue's waiter: the HTTP layer answers it in its
  // turn through Router::Resume, which polls again.
  bool ready = false;
  // Scale-out: the request is for an event queue of another node; relay it
  // verbatim to this address ("host:port") and send back that node's
  // answer. If it cannot be reached, send this response instead.
  std::string forward_to;
  // The answer waits on another service (scale-out: the shared store). The
  // API has started that work and returns at once; the HTTP layer calls
  // `deferred` once, with the Continue of its connection, and the work
  // calls that exactly once, from any thread. Until then the connection
  // does nothing (no read, no write) and its thread serves others.
  std::function<void(Continue)> deferred;
  // Scale-out: send this very request, signed as a relay, to each of these
  // addresses too, and send this response once they have all answered (or
  // failed): POST /admin/v1/clock setting the group's clock.
  std::vector<std::string> also_to;
  // The client is not expected to send its next request on this connection
  // at once (a Zulip client's /register, whose long poll follows when it
  // is ready): the HTTP layer waits for it holding no request buffers.
  bool next_request_later = false;
};

}  // namespace presence::api

#endif  // PRESENCE_API_HTTP_TYPES_H_
