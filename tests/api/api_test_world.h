// A presenced object graph for the API unit tests: a PresenceService over the
// in-memory store with a manual clock, an EventHub with the JSON encoder, and
// the ApiOptions the handlers read. Requests are built in memory; nothing
// listens on a socket.
#ifndef PRESENCE_TESTS_API_API_TEST_WORLD_H_
#define PRESENCE_TESTS_API_API_TEST_WORLD_H_

#include <gtest/gtest.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "api/api_options.h"
#include "api/event_encoder.h"
#include "api/http_types.h"
#include "core/event_hub.h"
#include "core/presence_service.h"
#include "testing/memory_store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace presence::api::testing {

class ApiTestWorld : public ::testing::Test {
 protected:
  struct User {
    UserId id = 0;
    std::string email;
    std::string api_key;
    std::string authorization;  // "Basic ..." for the Zulip API
  };

  void SetUp() override {
    auto created = PresenceService::Create(&store_, &clock_);
    ASSERT_TRUE(created.has_value());
    service_ = std::move(*created);
    realm_ = *service_->CreateRealm("", "Test");
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, HubOptions{});
    service_->SetListener(hub_.get());
    options_.admin_token = "admin-token-for-tests";
  }

  User AddUser(const std::string& email, Role role = Role::kMember,
               bool is_bot = false, RealmId realm = 0) {
    NewUser u;
    u.email = email;
    u.full_name = email.substr(0, email.find('@'));
    u.role = role;
    u.is_bot = is_bot;
    auto c = service_->CreateUser(realm == 0 ? realm_ : realm, u);
    EXPECT_TRUE(c.has_value());
    if (!c) return {};
    return {c->user_id, email, c->api_key,
            "Basic " + Base64Encode(email + ":" + c->api_key)};
  }

  Caller CallerOf(const User& u) {
    Realm* realm = service_->FindRealmById(realm_);
    auto result = service_->Authenticate(*realm, u.email, u.api_key);
    EXPECT_TRUE(std::holds_alternative<Caller>(result));
    return std::get<Caller>(result);
  }

  // A request as the HTTP layer hands it over; the strings must outlive it.
  static Request MakeRequest(
      std::string_view method, std::string_view target,
      std::string_view authorization = {}, std::string_view body = {},
      std::string_view content_type = "application/x-www-form-urlencoded") {
    Request req;
    req.method = method;
    req.target = target;
    req.host = "localhost";
    req.authorization = authorization;
    req.has_authorization = !authorization.empty();
    req.content_type = content_type;
    req.body = body;
    return req;
  }

  static boost::json::object Json(const Response& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    if (ec || !v.is_object()) return {};
    return v.as_object();
  }

  static std::string Header(const Response& r, std::string_view name) {
    if (r.rate) {
      // The X-RateLimit-* fields, as the HTTP layer writes them.
      if (name == "X-RateLimit-Limit") return std::to_string(r.rate->limit);
      if (name == "X-RateLimit-Remaining") {
        return std::to_string(r.rate->remaining);
      }
      if (name == "X-RateLimit-Reset") {
        return std::to_string(r.rate->reset_unix);
      }
    }
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "<none>";
  }

  ManualClock clock_{SecondsToMicros(1'700'000'000)};
  store::MemoryStore store_;
  std::unique_ptr<PresenceService> service_;
  ApiOptions options_;
  JsonEventEncoder encoder_;
  std::unique_ptr<EventHub> hub_;
  RealmId realm_ = 0;
};

}  // namespace presence::api::testing

#endif  // PRESENCE_TESTS_API_API_TEST_WORLD_H_
