// AdminApi driven directly: the bearer token, the route table's 404/405
// answers, each route's success and its errors, and the test-only routes.
#include "api/admin_api.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "api_test_world.h"
#include "core/fault_injector.h"

namespace presence::api {
namespace {

class RecordingFaultInjector : public FaultInjector {
 public:
  void SetFailWrites(bool fail) override {
    ++calls;
    failing = fail;
  }
  int calls = 0;
  bool failing = false;
};

class AdminApiTest : public testing::ApiTestWorld {
 protected:
  Response Call(std::string_view method, std::string_view path,
                std::string_view body = {},
                std::string_view auth = "Bearer admin-token-for-tests") {
    Request req = MakeRequest(method, path, auth, body, "application/json");
    return api_->Handle(req, path);
  }
  std::string RealmPath(std::string_view tail = {}) const {
    return "/realms/" + std::to_string(realm_) + std::string(tail);
  }

  void SetUp() override {
    ApiTestWorld::SetUp();
    api_ = std::make_unique<AdminApi>(service_.get(), &options_);
  }

  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, EveryCallNeedsTheBearerToken) {
  for (std::string_view auth :
       {std::string_view(), std::string_view("Bearer wrong"),
        std::string_view("Basic admin-token-for-tests"),
        std::string_view("Bearer ")}) {
    Response r = Call("GET", "/nope", {}, auth);
    EXPECT_EQ(r.status, 401u) << auth;
    EXPECT_EQ(Header(r, "WWW-Authenticate"), "Bearer");
    EXPECT_EQ(Json(r).at("msg"), "Invalid or missing admin token");
  }
  EXPECT_EQ(Call("GET", "/realms", {}, "bearer admin-token-for-tests").status,
            200u);
  options_.admin_token.clear();  // no token configured: nothing is allowed
  EXPECT_EQ(Call("GET", "/realms", {}, "Bearer ").status, 401u);
}

TEST_F(AdminApiTest, UnknownPathsAre404AndWrongMethods405WithAllow) {
  for (std::string_view path : {"", "/nope", "/realms/", "/realms/1/x"}) {
    Response r = Call("GET", path);
    EXPECT_EQ(r.status, 404u) << path;
    EXPECT_EQ(Json(r).at("msg"), "Not Found") << path;
  }
  Response r = Call("DELETE", "/realms");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "GET, POST");
  r = Call("DELETE", RealmPath("/users"));
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "GET, POST");
  EXPECT_EQ(Json(r).at("allowed_methods"), (boost::json::array{"GET", "POST"}));
  r = Call("GET", RealmPath("/users:batch"));
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "POST");
}

TEST_F(AdminApiTest, UnknownRealmIsNotFoundBeforeTheMethodCheck) {
  Response r = Call("DELETE", "/realms/999");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("msg"), "realm not found");
  r = Call("PATCH", "/realms/abc/users/1", "{}");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("msg"), "realm not found");
}

TEST_F(AdminApiTest, CreatesAndListsRealms) {
  Response r = Call("POST", "/realms", R"({"subdomain":"zz","name":"Zed"})");
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto id = Json(r).at("realm_id").as_int64();
  EXPECT_NE(service_->LookupRealm(id), nullptr);

  r = Call("GET", "/realms");
  ASSERT_EQ(r.status, 200u);
  const auto realms_json = Json(r);
  const auto& realms = realms_json.at("realms").as_array();
  ASSERT_EQ(realms.size(), 2u);
  EXPECT_EQ(realms[1].at("subdomain"), "zz");
  EXPECT_EQ(realms[1].at("users"), 0);

  r = Call("POST", "/realms", R"({"subdomain":"zz","name":"Again"})");
  EXPECT_EQ(r.status, 409u) << r.body;
  r = Call("POST", "/realms", R"({"subdomain":"-x-","name":"Bad"})");
  EXPECT_EQ(r.status, 400u);
  r = Call("POST", "/realms", R"({"name":"No sub"})");
  EXPECT_EQ(Json(r).at("msg"), "subdomain is required");
  r = Call("POST", "/realms", "[1]");
  EXPECT_EQ(Json(r).at("msg"), "Request body must be a JSON object");
}

TEST_F(AdminApiTest, CreatesAndPatchesUsers) {
  Response r = Call("POST", RealmPath("/users"),
                    R"({"email":"carol@example.com","role":"guest"})");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto o = Json(r);
  const auto user = o.at("user_id").as_int64();
  EXPECT_FALSE(o.at("api_key").as_string().empty());

  r = Call("POST", RealmPath("/users"), R"({"email":"x@y.z","role":"king"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("msg"),
            "role must be one of owner, administrator, moderator, member, "
            "guest");
  r = Call("POST", RealmPath("/users"), R"({"email":1})");
  EXPECT_EQ(Json(r).at("msg"), "email is not a string");

  const std::string user_path = RealmPath("/users/") + std::to_string(user);
  r = Call("PATCH", user_path, R"({"is_active":false})");
  EXPECT_EQ(r.status, 200u) << r.body;
  r = Call("PATCH", user_path, R"({"is_active":"no"})");
  EXPECT_EQ(Json(r).at("msg"), "is_active is not a boolean");
  r = Call("PATCH", RealmPath("/users/0"), "{}");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("msg"), "user not found");
  r = Call("PATCH", RealmPath("/users/12345"), "{}");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("msg"), "user not found");
}

TEST_F(AdminApiTest, BatchImportIsIdempotentByEmail) {
  const std::string batch = RealmPath("/users:batch");
  Response r = Call("POST", batch,
                    R"({"users":[{"email":"a@example.com","full_name":"A"},
                                 {"email":"b@example.com","role":"guest",
                                  "can_access_all_users":false}]})");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto o = Json(r);
  EXPECT_EQ(o.at("created"), 2);
  EXPECT_EQ(o.at("unchanged"), 0);
  const auto& users = o.at("users").as_array();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].at("outcome"), "created");
  EXPECT_EQ(users[0].at("api_key").as_string().size(), 32u);
  const auto a_id = users[0].at("user_id").as_int64();

  // Same rows, one email in other case and one renamed: 1 updated, 1 not.
  r = Call("POST", batch,
           R"({"users":[{"email":"A@example.com","full_name":"Ada"},
                        {"email":"b@example.com","role":"guest",
                         "can_access_all_users":false}]})");
  ASSERT_EQ(r.status, 200u) << r.body;
  o = Json(r);
  EXPECT_EQ(o.at("created"), 0);
  EXPECT_EQ(o.at("updated"), 1);
  EXPECT_EQ(o.at("unchanged"), 1);
  EXPECT_EQ(o.at("users").as_array()[0].at("user_id"), a_id);
  EXPECT_FALSE(o.at("users").as_array()[0].as_object().contains("api_key"));

  r = Call("GET", RealmPath("/users"));
  ASSERT_EQ(r.status, 200u) << r.body;
  bool found = false;
  const auto listing = Json(r);
  for (const auto& u : listing.at("users").as_array()) {
    if (u.at("user_id") == a_id) {
      found = true;
      EXPECT_EQ(u.at("full_name"), "Ada");
      EXPECT_EQ(u.at("email"), "a@example.com");
      EXPECT_FALSE(u.as_object().contains("api_key"));
    }
  }
  EXPECT_TRUE(found) << r.body;
}

TEST_F(AdminApiTest, BatchImportRejectsBadRowsAndAppliesNothing) {
  const std::string batch = RealmPath("/users:batch");
  Response r = Call("POST", batch,
                    R"({"users":[{"email":"ok@example.com"},
                                 {"email":"no-at-sign"},
                                 {"email":"OK@example.com"},
                                 {"email":"c@example.com","full_name":""}]})");
  ASSERT_EQ(r.status, 400u) << r.body;
  auto errors = Json(r).at("errors").as_array();
  ASSERT_EQ(errors.size(), 3u) << r.body;
  EXPECT_EQ(errors[0].at("index"), 1);
  EXPECT_EQ(errors[0].at("field"), "email");
  EXPECT_EQ(errors[1].at("index"), 2);
  EXPECT_EQ(errors[2].at("field"), "full_name");
  r = Call("POST", batch,
           R"({"users":[{"email":"ok@example.com","is_bot":"yes","x":1}]})");
  ASSERT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(Json(r).at("errors").as_array().size(), 2u) << r.body;
  EXPECT_EQ(Call("POST", batch, R"({"users":{}})").status, 400u);
  // Nothing was created by any of them.
  r = Call("POST", batch, R"({"users":[{"email":"ok@example.com"}]})");
  EXPECT_EQ(Json(r).at("created"), 1) << r.body;
}

TEST_F(AdminApiTest, PatchesTheRealm) {
  Response r = Call("PATCH", RealmPath(), R"({"presence_disabled":true})");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_TRUE(service_->LookupRealm(realm_)->presence_disabled());
}

TEST_F(AdminApiTest, SetsAccessLists) {
  User a = AddUser("a@example.com");
  User b = AddUser("b@example.com");
  const std::string body = R"({"viewer":)" + std::to_string(a.id) +
                           R"(,"visible":[)" + std::to_string(b.id) + "]}";
  Response r = Call("POST", RealmPath("/access"), body);
  EXPECT_EQ(r.status, 200u) << r.body;
  r = Call("POST", RealmPath("/access"), R"({"viewer":1,"visible":"all"})");
  EXPECT_EQ(Json(r).at("msg"), "visible must be a list of user ids");
  r = Call("POST", RealmPath("/access"), R"({"visible":[]})");
  EXPECT_EQ(Json(r).at("msg"), "viewer is required");
}

TEST_F(AdminApiTest, TestOnlyRoutesAreNotFoundUnlessSwitchedOn) {
  Response r = Call("GET", "/clock");  // 404 wins over the 405
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("msg"), "Not Found (start presenced with --test-clock)");
  r = Call("POST", "/faults", R"({"fail_writes":true})");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("msg"),
            "Not Found (start presenced with --test-faults)");
}

TEST_F(AdminApiTest, ClockMovesTheTestClock) {
  ManualClock clock(0);
  options_.test_clock = &clock;
  Response r = Call("POST", "/clock", R"({"now":1700000123.5})");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(clock.NowMicros(), 1'700'000'123'500'000);
  EXPECT_EQ(Json(r).at("now").to_number<double>(), 1700000123.5);
  r = Call("POST", "/clock", R"({"now":-1})");
  EXPECT_EQ(Json(r).at("msg"), "now is out of range");
  r = Call("GET", "/clock");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "POST");
}

TEST_F(AdminApiTest, FaultsDriveTheInjector) {
  RecordingFaultInjector faults;
  options_.fault_injector = &faults;
  Response r = Call("POST", "/faults", R"({"fail_writes":true})");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(faults.calls, 1);
  EXPECT_TRUE(faults.failing);
  r = Call("POST", "/faults", "{}");
  EXPECT_EQ(Json(r).at("msg"), "fail_writes is required");
  EXPECT_EQ(faults.calls, 1);
}

TEST_F(AdminApiTest, ChangesAreAuditedWithoutKeys) {
  std::vector<std::vector<std::pair<std::string, std::string>>> lines;
  options_.log = [&](std::string_view event, const auto& fields) {
    EXPECT_EQ(event, "admin_change");
    lines.push_back(fields);
  };
  ASSERT_EQ(
      Call("POST", RealmPath("/users"), R"({"email":"d@example.com"})").status,
      200u);
  Call("GET", "/realms");  // reads are not audited
  Call("PATCH", "/realms/999", "{}");
  ASSERT_EQ(lines.size(), 2u);
  std::map<std::string, std::string> first(lines[0].begin(), lines[0].end());
  EXPECT_EQ(first["method"], "POST");
  EXPECT_EQ(first["path"], "/admin/v1" + RealmPath("/users"));
  EXPECT_EQ(first["status"], "200");
  EXPECT_EQ(first.count("user_id"), 1u);
  EXPECT_EQ(first.count("api_key"), 0u);
  std::map<std::string, std::string> second(lines[1].begin(), lines[1].end());
  EXPECT_EQ(second["status"], "404");
  EXPECT_EQ(second["msg"], "realm not found");
}

}  // namespace
}  // namespace presence::api
