// Router: the one entry point from the HTTP layer into the API layer.
//
// Splits the request target and sends it to the Zulip API (/api/v1/...), the
// admin API (/admin/v1/...), the health check (/healthz), the metrics
// (/metrics) or the web page. Anything else is a JSON 404. Every answer is
// counted and timed in the options' Metrics. Which of these a listener
// serves is in its ApiOptions (serve_api, serve_admin, serve_metrics); a
// listener without serve_metrics answers /healthz with its status only.
//
// Thread safety: Handle may run on many threads at once.
#ifndef PRESENCE_API_ROUTER_H_
#define PRESENCE_API_ROUTER_H_

#include <optional>

#include "api/admin_api.h"
#include "api/api_options.h"
#include "api/http_types.h"
#include "api/metrics.h"
#include "api/zulip_api.h"
#include "core/presence_service.h"

namespace presence::api {

class Router {
 public:
  // Every pointer must outlive the router.
  Router(PresenceService* service, EventHub* hub, const ApiOptions* options);

  EventHub* hub() const { return hub_; }
  const ApiOptions& options() const { return *options_; }

  Response Handle(const Request& req) const;

  // What the rate limiters of this router's API hold (--rate-limit, except
  // in scale-out, where the shared store counts it; --events-poll-limit),
  // for Metrics::SetRateLimiterSource.
  std::vector<LimiterUsage> RateLimiterUsage() const;

  // Called by the HTTP layer once a request's head is read, when its body
  // is larger than a few KB (or of unknown length) and not read yet: the
  // answer if it cannot depend on the body, i.e. the 401 of a caller whose
  // credentials fail on a route that needs them (Zulip API: HTTP Basic;
  // admin API: the bearer token). nullopt: read the body, then Handle.
  // `req.body` is empty; `req.forwarded` means the request carries a relay
  // mark, not yet verified (its signature covers the body). Counted in the
  // metrics as Handle counts an answer, and in
  // presenced_refused_before_body_total.
  std::optional<Response> Precheck(const Request& req) const;

  // The metric label of a request for `path` (without its query): the
  // Zulip route table's entry under /api/v1 (Endpoint::kOther for an unknown
  // route), kAdmin for the whole admin API, then healthz, metrics, web.
  static Endpoint Classify(std::string_view method, std::string_view path);

  // Answers a GET /events that parked (Response::parked, with its
  // `parked_poll`) once its queue woke `waiter` (`superseded`: another poll
  // took its place), without routing, parsing or authenticating it again;
  // counted in the metrics as Handle counts it. The answer may park again.
  // nullopt when the request must be handled again in full, through Handle
  // with Request::resumed (and force_nonblocking if superseded): see
  // EventsApi::Resume.
  std::optional<Response> Resume(const ParkedPoll& parked,
                                 const std::shared_ptr<QueueWaiter>& waiter,
                                 bool superseded) const;

 private:
  Response Health() const;
  // `*metric`: the request's metric label where the Zulip API matched its
  // route (Classify's answer), else left unset.
  Response Dispatch(const Request& req, std::string_view path,
                    std::string_view query,
                    std::optional<Endpoint>* metric) const;

  PresenceService* const service_;
  EventHub* const hub_;
  const ApiOptions* const options_;
  ZulipApi zulip_;
  AdminApi admin_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_ROUTER_H_
