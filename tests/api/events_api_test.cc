// EventsApi driven directly with an authenticated caller and decoded
// parameters: register, poll (at once, parked, resumed), patch and delete a
// queue, and the errors of each.
#include "api/events_api.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "api_test_world.h"

namespace presence::api {
namespace {

class CountingWaiter : public QueueWaiter {
 public:
  void Wake() override { ++wakes; }
  void Supersede() override { ++supersedes; }
  std::atomic<int> wakes{0};
  std::atomic<int> supersedes{0};
};

class EventsApiTest : public testing::ApiTestWorld {
 protected:
  void SetUp() override {
    ApiTestWorld::SetUp();
    alice_ = AddUser("alice@example.com");
    bob_ = AddUser("bob@example.com");
    api_ = std::make_unique<EventsApi>(service_.get(), hub_.get(), &options_);
  }

  static RequestParams Params(std::string_view query) {
    auto p = RequestParams::Parse(query, {}, {});
    EXPECT_TRUE(p.has_value()) << query;
    return p ? std::move(*p) : *RequestParams::Parse({}, {}, {});
  }

  std::string Register(std::string_view query) {
    RequestParams p = Params(query);
    auto r = api_->Register(CallerOf(alice_), p);
    EXPECT_TRUE(r.has_value());
    if (!r) return {};
    return std::string(Json(*r).at("queue_id").as_string());
  }

  ApiResult<Response> Poll(const std::string& query,
                           std::shared_ptr<QueueWaiter> waiter = nullptr) {
    Request req = MakeRequest("GET", "/api/v1/events");
    req.waiter = std::move(waiter);
    RequestParams p = Params(query);
    return api_->GetEvents(req, CallerOf(alice_), p);
  }

  void BobPings() {
    ASSERT_TRUE(service_->Report(CallerOf(bob_), ReportStatus::kActive,
                                 clock_.NowMicros()));
  }

  User alice_, bob_;
  std::unique_ptr<EventsApi> api_;
};

TEST_F(EventsApiTest, RegisterAnswersTheStateAskedFor) {
  RequestParams p = Params(
      "event_types=%5B%22presence%22%5D&fetch_event_types=%5B%22realm%22%5D"
      "&colour=blue");
  auto r = api_->Register(CallerOf(alice_), p);
  ASSERT_TRUE(r.has_value());
  auto o = Json(*r);
  EXPECT_EQ(o.at("last_event_id"), -1);
  EXPECT_EQ(o.at("zulip_feature_level"), kZulipFeatureLevel);
  EXPECT_EQ(o.at("realm_presence_disabled"), false);
  EXPECT_EQ(o.at("event_queue_longpoll_timeout_seconds"),
            options_.heartbeat_seconds + 45);
  EXPECT_FALSE(o.contains("presences"));  // not fetched
  EXPECT_EQ(o.at("ignored_parameters_unsupported"),
            (boost::json::array{"colour"}));
  EXPECT_EQ(hub_->Stats().queues, 1u);
}

TEST_F(EventsApiTest, RegisterRejectsMalformedJsonParameters) {
  RequestParams p = Params("event_types=presence");
  auto r = api_->Register(CallerOf(alice_), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().http_status, 400u);
  p = Params("presence_user_ids=%5B%22x%22%5D");
  r = api_->Register(CallerOf(alice_), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().msg, "presence_user_ids is not a list of user ids");
  EXPECT_EQ(hub_->Stats().queues, 0u);
}

TEST_F(EventsApiTest, PollAnswersAtOnceWhenEventsWait) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  BobPings();
  auto r = Poll("queue_id=" + queue + "&last_event_id=-1");
  ASSERT_TRUE(r.has_value());
  ASSERT_FALSE(r->parked);
  auto o = Json(*r);
  EXPECT_EQ(o.at("queue_id").as_string(), queue);
  const auto& events = o.at("events").as_array();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].at("type"), "presence");
  EXPECT_EQ(events[0].at("user_id"), bob_.id);
  EXPECT_EQ(events[0].at("id"), 0);
}

TEST_F(EventsApiTest, PollParksThenResumeAnswersTheWokenEvents) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  auto waiter = std::make_shared<CountingWaiter>();
  auto r = Poll("queue_id=" + queue + "&last_event_id=-1", waiter);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->parked);
  EXPECT_EQ(r->parked_poll.queue_id, queue);
  EXPECT_EQ(r->parked_poll.user_id, alice_.id);
  EXPECT_EQ(hub_->Stats().parked, 1u);
  BobPings();
  ASSERT_EQ(waiter->wakes, 1);
  auto woken = api_->Resume(r->parked_poll, waiter, /*superseded=*/false);
  ASSERT_TRUE(woken);
  ASSERT_FALSE(woken->parked);
  EXPECT_EQ(Json(*woken).at("events").as_array().size(), 1u);
}

TEST_F(EventsApiTest, DontBlockAnswersAtOnceWithNoEvents) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  auto waiter = std::make_shared<CountingWaiter>();
  auto r = Poll("queue_id=" + queue + "&dont_block=true", waiter);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->parked);
  EXPECT_TRUE(Json(*r).at("events").as_array().empty());
  EXPECT_EQ(hub_->Stats().parked, 0u);
}

TEST_F(EventsApiTest, PollErrors) {
  auto r = Poll("last_event_id=-1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "REQUEST_VARIABLE_MISSING");
  r = Poll("queue_id=nope");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "BAD_EVENT_QUEUE_ID");
  EXPECT_EQ(r.error().msg, "Bad event queue ID: nope");
  EXPECT_EQ(r.error().extra.at("queue_id"), "nope");
  r = Poll("queue_id=x&dont_block=perhaps");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().http_status, 400u);
}

TEST_F(EventsApiTest, AnotherUsersQueueIsABadQueue) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  RequestParams p = Params("queue_id=" + queue);
  auto r = api_->DeleteQueue(CallerOf(bob_), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "BAD_EVENT_QUEUE_ID");
  EXPECT_EQ(hub_->Stats().queues, 1u);
}

TEST_F(EventsApiTest, DeleteDropsTheQueue) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  RequestParams p = Params("queue_id=" + queue);
  auto r = api_->DeleteQueue(CallerOf(alice_), p);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(Json(*r).at("result"), "success");
  EXPECT_EQ(hub_->Stats().queues, 0u);
  p = Params("queue_id=" + queue);
  EXPECT_FALSE(api_->DeleteQueue(CallerOf(alice_), p).has_value());
}

TEST_F(EventsApiTest, PatchNarrowsTheQueueToASubset) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  RequestParams p = Params("queue_id=" + queue + "&presence_user_ids=%5B" +
                           std::to_string(alice_.id) + "%5D");
  auto r = api_->PatchQueue(CallerOf(alice_), p);
  ASSERT_TRUE(r.has_value());
  BobPings();  // bob is outside the subset: no event
  auto poll = Poll("queue_id=" + queue + "&dont_block=true");
  ASSERT_TRUE(poll.has_value());
  EXPECT_TRUE(Json(*poll).at("events").as_array().empty());

  p = Params("queue_id=" + queue);
  r = api_->PatchQueue(CallerOf(alice_), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "REQUEST_VARIABLE_MISSING");
}

TEST_F(EventsApiTest, RelaysOnlyQueuesAnotherNodeOwns) {
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  options_.queue_owner = [](std::string_view id) -> std::optional<std::string> {
    if (id == "remote-1") return "127.0.0.1:9";
    return std::nullopt;
  };
  Request req = MakeRequest("GET", "/api/v1/events");
  RequestParams local = Params("queue_id=" + queue);
  EXPECT_FALSE(api_->RelayIfForeign(req, local));
  RequestParams remote = Params("queue_id=remote-1");
  auto relay = api_->RelayIfForeign(req, remote);
  ASSERT_TRUE(relay);
  EXPECT_EQ(relay->forward_to, "127.0.0.1:9");
  EXPECT_EQ(Json(*relay).at("code"), "BAD_EVENT_QUEUE_ID");
  req.forwarded = true;  // never relayed twice
  EXPECT_FALSE(api_->RelayIfForeign(req, remote));
}

// Issue 15: /register's lists are bounded, with Zulip's 400 BAD_REQUEST, and
// nothing is registered.
TEST_F(EventsApiTest, Issue15_RegisterRefusesListsOverTheirBound) {
  options_.max_event_types = 3;
  options_.max_presence_user_ids = 2;
  const std::string four = "%5B%22a%22%2C%22b%22%2C%22c%22%2C%22d%22%5D";
  for (std::string_view name : {"event_types", "fetch_event_types"}) {
    RequestParams p = Params(std::string(name) + "=" + four);
    auto r = api_->Register(CallerOf(alice_), p);
    ASSERT_FALSE(r.has_value()) << name;
    EXPECT_EQ(r.error().http_status, 400u);
    EXPECT_EQ(r.error().code, "BAD_REQUEST");
    EXPECT_EQ(r.error().msg, std::string(name) + " has more than 3 entries");
  }
  // client_capabilities: as many entries as the lists, unknown ones too.
  RequestParams caps = Params(
      "client_capabilities=%7B%22a%22%3Atrue%2C%22b%22%3Atrue%2C%22c%22%3Atrue"
      "%2C%22d%22%3Atrue%7D");
  auto c = api_->Register(CallerOf(alice_), caps);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().http_status, 400u);
  EXPECT_EQ(c.error().msg, "client_capabilities has more than 3 entries");
  RequestParams p = Params("presence_user_ids=%5B1%2C2%2C3%5D");
  auto r = api_->Register(CallerOf(alice_), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().msg, "presence_user_ids has more than 2 entries");
  EXPECT_EQ(hub_->Stats().queues, 0u);
  // At the bound: accepted; PATCH /events has the same bound.
  const std::string queue = Register(
      "event_types=%5B%22a%22%2C%22b%22%2C%22presence%22%5D"
      "&presence_user_ids=%5B1%2C2%5D");
  ASSERT_FALSE(queue.empty());
  p = Params("queue_id=" + queue + "&presence_user_ids=%5B1%2C2%2C3%5D");
  auto patched = api_->PatchQueue(CallerOf(alice_), p);
  ASSERT_FALSE(patched.has_value());
  EXPECT_EQ(patched.error().code, "BAD_REQUEST");
}

// Issue 15: GET /events has a budget of its own. Non-blocking polls with
// nothing new are counted and refused past it with 429 and Retry-After; a
// poll that parks alone on its queue is always fine.
TEST_F(EventsApiTest, Issue15_NonBlockingPollLoopIsRefusedParkingIsNot) {
  options_.events_poll_limit_per_minute = 3;
  api_ = std::make_unique<EventsApi>(service_.get(), hub_.get(), &options_);
  const std::string queue = Register("event_types=%5B%22presence%22%5D");
  for (int i = 0; i < 3; ++i) {
    auto r = Poll("queue_id=" + queue + "&dont_block=true");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200u) << i;
  }
  auto r = Poll("queue_id=" + queue + "&dont_block=true");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 429u);
  auto o = Json(*r);
  EXPECT_EQ(o.at("result"), "error");
  EXPECT_EQ(o.at("code"), "RATE_LIMIT_HIT");
  EXPECT_GT(o.at("retry-after").to_number<double>(), 0);
  bool retry_after = false;
  for (const auto& [name, value] : r->headers) {
    if (name == "Retry-After") retry_after = true;
  }
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(hub_->Stats().polls_refused, 1u);
  // Unknown queues are counted too (and refused now).
  EXPECT_EQ(Poll("queue_id=nope&dont_block=true")->status, 429u);
  // Parking alone, and the answer that brings a new event: free.
  auto waiter = std::make_shared<CountingWaiter>();
  auto parked = Poll("queue_id=" + queue + "&last_event_id=-1", waiter);
  ASSERT_TRUE(parked.has_value());
  EXPECT_TRUE(parked->parked);
  BobPings();
  auto fresh = Poll("queue_id=" + queue + "&last_event_id=-1&dont_block=true");
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->status, 200u);
  EXPECT_EQ(Json(*fresh).at("events").as_array().size(), 1u);
}

}  // namespace
}  // namespace presence::api
