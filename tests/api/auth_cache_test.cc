// AuthCache: a caller is reused only for the very same Authorization header,
// realm and directory generation; anything that changes what authenticating
// would say is seen at once, and failures are never kept.
#include "api/auth_cache.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <functional>
#include <string>
#include <vector>

#include "api/event_encoder.h"
#include "api/router.h"
#include "core/event_hub.h"
#include "testing/memory_store.h"
#include "util/crypto.h"

namespace presence::api {
namespace {

class AuthCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::move(*PresenceService::Create(&store_, &clock_));
    realm_ = *service_->CreateRealm("", "Test");
    other_realm_ = *service_->CreateRealm("other", "Other");
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, HubOptions{});
    service_->SetListener(hub_.get());
    router_ = std::make_unique<Router>(service_.get(), hub_.get(), &options_);
    alice_ = AddUser(realm_, "alice@example.com");
  }

  struct User {
    UserId id = 0;
    std::string email;
    std::string key;
    std::string authorization;
  };
  User AddUser(RealmId realm, const std::string& email) {
    NewUser u;
    u.email = email;
    u.full_name = "Someone";
    auto c = service_->CreateUser(realm, u);
    EXPECT_TRUE(c);
    return {c->user_id, email, c->api_key,
            "Basic " + Base64Encode(email + ":" + c->api_key)};
  }

  // A ping with the thread's cache (and, if given, the connection's memo),
  // as the HTTP layer sends it.
  Response Ping(std::string_view authorization,
                std::string_view host = "localhost",
                ConnectionAuth* connection = nullptr) {
    Request req;
    req.method = "POST";
    req.target = "/api/v1/users/me/presence";
    req.host = host;
    req.authorization = authorization;
    req.has_authorization = true;
    req.content_type = "application/x-www-form-urlencoded";
    req.body = "status=active&slim_presence=true";
    req.auth_cache = &cache_;
    req.connection_auth = connection;
    return router_->Handle(req);
  }

  static std::string Msg(const Response& r) {
    return std::string(boost::json::parse(r.body).at("msg").as_string());
  }

  const Realm& realm() const { return *service_->FindRealmById(realm_); }

  ManualClock clock_{SecondsToMicros(1'700'000'000)};
  store::MemoryStore store_;
  std::unique_ptr<PresenceService> service_;
  ApiOptions options_;
  JsonEventEncoder encoder_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<Router> router_;
  AuthCache cache_;
  RealmId realm_ = 0;
  RealmId other_realm_ = 0;
  User alice_;
};

TEST_F(AuthCacheTest, KeepsTheCallerOfASuccessfulAuthentication) {
  EXPECT_EQ(cache_.Find(alice_.authorization, realm()), nullptr);
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  const Caller* c = cache_.Find(alice_.authorization, realm());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->user_id, alice_.id);
  EXPECT_EQ(c->realm, &realm());
  EXPECT_EQ(Ping(alice_.authorization).status, 200u);
}

TEST_F(AuthCacheTest, FailuresAreNotKept) {
  const std::string wrong =
      "Basic " + Base64Encode(alice_.email + ":" + std::string(32, 'x'));
  Response r = Ping(wrong);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Msg(r), "Invalid API key");
  EXPECT_EQ(cache_.Find(wrong, realm()), nullptr);
}

TEST_F(AuthCacheTest, OnlyTheSameHeaderBytesMatch) {
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  std::string other = alice_.authorization;
  other.back() = other.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(cache_.Find(other, realm()), nullptr);
  EXPECT_EQ(Ping(other).status, 401u);
  // A prefix of the cached header is not it either.
  const std::string prefix =
      alice_.authorization.substr(0, alice_.authorization.size() - 1);
  EXPECT_EQ(cache_.Find(prefix, realm()), nullptr);
}

TEST_F(AuthCacheTest, ADeactivatedUserIsRefusedAtOnce) {
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  UserPatch p;
  p.is_active = false;
  ASSERT_TRUE(service_->UpdateUser(realm_, alice_.id, p));
  EXPECT_EQ(cache_.Find(alice_.authorization, realm()), nullptr);
  Response r = Ping(alice_.authorization);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Msg(r), "Account is deactivated");
}

TEST_F(AuthCacheTest, ARoleChangeDropsTheCachedCaller) {
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  ASSERT_NE(cache_.Find(alice_.authorization, realm()), nullptr);
  UserPatch p;
  p.role = Role::kGuest;
  ASSERT_TRUE(service_->UpdateUser(realm_, alice_.id, p));
  EXPECT_EQ(cache_.Find(alice_.authorization, realm()), nullptr);
  // Checked in full again, and kept again.
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  EXPECT_NE(cache_.Find(alice_.authorization, realm()), nullptr);
}

TEST_F(AuthCacheTest, TheCallerOfOneRealmIsNotUsedForAnother) {
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  const Realm& other = *service_->FindRealmById(other_realm_);
  EXPECT_EQ(cache_.Find(alice_.authorization, other), nullptr);
  Response r = Ping(alice_.authorization, "other.localhost");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Msg(r), "Account is not associated with this subdomain");
}

TEST_F(AuthCacheTest, TooLongHeadersAreNotKept) {
  Caller caller{service_->FindRealmById(realm_), alice_.id};
  caller.directory_generation = realm().directory_generation();
  const std::string longest(AuthCache::kMaxHeader, 'h');
  cache_.Store(longest, caller);
  EXPECT_NE(cache_.Find(longest, realm()), nullptr);
  const std::string too_long(AuthCache::kMaxHeader + 1, 'h');
  cache_.Store(too_long, caller);
  EXPECT_EQ(cache_.Find(too_long, realm()), nullptr);
}

TEST_F(AuthCacheTest, ANewerHeaderReplacesTheLessRecentOfItsSet) {
  // Three headers with the same set: the one used last survives the third.
  Caller caller{service_->FindRealmById(realm_), alice_.id};
  caller.directory_generation = realm().directory_generation();
  std::vector<std::string> same_set;
  const auto set_of = [](const std::string& h) {
    return AuthCache::SetIndex(AuthTag(h));
  };
  for (int i = 0; same_set.size() < 3; ++i) {
    std::string h = "h" + std::to_string(i);
    if (same_set.empty() || set_of(h) == set_of(same_set.front())) {
      same_set.push_back(h);
    }
  }
  cache_.Store(same_set[0], caller);
  cache_.Store(same_set[1], caller);
  ASSERT_NE(cache_.Find(same_set[0], realm()), nullptr);  // now the recent
  cache_.Store(same_set[2], caller);
  EXPECT_NE(cache_.Find(same_set[0], realm()), nullptr);
  EXPECT_EQ(cache_.Find(same_set[1], realm()), nullptr);
  EXPECT_NE(cache_.Find(same_set[2], realm()), nullptr);
}

// The table keeps no header, only its two keyed hashes: a header whose
// tag equals a kept one's (forced here; without the key nobody can find
// one) is still not taken for it, since its second hash differs.
TEST_F(AuthCacheTest, AHeaderWhoseTagMatchesAKeptOneIsToldApartByItsCheck) {
  ASSERT_EQ(Ping(alice_.authorization).status, 200u);
  const Caller* kept = cache_.Find(alice_.authorization, realm());
  ASSERT_NE(kept, nullptr);
  const Caller alice = *kept;
  const std::string other =
      "Basic " + Base64Encode(alice_.email + ":" + std::string(32, 'x'));
  const AuthHash a = AuthHashOf(alice_.authorization);
  const AuthHash b = AuthHashOf(other);
  ASSERT_NE(a.check, b.check);
  // Alice's header kept; another header that had Alice's tag.
  AuthCache forced;
  forced.Store(alice_.authorization, a, alice);
  ASSERT_NE(forced.Find(a, realm()), nullptr);
  EXPECT_EQ(forced.Find(AuthHash{a.tag, b.check}, realm()), nullptr);
  // The same the other way round: the other header kept under Alice's tag.
  AuthCache swapped;
  swapped.Store(other, AuthHash{a.tag, b.check}, alice);
  EXPECT_EQ(swapped.Find(a, realm()), nullptr);
  EXPECT_NE(swapped.Find(AuthHash{a.tag, b.check}, realm()), nullptr);
}

TEST_F(AuthCacheTest, TheConnectionKeepsItsLastCallerUnderTheSameRules) {
  ConnectionAuth conn;
  AuthMemo& connection = conn.memo;
  ASSERT_EQ(Ping(alice_.authorization, "localhost", &conn).status, 200u);
  const Caller* c = connection.Find(alice_.authorization, realm());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->user_id, alice_.id);
  // Another header, another realm: not this entry.
  EXPECT_EQ(connection.Find(alice_.authorization + "x", realm()), nullptr);
  EXPECT_EQ(connection.Find(alice_.authorization,
                            *service_->FindRealmById(other_realm_)),
            nullptr);
  // Without the tag (the connection's next request), the same answers.
  EXPECT_EQ(connection.FindUntagged(alice_.authorization, realm()), c);
  std::string last_byte = alice_.authorization;
  last_byte.back() ^= 1;
  EXPECT_EQ(connection.FindUntagged(last_byte, realm()), nullptr);
  EXPECT_EQ(connection.FindUntagged(alice_.authorization + "x", realm()),
            nullptr);
  EXPECT_EQ(connection.FindUntagged(alice_.authorization,
                                    *service_->FindRealmById(other_realm_)),
            nullptr);
  // A failure on the connection keeps the previous success, and is still
  // refused in full.
  const std::string wrong =
      "Basic " + Base64Encode(alice_.email + ":" + std::string(32, 'x'));
  EXPECT_EQ(Ping(wrong, "localhost", &conn).status, 401u);
  EXPECT_EQ(connection.Find(wrong, realm()), nullptr);
  // A directory change drops it; the next request checks in full.
  UserPatch p;
  p.is_active = false;
  ASSERT_TRUE(service_->UpdateUser(realm_, alice_.id, p));
  EXPECT_EQ(connection.Find(alice_.authorization, realm()), nullptr);
  EXPECT_EQ(connection.FindUntagged(alice_.authorization, realm()), nullptr);
  Response r = Ping(alice_.authorization, "localhost", &conn);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Msg(r), "Account is deactivated");
}

// A connection that carries several users' requests (a reverse proxy's) is
// looked up by tag until a request finds its memo again; either way each
// request gets its own caller and a directory change is seen at once.
TEST_F(AuthCacheTest, AConnectionOfManyUsersIsLookedUpByTagUntilItsMemoHits) {
  const User bob = AddUser(realm_, "bob@example.com");
  ConnectionAuth conn;
  // First request: checked in full, kept; the next one goes by tag.
  ASSERT_EQ(Ping(alice_.authorization, "localhost", &conn).status, 200u);
  EXPECT_TRUE(conn.by_tag);
  EXPECT_EQ(conn.memo.caller.user_id, alice_.id);
  // The same header again: found by tag, so back to the untagged lookup.
  ASSERT_EQ(Ping(alice_.authorization, "localhost", &conn).status, 200u);
  EXPECT_FALSE(conn.by_tag);
  ASSERT_EQ(Ping(alice_.authorization, "localhost", &conn).status, 200u);
  EXPECT_FALSE(conn.by_tag);
  EXPECT_EQ(conn.memo.caller.user_id, alice_.id);
  // Users taking turns: each request is another user's, found in the
  // thread's cache or checked in full, and kept with its own caller.
  for (int i = 0; i < 4; ++i) {
    const User& u = i % 2 == 0 ? bob : alice_;
    ASSERT_EQ(Ping(u.authorization, "localhost", &conn).status, 200u);
    EXPECT_TRUE(conn.by_tag);
    EXPECT_EQ(conn.memo.caller.user_id, u.id);
  }
  // A failure changes nothing kept.
  const std::string wrong =
      "Basic " + Base64Encode(bob.email + ":" + std::string(32, 'x'));
  EXPECT_EQ(Ping(wrong, "localhost", &conn).status, 401u);
  EXPECT_TRUE(conn.by_tag);
  EXPECT_EQ(conn.memo.caller.user_id, alice_.id);
  // Looked up by tag, a deactivated user is refused at once.
  UserPatch p;
  p.is_active = false;
  ASSERT_TRUE(service_->UpdateUser(realm_, alice_.id, p));
  Response r = Ping(alice_.authorization, "localhost", &conn);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(Msg(r), "Account is deactivated");
}

}  // namespace
}  // namespace presence::api
