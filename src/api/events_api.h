// EventsApi: POST /register and GET/DELETE/PATCH /events (spec section 4).
//
// GET /events answers at once when the queue has events newer than
// last_event_id (or with dont_block); otherwise it parks the connection's
// QueueWaiter on the queue and returns a Response with `parked` set and what
// answering needs in `parked_poll`. When the queue wakes the waiter, the HTTP
// layer answers through Resume, which polls the queue again for the caller
// authenticated when the poll parked: no parsing, no authentication. Resume
// declines (and the request is handled again in full) when that caller may
// no longer be what authentication gives, or when the queue is gone.
//
// Limits: /register's lists are bounded (ApiOptions::max_event_types,
// max_presence_user_ids; 400 BAD_REQUEST past them), and a GET /events that
// costs (EventHub's poll budget: it neither parks alone on its queue nor
// brings new events) is counted per user in a budget of its own, apart from
// the API rate limit; past it, 429 RATE_LIMIT_HIT with Retry-After.
//
// Extensions (opt-in; Zulip clients never see them):
//   - client capability `presence_transitions`: idle/offline events;
//   - register parameter `presence_user_ids` (JSON list of user ids) and
//     PATCH /events {queue_id, presence_user_ids}: a subset subscription.
//
// Thread safety: Handle* may run on many threads at once.
#ifndef PRESENCE_API_EVENTS_API_H_
#define PRESENCE_API_EVENTS_API_H_

#include "api/api_error.h"
#include "api/api_options.h"
#include "api/http_types.h"
#include "api/rate_limiter.h"
#include "api/request_params.h"
#include "core/event_hub.h"
#include "core/presence_service.h"

namespace presence::api {

class EventsApi {
 public:
  EventsApi(PresenceService* service, EventHub* hub, const ApiOptions* options);

  // The per-user limit on polls that cost (--events-poll-limit), for
  // /metrics.
  const RateLimiter& poll_limiter() const { return poll_limiter_; }

  // Scale-out: if the request names an event queue that another node owns,
  // the answer that relays it there (BAD_EVENT_QUEUE_ID if that node cannot
  // be reached); nullopt to handle it here. `owner`: the owner's address
  // as ApiOptions::queue_owner already answered it (nullopt inside: none
  // elsewhere); null: asked here (which may wait on the store unless
  // QueueToLookUp said no).
  std::optional<Response> RelayIfForeign(
      const Request& req, RequestParams& params,
      const std::optional<std::string>* owner = nullptr) const;
  // The id of the request's queue when RelayIfForeign would ask
  // ApiOptions::queue_owner where it lives (scale-out, not a relay itself,
  // a queue this node does not have); nullopt otherwise.
  std::optional<std::string> ForeignQueue(const Request& req,
                                          RequestParams& params) const;

  ApiResult<Response> Register(const Caller& caller,
                               RequestParams& params) const;
  ApiResult<Response> GetEvents(const Request& req, const Caller& caller,
                                RequestParams& params) const;
  // Answers a parked poll that its queue woke (`superseded`: another poll
  // took its place; answer at once), byte for byte as GetEvents would
  // answer the same request now; the answer may park again. nullopt when
  // the request has to be handled again in full: the caller's realm
  // directory changed since it was authenticated, or the queue is gone.
  std::optional<Response> Resume(const ParkedPoll& parked,
                                 const std::shared_ptr<QueueWaiter>& waiter,
                                 bool superseded) const;
  ApiResult<Response> DeleteQueue(const Caller& caller,
                                  RequestParams& params) const;
  ApiResult<Response> PatchQueue(const Caller& caller,
                                 RequestParams& params) const;

 private:
  PresenceService* const service_;
  EventHub* const hub_;
  const ApiOptions* const options_;
  // GET /events' budget (options_->events_poll_limit_per_minute).
  mutable RateLimiter poll_limiter_;
};

// Microseconds of std::chrono::steady_clock: queue expiry runs on real time,
// whatever the presence clock says.
std::int64_t SteadyMicros();

}  // namespace presence::api

#endif  // PRESENCE_API_EVENTS_API_H_
