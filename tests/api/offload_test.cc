// Scale-out: what may wait on the shared store is handed to
// ApiOptions::offload (the store workers) and never run on the thread that
// handles the request, an I/O thread in presenced (api/offload.h). The
// service here is a ReplicaWriter over the in-memory shared store; the
// "workers" are a queue this test drains itself, so it sees exactly what
// ran before they did.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "api/event_encoder.h"
#include "api/router.h"
#include "core/event_hub.h"
#include "core/presence_service.h"
#include "testing/memory_shared_store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace presence::api {
namespace {

class OffloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conn_ = store_.NewConnection();
    auto s =
        PresenceService::CreateShared(conn_.get(), &clock_, SharedOptions{});
    ASSERT_TRUE(s) << s.error().message();
    service_ = std::move(*s);
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, HubOptions{});
    service_->SetListener(hub_.get());
    auto realm = service_->CreateRealm("", "Test");
    ASSERT_TRUE(realm);
    realm_ = *realm;
    NewUser u;
    u.email = "ann@example.com";
    u.full_name = "Ann";
    auto c = service_->CreateUser(realm_, u);
    ASSERT_TRUE(c);
    user_ = c->user_id;
    auth_ = "Basic " + Base64Encode(u.email + ":" + c->api_key);
    options_.admin_token = "admin-token-for-tests-0123456789";
    options_.offload = [this](std::function<void()> task) {
      std::lock_guard<std::mutex> lock(mu_);
      queued_.push_back(std::move(task));
      return true;
    };
    router_ = std::make_unique<Router>(service_.get(), hub_.get(), &options_);
  }

  void TearDown() override { service_->CancelWaits(); }

  // Handles `req` as an I/O thread does: a deferred answer's continuation
  // runs as soon as it is handed back (on whichever thread hands it back).
  void Start(const Request& req) { Drive(router_->Handle(req)); }
  void Drive(Response r) {
    if (r.deferred) {
      auto deferred = std::move(r.deferred);
      deferred([this](std::function<Response()> next) { Drive(next()); });
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(r);
    cv_.notify_all();
  }
  // Waits (briefly) until the request is answered or handed to a worker.
  void Settle() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(200),
                 [&] { return answer_.has_value(); });
  }
  std::size_t queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_.size();
  }
  bool answered() {
    std::lock_guard<std::mutex> lock(mu_);
    return answer_.has_value();
  }
  // Runs what was offloaded, as the store workers would, then waits for
  // the answer.
  Response RunWorkers() {
    while (true) {
      std::function<void()> task;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queued_.empty()) break;
        task = std::move(queued_.front());
        queued_.pop_front();
      }
      task();
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5),
                 [&] { return answer_.has_value(); });
    EXPECT_TRUE(answer_.has_value());
    return answer_ ? *answer_ : Response{};
  }
  Request ApiRequest(std::string_view method, std::string_view target,
                     std::string_view body = {}) {
    Request req;
    req.method = method;
    req.target = target;
    req.host = "localhost";
    req.authorization = auth_;
    req.has_authorization = true;
    req.content_type = "application/x-www-form-urlencoded";
    req.body = body;
    return req;
  }
  bool PresenceEnabled() {
    bool enabled = false;
    service_->FindRealmById(realm_)->WithMember(
        user_, [&](const Member* m) { enabled = m && m->presence_enabled; });
    return enabled;
  }

  ManualClock clock_{SecondsToMicros(1'700'000'000)};
  store::MemorySharedStore store_;
  std::unique_ptr<store::SharedStore> conn_;
  std::unique_ptr<PresenceService> service_;
  JsonEventEncoder encoder_;
  std::unique_ptr<EventHub> hub_;
  ApiOptions options_;
  std::unique_ptr<Router> router_;
  RealmId realm_ = 0;
  UserId user_ = 0;
  std::string auth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queued_;
  std::optional<Response> answer_;
};

TEST_F(OffloadTest, Issue14_SettingsWriteRunsOffTheRequestThread) {
  Start(ApiRequest("PATCH", "/api/v1/settings", "presence_enabled=false"));
  Settle();
  // The store step (a barrier) ran; the write waits for a worker.
  EXPECT_FALSE(answered());
  EXPECT_EQ(queued(), 1u);
  EXPECT_TRUE(PresenceEnabled());
  Response r = RunWorkers();
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_FALSE(PresenceEnabled());
}

TEST_F(OffloadTest, Issue14_AdminWriteRunsOffTheRequestThread) {
  const std::string target =
      "/admin/v1/realms/" + std::to_string(realm_) + "/users";
  Request req = ApiRequest("POST", target,
                           R"({"email":"bob@example.com","full_name":"Bob"})");
  req.authorization = "Bearer admin-token-for-tests-0123456789";
  req.content_type = "application/json";
  Start(req);
  Settle();
  EXPECT_FALSE(answered());
  EXPECT_EQ(queued(), 1u);
  EXPECT_EQ(service_->FindRealmById(realm_)->member_count(), 1u);
  Response r = RunWorkers();
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(service_->FindRealmById(realm_)->member_count(), 2u);
}

TEST_F(OffloadTest, Issue14_UnknownSubdomainIsLookedUpOffTheRequestThread) {
  Request req = ApiRequest("GET", "/api/v1/server_settings");
  req.host = "nosuch.localhost";
  Start(req);
  Settle();
  EXPECT_FALSE(answered());
  EXPECT_EQ(queued(), 1u);
  Response r = RunWorkers();
  EXPECT_EQ(r.status, 404u) << r.body;
  EXPECT_NE(r.body.find("NONEXISTENT_SUBDOMAIN"), std::string::npos);
}

TEST_F(OffloadTest, Issue14_QueueOwnerIsLookedUpOffTheRequestThread) {
  int asked = 0;
  options_.queue_owner = [&](std::string_view) {
    ++asked;
    return std::optional<std::string>();  // not registered
  };
  options_.queue_owner_cached = [](std::string_view) {
    return std::optional<std::optional<std::string>>();  // not cached
  };
  Start(ApiRequest("GET", "/api/v1/events?queue_id=9:abc&last_event_id=-1"));
  Settle();
  EXPECT_FALSE(answered());
  EXPECT_EQ(asked, 0);
  EXPECT_EQ(queued(), 1u);
  Response r = RunWorkers();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_NE(r.body.find("BAD_EVENT_QUEUE_ID"), std::string::npos);
}

TEST_F(OffloadTest, Issue14_CachedQueueOwnerNeedsNoWorker) {
  int asked = 0;
  options_.queue_owner = [&](std::string_view) {
    ++asked;
    return std::optional<std::string>();
  };
  options_.queue_owner_cached = [](std::string_view) {
    return std::optional<std::optional<std::string>>(
        std::optional<std::string>());  // known: not registered
  };
  Start(ApiRequest("GET", "/api/v1/events?queue_id=9:abc&last_event_id=-1"));
  Settle();
  ASSERT_TRUE(answered());
  EXPECT_EQ(queued(), 0u);
}

TEST_F(OffloadTest, Issue14_EveryAdminRouteThatMayWaitIsMarked) {
  // A realm-scoped route syncs its realm with the store first; a change
  // writes to it: either waits, so either must run off the I/O thread.
  for (const AdminApi::Entry& e : AdminApi::Routes()) {
    if (e.has(kNeedsTestClock) || e.has(kNeedsFaultInjector)) continue;
    if (e.has(kRealmScoped) || (e.methods & kGet) == 0) {
      EXPECT_TRUE(e.has(kMayWait)) << e.pattern;
    }
  }
}

}  // namespace
}  // namespace presence::api
