// AdminApi: the operator's JSON API under /admin/v1 (the operator contract).
//
//   POST  /admin/v1/realms                      {"subdomain","name"}
//   GET   /admin/v1/realms                      list of realms
//   PATCH /admin/v1/realms/{realm_id}           {"presence_disabled"}
//   POST  /admin/v1/realms/{realm_id}/users     {"email","full_name","role",
//                                                "is_bot","can_access_all_users"}
//   GET   /admin/v1/realms/{realm_id}/users     the directory (no keys)
//   POST  /admin/v1/realms/{realm_id}/users:batch
//                                               {"users":[{...as above}],
//                                                "dry_run"}: bulk import,
//                                               idempotent by email
//   PATCH /admin/v1/realms/{realm_id}/users/{user_id}
//                                               {"is_active","presence_enabled","role"}
//   POST  /admin/v1/realms/{realm_id}/access    {"viewer","visible":[...]}
//   POST  /admin/v1/clock                       {"now"} (only with
//   --test-clock)
//   POST  /admin/v1/faults                      {"fail_writes"} (only with
//   --test-faults)
//
// Routes() holds these, one entry each. Paths match exactly (no empty
// segments, no trailing slash). Order of checks: the bearer token (401), the
// route (404), a test-only route's switch (404), the realm of a
// /realms/{realm_id}/... route (404), the method (405 with Allow), then the
// body.
//
// Every call needs `Authorization: Bearer <token>` (401 otherwise, compared
// in constant time). Bodies are JSON objects; a wrong or missing field is a
// 400 naming it. Answers are {"result":"success","msg":"",...} or Zulip-style
// errors.
//
// Thread safety: Handle may run on many threads at once.
#ifndef PRESENCE_API_ADMIN_API_H_
#define PRESENCE_API_ADMIN_API_H_

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"
#include "api/api_options.h"
#include "api/http_types.h"
#include "api/route_table.h"
#include "core/presence_service.h"

namespace presence::api {

class AdminApi {
 public:
  // What a handler is given: the request, the realm of a kRealmScoped route
  // (synced with the store; null otherwise) and the {} segments.
  struct Call {
    const Request& req;
    Realm* realm = nullptr;
    RealmId realm_id = 0;
    RouteArgs args{};
  };
  using Handler =
      ApiResult<boost::json::object> (AdminApi::*)(const Call&) const;
  using Entry = Route<Handler>;

  AdminApi(PresenceService* service, const ApiOptions* options);

  // `path` is the part after "/admin/v1". A route with kMayWait (every
  // change, and every realm-scoped route, whose realm is synced with the
  // store first) runs through ApiOptions::offload where it is set
  // (scale-out): the answer is deferred, the I/O thread does not wait on
  // the store. So does the group-clock relay's read of the live nodes.
  Response Handle(const Request& req, std::string_view path) const;

  // Router::Precheck for the admin API: the 401 of a request without the
  // admin token, unless it may be the group's signed clock relay (whose
  // signature covers the body: req.forwarded says it carries a mark).
  std::optional<Response> Precheck(const Request& req,
                                   std::string_view path) const;

  // The route table, patterns relative to "/admin/v1".
  static std::span<const Entry> Routes();

 private:
  static const Entry kRoutes[];

  bool Authorized(const Request& req) const;
  // The 401 of a request without the admin token.
  static Response Unauthorized();
  void Audit(const Request& req, std::string_view path,
             const ApiResult<boost::json::object>& out) const;
  // Handle once authorised: dispatch, audit line, answer. `peers`: where
  // POST /clock is relayed, if already known (else clock_peers() is asked).
  Response Answer(const Request& req, std::string_view path,
                  const std::vector<std::string>* peers = nullptr) const;
  ApiResult<boost::json::object> Dispatch(const Request& req,
                                          std::string_view path) const;
  // The checks an entry's flags ask for before the method check: nullopt
  // when the request may go on (with `call` filled in).
  std::optional<ApiError> Prepare(const Entry& route, Call& call) const;

  // The handlers of the table.
  ApiResult<boost::json::object> OnClock(const Call& call) const;
  ApiResult<boost::json::object> OnFaults(const Call& call) const;
  ApiResult<boost::json::object> OnListRealms(const Call& call) const;
  ApiResult<boost::json::object> OnCreateRealm(const Call& call) const;
  ApiResult<boost::json::object> OnPatchRealm(const Call& call) const;
  ApiResult<boost::json::object> OnCreateUser(const Call& call) const;
  ApiResult<boost::json::object> OnPatchUser(const Call& call) const;
  ApiResult<boost::json::object> OnListUsers(const Call& call) const;
  ApiResult<boost::json::object> OnImportUsers(const Call& call) const;
  ApiResult<boost::json::object> OnSetAccess(const Call& call) const;

  PresenceService* const service_;
  const ApiOptions* const options_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_ADMIN_API_H_
