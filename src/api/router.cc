#include "api/router.h"

#include <boost/json/serialize.hpp>
#include <chrono>

#include "api/web_assets.h"

namespace presence::api {

Router::Router(PresenceService* service, EventHub* hub,
               const ApiOptions* options)
    : service_(service),
      hub_(hub),
      options_(options),
      zulip_(service, hub, options),
      admin_(service, options) {}

// The metric label of a request: the route table's for the Zulip API, one
// label for the whole admin API.
Endpoint Router::Classify(std::string_view method, std::string_view path) {
  constexpr std::string_view kApi = "/api/v1";
  if (path.starts_with(kApi)) {
    return ZulipApi::Metric(method, path.substr(kApi.size()));
  }
  if (path.starts_with("/admin/")) return Endpoint::kAdmin;
  if (path == "/healthz") return Endpoint::kHealth;
  if (path == "/metrics") return Endpoint::kMetrics;
  return Endpoint::kWeb;
}

namespace {

// A deferred answer, counted and timed when it is known: a continuation
// that defers again (e.g. a handler run off the I/O thread after the
// request's store step) is wrapped the same way.
Response CountedWhenAnswered(Response r, Metrics* metrics, Endpoint endpoint,
                             std::chrono::steady_clock::time_point start) {
  r.deferred = [inner = std::move(r.deferred), metrics, endpoint,
                start](Continue resume) {
    inner([resume, metrics, endpoint, start](std::function<Response()> next) {
      resume([next = std::move(next), metrics, endpoint, start] {
        Response out = next();
        if (out.deferred) {
          return CountedWhenAnswered(std::move(out), metrics, endpoint, start);
        }
        if (!out.parked) {
          const double secs = std::chrono::duration<double>(
                                  std::chrono::steady_clock::now() - start)
                                  .count();
          metrics->RecordRequest(endpoint, out.status, secs);
          if (out.status == 429) metrics->RecordRateLimited();
        }
        return out;
      });
    });
  };
  return r;
}

}  // namespace

std::vector<LimiterUsage> Router::RateLimiterUsage() const {
  std::vector<LimiterUsage> out;
  auto add = [&out](const char* name, const RateLimiter& limiter) {
    const RateLimiter::Usage u = limiter.usage();
    out.push_back(LimiterUsage{.limiter = name,
                               .users = u.users,
                               .heap_logs = u.spilled,
                               .bytes = u.bytes});
  };
  // Scale-out counts the API's requests in the shared store (the group's
  // count), not in this node's limiter: nothing of it to show here.
  if (!service_->gates()) add("rate_limit", zulip_.rate_limiter());
  add("events_poll_limit", zulip_.events().poll_limiter());
  return out;
}

Response Router::Handle(const Request& req) const {
  std::string_view target = req.target;
  std::string_view path = target, query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  const auto start = std::chrono::steady_clock::now();
  // The route the API matched gives the label: one match per request, not
  // two (issue #17).
  std::optional<Endpoint> metric;
  // Every return gives `r` itself, so that it is the caller's answer in
  // place (a second returned object would cost every request a move of
  // the whole answer; issue #17).
  Response r = Dispatch(req, path, query, &metric);
  if (r.deferred && options_->metrics != nullptr) {
    r = CountedWhenAnswered(std::move(r), options_->metrics,
                            metric ? *metric : Classify(req.method, path),
                            start);
    return r;
  }
  if (options_->metrics != nullptr && !r.parked) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    options_->metrics->RecordRequest(
        metric ? *metric : Classify(req.method, path), r.status, secs);
    if (r.status == 429) options_->metrics->RecordRateLimited();
  }
  return r;
}

std::optional<Response> Router::Precheck(const Request& req) const {
  constexpr std::string_view kApi = "/api/v1";
  constexpr std::string_view kAdmin = "/admin/v1";
  std::string_view path = req.target.substr(0, req.target.find('?'));
  const auto start = std::chrono::steady_clock::now();
  std::optional<Response> r;
  if (options_->serve_api && path.starts_with(kApi) &&
      (path.size() == kApi.size() || path[kApi.size()] == '/')) {
    r = zulip_.Precheck(req, path.substr(kApi.size()));
  } else if (options_->serve_admin && path.starts_with(kAdmin) &&
             (path.size() == kAdmin.size() || path[kAdmin.size()] == '/')) {
    r = admin_.Precheck(req, path.substr(kAdmin.size()));
  }
  if (r && options_->metrics != nullptr) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    options_->metrics->RecordRequest(Classify(req.method, path), r->status,
                                     secs);
    options_->metrics->RecordRefusedBeforeBody();
  }
  return r;
}

std::optional<Response> Router::Resume(
    const ParkedPoll& parked, const std::shared_ptr<QueueWaiter>& waiter,
    bool superseded) const {
  const auto start = std::chrono::steady_clock::now();
  std::optional<Response> r =
      zulip_.events().Resume(parked, waiter, superseded);
  if (r && !r->parked && options_->metrics != nullptr) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    options_->metrics->RecordRequest(Endpoint::kGetEvents, r->status, secs);
  }
  return r;
}

Response Router::Dispatch(const Request& req, std::string_view path,
                          std::string_view query,
                          std::optional<Endpoint>* metric) const {
  constexpr std::string_view kApi = "/api/v1";
  constexpr std::string_view kAdmin = "/admin/v1";
  if (options_->serve_api && path.starts_with(kApi) &&
      (path.size() == kApi.size() || path[kApi.size()] == '/')) {
    return zulip_.Handle(req, path.substr(kApi.size()), query, metric);
  }
  // A node of the group setting the group's clock relays to the other
  // nodes' main listeners, whichever listener serves their admin API.
  const bool group_clock = req.forwarded && path == "/admin/v1/clock";
  if ((options_->serve_admin || group_clock) && path.starts_with(kAdmin) &&
      (path.size() == kAdmin.size() || path[kAdmin.size()] == '/')) {
    return admin_.Handle(req, path.substr(kAdmin.size()));
  }
  if (path == "/healthz") return Health();
  if (path == "/metrics" && options_->serve_metrics &&
      options_->metrics != nullptr) {
    Response r;
    r.body = options_->metrics->Render(service_, hub_);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  if (options_->serve_api && (req.method == "GET" || req.method == "HEAD")) {
    std::string_view file = path == "/" ? "/index.html" : path;
    for (const WebAsset& a : WebAssets()) {
      if (a.path != file) continue;
      Response r;
      r.body = std::string(a.body);
      r.content_type = a.content_type;
      r.headers.emplace_back("Cache-Control", "no-cache");
      return r;
    }
  }
  return ErrorResponse(ApiError::NotFound("Not Found"));
}

Response Router::Health() const {
  Response r;
  // The reason (a store error's text) only where the operator's endpoints
  // are served; the public listener says no more than its status.
  const bool detailed = options_->serve_metrics;
  if (service_->failed()) {
    r.status = 503;
    r.body = detailed
                 ? boost::json::serialize(boost::json::object{
                       {"status", "failed"}, {"reason", service_->failure()}})
                 : R"({"status":"failed"})";
  } else if (service_->gates()) {
    // Scale-out: this node cannot serve without Redis; a load balancer
    // should send its clients elsewhere until it answers again. Asked
    // without holding the I/O thread (a slow or dead Redis must not stall
    // the other connections of the thread).
    // Writes that fail while Redis answers (WAIT without enough replicas
    // in sync) make it "degraded", still 200: reads are served, and every
    // node of the group shares the condition, so sending clients elsewhere
    // would not help.
    r.deferred = [service = service_, detailed](Continue resume) {
      service->HealthAsync([resume, detailed](WriterHealth health) {
        resume([health = std::move(health), detailed]() -> Response {
          Response h;
          if (health.unavailable) {
            h.status = 503;
            h.body = detailed ? boost::json::serialize(boost::json::object{
                                    {"status", "unavailable"},
                                    {"reason", *health.unavailable}})
                              : R"({"status":"unavailable"})";
          } else if (health.degraded) {
            h.body =
                detailed
                    ? boost::json::serialize(boost::json::object{
                          {"status", "degraded"}, {"reason", *health.degraded}})
                    : R"({"status":"degraded"})";
          } else {
            h.body = R"({"status":"ok"})";
          }
          return h;
        });
      });
    };
  } else if (auto why = service_->StoreUnavailable()) {
    r.status = 503;
    r.body = detailed ? boost::json::serialize(boost::json::object{
                            {"status", "unavailable"}, {"reason", *why}})
                      : R"({"status":"unavailable"})";
  } else {
    r.body = R"({"status":"ok"})";
  }
  return r;
}

}  // namespace presence::api
