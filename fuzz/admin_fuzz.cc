// libFuzzer target for the admin API's JSON bodies (src/api/admin_api.cc),
// reached through api::Router with the valid bearer token, over a fresh
// in-memory server (fuzz/fuzz_world.h).
//
// Input: up to 16 requests separated by lines "%%". Each request is
//   METHOD
//   PATH      appended to "/admin/v1" ("/realms/1/users", "/clock", ...)
//   BODY      the rest of the block: the JSON body
// "$R" and "$U" in PATH and BODY are the last realm and user id the admin
// API created in this input (fuzz_world.h, Variables). A missing line is
// empty, so every byte string is an input.
//
// Checked invariants (abort on violation), besides the sanitizers and the
// response checks of fuzz_world.h (known status, JSON error bodies):
//  - only 200, 400, 404, 405 and 409 come back (the token is valid);
//  - a created realm exists with a positive id;
//  - a created user has a positive id and a 32-character alphanumeric key,
//    and that key authenticates on /api/v1 of its realm at once;
//  - after POST /clock, the presence clock reads the "now" it answered;
//  - after POST .../access, the viewer may see every listed user;
//  - at the end, every credential known to the input authenticates on
//    /api/v1 exactly when its user is active.
#include <boost/json/value.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_world.h"

namespace {

using namespace presence;
using presence::fuzz::World;

constexpr std::size_t kMaxRequests = 16;

struct KnownUser {
  RealmId realm = 0;
  fuzz::Credential credential;
};

std::optional<std::int64_t> IntField(const boost::json::value& v,
                                     std::string_view key) {
  if (!v.is_object()) return std::nullopt;
  const auto* f = v.as_object().if_contains(key);
  if (f == nullptr || !f->is_int64()) return std::nullopt;
  return f->as_int64();
}

std::string HostOf(const Realm& realm) {
  std::string sub = realm.subdomain();
  return sub.empty() ? "localhost" : sub + ".localhost";
}

// GET /api/v1/realm/presence as `user`: the status.
unsigned ApiStatus(World& world, const KnownUser& user) {
  Realm* realm = world.service().FindRealmById(user.realm);
  FUZZ_CHECK(realm != nullptr);
  const std::string host = HostOf(*realm);
  const std::string auth = "Basic " + Base64Encode(user.credential.email + ":" +
                                                   user.credential.api_key);
  api::Request req;
  req.method = "GET";
  req.target = "/api/v1/realm/presence";
  req.host = host;
  req.has_authorization = true;
  req.authorization = auth;
  api::Response res = world.router().Handle(req);
  fuzz::CheckResponse(res, world.service());
  return res.status;
}

bool IsActive(World& world, const KnownUser& user) {
  Realm* realm = world.service().FindRealmById(user.realm);
  FUZZ_CHECK(realm != nullptr);
  auto m = realm->MemberById(user.credential.user_id);
  FUZZ_CHECK(m.has_value());
  return m->is_active;
}

// The path's non-empty segments, as the router and admin API split it (the
// query string is not part of the path).
std::vector<std::string_view> Segments(std::string_view path) {
  path = path.substr(0, path.find('?'));
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    std::size_t slash = path.find('/');
    if (slash != 0) parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

// The realm id in "/realms/{id}/...", if the path has one.
std::optional<RealmId> RealmInPath(const std::vector<std::string_view>& parts) {
  if (parts.size() < 2 || parts[0] != "realms") return std::nullopt;
  std::string_view id = parts[1];
  RealmId v = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
  if (ec != std::errc() || end != id.data() + id.size()) return std::nullopt;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // No rate limit: the end-of-input checks log in as each user.
  World world(/*rate_limit_per_minute=*/0);
  fuzz::Variables vars;
  const std::string bearer = world.AuthorizationFor(fuzz::kAdminBearer);

  std::vector<KnownUser> users;
  for (int i = 0; i < fuzz::kAdminBearer; ++i) {
    const fuzz::Credential& c = world.credential(i);
    RealmId realm = i == fuzz::kOtherRealm ? world.root() + 1 : world.root();
    users.push_back({realm, c});
  }

  for (std::string_view block : fuzz::SplitBlocks(input, kMaxRequests)) {
    std::string_view method = fuzz::NextLine(block);
    const std::string path = fuzz::Substitute(fuzz::NextLine(block), vars);
    const std::string body = fuzz::Substitute(block, vars);
    const std::string target = "/admin/v1" + path;

    api::Request req;
    req.method = method;
    req.target = target;
    req.host = "localhost";
    req.has_authorization = true;
    req.authorization = bearer;
    req.content_type = "application/json";
    req.body = body;
    api::Response res = world.router().Handle(req);
    fuzz::Trace(req, res);
    boost::json::value json = fuzz::CheckResponse(res, world.service());
    FUZZ_CHECK(res.status == 200 || res.status == 400 || res.status == 404 ||
               res.status == 405 || res.status == 409);
    if (res.status != 200) continue;
    FUZZ_CHECK(json.is_object());
    fuzz::Capture(json, vars);

    const std::vector<std::string_view> parts = Segments(path);
    const bool post = method == "POST";
    if (post && parts.size() == 3 && parts[2] == "users") {
      auto user_id = IntField(json, "user_id");
      FUZZ_CHECK(user_id && *user_id > 0);
      const auto* key = json.as_object().if_contains("api_key");
      FUZZ_CHECK(key != nullptr && key->is_string());
      std::string_view k = key->as_string();
      FUZZ_CHECK(k.size() == 32);
      for (char ch : k) {
        FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(ch)));
      }
      auto realm_id = RealmInPath(parts);
      FUZZ_CHECK(realm_id.has_value());
      Realm* realm = world.service().FindRealmById(*realm_id);
      FUZZ_CHECK(realm != nullptr);
      auto member = realm->MemberById(*user_id);
      FUZZ_CHECK(member.has_value());
      KnownUser u{*realm_id,
                  {std::string(member->email()), std::string(k), *user_id}};
      FUZZ_CHECK(ApiStatus(world, u) == 200);
      users.push_back(std::move(u));
    } else if (post && parts.size() == 1 && parts[0] == "realms") {
      auto realm_id = IntField(json, "realm_id");
      FUZZ_CHECK(realm_id && *realm_id > 0);
      FUZZ_CHECK(world.service().FindRealmById(*realm_id) != nullptr);
    } else if (post && parts.size() == 1 && parts[0] == "clock") {
      const auto* now = json.as_object().if_contains("now");
      FUZZ_CHECK(now != nullptr && now->is_number());
      const double seconds = now->to_number<double>();
      FUZZ_CHECK(world.service().Now() == std::llround(seconds * 1e6));
    } else if (post && parts.size() == 3 && parts[2] == "access") {
      auto realm_id = RealmInPath(parts);
      FUZZ_CHECK(realm_id.has_value());
      Realm* realm = world.service().FindRealmById(*realm_id);
      FUZZ_CHECK(realm != nullptr);
      boost::system::error_code ec;
      boost::json::value sent = boost::json::parse(body, ec);
      FUZZ_CHECK(!ec && sent.is_object());
      auto viewer = IntField(sent, "viewer");
      FUZZ_CHECK(viewer.has_value());
      for (const auto& v : sent.as_object().at("visible").as_array()) {
        FUZZ_CHECK(v.is_int64());
        FUZZ_CHECK(realm->CanSee(*viewer, v.as_int64()));
      }
    }
  }

  for (const KnownUser& u : users) {
    const unsigned status = ApiStatus(world, u);
    FUZZ_CHECK(status == 200 || status == 401);
    FUZZ_CHECK((status == 200) == IsActive(world, u));
  }
  return 0;
}
