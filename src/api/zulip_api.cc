#include "api/zulip_api.h"

#include <boost/json/serialize.hpp>
#include <boost/url/pct_string_view.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "api/auth_cache.h"
#include "api/basic_auth.h"
#include "api/client_name.h"
#include "api/host_routing.h"
#include "api/json_writer.h"
#include "api/offload.h"
#include "api/presence_format.h"
#include "api/user_status.h"
#include "core/constants.h"
#include "core/presence_rules.h"

namespace presence::api {
namespace {

constexpr std::string_view kSuccessHead = R"({"result":"success","msg":"")";

std::string_view AuthMessage(AuthFailure f) {
  switch (f) {
    case AuthFailure::kInvalidApiKey:
      return kInvalidApiKey;
    case AuthFailure::kRealmDeactivated:
      return kRealmDeactivated;
    case AuthFailure::kUserDeactivated:
      return kUserDeactivated;
    case AuthFailure::kWrongRealm:
      return kWrongSubdomain;
  }
  return kInvalidApiKey;
}

// The reason is the sticky failure where there is one (a single node's
// store write failed), else what the call that failed said (scale-out,
// where nothing is sticky and failure() stays empty).
ApiError StoreFailed(const PresenceService& service,
                     const boost::system::error_code& ec) {
  std::string why = service.failure();
  if (why.empty()) {
    why = ec == Errc::kUnavailable
              ? "the shared store did not answer, or this node's replica "
                "did not catch up with it"
              : ec.message();
  }
  return FromErrc(Errc::kStoreFailed, "Presence store unavailable: " + why);
}

// A failed store step: the code's own answer, with the writer's reason
// when it gave one ("Service temporarily unavailable: this node's replica
// did not reach update 42 ...").
ApiError GateFailed(const boost::system::error_code& ec,
                    const std::string& why) {
  ApiError e = FromErrc(ec);
  if (!why.empty()) e.msg += ": " + why;
  return e;
}

Response JsonResponse(std::string body) {
  Response r;
  r.body = std::move(body);
  return r;
}

}  // namespace

Response ErrorResponse(const ApiError& error) {
  Response r;
  r.status = error.http_status;
  r.body = boost::json::serialize(error.ToJson());
  if (error.http_status == 401) {
    r.headers.emplace_back("WWW-Authenticate",
                           std::string(kWwwAuthenticateValue));
  }
  if (error.http_status == 405) {
    if (auto it = error.extra.find("allowed_methods");
        it != error.extra.end() && it->value().is_array()) {
      std::string allow;
      for (const auto& m : it->value().as_array()) {
        if (!m.is_string()) continue;
        if (!allow.empty()) allow += ", ";
        allow += m.as_string();
      }
      r.headers.emplace_back("Allow", allow);
    }
  }
  return r;
}

void AppendIgnoredParameters(std::string& out, const RequestParams& params) {
  auto unused = params.UnusedNames();
  if (unused.empty()) return;
  out.append(",\"ignored_parameters_unsupported\":[");
  for (std::size_t i = 0; i < unused.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, unused[i]);
  }
  out.push_back(']');
}

Response SuccessResponse(const RequestParams* params) {
  std::string body(kSuccessHead);
  if (params != nullptr) AppendIgnoredParameters(body, *params);
  body.push_back('}');
  return JsonResponse(std::move(body));
}

ZulipApi::ZulipApi(PresenceService* service, EventHub* hub,
                   const ApiOptions* options)
    : service_(service),
      options_(options),
      events_(service, hub, options),
      limiter_(options->rate_limit_per_minute, 60) {}

// Entries of one pattern are adjacent; /users/me/presence comes before
// /users/{}/presence, which it would otherwise match.
const ZulipApi::Entry ZulipApi::kRoutes[] = {
    {"/users/me/presence", kPost, &ZulipApi::OnPostPresence,
     Endpoint::kPostPresence, kNeedsAuth | kRateLimited | kWriteIsBarrier,
     Params::kStrict},
    {"/realm/presence", kGet | kHead, &ZulipApi::OnRealmPresence,
     Endpoint::kRealmPresence, kNeedsAuth | kRateLimited, Params::kLenient},
    {"/users", kGet | kHead, &ZulipApi::OnUsers, Endpoint::kUsers,
     kNeedsAuth | kRateLimited, Params::kNone},
    {"/users/{}/presence", kGet | kHead, &ZulipApi::OnUserPresence,
     Endpoint::kUserPresence, kNeedsAuth | kRateLimited, Params::kLenient},
    {"/users/me/status", kPost, &ZulipApi::OnPostMyStatus,
     Endpoint::kPostMyStatus, kNeedsAuth | kRateLimited | kMayWait,
     Params::kStrict},
    {"/users/{}/status", kGet | kHead | kPost, &ZulipApi::OnUserStatus,
     Endpoint::kUserStatus, kNeedsAuth | kRateLimited | kMayWait,
     Params::kStrict},
    {"/settings", kPatch, &ZulipApi::OnSettings, Endpoint::kSettings,
     kNeedsAuth | kRateLimited | kMayWait, Params::kStrict},
    {"/server_settings", kGet | kHead, &ZulipApi::OnServerSettings,
     Endpoint::kServerSettings, 0, Params::kNone},
    {"/register", kPost, &ZulipApi::OnRegister, Endpoint::kRegister,
     kNeedsAuth | kRateLimited, Params::kStrict},
    {"/events", kGet, &ZulipApi::OnGetEvents, Endpoint::kGetEvents,
     kNeedsAuth | kRelayable | kParks, Params::kStrict},
    {"/events", kDelete, &ZulipApi::OnDeleteEvents, Endpoint::kDeleteEvents,
     kNeedsAuth | kRateLimited | kRelayable, Params::kStrict},
    {"/events", kPatch, &ZulipApi::OnPatchEvents, Endpoint::kPatchEvents,
     kNeedsAuth | kRateLimited | kRelayable, Params::kStrict},
};

std::span<const ZulipApi::Entry> ZulipApi::Routes() { return kRoutes; }

Endpoint ZulipApi::Metric(std::string_view method, std::string_view path) {
  return MetricFor(Routes(), path, method, Endpoint::kOther);
}

namespace {

Response OptionsResponse(MethodSet allowed) {
  Response r;
  r.status = 204;
  r.content_type = {};
  r.headers.emplace_back("Allow", MethodList(allowed).Joined());
  return r;
}

// By reference: a parameter by value would be moved in and out again (an
// answer has many members, and every API answer passes here).
Response WithRateHeaders(Response&& r,
                         const std::optional<RateDecision>& rate) {
  if (rate) {
    r.rate = RateFields{rate->limit, rate->remaining,
                        static_cast<std::int64_t>(rate->reset_unix)};
  }
  return std::move(r);
}

}  // namespace

Response RateLimitedResponse(const RateDecision& rate) {
  ApiError e(429, "RATE_LIMIT_HIT", "API usage exceeded rate limit");
  e.extra["retry-after"] = rate.retry_after;
  Response r = WithRateHeaders(ErrorResponse(e), rate);
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", rate.retry_after);
  r.headers.emplace_back("Retry-After", secs);
  return r;
}

namespace {

// Decodes the parameters of a request that is not a POST (whose were
// decoded before the method check), as its route reads them.
std::optional<ApiError> ReadParams(Params mode, const Request& req,
                                   std::string_view query,
                                   std::optional<RequestParams>& params) {
  if (params || mode == Params::kNone) return std::nullopt;
  auto parsed = RequestParams::Parse(query, req.content_type, req.body);
  if (parsed) {
    params = std::move(*parsed);
  } else if (mode == Params::kStrict) {
    return parsed.error();
  }
  // kLenient: only for the per_client extension; these GETs never failed on
  // their query string, so a malformed one is still ignored.
  return std::nullopt;
}

}  // namespace

Response ZulipApi::Handle(const Request& req, std::string_view path,
                          std::string_view query,
                          std::optional<Endpoint>* metric) const {
  auto sub = SubdomainForHost(req.host, options_->root_domain);
  if (sub && options_->offload && service_->FindLoadedRealm(*sub) == nullptr) {
    // A realm this node has not loaded (made on another node, or none):
    // reading it waits on the store, off this thread; the request goes on
    // here with what was found. (path and query view the request's
    // target, which its connection keeps until it is answered.)
    auto held = std::make_shared<Request>(req);
    return Offloaded(
        *options_, [this, held, path, query, subdomain = std::string(*sub)]() {
          Realm* realm = service_->FindRealm(subdomain);
          return Resumed([this, held, path, query, realm] {
            return HandleInRealm(*held, realm, path, query);
          });
        });
  }
  return HandleInRealm(req, sub ? service_->FindRealm(*sub) : nullptr, path,
                       query, metric);
}

Response ZulipApi::HandleInRealm(const Request& req, Realm* realm,
                                 std::string_view path, std::string_view query,
                                 std::optional<Endpoint>* metric) const {
  if (realm == nullptr) {
    return ErrorResponse(
        ApiError::NotFound("Invalid subdomain", "NONEXISTENT_SUBDOMAIN"));
  }
  RouteMatch<Handler> m = FindRoute(Routes(), path, req.method);
  if (metric != nullptr) {
    // As Metric(req.method, path) finds it (MetricFor), from this match.
    *metric = m.route != nullptr        ? m.route->metric
              : m.path_route != nullptr ? m.path_route->metric
                                        : Endpoint::kOther;
  }
  if (!m.path_found()) return ErrorResponse(ApiError::NotFound("Not Found"));
  // A legacy form field `method=<VERB>` in a POST body overrides the HTTP
  // method, so the body is decoded before the method check for POSTs.
  std::optional<RequestParams> params;
  std::string method(req.method);
  if (req.method == "POST") {
    auto parsed = RequestParams::Parse(query, req.content_type, req.body);
    if (!parsed) return ErrorResponse(parsed.error());
    params = std::move(*parsed);
    if (params->Has("method")) {
      method = *params->GetString("method");
      for (char& c : method) c = static_cast<char>(std::toupper(c));
      m = FindRoute(Routes(), path, method);
    }
  }
  if (method == "OPTIONS") return OptionsResponse(m.allowed);
  if (m.route == nullptr) {
    return ErrorResponse(
        ApiError::MethodNotAllowed(MethodList(m.allowed).names()));
  }
  Call call{req, *realm, method, nullptr, nullptr, m.args};
  if (!m.route->has(kNeedsAuth)) {
    ApiResult<Response> out = (this->*m.route->handler)(call);
    return out ? std::move(*out) : ErrorResponse(out.error());
  }
  return HandleAuthenticated(*m.route, call, params, query);
}

std::optional<Response> ZulipApi::Precheck(const Request& req,
                                           std::string_view path) const {
  // Anything Handle answers before authenticating (an unknown realm or
  // path) is answered by Handle once the body is read, as before.
  auto sub = SubdomainForHost(req.host, options_->root_domain);
  // A realm not loaded yet is read by Handle (off the I/O thread where
  // reading it waits on the store).
  Realm* realm = !sub                ? nullptr
                 : options_->offload ? service_->FindLoadedRealm(*sub)
                                     : service_->FindRealm(*sub);
  if (realm == nullptr) return std::nullopt;
  RouteMatch<Handler> m = FindRoute(Routes(), path, req.method);
  if (!m.path_found()) return std::nullopt;
  // A POST body's legacy `method` field may pick any entry of the path:
  // all of them must need authentication. (Such a body could also ask for
  // OPTIONS or a method the path lacks, which Handle answers before
  // authenticating: above the threshold, a caller that fails
  // authentication gets its 401 instead.)
  for (const Entry& e : Routes()) {
    if (e.pattern == m.path_route->pattern && !e.has(kNeedsAuth)) {
      return std::nullopt;
    }
  }
  if (service_->gates()) {
    // Scale-out: a key this replica does not know may have been made a
    // moment ago on another node; only a missing or malformed header is
    // refused before the store step.
    if (!req.has_authorization) return ErrorResponse(ApiError::NotLoggedIn());
    auto creds = ParseBasicAuthorization(req.authorization);
    if (!creds) return ErrorResponse(creds.error());
    return std::nullopt;
  }
  if (auto st = service_->Sync(*realm); !st) return std::nullopt;
  auto caller = Authenticate(req, *realm);
  if (caller) return std::nullopt;
  return ErrorResponse(caller.error());
}

Response ZulipApi::HandleAuthenticated(const Entry& route, Call& call,
                                       std::optional<RequestParams>& params,
                                       std::string_view query) const {
  if (service_->gates()) return HandleGated(route, call, params, query, false);
  // Scale-out: see every change any node acknowledged before this request
  // (a key created a moment ago on another node, its last ping, the events
  // of a setting just changed). A parked poll that its queue woke has been
  // through this already: its queue is fed as the replica catches up. A
  // ping's own report is its barrier (kWriteIsBarrier): one round trip, not
  // two.
  const bool synced_later = route.has(kWriteIsBarrier);
  if (!synced_later && !(route.has(kParks) && call.req.resumed)) {
    if (auto st = service_->Sync(call.realm); !st) {
      return ErrorResponse(FromErrc(st.error()));
    }
  }
  auto caller = Authenticate(call.req, call.realm);
  if (!caller && synced_later) {
    // Not known to this replica yet, perhaps: a key or user made a moment
    // ago on another node. Free where there is one node.
    if (auto st = service_->Sync(call.realm); !st) {
      return ErrorResponse(FromErrc(st.error()));
    }
    caller = Authenticate(call.req, call.realm);
  }
  if (!caller) return ErrorResponse(caller.error());
  call.caller = &*caller;

  const std::optional<RateDecision> rate = CheckRate(route, caller->user_id);
  if (rate && !rate->allowed) return RateLimitedResponse(*rate);

  if (auto e = ReadParams(route.params, call.req, query, params)) {
    return WithRateHeaders(ErrorResponse(*e), rate);
  }
  if (params) {
    if (params->Has("method")) params->MarkUsed("method");
    call.params = &*params;
  }
  if (route.has(kRelayable)) {
    if (auto relay = events_.RelayIfForeign(call.req, *call.params)) {
      return std::move(*relay);
    }
  }
  ApiResult<Response> out = (this->*route.handler)(call);
  if (synced_later &&
      call.realm.directory_generation() != caller->directory_generation) {
    // The handler's barrier brought in a directory change (e.g. the caller
    // deactivated or its key replaced on another node before this request):
    // judged again, as the separate barrier would have before.
    if (auto again = Authenticate(call.req, call.realm); !again) {
      return ErrorResponse(again.error());
    }
  }
  if (!out) return WithRateHeaders(ErrorResponse(out.error()), rate);
  return WithRateHeaders(std::move(*out), rate);
}

// A request deferred across its store step: what the rest of it needs,
// owned (the Request's views stay valid: its connection keeps the request
// until it is answered).
struct ZulipApi::Gated {
  Request req;
  std::string method;
  RouteArgs args{};
  std::optional<RequestParams> params;
  std::string_view query;
  const Realm* realm = nullptr;
  Caller caller;
  Micros now = 0;
  Micros rate_now = 0;
  std::string client;  // a ping's client name (per-client extension)
};

Response ZulipApi::HandleGated(const Entry& route, Call& call,
                               std::optional<RequestParams>& params,
                               std::string_view query, bool synced) const {
  // Authenticated against the replica first: the store step needs to know
  // whose request it counts. A caller this replica does not know yet (a key
  // made a moment ago on another node) is judged again after a barrier.
  auto caller = Authenticate(call.req, call.realm);
  const bool resumed_poll = route.has(kParks) && call.req.resumed;
  if (!caller && (synced || resumed_poll)) return ErrorResponse(caller.error());

  auto g = std::make_shared<Gated>();
  g->req = call.req;
  g->method = std::string(call.method);
  g->args = call.args;
  g->params = std::move(params);
  g->query = query;
  g->realm = &call.realm;
  g->now = service_->Now();
  g->rate_now = RealClock().NowMicros();
  const Entry* entry = &route;
  Response out;
  if (!caller) {
    // A barrier only: nobody's request to count yet.
    Caller nobody{.realm = const_cast<Realm*>(&call.realm)};
    out.deferred = [this, g, entry, nobody](Continue resume) {
      service_->Gate(
          nobody, RequestGate{}, [this, g, entry, resume](GateOutcome o) {
            resume([this, g, entry, o]() -> Response {
              if (!o.status) {
                return ErrorResponse(GateFailed(o.status.error(), o.why));
              }
              Call again{g->req,  *g->realm, g->method,
                         nullptr, nullptr,   g->args};
              return HandleGated(*entry, again, g->params, g->query,
                                 /*synced=*/true);
            });
          });
    };
    return out;
  }
  g->caller = *caller;
  if (resumed_poll) {
    // Its queue is fed as the replica catches up: no store step.
    Call rest{g->req, *g->realm, g->method, &g->caller, nullptr, g->args};
    if (auto e = ReadParams(route.params, rest.req, query, g->params)) {
      return ErrorResponse(*e);
    }
    if (g->params) rest.params = &*g->params;
    ApiResult<Response> r = (this->*route.handler)(rest);
    return r ? std::move(*r) : ErrorResponse(r.error());
  }

  RequestGate gate;
  gate.now = g->now;
  const bool counted = limiter_.enabled() && route.has(kRateLimited);
  if (counted) {
    gate.rate_limit = limiter_.limit();
    gate.rate_now = g->rate_now;
    gate.rate_window = limiter_.window_us();
  }
  // A ping reports in the same step; its parameters are read first (a bad
  // one is answered after the step, which still counts the request).
  std::optional<Ping> ping;
  std::optional<ApiError> ping_error;
  if (route.has(kWriteIsBarrier)) {
    if (auto e = ReadParams(route.params, call.req, query, g->params)) {
      ping_error = *e;
    } else if (g->caller.is_bot) {
      ping_error =
          ApiError::BadRequest("This endpoint does not accept bot requests.");
    } else if (g->params) {
      if (g->params->Has("method")) g->params->MarkUsed("method");
      auto parsed = ParsePing(*g->params);
      if (parsed) {
        ping = *parsed;
        gate.report = ping->status;
        if (ping->last_update_id && *ping->last_update_id >= 0) {
          gate.cursor = static_cast<UpdateId>(*ping->last_update_id);
        }
        g->client = ClientNameFromUserAgent(g->req.user_agent);
        gate.client = g->client;  // g outlives the step
      } else {
        ping_error = parsed.error();
      }
    }
  }
  out.deferred = [this, g, entry, gate, counted, ping,
                  ping_error](Continue resume) {
    service_->Gate(
        g->caller, gate,
        [this, g, entry, counted, ping, ping_error, resume](GateOutcome o) {
          resume([this, g, entry, counted, ping, ping_error, o]() -> Response {
            std::optional<RateDecision> rate;
            if (counted && o.rate) {
              rate = MakeRateDecision(limiter_.limit(), limiter_.window_us(),
                                      g->rate_now, o.rate->allowed,
                                      o.rate->in_window, o.rate->oldest);
            }
            if (rate && !rate->allowed) return RateLimitedResponse(*rate);
            if (!o.status) {
              return WithRateHeaders(
                  ErrorResponse(GateFailed(o.status.error(), o.why)), rate);
            }
            // The step brought in what the store had: a directory change (the
            // caller deactivated, its key replaced on another node) is judged
            // again, as a barrier before authentication would have.
            if (g->realm->directory_generation() !=
                g->caller.directory_generation) {
              auto again = Authenticate(g->req, *g->realm);
              if (!again)
                return WithRateHeaders(ErrorResponse(again.error()), rate);
              g->caller = *again;
            }
            if (ping_error)
              return WithRateHeaders(ErrorResponse(*ping_error), rate);
            if (ping) {
              return WithRateHeaders(
                  PingAnswer(g->caller, *ping, *g->params, g->now), rate);
            }
            return FinishGated(g, *entry, rate, std::nullopt);
          });
        });
  };
  return out;
}

Response ZulipApi::FinishGated(
    const std::shared_ptr<Gated>& g, const Entry& entry,
    const std::optional<RateDecision>& rate,
    const std::optional<std::optional<std::string>>& owner) const {
  Call rest{g->req, *g->realm, g->method, &g->caller, nullptr, g->args};
  if (auto e = ReadParams(entry.params, rest.req, g->query, g->params)) {
    return WithRateHeaders(ErrorResponse(*e), rate);
  }
  if (g->params) {
    if (g->params->Has("method")) g->params->MarkUsed("method");
    rest.params = &*g->params;
  }
  if (entry.has(kRelayable)) {
    if (!owner && options_->offload) {
      if (auto queue = events_.ForeignQueue(rest.req, *rest.params)) {
        std::optional<std::optional<std::string>> known;
        if (options_->queue_owner_cached) {
          known = options_->queue_owner_cached(*queue);
        }
        if (known) return FinishGated(g, entry, rate, known);
        // Which node owns the queue is not known here: the registry read
        // waits on the store, off this thread; then the rest runs here
        // with its answer.
        return Offloaded(*options_, [this, g, entry = &entry, rate,
                                     queue = std::move(*queue)]() {
          std::optional<std::string> found = options_->queue_owner(queue);
          return Resumed([this, g, entry, rate, found] {
            return FinishGated(g, *entry, rate, found);
          });
        });
      }
    }
    if (auto relay = events_.RelayIfForeign(rest.req, *rest.params,
                                            owner ? &*owner : nullptr)) {
      return std::move(*relay);
    }
  }
  if (entry.has(kMayWait) && options_->offload) {
    // The handler writes through the store and waits for its replica.
    return OffloadedAnswer(*options_, [this, g, entry = &entry, rate] {
      Call call{g->req, *g->realm, g->method, &g->caller, nullptr, g->args};
      if (g->params) call.params = &*g->params;
      ApiResult<Response> r = (this->*entry->handler)(call);
      if (!r) return WithRateHeaders(ErrorResponse(r.error()), rate);
      return WithRateHeaders(std::move(*r), rate);
    });
  }
  ApiResult<Response> r = (this->*entry.handler)(rest);
  if (!r) return WithRateHeaders(ErrorResponse(r.error()), rate);
  return WithRateHeaders(std::move(*r), rate);
}

std::optional<RateDecision> ZulipApi::CheckRate(const Entry& route,
                                                UserId user) const {
  // Zulip's per-user limit; long polls are exempt (they wait, not work).
  if (!limiter_.enabled() || !route.has(kRateLimited)) return std::nullopt;
  const std::int64_t now = RealClock().NowMicros();
  // Scale-out counts in the shared store instead (HandleGated).
  return limiter_.Check(user, now);
}

ApiResult<Response> ZulipApi::OnPostPresence(const Call& call) const {
  // Bots are refused before their parameters are looked at.
  if (call.caller->is_bot) {
    return ApiError::BadRequest("This endpoint does not accept bot requests.");
  }
  return PostPresence(*call.caller, *call.params,
                      ClientNameFromUserAgent(call.req.user_agent));
}

ApiResult<Response> ZulipApi::OnRealmPresence(const Call& call) const {
  return GetRealmPresence(*call.caller, call.params);
}

ApiResult<Response> ZulipApi::OnUsers(const Call& call) const {
  return GetUsers(*call.caller);
}

ApiResult<Response> ZulipApi::OnUserPresence(const Call& call) const {
  auto decoded = boost::urls::make_pct_string_view(call.args[0]);
  if (!decoded) return ApiError::BadRequest("No such user");
  return GetUserPresence(*call.caller, decoded->decode(), call.params);
}

ApiResult<Response> ZulipApi::OnSettings(const Call& call) const {
  return PatchSettings(*call.caller, *call.params);
}

ApiResult<Response> ZulipApi::OnServerSettings(const Call& call) const {
  return ServerSettings(call.req, call.realm);
}

ApiResult<Response> ZulipApi::OnRegister(const Call& call) const {
  return events_.Register(*call.caller, *call.params);
}

ApiResult<Response> ZulipApi::OnGetEvents(const Call& call) const {
  return events_.GetEvents(call.req, *call.caller, *call.params);
}

ApiResult<Response> ZulipApi::OnDeleteEvents(const Call& call) const {
  return events_.DeleteQueue(*call.caller, *call.params);
}

ApiResult<Response> ZulipApi::OnPatchEvents(const Call& call) const {
  return events_.PatchQueue(*call.caller, *call.params);
}

namespace {

ApiError WriteFailed(const PresenceService& service,
                     boost::system::error_code e) {
  if (e == Errc::kStoreFailed) return StoreFailed(service, e);
  return FromErrc(e);
}

// The server's clock in UNIX seconds (the test clock in tests).
std::int64_t NowSeconds(const PresenceService& service) {
  return service.Now() / 1'000'000;
}

// Zulip's access_user_by_id for the status endpoints: the target must be
// a user of the caller's realm, not a bot, active; then either visible to
// the caller (reading) or administrable by it (an owner or administrator
// writing).
std::optional<ApiError> AccessStatusTarget(const Caller& caller,
                                           std::string_view arg, bool for_admin,
                                           UserId& target) {
  std::int64_t id = 0;
  auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), id);
  if (arg.empty() || ec != std::errc() || end != arg.data() + arg.size()) {
    // Zulip's route takes only an integer here.
    return ApiError::NotFound("Not Found");
  }
  const Realm& realm = *caller.realm;
  auto m = realm.MemberById(id);
  if (!m || m->is_bot) return ApiError::BadRequest("No such user");
  if (!m->is_active) return ApiError::BadRequest("User is deactivated");
  if (for_admin) {
    auto self = realm.MemberById(caller.user_id);
    if (!self ||
        (self->role != Role::kOwner && self->role != Role::kAdministrator)) {
      return ApiError::BadRequest("Insufficient permission");
    }
  } else if (!realm.CanSee(caller.user_id, id)) {
    return ApiError::BadRequest("Insufficient permission");
  }
  target = id;
  return std::nullopt;
}

}  // namespace

ApiResult<Response> ZulipApi::OnPostMyStatus(const Call& call) const {
  const Caller& caller = *call.caller;
  if (caller.is_bot) {
    return ApiError::BadRequest("This endpoint does not accept bot requests.");
  }
  auto read = ReadStatusParams(*call.params, /*accept_away=*/true);
  if (!read) return read.error();
  auto update = CheckStatusUpdate(std::move(*read), NowSeconds(*service_));
  if (!update) return update.error();
  if (auto st = service_->UpdateUserStatus(caller.realm->id(), caller.user_id,
                                           *update);
      !st) {
    return WriteFailed(*service_, st.error());
  }
  return SuccessResponse(call.params);
}

ApiResult<Response> ZulipApi::OnUserStatus(const Call& call) const {
  const Caller& caller = *call.caller;
  if (call.method == "POST") {
    auto read = ReadStatusParams(*call.params, /*accept_away=*/false);
    if (!read) return read.error();
    UserId target = 0;
    if (auto e = AccessStatusTarget(caller, call.args[0], true, target)) {
      return *e;
    }
    auto update = CheckStatusUpdate(std::move(*read), NowSeconds(*service_));
    if (!update) return update.error();
    if (auto st =
            service_->UpdateUserStatus(caller.realm->id(), target, *update);
        !st) {
      return WriteFailed(*service_, st.error());
    }
    return SuccessResponse(call.params);
  }
  // Extension (issue #18): the status's end times and do-not-disturb.
  bool extended = false;
  if (call.params != nullptr) {
    auto ext = call.params->GetJsonBool("user_status_extensions");
    if (!ext) return ext.error();
    extended = ext->value_or(false);
  }
  UserId target = 0;
  if (auto e = AccessStatusTarget(caller, call.args[0], false, target)) {
    return *e;
  }
  std::string body(kSuccessHead);
  body.append(",\"status\":");
  bool enabled = true;
  caller.realm->WithMember(target, [&](const Member* m) {
    if (m) enabled = m->presence_enabled;
  });
  if (auto status = caller.realm->StatusOf(target)) {
    AppendStatusObject(body, *status, enabled,
                       extended ? StatusShape::kExtended : StatusShape::kZulip);
  } else {
    body.append("{}");  // never set: Zulip has no row to describe
  }
  if (call.params != nullptr) AppendIgnoredParameters(body, *call.params);
  body.push_back('}');
  return JsonResponse(std::move(body));
}

ApiResult<Caller> ZulipApi::Authenticate(const Request& req,
                                         const Realm& realm) const {
  if (!req.has_authorization) return ApiError::NotLoggedIn();
  ConnectionAuth* const connection = req.connection_auth;
  // The connection's last header first, with no tag: the common case of a
  // client's next request on its connection (a re-poll) costs one
  // constant-time comparison. A connection that carries many users goes
  // by tag (ConnectionAuth).
  if (connection != nullptr && !connection->by_tag) {
    if (const Caller* c =
            connection->memo.FindUntagged(req.authorization, realm)) {
      return *c;
    }
  }
  // One keyed hash per request serves every lookup and store below.
  const AuthHash hash = connection != nullptr || req.auth_cache != nullptr
                            ? AuthHashOf(req.authorization)
                            : AuthHash{};
  const std::uint64_t tag = hash.tag;
  if (connection != nullptr && connection->by_tag) {
    if (const Caller* c =
            connection->memo.Find(req.authorization, tag, realm)) {
      connection->by_tag = false;
      return *c;
    }
  }
  if (req.auth_cache != nullptr) {
    if (const Caller* c = req.auth_cache->Find(hash, realm)) {
      if (connection != nullptr) connection->Store(req.authorization, tag, *c);
      return *c;
    }
  }
  auto creds = ParseBasicAuthorization(req.authorization);
  if (!creds) return creds.error();
  auto result = service_->Authenticate(realm, creds->email(), creds->api_key());
  if (auto* f = std::get_if<AuthFailure>(&result)) {
    return ApiError::Unauthorized(std::string(AuthMessage(*f)));
  }
  const Caller& caller = std::get<Caller>(result);
  if (req.auth_cache != nullptr) {
    req.auth_cache->Store(req.authorization, hash, caller);
  }
  if (connection != nullptr) connection->Store(req.authorization, tag, caller);
  return caller;
}

ApiResult<ZulipApi::Ping> ZulipApi::ParsePing(RequestParams& params) {
  // Zulip parses parameters in alphabetical order; the first bad one wins.
  Ping ping;
  auto history = params.GetJsonInt("history_limit_days");
  if (!history) return history.error();
  ping.history_limit_days = *history;
  auto last_update_id = params.GetJsonInt("last_update_id");
  if (!last_update_id) return last_update_id.error();
  ping.last_update_id = *last_update_id;
  auto new_user_input = params.GetJsonBool("new_user_input");
  if (!new_user_input) return new_user_input.error();
  auto per_client = params.GetJsonBool("per_client");
  if (!per_client) return per_client.error();
  ping.per_client = per_client->value_or(false);
  auto ping_only = params.GetJsonBool("ping_only");
  if (!ping_only) return ping_only.error();
  ping.ping_only = ping_only->value_or(false);
  auto slim = params.GetJsonBool("slim_presence");
  if (!slim) return slim.error();
  ping.slim = slim->value_or(false);
  auto status = params.RequireString("status");
  if (!status) return status.error();
  if (*status == "active") {
    ping.status = ReportStatus::kActive;
  } else if (*status == "idle") {
    ping.status = ReportStatus::kIdle;
  } else {
    return ApiError::BadRequest("Invalid status: " + *status);
  }
  return ping;
}

ApiResult<Response> ZulipApi::PostPresence(const Caller& caller,
                                           RequestParams& params,
                                           std::string_view client) const {
  auto ping = ParsePing(params);
  if (!ping) return ping.error();
  if (service_->failed()) {
    return StoreFailed(*service_, make_error_code(Errc::kStoreFailed));
  }
  const Micros now = service_->Now();
  if (auto st = service_->Report(caller, ping->status, now, client); !st) {
    return StoreFailed(*service_, st.error());
  }
  return PingAnswer(caller, *ping, params, now);
}

Response ZulipApi::PingAnswer(const Caller& caller, const Ping& ping,
                              RequestParams& params, Micros now) const {
  if (ping.ping_only) return SuccessResponse(&params);
  const bool modern = ping.last_update_id.has_value() || ping.slim;
  FetchQuery query;
  query.last_update_id = ping.last_update_id;
  query.history_limit_days = ping.history_limit_days;
  // Room for an answer with nothing new (the usual one) and a few rows: one
  // allocation rather than one per doubling as it is appended.
  constexpr std::size_t kUsualPingAnswer = 256;
  std::string body;
  body.reserve(kUsualPingAnswer);
  body.append(kSuccessHead);
  body.push_back(',');
  UpdateId last = AppendPresences(body, *service_, caller, query, modern, now,
                                  nullptr, ping.per_client);
  body.append(",\"server_timestamp\":");
  AppendSeconds(body, now);
  body.append(",\"presence_last_update_id\":");
  AppendInt(body, last);
  AppendIgnoredParameters(body, params);
  body.push_back('}');
  return JsonResponse(std::move(body));
}

namespace {

// The per_client extension parameter of the presence GETs.
ApiResult<bool> PerClientParam(RequestParams* params) {
  if (params == nullptr) return false;
  auto v = params->GetJsonBool("per_client");
  if (!v) return v.error();
  return v->value_or(false);
}

}  // namespace

ApiResult<Response> ZulipApi::GetRealmPresence(const Caller& caller,
                                               RequestParams* params) const {
  auto per_client = PerClientParam(params);
  if (!per_client) return per_client.error();
  const Micros now = service_->Now();
  std::string body(kSuccessHead);
  body.push_back(',');
  AppendPresences(body, *service_, caller, FetchQuery{}, /*modern=*/false, now,
                  nullptr, *per_client);
  body.append(",\"server_timestamp\":");
  AppendSeconds(body, now);
  body.push_back('}');
  return JsonResponse(std::move(body));
}

ApiResult<Response> ZulipApi::GetUsers(const Caller& caller) const {
  // Zulip's GET /users members list, the fields a buddy list needs. Limited
  // guests get only the users they may see.
  std::string body(kSuccessHead);
  body.append(",\"members\":[");
  bool first = true;
  const Realm& realm = *caller.realm;
  realm.ForEachVisibleMember(caller.user_id, [&](const Member& m) {
    if (!first) body.push_back(',');
    first = false;
    body.append("{\"user_id\":");
    AppendInt(body, m.id);
    body.append(",\"email\":");
    AppendJsonString(body, m.email());
    body.append(",\"full_name\":");
    AppendJsonString(body, m.full_name());
    body.append(",\"is_bot\":");
    body.append(m.is_bot ? "true" : "false");
    body.append(",\"is_active\":");
    body.append(m.is_active ? "true" : "false");
    body.append(",\"role\":");
    AppendInt(body, static_cast<int>(m.role));
    body.append(",\"is_owner\":");
    body.append(m.role == Role::kOwner ? "true" : "false");
    body.append(",\"is_admin\":");
    body.append(m.role <= Role::kAdministrator ? "true" : "false");
    body.append(",\"is_guest\":");
    body.append(m.role == Role::kGuest ? "true" : "false");
    body.append(",\"date_joined\":");
    AppendJsonString(body, IsoDate(m.date_joined));
    body.push_back('}');
  });
  body.append("]}");
  Response r;
  r.body = std::move(body);
  return r;
}

namespace {

// The per_client extension of GET /users/{user}/presence: the single-user
// shape (no client/pushable, the offline rewrite of aggregated) with one key
// per client.
std::string PerClientPresenceBody(const UserPresence& p, std::int64_t now_s) {
  std::size_t agg = 0;
  auto views = ClientLegacyViews(&p.clients, p.date_joined, &agg);
  auto record = [&](const LegacyView& lv, bool may_be_offline) {
    const char* st = lv.active ? "active" : "idle";
    if (may_be_offline && now_s - lv.timestamp > kOfflineThresholdSeconds) {
      st = "offline";
    }
    std::string r = "{\"status\":\"";
    r.append(st);
    r.append("\",\"timestamp\":");
    AppendInt(r, lv.timestamp);
    r.push_back('}');
    return r;
  };
  std::string body(kSuccessHead);
  body.append(",\"presence\":{\"aggregated\":");
  body.append(record(views[agg].view, true));
  for (const auto& cv : views) {
    body.push_back(',');
    AppendJsonString(body, cv.client);
    body.push_back(':');
    body.append(record(cv.view, false));
  }
  body.append("}}");
  return body;
}

}  // namespace

ApiResult<Response> ZulipApi::GetUserPresence(const Caller& caller,
                                              std::string_view who,
                                              RequestParams* params) const {
  auto per_client = PerClientParam(params);
  if (!per_client) return per_client.error();
  auto found = service_->LookupUser(caller, who, *per_client);
  if (auto* f = std::get_if<LookupFailure>(&found)) {
    switch (*f) {
      case LookupFailure::kNoSuchUser:
        return ApiError::BadRequest("No such user");
      case LookupFailure::kBot:
        return ApiError::BadRequest("Presence is not supported for bot users.");
      case LookupFailure::kInsufficientPermission:
        return ApiError::BadRequest("Insufficient permission");
      case LookupFailure::kNoPresenceData:
        return ApiError::BadRequest("No presence data for " + std::string(who));
    }
  }
  const auto& p = std::get<UserPresence>(found);
  const std::int64_t now_s = service_->Now() / kMicrosPerSecond;
  if (*per_client && !p.clients.empty()) {
    return JsonResponse(PerClientPresenceBody(p, now_s));
  }
  LegacyView v = ComputeLegacy(p.times, p.date_joined);
  const char* status = v.active ? "active" : "idle";
  const char* aggregated =
      now_s - v.timestamp > kOfflineThresholdSeconds ? "offline" : status;
  std::string body(kSuccessHead);
  body.append(",\"presence\":{\"aggregated\":{\"status\":\"");
  body.append(aggregated);
  body.append("\",\"timestamp\":");
  AppendInt(body, v.timestamp);
  body.append("},\"website\":{\"status\":\"");
  body.append(status);
  body.append("\",\"timestamp\":");
  AppendInt(body, v.timestamp);
  body.append("}}}");
  return JsonResponse(std::move(body));
}

ApiResult<Response> ZulipApi::PatchSettings(const Caller& caller,
                                            RequestParams& params) const {
  auto enabled = params.GetJsonBool("presence_enabled");
  if (!enabled) return enabled.error();
  if (*enabled) {
    if (auto st = service_->SetPresenceEnabled(caller.realm->id(),
                                               caller.user_id, **enabled);
        !st) {
      if (st.error() == Errc::kStoreFailed) {
        return StoreFailed(*service_, st.error());
      }
      return FromErrc(st.error());
    }
  }
  return SuccessResponse(&params);
}

Response ZulipApi::ServerSettings(const Request& req,
                                  const Realm& realm) const {
  boost::json::object o;
  o["result"] = "success";
  o["msg"] = "";
  o["authentication_methods"] = boost::json::object{
      {"password", false}, {"dev", false}, {"email", false}};
  o["external_authentication_methods"] = boost::json::array{};
  o["zulip_feature_level"] = kZulipFeatureLevel;
  o["zulip_version"] = kZulipVersion;
  o["zulip_merge_base"] = "";
  o["push_notifications_enabled"] = false;
  o["is_incompatible"] = false;
  o["email_auth_enabled"] = false;
  o["require_email_format_usernames"] = true;
  std::string url = "http://" + std::string(req.host);
  o["realm_uri"] = url;
  o["realm_url"] = url;
  o["realm_name"] = realm.name();
  o["realm_icon"] = "";
  o["realm_description"] = "";
  o["realm_web_public_access_enabled"] = false;
  return JsonResponse(boost::json::serialize(o));
}

}  // namespace presence::api
