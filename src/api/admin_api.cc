#include "api/admin_api.h"

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <vector>

#include "api/zulip_api.h"
#include "core/fault_injector.h"
#include "util/crypto.h"

namespace presence::api {
namespace {

namespace json = boost::json;

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    auto j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    parts.push_back(path.substr(i, j - i));
    i = j;
  }
  return parts;
}

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

AdminApi::AdminApi(PresenceService* service, const ApiOptions* options)
    : service_(service), options_(options) {}

Response AdminApi::Handle(const Request& req, std::string_view path) const {
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view auth = req.authorization;
  const bool ok =
      !options_->admin_token.empty() && req.has_authorization &&
      auth.size() > kBearer.size() &&
      (auth.substr(0, kBearer.size()) == kBearer ||
       auth.substr(0, kBearer.size()) == "bearer ") &&
      ConstantTimeEqual(auth.substr(kBearer.size()), options_->admin_token);
  if (!ok) {
    ApiError e = ApiError::Unauthorized("Invalid or missing admin token");
    Response r = ErrorResponse(e);
    r.headers.clear();
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  auto out = Dispatch(req, path);
  if (options_->log && req.method != "GET") {
    // An audit line per admin change: what was asked and what it made (the
    // new ids), never the API key in the answer.
    std::vector<std::pair<std::string, std::string>> fields = {
        {"method", std::string(req.method)},
        {"path", "/admin/v1" + std::string(path)},
        {"status", std::to_string(out ? 200 : out.error().http_status)}};
    if (out) {
      for (const char* id : {"realm_id", "user_id"}) {
        if (auto it = out->find(id); it != out->end()) {
          fields.emplace_back(id, json::serialize(it->value()));
        }
      }
    } else {
      fields.emplace_back("msg", out.error().msg);
    }
    options_->log("admin_change", fields);
  }
  if (!out) return ErrorResponse(out.error());
  Response r;
  r.body = json::serialize(*out);
  return r;
}

ApiResult<json::object> AdminApi::Dispatch(const Request& req,
                                           std::string_view path) const {
  auto parts = Split(path);
  const std::string_view method = req.method;
  auto need = [&](std::string_view m) -> std::optional<ApiError> {
    if (method == m) return std::nullopt;
    std::array<std::string_view, 1> allowed{m};
    return ApiError::MethodNotAllowed(allowed);
  };

  // /clock
  if (parts.size() == 1 && parts[0] == "clock") {
    if (options_->test_clock == nullptr) {
      return ApiError::NotFound(
          "Not Found (start presenced with --test-clock)");
    }
    if (auto e = need("POST")) return *e;
    auto body = ParseBody(req.body);
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

  // /faults (tests only): {"fail_writes": bool}
  if (parts.size() == 1 && parts[0] == "faults") {
    if (options_->fault_injector == nullptr) {
      return ApiError::NotFound(
          "Not Found (start presenced with --test-faults)");
    }
    if (auto e = need("POST")) return *e;
    auto body = ParseBody(req.body);
    if (!body) return body.error();
    auto fail = Bool(*body, "fail_writes");
    if (!fail) return fail.error();
    if (!*fail) return ApiError::BadRequest("fail_writes is required");
    options_->fault_injector->SetFailWrites(**fail);
    return Success();
  }

  if (parts.empty() || parts[0] != "realms") {
    return ApiError::NotFound("Not Found");
  }

  // /realms
  if (parts.size() == 1) {
    if (method == "GET") {
      json::array list;
      for (Realm* r : service_->Realms()) {
        list.push_back(
            json::object{{"realm_id", r->id()},
                         {"subdomain", r->subdomain()},
                         {"name", r->name()},
                         {"presence_disabled", r->presence_disabled()},
                         {"users", r->member_count()}});
      }
      auto out = Success();
      out["realms"] = std::move(list);
      return out;
    }
    if (auto e = need("POST")) return *e;
    auto body = ParseBody(req.body);
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

  auto realm_id = ParseId(parts[1]);
  Realm* realm = realm_id ? service_->LookupRealm(*realm_id) : nullptr;
  if (realm == nullptr) return ApiError::NotFound("realm not found");
  // Scale-out: act on the realm as the store has it now.
  if (auto st = service_->Sync(*realm); !st) return FromErrc(st.error());

  // /realms/{id}
  if (parts.size() == 2) {
    if (auto e = need("PATCH")) return *e;
    auto body = ParseBody(req.body);
    if (!body) return body.error();
    auto disabled = Bool(*body, "presence_disabled");
    if (!disabled) return disabled.error();
    if (*disabled) {
      if (auto st = service_->SetRealmPresenceDisabled(*realm_id, **disabled);
          !st) {
        return FromStatus(st.error(), "realm");
      }
    }
    return Success();
  }

  // /realms/{id}/users
  if (parts.size() == 3 && parts[2] == "users") {
    if (auto e = need("POST")) return *e;
    auto body = ParseBody(req.body);
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
    auto created = service_->CreateUser(*realm_id, u);
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

  // /realms/{id}/users/{user_id}
  if (parts.size() == 4 && parts[2] == "users") {
    if (auto e = need("PATCH")) return *e;
    auto user_id = ParseId(parts[3]);
    if (!user_id) return ApiError::NotFound("user not found");
    auto body = ParseBody(req.body);
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
    if (auto st = service_->UpdateUser(*realm_id, *user_id, patch); !st) {
      return FromStatus(st.error(), "user");
    }
    return Success();
  }

  // /realms/{id}/access
  if (parts.size() == 3 && parts[2] == "access") {
    if (auto e = need("POST")) return *e;
    auto body = ParseBody(req.body);
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
      if (!id)
        return ApiError::BadRequest("visible must be a list of user ids");
      visible.push_back(**id);
    }
    if (auto st = service_->SetAccess(*realm_id, **viewer, std::move(visible));
        !st) {
      if (st.error() == Errc::kInvalidArgument) {
        return ApiError::BadRequest("visible names a user not in this realm");
      }
      return FromStatus(st.error(), "viewer");
    }
    return Success();
  }
  return ApiError::NotFound("Not Found");
}

}  // namespace presence::api
