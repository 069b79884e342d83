// Router::Resume: a parked GET /events answered again without routing,
// parsing or authentication, exactly as handling the request again would
// answer it, and declining where only the whole request can tell.
#include "api/router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/parse.hpp>

#include "api/event_encoder.h"
#include "core/event_hub.h"
#include "core/presence_service.h"
#include "testing/memory_store.h"
#include "util/crypto.h"

namespace presence::api {
namespace {

class CountingWaiter : public QueueWaiter {
 public:
  void Wake() override { ++wakes; }
  void Supersede() override { ++supersedes; }
  std::atomic<int> wakes{0};
  std::atomic<int> supersedes{0};
};

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::move(*PresenceService::Create(&store_, &clock_));
    realm_ = *service_->CreateRealm("", "Test");
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, HubOptions{});
    service_->SetListener(hub_.get());
    router_ = std::make_unique<Router>(service_.get(), hub_.get(), &options_);
    alice_ = AddUser("alice@example.com");
    bob_ = AddUser("bob@example.com");
    waiter_ = std::make_shared<CountingWaiter>();
  }

  struct User {
    UserId id = 0;
    std::string authorization;
  };
  User AddUser(const std::string& email) {
    NewUser u;
    u.email = email;
    u.full_name = email;
    auto c = service_->CreateUser(realm_, u);
    return {c->user_id, "Basic " + Base64Encode(email + ":" + c->api_key)};
  }

  Response Call(std::string_view method, std::string_view target,
                const User& who, std::string_view body = {},
                std::shared_ptr<QueueWaiter> waiter = nullptr,
                bool resumed = false) {
    Request req;
    req.method = method;
    req.target = target;
    req.host = "localhost";
    req.authorization = who.authorization;
    req.has_authorization = true;
    req.content_type = "application/x-www-form-urlencoded";
    req.body = body;
    req.waiter = std::move(waiter);
    req.resumed = resumed;
    return router_->Handle(req);
  }

  std::string Register(const User& who) {
    Response r = Call("POST", "/api/v1/register", who,
                      "event_types=%5B%22presence%22%5D&"
                      "fetch_event_types=%5B%5D&slim_presence=true");
    EXPECT_EQ(r.status, 200u) << r.body;
    return std::string(boost::json::parse(r.body).at("queue_id").as_string());
  }

  // Bob comes online: one presence event to every queue of the realm.
  void BobPings() {
    Caller c{service_->FindRealmById(realm_), bob_.id};
    ASSERT_TRUE(service_->Report(c, ReportStatus::kActive, clock_.NowMicros()));
  }

  ManualClock clock_{SecondsToMicros(1'700'000'000)};
  store::MemoryStore store_;
  std::unique_ptr<PresenceService> service_;
  ApiOptions options_;
  JsonEventEncoder encoder_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<Router> router_;
  RealmId realm_ = 0;
  User alice_, bob_;
  std::shared_ptr<CountingWaiter> waiter_;
};

TEST_F(RouterTest, WokenPollAnswersByteForByteAsTheRequestWould) {
  const std::string queue = Register(alice_);
  // An unknown parameter, so that the answer's tail lists it.
  const std::string target =
      "/api/v1/events?queue_id=" + queue + "&last_event_id=-1&colour=blue";
  Response parked = Call("GET", target, alice_, {}, waiter_);
  ASSERT_TRUE(parked.parked) << parked.body;
  EXPECT_EQ(parked.parked_poll.queue_id, queue);
  BobPings();
  ASSERT_EQ(waiter_->wakes, 1);

  std::optional<Response> woken =
      router_->Resume(parked.parked_poll, waiter_, /*superseded=*/false);
  ASSERT_TRUE(woken);
  ASSERT_FALSE(woken->parked);
  // The same request handled again from the top (last_event_id=-1 did not
  // acknowledge the event, so it is still there).
  Response again = Call("GET", target, alice_, {}, waiter_, /*resumed=*/true);
  EXPECT_EQ(woken->status, again.status);
  EXPECT_EQ(woken->content_type, again.content_type);
  EXPECT_EQ(woken->headers, again.headers);
  EXPECT_EQ(woken->rate, again.rate);
  EXPECT_EQ(woken->body, again.body);
  auto v = boost::json::parse(woken->body).as_object();
  EXPECT_EQ(v.at("events").as_array().size(), 1u);
  EXPECT_EQ(v.at("ignored_parameters_unsupported").as_array().at(0), "colour");
}

TEST_F(RouterTest, WokenForNothingNewParksAgain) {
  const std::string queue = Register(alice_);
  Response parked =
      Call("GET", "/api/v1/events?queue_id=" + queue + "&last_event_id=-1",
           alice_, {}, waiter_);
  ASSERT_TRUE(parked.parked);
  std::optional<Response> r =
      router_->Resume(parked.parked_poll, waiter_, /*superseded=*/false);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->parked);
  EXPECT_EQ(hub_->Stats().parked, 1u);
  BobPings();
  EXPECT_EQ(waiter_->wakes, 1);
}

TEST_F(RouterTest, SupersededPollAnswersAtOnceWithNoEvents) {
  const std::string queue = Register(alice_);
  Response parked =
      Call("GET", "/api/v1/events?queue_id=" + queue + "&last_event_id=-1",
           alice_, {}, waiter_);
  ASSERT_TRUE(parked.parked);
  std::optional<Response> r =
      router_->Resume(parked.parked_poll, waiter_, /*superseded=*/true);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->parked);
  EXPECT_EQ(r->status, 200u);
  EXPECT_TRUE(boost::json::parse(r->body).at("events").as_array().empty());
  EXPECT_EQ(hub_->Stats().parked, 0u);
}

TEST_F(RouterTest, ResumeDeclinesOnceTheCallersDirectoryChanged) {
  const std::string queue = Register(alice_);
  const std::string target =
      "/api/v1/events?queue_id=" + queue + "&last_event_id=-1";
  Response parked = Call("GET", target, alice_, {}, waiter_);
  ASSERT_TRUE(parked.parked);
  UserPatch patch;
  patch.role = Role::kModerator;
  ASSERT_TRUE(service_->UpdateUser(realm_, alice_.id, patch));
  BobPings();
  // Authentication could give another answer now: only the whole request
  // may say what it is.
  EXPECT_FALSE(router_->Resume(parked.parked_poll, waiter_, false));
  Response again = Call("GET", target, alice_, {}, waiter_, /*resumed=*/true);
  EXPECT_EQ(again.status, 200u) << again.body;
}

TEST_F(RouterTest, DeactivatedWhileParkedGetsWhatTheRequestGets) {
  const std::string queue = Register(alice_);
  const std::string target =
      "/api/v1/events?queue_id=" + queue + "&last_event_id=-1";
  Response parked = Call("GET", target, alice_, {}, waiter_);
  ASSERT_TRUE(parked.parked);
  UserPatch patch;
  patch.is_active = false;
  ASSERT_TRUE(service_->UpdateUser(realm_, alice_.id, patch));
  EXPECT_EQ(waiter_->wakes, 1);  // the queue was dropped at once
  EXPECT_FALSE(router_->Resume(parked.parked_poll, waiter_, false));
  Response again = Call("GET", target, alice_, {}, waiter_, /*resumed=*/true);
  EXPECT_EQ(again.status, 401u);
  EXPECT_NE(again.body.find("Account is deactivated"), std::string::npos)
      << again.body;
}

TEST_F(RouterTest, DeletedQueueDeclinesAndTheRequestSaysBadQueue) {
  const std::string queue = Register(alice_);
  const std::string target =
      "/api/v1/events?queue_id=" + queue + "&last_event_id=-1";
  Response parked = Call("GET", target, alice_, {}, waiter_);
  ASSERT_TRUE(parked.parked);
  ASSERT_TRUE(hub_->Delete(queue, alice_.id));
  EXPECT_EQ(waiter_->wakes, 1);
  EXPECT_FALSE(router_->Resume(parked.parked_poll, waiter_, false));
  Response again = Call("GET", target, alice_, {}, waiter_, /*resumed=*/true);
  EXPECT_EQ(again.status, 400u);
  EXPECT_NE(again.body.find("BAD_EVENT_QUEUE_ID"), std::string::npos)
      << again.body;
}

// Issue #15: the head alone decides a large request whose credentials fail.
TEST_F(RouterTest, Issue15_PrecheckRefusesFailingCredentialsFromTheHead) {
  auto head = [](std::string_view method, std::string_view target,
                 const User& who) {
    Request req;
    req.method = method;
    req.target = target;
    req.host = "localhost";
    req.authorization = who.authorization;
    req.has_authorization = !who.authorization.empty();
    return req;
  };
  User wrong{alice_.id, "Basic " + Base64Encode("alice@example.com:" +
                                                std::string(32, 'x'))};
  for (const User& who : {wrong, User{}, User{0, "Basic !!"}}) {
    auto r = router_->Precheck(head("POST", "/api/v1/users/me/presence", who));
    ASSERT_TRUE(r) << who.authorization;
    EXPECT_EQ(r->status, 401u);
  }
  // Good credentials: the body is read and the request handled.
  EXPECT_FALSE(router_->Precheck(head("POST", "/api/v1/register", alice_)));
  // Answers that do not need the caller are left to Handle: a route without
  // authentication, an unknown path or realm.
  EXPECT_FALSE(
      router_->Precheck(head("POST", "/api/v1/server_settings", wrong)));
  EXPECT_FALSE(router_->Precheck(head("POST", "/api/v1/no/such", wrong)));
  Request elsewhere = head("POST", "/api/v1/users/me/presence", wrong);
  elsewhere.host = "nosuchrealm.localhost";
  EXPECT_FALSE(router_->Precheck(elsewhere));
  // The admin API without its token.
  auto admin = router_->Precheck(head("POST", "/admin/v1/realms", wrong));
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->status, 401u);
}

}  // namespace
}  // namespace presence::api
