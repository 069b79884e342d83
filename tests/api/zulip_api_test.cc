// ZulipApi driven directly: in-memory requests, the answers' status, Zulip
// error `code`/`msg` and JSON fields, in the order of checks the header
// promises (realm, route, method, authentication, rate limit, parameters).
#include "api/zulip_api.h"

#include <gtest/gtest.h>

#include <string>

#include "api_test_world.h"

namespace presence::api {
namespace {

class ZulipApiTest : public testing::ApiTestWorld {
 protected:
  void SetUp() override {
    ApiTestWorld::SetUp();
    alice_ = AddUser("alice@example.com");
    bot_ = AddUser("bot@example.com", Role::kMember, /*is_bot=*/true);
  }

  // Builds the API after the test set its options (the limiter reads them
  // once).
  ZulipApi& Api() {
    if (!api_)
      api_ = std::make_unique<ZulipApi>(service_.get(), hub_.get(), &options_);
    return *api_;
  }

  Response Call(std::string_view method, std::string_view path, const User* who,
                std::string_view body = {}, std::string_view query = {}) {
    Request req = MakeRequest(
        method, path,
        who ? std::string_view(who->authorization) : std::string_view(), body);
    return Api().Handle(req, path, query);
  }

  User alice_, bot_;
  std::unique_ptr<ZulipApi> api_;
};

TEST_F(ZulipApiTest, UnknownSubdomainIsNotFoundFirst) {
  Request req = MakeRequest("GET", "/nope", alice_.authorization);
  req.host = "nowhere.localhost";
  Response r = Api().Handle(req, "/nope", {});
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(Json(r).at("code"), "NONEXISTENT_SUBDOMAIN");
}

TEST_F(ZulipApiTest, UnknownRouteIsNotFoundBeforeAuthentication) {
  for (std::string_view path :
       {"/nope", "/users/a/b/presence", "/users//presence", "/events/"}) {
    Response r = Call("GET", path, nullptr);
    EXPECT_EQ(r.status, 404u) << path;
    auto o = Json(r);
    EXPECT_EQ(o.at("code"), "NOT_FOUND") << path;
    EXPECT_EQ(o.at("msg"), "Not Found") << path;
  }
}

TEST_F(ZulipApiTest, WrongMethodIs405WithAllowBeforeAuthentication) {
  Response r = Call("DELETE", "/realm/presence", nullptr);
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "GET, HEAD");
  auto o = Json(r);
  EXPECT_EQ(o.at("msg"), "Method Not Allowed");
  EXPECT_FALSE(o.contains("code"));
  EXPECT_EQ(o.at("allowed_methods"), (boost::json::array{"GET", "HEAD"}));

  r = Call("PUT", "/events", nullptr);
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "GET, DELETE, PATCH");
  r = Call("GET", "/users/me/presence", nullptr);
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "POST");
}

TEST_F(ZulipApiTest, OptionsAnswersAllowWithoutABody) {
  Response r = Call("OPTIONS", "/events", nullptr);
  EXPECT_EQ(r.status, 204u);
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(r.content_type.empty());
  EXPECT_EQ(Header(r, "Allow"), "GET, DELETE, PATCH");
}

TEST_F(ZulipApiTest, MissingOrWrongCredentialsAre401) {
  Response r = Call("GET", "/realm/presence", nullptr);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Header(r, "WWW-Authenticate"), "Basic realm=\"zulip\"");
  EXPECT_EQ(Json(r).at("code"), "UNAUTHORIZED");

  User wrong = alice_;
  std::string key = alice_.api_key;
  key.back() = key.back() == 'a' ? 'b' : 'a';
  wrong.authorization = "Basic " + Base64Encode(alice_.email + ":" + key);
  r = Call("GET", "/realm/presence", &wrong);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Json(r).at("msg"), "Invalid API key");
}

TEST_F(ZulipApiTest, ServerSettingsNeedsNoAuthentication) {
  Response r = Call("GET", "/server_settings", nullptr);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto o = Json(r);
  EXPECT_EQ(o.at("result"), "success");
  EXPECT_EQ(o.at("realm_name"), "Test");
  EXPECT_EQ(o.at("realm_url"), "http://localhost");
  EXPECT_EQ(o.at("zulip_feature_level"), kZulipFeatureLevel);
}

TEST_F(ZulipApiTest, PostPresenceReportsAndAnswersTheRealm) {
  Response r = Call("POST", "/users/me/presence", &alice_,
                    "status=active&slim_presence=true&colour=blue");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto o = Json(r);
  EXPECT_EQ(o.at("result"), "success");
  EXPECT_EQ(o.at("server_timestamp").to_number<double>(), 1'700'000'000.0);
  EXPECT_GE(o.at("presence_last_update_id").as_int64(), 1);
  const auto& me =
      o.at("presences").as_object().at(std::to_string(alice_.id)).as_object();
  EXPECT_EQ(me.at("active_timestamp"), 1'700'000'000);
  EXPECT_EQ(o.at("ignored_parameters_unsupported"),
            (boost::json::array{"colour"}));
}

TEST_F(ZulipApiTest, PostPresenceErrors) {
  Response r = Call("POST", "/users/me/presence", &alice_, "");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("code"), "REQUEST_VARIABLE_MISSING");
  EXPECT_EQ(Json(r).at("var_name"), "status");

  r = Call("POST", "/users/me/presence", &alice_, "status=away");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("msg"), "Invalid status: away");

  r = Call("POST", "/users/me/presence", &bot_, "status=active");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("msg"), "This endpoint does not accept bot requests.");

  r = Call("POST", "/users/me/presence", &alice_, "status=%zz");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("code"), "BAD_REQUEST");
}

TEST_F(ZulipApiTest, LegacyMethodFieldOverridesPost) {
  // POST with method=GET reads the realm's presence.
  Response r = Call("POST", "/realm/presence", &alice_, "method=get");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_TRUE(Json(r).contains("presences"));
  EXPECT_FALSE(Json(r).contains("ignored_parameters_unsupported"));
  // ... and a method the route does not take is a 405 naming the route's.
  r = Call("POST", "/realm/presence", &alice_, "method=DELETE");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(Header(r, "Allow"), "GET, HEAD");
}

TEST_F(ZulipApiTest, PresenceGetsIgnoreAMalformedQueryOtherRoutesDoNot) {
  Response r = Call("GET", "/realm/presence", &alice_, {}, "x=%zz");
  EXPECT_EQ(r.status, 200u) << r.body;
  r = Call("PATCH", "/settings", &alice_, {}, "x=%zz");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(Json(r).at("code"), "BAD_REQUEST");
}

TEST_F(ZulipApiTest, UserPresenceErrors) {
  Response r = Call("GET", "/users/999/presence", &alice_);
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("msg"), "No such user");
  r = Call("GET", "/users/%zz/presence", &alice_);
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("msg"), "No such user");
  r = Call("GET", "/users/" + std::to_string(bot_.id) + "/presence", &alice_);
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(Json(r).at("msg"), "Presence is not supported for bot users.");
}

TEST_F(ZulipApiTest, UserPresenceByEmailAfterAPing) {
  ASSERT_EQ(Call("POST", "/users/me/presence", &alice_, "status=active").status,
            200u);
  Response r = Call("GET", "/users/alice%40example.com/presence", &alice_);
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto p_json = Json(r);
  const auto& p = p_json.at("presence").as_object();
  EXPECT_EQ(p.at("aggregated").at("status"), "active");
  EXPECT_EQ(p.at("website").at("timestamp"), 1'700'000'000);
}

TEST_F(ZulipApiTest, UsersListsTheMembers) {
  Response r = Call("HEAD", "/users", &alice_);
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto members_json = Json(r);
  const auto& members = members_json.at("members").as_array();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].at("email"), "alice@example.com");
  EXPECT_EQ(members[1].at("is_bot"), true);
}

TEST_F(ZulipApiTest, SettingsTurnPresenceOff) {
  Response r = Call("PATCH", "/settings", &alice_, "presence_enabled=false");
  ASSERT_EQ(r.status, 200u) << r.body;
  r = Call("PATCH", "/settings", &alice_, "presence_enabled=maybe");
  EXPECT_EQ(r.status, 400u);
}

TEST_F(ZulipApiTest, RateLimitCountsEveryRouteButLongPolls) {
  options_.rate_limit_per_minute = 2;
  Response reg = Call("POST", "/register", &alice_, "event_types=[]");
  ASSERT_EQ(reg.status, 200u) << reg.body;
  EXPECT_EQ(Header(reg, "X-RateLimit-Limit"), "2");
  EXPECT_EQ(Header(reg, "X-RateLimit-Remaining"), "1");
  const std::string queue(Json(reg).at("queue_id").as_string());
  // Polls are exempt: no headers, never refused.
  for (int i = 0; i < 3; ++i) {
    Response poll = Call("GET", "/events", &alice_, {},
                         "dont_block=true&last_event_id=-1&queue_id=" + queue);
    EXPECT_EQ(poll.status, 200u) << poll.body;
    EXPECT_EQ(Header(poll, "X-RateLimit-Limit"), "<none>");
  }
  EXPECT_EQ(Call("GET", "/users", &alice_).status, 200u);
  Response refused = Call("GET", "/users", &alice_);
  EXPECT_EQ(refused.status, 429u);
  EXPECT_EQ(Json(refused).at("code"), "RATE_LIMIT_HIT");
  EXPECT_NE(Header(refused, "Retry-After"), "<none>");
  EXPECT_EQ(Header(refused, "X-RateLimit-Remaining"), "0");
  // Unauthenticated routes are not counted.
  EXPECT_EQ(Call("GET", "/server_settings", nullptr).status, 200u);
}

TEST_F(ZulipApiTest, EventsRoutesDispatchByMethod) {
  Response reg =
      Call("POST", "/register", &alice_, "event_types=%5B%22presence%22%5D");
  ASSERT_EQ(reg.status, 200u) << reg.body;
  const std::string queue(Json(reg).at("queue_id").as_string());
  Response patch = Call("PATCH", "/events", &alice_,
                        "queue_id=" + queue + "&presence_user_ids=null");
  EXPECT_EQ(patch.status, 200u) << patch.body;
  // The legacy override reaches DELETE too.
  Response del =
      Call("POST", "/events", &alice_, "method=DELETE&queue_id=" + queue);
  EXPECT_EQ(del.status, 200u) << del.body;
  Response gone =
      Call("GET", "/events", &alice_, {}, "dont_block=true&queue_id=" + queue);
  EXPECT_EQ(gone.status, 400u);
  EXPECT_EQ(Json(gone).at("code"), "BAD_EVENT_QUEUE_ID");
}

}  // namespace
}  // namespace presence::api
