// AdminApi: the operator's JSON API under /admin/v1 (the operator contract).
//
//   POST  /admin/v1/realms                      {"subdomain","name"}
//   GET   /admin/v1/realms                      list of realms
//   PATCH /admin/v1/realms/{realm_id}           {"presence_disabled"}
//   POST  /admin/v1/realms/{realm_id}/users     {"email","full_name","role",
//                                                "is_bot","can_access_all_users"}
//   PATCH /admin/v1/realms/{realm_id}/users/{user_id}
//                                               {"is_active","presence_enabled","role"}
//   POST  /admin/v1/realms/{realm_id}/access    {"viewer","visible":[...]}
//   POST  /admin/v1/clock                       {"now"} (only with
//   --test-clock)
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
#include <string_view>

#include "api/api_error.h"
#include "api/api_options.h"
#include "api/http_types.h"
#include "core/presence_service.h"

namespace presence::api {

class AdminApi {
 public:
  AdminApi(PresenceService* service, const ApiOptions* options);

  // `path` is the part after "/admin/v1".
  Response Handle(const Request& req, std::string_view path) const;

 private:
  ApiResult<boost::json::object> Dispatch(const Request& req,
                                          std::string_view path) const;

  PresenceService* const service_;
  const ApiOptions* const options_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_ADMIN_API_H_
