// The route tables of the Zulip and admin APIs: what each route allows, its
// 405 and Allow answers, its metric label and flags, and the paths that
// match nothing. The answers themselves are checked in zulip_api_test.cc and
// admin_api_test.cc; here, the tables and the matcher.
#include "api/route_table.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "api/admin_api.h"
#include "api/router.h"
#include "api/zulip_api.h"

namespace presence::api {
namespace {

template <class Handler>
std::string Allowed(std::span<const Route<Handler>> table,
                    std::string_view path) {
  return MethodList(FindRoute(table, path, "GET").allowed).Joined();
}

TEST(RouteTableTest, PatternMatchesLiteralsAndOneSegmentPerPlaceholder) {
  RouteArgs args{};
  EXPECT_TRUE(MatchPattern("/users", "/users", &args));
  EXPECT_FALSE(MatchPattern("/users", "/users/", &args));
  EXPECT_FALSE(MatchPattern("/users", "/user", &args));
  EXPECT_FALSE(MatchPattern("/users", "/usersx", &args));
  ASSERT_TRUE(MatchPattern("/users/{}/presence", "/users/7/presence", &args));
  EXPECT_EQ(args[0], "7");
  ASSERT_TRUE(MatchPattern("/realms/{}/users/{}", "/realms/3/users/9", &args));
  EXPECT_EQ(args[0], "3");
  EXPECT_EQ(args[1], "9");
  // A placeholder is one non-empty segment.
  EXPECT_FALSE(MatchPattern("/users/{}/presence", "/users//presence", &args));
  EXPECT_FALSE(MatchPattern("/users/{}/presence", "/users/presence", &args));
  EXPECT_FALSE(
      MatchPattern("/users/{}/presence", "/users/a/b/presence", &args));
  EXPECT_FALSE(MatchPattern("/realms/{}", "/realms/1/", &args));
  EXPECT_FALSE(MatchPattern("/realms/{}", "/realms", &args));
}

TEST(RouteTableTest, MethodsAreListedInOneOrder) {
  EXPECT_EQ(MethodList(kPatch | kGet | kDelete).Joined(), "GET, DELETE, PATCH");
  EXPECT_EQ(MethodList(kHead | kGet).Joined(), "GET, HEAD");
  EXPECT_EQ(MethodList(0).Joined(), "");
  EXPECT_EQ(MethodBit("GET"), kGet);
  EXPECT_EQ(MethodBit("PATCH"), kPatch);
  EXPECT_EQ(MethodBit("get"), 0);  // methods are case-sensitive
  EXPECT_EQ(MethodBit("OPTIONS"), 0);
}

struct ZulipRouteCase {
  std::string_view path;
  std::string_view allow;
  bool needs_auth;
};

TEST(RouteTableTest, EveryZulipRouteAllowsItsMethodsOnly) {
  const ZulipRouteCase cases[] = {
      {"/users/me/presence", "POST", true},
      {"/realm/presence", "GET, HEAD", true},
      {"/users", "GET, HEAD", true},
      {"/users/8/presence", "GET, HEAD", true},
      {"/users/a%40b.c/presence", "GET, HEAD", true},
      {"/settings", "PATCH", true},
      {"/server_settings", "GET, HEAD", false},
      {"/register", "POST", true},
      {"/events", "GET, DELETE, PATCH", true},
  };
  const auto table = ZulipApi::Routes();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    EXPECT_EQ(Allowed(table, c.path), c.allow);
    for (std::string_view method : kMethodNames) {
      auto m = FindRoute(table, c.path, method);
      const bool allowed = c.allow.find(method) != std::string_view::npos;
      EXPECT_EQ(m.route != nullptr, allowed) << method;
      if (m.route != nullptr) {
        EXPECT_EQ(m.route->has(kNeedsAuth), c.needs_auth) << method;
        EXPECT_NE(m.route->handler, nullptr);
      }
    }
  }
}

TEST(RouteTableTest, ZulipMetricLabels) {
  struct Case {
    std::string_view method, path;
    std::string_view label;
  } cases[] = {
      {"POST", "/users/me/presence", "post_users_me_presence"},
      {"GET", "/users/me/presence", "post_users_me_presence"},  // a 405
      {"GET", "/realm/presence", "get_realm_presence"},
      {"HEAD", "/realm/presence", "get_realm_presence"},
      {"GET", "/users/12/presence", "get_user_presence"},
      {"GET", "/users", "get_users"},
      {"PATCH", "/settings", "patch_settings"},
      {"POST", "/users/me/status", "post_users_me_status"},
      {"GET", "/users/12/status", "user_status"},
      {"POST", "/users/12/status", "user_status"},
      {"GET", "/server_settings", "get_server_settings"},
      {"POST", "/register", "post_register"},
      {"GET", "/events", "get_events"},
      {"DELETE", "/events", "delete_events"},
      {"PATCH", "/events", "patch_events"},
      {"POST", "/events", "get_events"},  // a 405 counts where GET does
      {"GET", "/nope", "other"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(EndpointName(ZulipApi::Metric(c.method, c.path)), c.label)
        << c.method << " " << c.path;
  }
}

TEST(RouteTableTest, RateLimitExemptsOnlyLongPollsAndUnauthenticatedRoutes) {
  for (const auto& r : ZulipApi::Routes()) {
    SCOPED_TRACE(std::string(r.pattern) + " " + MethodList(r.methods).Joined());
    const bool long_poll = r.metric == Endpoint::kGetEvents;
    EXPECT_EQ(r.has(kParks), long_poll);
    EXPECT_EQ(r.has(kRateLimited), !long_poll && r.has(kNeedsAuth));
    EXPECT_EQ(r.has(kRelayable), r.pattern == "/events");
  }
}

// Issue 13: the metric classifier used to count /users/a/b/presence as a
// user presence GET, which the API itself answers 404. One table now says
// both.
TEST(RouteTableTest, Issue13_NestedUserPathIsNoRouteAnywhere) {
  const auto m = FindRoute(ZulipApi::Routes(), "/users/a/b/presence", "GET");
  EXPECT_FALSE(m.path_found());
  EXPECT_EQ(m.allowed, 0);
  EXPECT_EQ(Router::Classify("GET", "/api/v1/users/a/b/presence"),
            Endpoint::kOther);
  EXPECT_EQ(Router::Classify("GET", "/api/v1/users/presence"),
            Endpoint::kOther);
  EXPECT_EQ(Router::Classify("GET", "/api/v1/users/a/presence"),
            Endpoint::kUserPresence);
}

TEST(RouteTableTest, UnknownPathsMatchNothing) {
  for (std::string_view path :
       {"", "/", "/users/", "/users/me", "/register/", "/events/x",
        "/realm/presence/", "/Users", "//users"}) {
    EXPECT_FALSE(FindRoute(ZulipApi::Routes(), path, "GET").path_found())
        << path;
  }
  for (std::string_view path : {"", "/", "/realms/", "/realms/1/users/2/x",
                                "/realms/1/other", "//realms", "/clock/"}) {
    EXPECT_FALSE(FindRoute(AdminApi::Routes(), path, "GET").path_found())
        << path;
  }
}

TEST(RouteTableTest, RouterLabelsOutsideTheZulipApi) {
  EXPECT_EQ(Router::Classify("POST", "/admin/v1/realms"), Endpoint::kAdmin);
  EXPECT_EQ(Router::Classify("GET", "/admin/v1/nope"), Endpoint::kAdmin);
  EXPECT_EQ(Router::Classify("GET", "/healthz"), Endpoint::kHealth);
  EXPECT_EQ(Router::Classify("GET", "/metrics"), Endpoint::kMetrics);
  EXPECT_EQ(Router::Classify("GET", "/"), Endpoint::kWeb);
  EXPECT_EQ(Router::Classify("GET", "/api/v1"), Endpoint::kOther);
}

TEST(RouteTableTest, EveryAdminRouteAllowsItsMethodsOnly) {
  struct Case {
    std::string_view path, allow;
    std::uint16_t flags;
  } cases[] = {
      {"/clock", "POST", kNeedsAuth | kNeedsTestClock},
      {"/faults", "POST", kNeedsAuth | kNeedsFaultInjector},
      {"/realms", "GET, POST", kNeedsAuth},
      {"/realms/4", "PATCH", kNeedsAuth | kRealmScoped | kMayWait},
      {"/realms/4/users", "GET, POST", kNeedsAuth | kRealmScoped | kMayWait},
      {"/realms/4/users:batch", "POST", kNeedsAuth | kRealmScoped | kMayWait},
      {"/realms/4/users/5", "PATCH", kNeedsAuth | kRealmScoped | kMayWait},
      {"/realms/4/access", "POST", kNeedsAuth | kRealmScoped | kMayWait},
  };
  const auto table = AdminApi::Routes();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    EXPECT_EQ(Allowed(table, c.path), c.allow);
    for (std::string_view method : kMethodNames) {
      auto m = FindRoute(table, c.path, method);
      ASSERT_TRUE(m.path_found());
      EXPECT_EQ(m.path_route->flags, c.flags);
      EXPECT_EQ(m.route != nullptr,
                c.allow.find(method) != std::string_view::npos)
          << method;
      if (m.route != nullptr) {
        EXPECT_EQ(m.route->metric, Endpoint::kAdmin);
      }
    }
  }
  auto m = FindRoute(table, "/realms/4/users/5", "PATCH");
  EXPECT_EQ(m.args[0], "4");
  EXPECT_EQ(m.args[1], "5");
}

}  // namespace
}  // namespace presence::api
