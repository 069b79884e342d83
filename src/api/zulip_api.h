// ZulipApi: the Zulip-compatible endpoints under /api/v1 (spec section 2).
//
// Order of checks for every request, as Zulip's: the realm named by the Host
// header (404 NONEXISTENT_SUBDOMAIN if none), the route (404), the method
// (405, before authentication; OPTIONS answers 204 with Allow), HTTP Basic
// authentication (401), the rate limit (429), then the endpoint's own checks
// and parameters. What each route takes and needs is its entry in Routes().
//
// Thread safety: Handle may run on many threads at once; the object holds no
// mutable state of its own.
#ifndef PRESENCE_API_ZULIP_API_H_
#define PRESENCE_API_ZULIP_API_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_error.h"
#include "api/api_options.h"
#include "api/events_api.h"
#include "api/http_types.h"
#include "api/rate_limiter.h"
#include "api/request_params.h"
#include "api/route_table.h"
#include "core/presence_service.h"

namespace presence::api {

class ZulipApi {
 public:
  // What a handler is given: the request, the realm of its Host, the method
  // after the legacy `method=` override, the authenticated caller (null for
  // routes without kNeedsAuth), the decoded parameters (null when the route
  // reads none, or a lenient route's were malformed) and the {} segments.
  struct Call {
    const Request& req;
    const Realm& realm;
    std::string_view method;
    const Caller* caller = nullptr;
    RequestParams* params = nullptr;
    RouteArgs args{};
  };
  using Handler = ApiResult<Response> (ZulipApi::*)(const Call&) const;
  using Entry = Route<Handler>;

  ZulipApi(PresenceService* service, EventHub* hub, const ApiOptions* options);

  // `path` is the part after "/api/v1" (e.g. "/users/me/presence");
  // `query` the raw query string. Where it matches the path against the
  // route table it sets `*metric` to Metric(req.method, path), so that the
  // caller need not match it again (issue #17); else leaves it unset.
  Response Handle(const Request& req, std::string_view path,
                  std::string_view query,
                  std::optional<Endpoint>* metric = nullptr) const;

  // The answer to a request whose large body has not been read yet, when
  // it cannot depend on that body (see Router::Precheck): the 401 of a
  // caller whose Authorization header fails, on a path every method of
  // which needs authentication. nullopt: read the body and Handle it.
  std::optional<Response> Precheck(const Request& req,
                                   std::string_view path) const;

  // The events API, for Router::Resume (parked polls woken by their queue).
  const EventsApi& events() const { return events_; }
  // The per-user limit on API requests (--rate-limit), for /metrics.
  const RateLimiter& rate_limiter() const { return limiter_; }

  // The route table: one entry per (pattern, method set), patterns relative
  // to "/api/v1".
  static std::span<const Entry> Routes();
  // The metric label of a request for `path` (after "/api/v1").
  static Endpoint Metric(std::string_view method, std::string_view path);

 private:
  static const Entry kRoutes[];
  struct Gated;

  // Handle once the Host's realm is known (null: none).
  Response HandleInRealm(const Request& req, Realm* realm,
                         std::string_view path, std::string_view query,
                         std::optional<Endpoint>* metric = nullptr) const;

  // Handle, after the method check: sync, authentication, rate limit,
  // parameters, then the route's handler.
  Response HandleAuthenticated(const Entry& route, Call& call,
                               std::optional<RequestParams>& params,
                               std::string_view query) const;
  // Scale-out (PresenceService::gates()): authentication against the
  // replica, then one asynchronous store step (the rate limit, a ping's
  // report, the read barrier) and the rest on the connection's thread
  // (Gated in zulip_api.cc).
  Response HandleGated(const Entry& route, Call& call,
                       std::optional<RequestParams>& params,
                       std::string_view query, bool synced) const;
  // The rest of a gated request once its store step let it through: its
  // parameters, a relay to the node owning its queue, then its handler
  // (off the I/O thread if it has kMayWait and ApiOptions::offload is
  // set). `owner`: the queue's owner, when already looked up off the
  // thread (nullopt: not yet).
  Response FinishGated(
      const std::shared_ptr<Gated>& g, const Entry& entry,
      const std::optional<RateDecision>& rate,
      const std::optional<std::optional<std::string>>& owner) const;
  // The rate decision for `user` on a rate-limited route; nullopt when no
  // limit applies.
  std::optional<RateDecision> CheckRate(const Entry& route, UserId user) const;

  // The handlers of the table.
  ApiResult<Response> OnPostPresence(const Call& call) const;
  ApiResult<Response> OnRealmPresence(const Call& call) const;
  ApiResult<Response> OnUsers(const Call& call) const;
  ApiResult<Response> OnUserPresence(const Call& call) const;
  ApiResult<Response> OnSettings(const Call& call) const;
  ApiResult<Response> OnServerSettings(const Call& call) const;
  ApiResult<Response> OnRegister(const Call& call) const;
  ApiResult<Response> OnGetEvents(const Call& call) const;
  ApiResult<Response> OnDeleteEvents(const Call& call) const;
  ApiResult<Response> OnPatchEvents(const Call& call) const;
  ApiResult<Response> OnPostMyStatus(const Call& call) const;
  ApiResult<Response> OnUserStatus(const Call& call) const;

  ApiResult<Caller> Authenticate(const Request& req, const Realm& realm) const;
  // `client`: the reporting client's name (ClientNameFromUserAgent).
  ApiResult<Response> PostPresence(const Caller& caller, RequestParams& params,
                                   std::string_view client) const;
  // A ping's parameters, read as Zulip reads them (PostPresence).
  struct Ping {
    ReportStatus status = ReportStatus::kActive;
    std::optional<std::int64_t> history_limit_days;
    std::optional<std::int64_t> last_update_id;
    bool per_client = false;
    bool ping_only = false;
    bool slim = false;
  };
  static ApiResult<Ping> ParsePing(RequestParams& params);
  // A ping's answer once its report is made.
  Response PingAnswer(const Caller& caller, const Ping& ping,
                      RequestParams& params, Micros now) const;
  // `params` may be null (a query string that could not be parsed is
  // ignored here, as it always was).
  ApiResult<Response> GetRealmPresence(const Caller& caller,
                                       RequestParams* params) const;
  ApiResult<Response> GetUsers(const Caller& caller) const;
  ApiResult<Response> GetUserPresence(const Caller& caller,
                                      std::string_view who,
                                      RequestParams* params) const;
  ApiResult<Response> PatchSettings(const Caller& caller,
                                    RequestParams& params) const;
  Response ServerSettings(const Request& req, const Realm& realm) const;

  PresenceService* const service_;
  const ApiOptions* const options_;
  EventsApi events_;
  mutable RateLimiter limiter_;
};

// The response for an ApiError: its JSON body, its status, and the headers it
// needs (WWW-Authenticate on 401, Allow on 405).
Response ErrorResponse(const ApiError& error);

// {"result":"success","msg":""} plus `"ignored_parameters_unsupported"` when
// the request carried names nobody read.
Response SuccessResponse(const RequestParams* params = nullptr);

// 429 RATE_LIMIT_HIT with Zulip's `retry-after` in the body and the
// Retry-After and X-RateLimit-* headers.
Response RateLimitedResponse(const RateDecision& rate);

// Appends `,"ignored_parameters_unsupported":[...]` if there are any.
void AppendIgnoredParameters(std::string& out, const RequestParams& params);

}  // namespace presence::api

#endif  // PRESENCE_API_ZULIP_API_H_
