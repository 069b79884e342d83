#include "api/admin_api.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <vector>

#include "api/offload.h"
#include "api/zulip_api.h"
#include "core/fault_injector.h"
#include "util/crypto.h"

namespace presence::api {
namespace {

namespace json = boost::json;

std::optional<std::int64_t> ParseId(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v <= 0) {
    return std::nullopt;
  }
  return v;
}

ApiResult<json::object> ParseBody(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body.empty() ? std::string_view("{}") : body, ec);
  if (ec || !v.is_object()) {
    return ApiError::BadRequest("Request body must be a JSON object");
  }
  return std::move(v.as_object());
}

// Typed field readers: absent -> nullopt; wrong type -> 400 naming the field.
ApiResult<std::optional<bool>> Bool(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return std::optional<bool>();
  if (!it->value().is_bool()) {
    return ApiError::BadRequest(std::string(k) + " is not a boolean");
  }
  return std::optional<bool>(it->value().as_bool());
}

ApiResult<std::optional<std::string>> String(const json::object& o,
                                             std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return std::optional<std::string>();
  if (!it->value().is_string()) {
    return ApiError::BadRequest(std::string(k) + " is not a string");
  }
  return std::optional<std::string>(std::string(it->value().as_string()));
}

ApiResult<std::optional<std::int64_t>> Int(const json::value& v,
                                           std::string_view k) {
  if (v.is_int64()) return std::optional<std::int64_t>(v.as_int64());
  if (v.is_uint64() && v.as_uint64() <= INT64_MAX) {
    return std::optional<std::int64_t>(
        static_cast<std::int64_t>(v.as_uint64()));
  }
  return ApiError::BadRequest(std::string(k) + " is not an integer");
}

ApiResult<std::optional<std::int64_t>> Int(const json::object& o,
                                           std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return std::optional<std::int64_t>();
  return Int(it->value(), k);
}

ApiResult<std::optional<Role>> RoleField(const json::object& o) {
  auto s = String(o, "role");
  if (!s) return s.error();
  if (!*s) return std::optional<Role>();
  auto role = ParseRole(**s);
  if (!role) {
    return ApiError::BadRequest(
        "role must be one of owner, administrator, moderator, member, guest");
  }
  return std::optional<Role>(*role);
}

ApiError FromStatus(boost::system::error_code ec, std::string_view what) {
  if (ec == Errc::kNotFound)
    return FromErrc(ec, std::string(what) + " not found");
  if (ec == Errc::kAlreadyExists) {
    return FromErrc(ec, std::string(what) + " already exists");
  }
  if (ec == Errc::kInvalidArgument) {
    return FromErrc(ec, "Invalid " + std::string(what));
  }
  return FromErrc(ec);
}

json::object Success() {
  return json::object{{"result", "success"}, {"msg", ""}};
}

}  // namespace

const AdminApi::Entry AdminApi::kRoutes[] = {
    {"/clock", kPost, &AdminApi::OnClock, Endpoint::kAdmin,
     kNeedsAuth | kNeedsTestClock},
    {"/faults", kPost, &AdminApi::OnFaults, Endpoint::kAdmin,
     kNeedsAuth | kNeedsFaultInjector},
    {"/realms", kGet, &AdminApi::OnListRealms, Endpoint::kAdmin, kNeedsAuth},
    {"/realms", kPost, &AdminApi::OnCreateRealm, Endpoint::kAdmin,
     kNeedsAuth | kMayWait},
    {"/realms/{}", kPatch, &AdminApi::OnPatchRealm, Endpoint::kAdmin,
     kNeedsAuth | kRealmScoped | kMayWait},
    {"/realms/{}/users", kPost, &AdminApi::OnCreateUser, Endpoint::kAdmin,
     kNeedsAuth | kRealmScoped | kMayWait},
    {"/realms/{}/users", kGet, &AdminApi::OnListUsers, Endpoint::kAdmin,
     kNeedsAuth | kRealmScoped | kMayWait},
    {"/realms/{}/users:batch", kPost, &AdminApi::OnImportUsers,
     Endpoint::kAdmin, kNeedsAuth | kRealmScoped | kMayWait},
    {"/realms/{}/users/{}", kPatch, &AdminApi::OnPatchUser, Endpoint::kAdmin,
     kNeedsAuth | kRealmScoped | kMayWait},
    {"/realms/{}/access", kPost, &AdminApi::OnSetAccess, Endpoint::kAdmin,
     kNeedsAuth | kRealmScoped | kMayWait},
};

std::span<const AdminApi::Entry> AdminApi::Routes() { return kRoutes; }

AdminApi::AdminApi(PresenceService* service, const ApiOptions* options)
    : service_(service), options_(options) {}

bool AdminApi::Authorized(const Request& req) const {
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view auth = req.authorization;
  return !options_->admin_token.empty() && req.has_authorization &&
         auth.size() > kBearer.size() &&
         (auth.substr(0, kBearer.size()) == kBearer ||
          auth.substr(0, kBearer.size()) == "bearer ") &&
         ConstantTimeEqual(auth.substr(kBearer.size()), options_->admin_token);
}

Response AdminApi::Unauthorized() {
  ApiError e = ApiError::Unauthorized("Invalid or missing admin token");
  Response r = ErrorResponse(e);
  r.headers.clear();
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

std::optional<Response> AdminApi::Precheck(const Request& req,
                                           std::string_view path) const {
  if (path == "/clock" && req.forwarded) return std::nullopt;
  if (Authorized(req)) return std::nullopt;
  return Unauthorized();
}

Response AdminApi::Handle(const Request& req, std::string_view path) const {
  // The group's clock: a node of the group relays a clock change it
  // authorised itself (signed with the group's secret, verified).
  const bool group_clock =
      path == "/clock" && req.method == "POST" && req.forwarded;
  if (!group_clock && !Authorized(req)) return Unauthorized();
  if (options_->offload) {
    // The request's views stay valid until it is answered (its connection
    // keeps it); the copy is of the views.
    auto held = std::make_shared<Request>(req);
    RouteMatch<Handler> m = FindRoute(Routes(), path, req.method);
    const Entry* e = m.route != nullptr ? m.route : m.path_route;
    if (e != nullptr && e->has(kMayWait)) {
      return OffloadedAnswer(
          *options_, [this, held, path] { return Answer(*held, path); });
    }
    if (path == "/clock" && !req.forwarded && options_->clock_peers) {
      // The live nodes are read from the store off this thread; the clock
      // is set here once they are known, then relayed to them.
      return Offloaded(*options_, [this, held, path]() -> Resumed {
        auto peers =
            std::make_shared<std::vector<std::string>>(options_->clock_peers());
        return [this, held, path, peers] {
          return Answer(*held, path, peers.get());
        };
      });
    }
  }
  return Answer(req, path);
}

Response AdminApi::Answer(const Request& req, std::string_view path,
                          const std::vector<std::string>* peers) const {
  auto out = Dispatch(req, path);
  if (options_->log && req.method != "GET") Audit(req, path, out);
  if (!out) return ErrorResponse(out.error());
  Response r;
  r.body = json::serialize(*out);
  if (path == "/clock" && !req.forwarded && options_->clock_peers) {
    r.also_to = peers != nullptr ? *peers : options_->clock_peers();
  }
  return r;
}

// An audit line per admin change: what was asked and what it made (the new
// ids), never the API key in the answer.
void AdminApi::Audit(const Request& req, std::string_view path,
                     const ApiResult<json::object>& out) const {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"method", std::string(req.method)},
      {"path", "/admin/v1" + std::string(path)},
      {"status", std::to_string(out ? 200 : out.error().http_status)}};
  if (!req.client_address.empty()) {
    fields.emplace_back("client", std::string(req.client_address));
  }
  if (out) {
    for (const char* id :
         {"realm_id", "user_id", "created", "updated", "unchanged"}) {
      if (auto it = out->find(id); it != out->end()) {
        fields.emplace_back(id, json::serialize(it->value()));
      }
    }
  } else {
    fields.emplace_back("msg", out.error().msg);
  }
  options_->log("admin_change", fields);
}

ApiResult<json::object> AdminApi::Dispatch(const Request& req,
                                           std::string_view path) const {
  RouteMatch<Handler> m = FindRoute(Routes(), path, req.method);
  if (!m.path_found()) return ApiError::NotFound("Not Found");
  Call call{req, nullptr, 0, m.args};
  if (auto e = Prepare(*m.path_route, call)) return *e;
  if (m.route == nullptr) {
    return ApiError::MethodNotAllowed(MethodList(m.allowed).names());
  }
  return (this->*m.route->handler)(call);
}

std::optional<ApiError> AdminApi::Prepare(const Entry& route,
                                          Call& call) const {
  if (route.has(kNeedsTestClock) && options_->test_clock == nullptr) {
    return ApiError::NotFound("Not Found (start presenced with --test-clock)");
  }
  if (route.has(kNeedsFaultInjector) && options_->fault_injector == nullptr) {
    return ApiError::NotFound("Not Found (start presenced with --test-faults)");
  }
  if (!route.has(kRealmScoped)) return std::nullopt;
  auto realm_id = ParseId(call.args[0]);
  Realm* realm = realm_id ? service_->LookupRealm(*realm_id) : nullptr;
  if (realm == nullptr) return ApiError::NotFound("realm not found");
  // Scale-out: act on the realm as the store has it now.
  if (auto st = service_->Sync(*realm); !st) return FromErrc(st.error());
  call.realm = realm;
  call.realm_id = *realm_id;
  return std::nullopt;
}

ApiResult<json::object> AdminApi::OnClock(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  auto it = body->find("now");
  if (it == body->end() || !it->value().is_number()) {
    return ApiError::BadRequest("now must be a number (unix seconds)");
  }
  double now = it->value().to_number<double>();
  if (!std::isfinite(now) || now < 0 || now > 1e11) {
    return ApiError::BadRequest("now is out of range");
  }
  options_->test_clock->Set(static_cast<Micros>(std::llround(now * 1e6)));
  auto out = Success();
  out["now"] = now;
  return out;
}

// {"fail_writes": bool}
ApiResult<json::object> AdminApi::OnFaults(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  auto fail = Bool(*body, "fail_writes");
  if (!fail) return fail.error();
  if (!*fail) return ApiError::BadRequest("fail_writes is required");
  options_->fault_injector->SetFailWrites(**fail);
  return Success();
}

ApiResult<json::object> AdminApi::OnListRealms(const Call&) const {
  json::array list;
  for (Realm* r : service_->Realms()) {
    list.push_back(json::object{{"realm_id", r->id()},
                                {"subdomain", r->subdomain()},
                                {"name", r->name()},
                                {"presence_disabled", r->presence_disabled()},
                                {"users", r->member_count()}});
  }
  auto out = Success();
  out["realms"] = std::move(list);
  return out;
}

ApiResult<json::object> AdminApi::OnCreateRealm(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  auto sub = String(*body, "subdomain");
  if (!sub) return sub.error();
  auto name = String(*body, "name");
  if (!name) return name.error();
  if (!*sub) return ApiError::BadRequest("subdomain is required");
  if (!*name) return ApiError::BadRequest("name is required");
  auto id = service_->CreateRealm(**sub, **name);
  if (!id) {
    if (id.error() == Errc::kInvalidArgument) {
      return ApiError::BadRequest(
          "Invalid realm: subdomain must be empty or 1-63 of a-z, 0-9 and "
          "'-' (not at either end); name must be 1-200 printable "
          "characters");
    }
    return FromStatus(id.error(), "realm");
  }
  auto out = Success();
  out["realm_id"] = *id;
  return out;
}

ApiResult<json::object> AdminApi::OnPatchRealm(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  auto disabled = Bool(*body, "presence_disabled");
  if (!disabled) return disabled.error();
  if (*disabled) {
    if (auto st = service_->SetRealmPresenceDisabled(call.realm_id, **disabled);
        !st) {
      return FromStatus(st.error(), "realm");
    }
  }
  return Success();
}

ApiResult<json::object> AdminApi::OnCreateUser(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  NewUser u;
  auto email = String(*body, "email");
  if (!email) return email.error();
  if (!*email) return ApiError::BadRequest("email is required");
  u.email = **email;
  auto full_name = String(*body, "full_name");
  if (!full_name) return full_name.error();
  u.full_name = full_name->value_or(u.email.substr(0, u.email.find('@')));
  auto role = RoleField(*body);
  if (!role) return role.error();
  u.role = role->value_or(Role::kMember);
  auto bot = Bool(*body, "is_bot");
  if (!bot) return bot.error();
  u.is_bot = bot->value_or(false);
  auto all = Bool(*body, "can_access_all_users");
  if (!all) return all.error();
  u.can_access_all_users = all->value_or(true);
  auto created = service_->CreateUser(call.realm_id, u);
  if (!created) {
    if (created.error() == Errc::kInvalidArgument) {
      return ApiError::BadRequest(
          "Invalid user: email must look like name@domain and full_name "
          "must be 1-100 printable characters");
    }
    return FromStatus(created.error(), "user");
  }
  auto out = Success();
  out["user_id"] = created->user_id;
  out["api_key"] = created->api_key;
  return out;
}

// Most rows one batch call takes: a 100,000-user import is tens of calls
// (each one store transaction), none holding the admin lock for long.
constexpr std::size_t kMaxBatchUsers = 10000;

ApiResult<json::object> AdminApi::OnListUsers(const Call& call) const {
  json::array users;
  users.reserve(call.realm->member_count());
  call.realm->ForEachMember([&](const Member& m) {
    users.push_back(
        json::object{{"user_id", m.id},
                     {"email", m.email()},
                     {"full_name", m.full_name()},
                     {"role", RoleName(m.role)},
                     {"is_bot", m.is_bot},
                     {"can_access_all_users", m.can_access_all_users},
                     {"is_active", m.is_active}});
  });
  auto out = Success();
  out["users"] = std::move(users);
  return out;
}

// {"users": [{"email", "full_name", "role", "is_bot",
// "can_access_all_users"}, ...], "dry_run": bool}. Every row is checked
// before anything is applied; a bad row is named by index and field in
// "errors" (400), and then nothing is.
ApiResult<json::object> AdminApi::OnImportUsers(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  auto dry = Bool(*body, "dry_run");
  if (!dry) return dry.error();
  auto it = body->find("users");
  if (it == body->end() || !it->value().is_array()) {
    return ApiError::BadRequest("users must be a list of user objects");
  }
  const json::array& list = it->value().as_array();
  if (list.size() > kMaxBatchUsers) {
    return ApiError::BadRequest("at most " + std::to_string(kMaxBatchUsers) +
                                " users per call");
  }
  std::vector<NewUser> rows;
  rows.reserve(list.size());
  std::vector<ImportRejection> rejected;
  for (std::size_t i = 0; i < list.size(); ++i) {
    NewUser u;
    auto reject = [&](std::string field, std::string reason) {
      rejected.push_back({i, std::move(field), std::move(reason)});
    };
    if (!list[i].is_object()) {
      reject("", "not an object");
      rows.push_back(std::move(u));
      continue;
    }
    const json::object& o = list[i].as_object();
    for (const auto& kv : o) {
      const std::string_view k = kv.key();
      if (k != "email" && k != "full_name" && k != "role" && k != "is_bot" &&
          k != "can_access_all_users") {
        reject(std::string(k), "unknown field");
      }
    }
    auto email = String(o, "email");
    if (!email) {
      reject("email", "not a string");
    } else if (!*email) {
      reject("email", "is required");
    } else {
      u.email = **email;
    }
    auto full_name = String(o, "full_name");
    if (!full_name) {
      reject("full_name", "not a string");
    } else {
      u.full_name = full_name->value_or(u.email.substr(0, u.email.find('@')));
    }
    auto role = String(o, "role");
    if (!role) {
      reject("role", "not a string");
    } else if (*role) {
      if (auto r = ParseRole(**role)) {
        u.role = *r;
      } else {
        reject("role",
               "must be one of owner, administrator, moderator, member, "
               "guest");
      }
    }
    auto bot = Bool(o, "is_bot");
    if (!bot) {
      reject("is_bot", "not a boolean");
    } else {
      u.is_bot = bot->value_or(false);
    }
    auto all = Bool(o, "can_access_all_users");
    if (!all) {
      reject("can_access_all_users", "not a boolean");
    } else {
      u.can_access_all_users = all->value_or(true);
    }
    rows.push_back(std::move(u));
  }
  auto rejections = [](const std::vector<ImportRejection>& list) {
    json::array errors;
    for (const ImportRejection& r : list) {
      errors.push_back(json::object{
          {"index", r.index}, {"field", r.field}, {"reason", r.reason}});
    }
    ApiError e =
        ApiError::BadRequest("invalid users: nothing was applied (see errors)");
    e.extra["errors"] = std::move(errors);
    return e;
  };
  if (!rejected.empty()) return rejections(rejected);
  auto result =
      service_->ImportUsers(call.realm_id, rows, dry->value_or(false));
  if (!result) return FromStatus(result.error(), "realm");
  if (!result->rejected.empty()) return rejections(result->rejected);
  json::array users;
  users.reserve(result->users.size());
  std::size_t counts[3] = {0, 0, 0};
  static constexpr std::string_view kOutcome[3] = {"created", "updated",
                                                   "unchanged"};
  for (std::size_t i = 0; i < result->users.size(); ++i) {
    const ImportedUser& u = result->users[i];
    const auto k = static_cast<std::size_t>(u.outcome);
    ++counts[k];
    json::object row{{"email", rows[i].email}, {"outcome", kOutcome[k]}};
    if (u.user_id != 0) row["user_id"] = u.user_id;
    if (!u.api_key.empty()) row["api_key"] = u.api_key;
    users.push_back(std::move(row));
  }
  auto out = Success();
  out["created"] = counts[0];
  out["updated"] = counts[1];
  out["unchanged"] = counts[2];
  out["dry_run"] = dry->value_or(false);
  out["users"] = std::move(users);
  return out;
}

ApiResult<json::object> AdminApi::OnPatchUser(const Call& call) const {
  auto user_id = ParseId(call.args[1]);
  if (!user_id) return ApiError::NotFound("user not found");
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  UserPatch patch;
  auto active = Bool(*body, "is_active");
  if (!active) return active.error();
  patch.is_active = *active;
  auto enabled = Bool(*body, "presence_enabled");
  if (!enabled) return enabled.error();
  patch.presence_enabled = *enabled;
  auto role = RoleField(*body);
  if (!role) return role.error();
  patch.role = *role;
  if (auto st = service_->UpdateUser(call.realm_id, *user_id, patch); !st) {
    return FromStatus(st.error(), "user");
  }
  return Success();
}

ApiResult<json::object> AdminApi::OnSetAccess(const Call& call) const {
  auto body = ParseBody(call.req.body);
  if (!body) return body.error();
  auto viewer = Int(*body, "viewer");
  if (!viewer) return viewer.error();
  if (!*viewer) return ApiError::BadRequest("viewer is required");
  auto it = body->find("visible");
  if (it == body->end() || !it->value().is_array()) {
    return ApiError::BadRequest("visible must be a list of user ids");
  }
  std::vector<UserId> visible;
  for (const auto& v : it->value().as_array()) {
    auto id = Int(v, "visible");
    if (!id) return ApiError::BadRequest("visible must be a list of user ids");
    visible.push_back(**id);
  }
  if (auto st =
          service_->SetAccess(call.realm_id, **viewer, std::move(visible));
      !st) {
    if (st.error() == Errc::kInvalidArgument) {
      return ApiError::BadRequest("visible names a user not in this realm");
    }
    return FromStatus(st.error(), "viewer");
  }
  return Success();
}

}  // namespace presence::api
