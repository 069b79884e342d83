#include "api/router.h"

#include <boost/json/serialize.hpp>

#include "api/web_assets.h"

namespace presence::api {

Router::Router(PresenceService* service, EventHub* hub,
               const ApiOptions* options)
    : service_(service),
      hub_(hub),
      options_(options),
      zulip_(service, hub, options),
      admin_(service, options) {}

Response Router::Handle(const Request& req) const {
  std::string_view target = req.target;
  std::string_view path = target, query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  constexpr std::string_view kApi = "/api/v1";
  constexpr std::string_view kAdmin = "/admin/v1";
  if (path.starts_with(kApi) &&
      (path.size() == kApi.size() || path[kApi.size()] == '/')) {
    return zulip_.Handle(req, path.substr(kApi.size()), query);
  }
  if (path.starts_with(kAdmin) &&
      (path.size() == kAdmin.size() || path[kAdmin.size()] == '/')) {
    return admin_.Handle(req, path.substr(kAdmin.size()));
  }
  if (path == "/healthz") return Health();
  if (req.method == "GET" || req.method == "HEAD") {
    std::string_view file = path == "/" ? "/index.html" : path;
    for (const WebAsset& a : WebAssets()) {
      if (a.path != file) continue;
      Response r;
      r.body = std::string(a.body);
      r.content_type = std::string(a.content_type);
      r.headers.emplace_back("Cache-Control", "no-cache");
      return r;
    }
  }
  return ErrorResponse(ApiError::NotFound("Not Found"));
}

Response Router::Health() const {
  Response r;
  if (service_->failed()) {
    r.status = 503;
    r.body = boost::json::serialize(boost::json::object{
        {"status", "failed"}, {"reason", service_->failure()}});
  } else {
    r.body = R"({"status":"ok"})";
  }
  return r;
}

}  // namespace presence::api
