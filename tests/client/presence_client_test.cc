// PresenceClient against a fake transport and a manual clock: every rule of
// the ping loop, the event loop, merging and recovery, deterministically.
#include "client/presence_client.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "client/manual_scheduler.h"
#include "fake_transport.h"
#include "util/crypto.h"

namespace presence::client {
namespace {

using testing::FakeTransport;

constexpr Micros kSec = kMicrosPerSecond;
constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
// The server's clock runs 1000 s ahead of ours: ages must use the server's.
constexpr std::int64_t kServer = 1'700'001'000;

constexpr char kRegister[] = "/api/v1/register";
constexpr char kEvents[] = "/api/v1/events";
constexpr char kPresence[] = "/api/v1/users/me/presence";
constexpr char kUsers[] = "/api/v1/users";

std::string Ok(std::string fields) {
  return R"({"result":"success","msg":"")" +
         (fields.empty() ? "" : "," + fields) + "}";
}

std::string Entry(std::int64_t active, std::int64_t idle) {
  return R"({"active_timestamp":)" + std::to_string(active) +
         R"(,"idle_timestamp":)" + std::to_string(idle) + "}";
}

// A FL-419 register answer; `realm` false leaves out what old servers lack.
std::string RegisterBody(std::string queue = "q1", std::string presences = "",
                         std::int64_t server_ts = kServer,
                         std::int64_t last_update_id = 40, bool realm = true,
                         int ping = 60) {
  if (presences.empty()) {
    presences = R"({"2":)" + Entry(server_ts - 10, server_ts - 10) +
                R"(,"3":)" + Entry(server_ts - 1000, server_ts - 20) + "}";
  }
  std::string f =
      R"("queue_id":")" + queue +
      R"(","last_event_id":-1,"zulip_feature_level":419,)" + R"("presences":)" +
      presences + R"(,"server_timestamp":)" + std::to_string(server_ts) +
      ".25" + R"(,"presence_last_update_id":)" + std::to_string(last_update_id);
  if (realm) {
    f += R"(,"realm_presence_disabled":false,)"
         R"("server_presence_ping_interval_seconds":)" +
         std::to_string(ping) +
         R"(,"server_presence_offline_threshold_seconds":200,)"
         R"("event_queue_longpoll_timeout_seconds":90,)"
         R"("user_settings":{"presence_enabled":true})";
  }
  return Ok(f);
}

std::string PresenceAnswer(std::string presences, std::int64_t server_ts,
                           std::int64_t last_update_id) {
  return Ok(R"("presences":)" + presences + R"(,"server_timestamp":)" +
            std::to_string(server_ts) + R"(,"presence_last_update_id":)" +
            std::to_string(last_update_id));
}

std::string Events(std::string list) {
  return Ok(R"("events":)" + list + R"(,"queue_id":"q1")");
}

constexpr char kMembers[] = R"({"result":"success","msg":"","members":[
  {"user_id":1,"email":"alice@example.com","full_name":"Alice","is_bot":false,
   "is_active":true,"date_joined":"2023-11-01T00:00:00.000000+00:00"},
  {"user_id":2,"email":"bob@example.com","full_name":"Bob","is_bot":false,
   "is_active":true},
  {"user_id":3,"email":"carol@example.com","full_name":"Carol",
   "is_bot":false,"is_active":true},
  {"user_id":4,"email":"dave@example.com","full_name":"Dave","is_bot":false,
   "is_active":true},
  {"user_id":9,"email":"bot@example.com","full_name":"Bot","is_bot":true,
   "is_active":true}]})";

class RecordingObserver : public PresenceClient::Observer {
 public:
  void OnPresenceChanged() override { ++changes; }
  void OnStateChanged(ConnectionState s, const std::string& d) override {
    states.push_back(s);
    details.push_back(d);
  }
  int changes = 0;
  std::vector<ConnectionState> states;
  std::vector<std::string> details;
};

class PresenceClientTest : public ::testing::Test {
 protected:
  PresenceClientTest() : scheduler_(kT0) {
    options_.email = "alice@example.com";
    options_.api_key = "abcdefghijklmnopqrstuvwxyz012345";
    input_.RecordInput(kT0);
  }

  PresenceClient& Client() {
    if (!client_) {
      client_ =
          std::make_unique<PresenceClient>(options_, &transport_, &scheduler_,
                                           &input_, [this] { return jitter_; });
      client_->set_observer(&observer_);
    }
    return *client_;
  }

  // Start, answer the register; leaves the announce ping, /users and the
  // first poll waiting.
  void StartRegistered(std::string body = RegisterBody()) {
    Client().Start();
    auto reg = transport_.Take(kRegister);
    ASSERT_TRUE(reg);
    reg->Respond(200, std::move(body));
  }

  // StartRegistered, then answer the announce ping and /users.
  void Connect(std::string body = RegisterBody()) {
    StartRegistered(std::move(body));
    auto announce = transport_.Take(kPresence);
    ASSERT_TRUE(announce);
    EXPECT_EQ(announce->Form()["ping_only"], "true");
    announce->Respond(200, Ok(""));
    auto users = transport_.Take(kUsers);
    ASSERT_TRUE(users);
    users->Respond(200, kMembers);
  }

  // Advances time until a periodic report waits, and takes it.
  FakeTransport::Call NextReport(Micros max_wait = 120 * kSec) {
    const Micros until = scheduler_.Now() + max_wait;
    while (!transport_.Has(kPresence) && scheduler_.Now() < until) {
      scheduler_.AdvanceBy(kSec / 10);
    }
    auto r = transport_.Take(kPresence);
    EXPECT_TRUE(r) << "no report within " << max_wait / kSec << " s";
    return r ? std::move(*r) : FakeTransport::Call{};
  }

  // Runs the scheduler until `path` is requested; returns how long it took.
  Micros TimeUntil(std::string_view path, Micros max_wait = 600 * kSec) {
    const Micros start = scheduler_.Now();
    while (!transport_.Has(path) && scheduler_.Now() - start < max_wait) {
      const auto next = scheduler_.NextDue();
      if (!next) break;
      scheduler_.AdvanceBy(*next - scheduler_.Now());
    }
    return transport_.Has(path) ? scheduler_.Now() - start : -1;
  }

  double jitter_ = 0.5;
  ClientOptions options_;
  FakeTransport transport_;
  ManualScheduler scheduler_;
  ManualInputSource input_;
  RecordingObserver observer_;
  std::unique_ptr<PresenceClient> client_;
};

// --- Registering
// ---------------------------------------------------------------

TEST_F(PresenceClientTest, RegistersSlimWithSimplifiedPresenceEvents) {
  Client().Start();
  EXPECT_EQ(Client().state(), ConnectionState::kConnecting);
  auto reg = transport_.Take(kRegister);
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->request.method, "POST");
  EXPECT_EQ(reg->request.Header("Authorization"),
            "Basic " + Base64Encode("alice@example.com:"
                                    "abcdefghijklmnopqrstuvwxyz012345"));
  EXPECT_EQ(reg->request.Header("Content-Type"),
            "application/x-www-form-urlencoded");
  auto form = reg->Form();
  EXPECT_EQ(form["slim_presence"], "true");
  auto caps = boost::json::parse(form["client_capabilities"]).as_object();
  EXPECT_EQ(caps["simplified_presence_events"], true);
  EXPECT_EQ(caps["presence_per_client"], true);  // presenced's extension
  auto types = boost::json::parse(form["event_types"]).as_array();
  EXPECT_NE(
      std::find(types.begin(), types.end(), boost::json::value("presence")),
      types.end());
  auto fetch = boost::json::parse(form["fetch_event_types"]).as_array();
  EXPECT_NE(std::find(fetch.begin(), fetch.end(), boost::json::value("realm")),
            fetch.end());
  EXPECT_FALSE(form.contains("presence_history_limit_days"));
}

TEST_F(PresenceClientTest, HistoryLimitIsSentWhenSet) {
  options_.history_limit_days = 365;
  Connect();
  EXPECT_EQ(transport_.Take(kRegister), std::nullopt);
  auto report = NextReport();
  EXPECT_EQ(report.Form()["history_limit_days"], "365");
}

TEST_F(PresenceClientTest, SnapshotFillsTableAnnouncesFetchesUsersAndPolls) {
  StartRegistered();
  EXPECT_EQ(Client().state(), ConnectionState::kConnected);
  EXPECT_EQ(Client().queue_id(), "q1");
  EXPECT_EQ(Client().registrations(), 1);
  const auto& t = Client().table();
  EXPECT_EQ(t.last_update_id(), 40);
  EXPECT_EQ(t.offline_threshold_seconds(), 200);
  EXPECT_EQ(t.GetStatus(2), PresenceStatus::kActive);
  EXPECT_EQ(t.GetStatus(3), PresenceStatus::kIdle);
  EXPECT_GT(observer_.changes, 0);

  // One ping_only report announces the client at once.
  auto announce = transport_.Take(kPresence);
  ASSERT_TRUE(announce);
  auto form = announce->Form();
  EXPECT_EQ(form["status"], "active");
  EXPECT_EQ(form["ping_only"], "true");
  EXPECT_EQ(form["new_user_input"], "true");
  EXPECT_EQ(form["last_update_id"], "40");
  EXPECT_EQ(form["slim_presence"], "true");
  EXPECT_TRUE(transport_.Take(kUsers));

  auto poll = transport_.Take(kEvents);
  ASSERT_TRUE(poll);
  EXPECT_EQ(poll->request.method, "GET");
  EXPECT_EQ(poll->Form()["queue_id"], "q1");
  EXPECT_EQ(poll->Form()["last_event_id"], "-1");
  // The long poll may last the server's longpoll timeout, plus a margin.
  EXPECT_EQ(poll->request.timeout, 90 * kSec + 15 * kSec);
  EXPECT_EQ(transport_.pending(), 0u);
}

TEST_F(PresenceClientTest, ServerNowFollowsTheServersClock) {
  StartRegistered();
  EXPECT_DOUBLE_EQ(Client().ServerNow(), kServer + 0.25);
  scheduler_.AdvanceBy(10 * kSec);
  EXPECT_DOUBLE_EQ(Client().ServerNow(), kServer + 10.25);
}

// --- The ping loop
// ---------------------------------------------------------------

TEST_F(PresenceClientTest, ReportsEveryServerPingIntervalWithTheCursor) {
  Connect(RegisterBody("q1", "", kServer, 40, true, /*ping=*/30));
  EXPECT_EQ(Client().ping_interval(), 30 * kSec);
  scheduler_.AdvanceBy(30 * kSec - 1);
  EXPECT_FALSE(transport_.Has(kPresence));
  scheduler_.AdvanceBy(1);
  auto report = transport_.Take(kPresence);
  ASSERT_TRUE(report);
  auto form = report->Form();
  EXPECT_EQ(form["ping_only"], "false");
  EXPECT_EQ(form["status"], "active");
  EXPECT_EQ(form["last_update_id"], "40");
  // The answer arrives 5 s later; the next report is an interval after it
  // (self-rescheduling: no catch-up burst after a stall).
  scheduler_.AdvanceBy(5 * kSec);
  report->Respond(200, PresenceAnswer("{}", kServer + 35, 45));
  EXPECT_EQ(Client().reports(), 1);
  scheduler_.AdvanceBy(30 * kSec - 1);
  EXPECT_FALSE(transport_.Has(kPresence));
  scheduler_.AdvanceBy(1);
  auto next = transport_.Take(kPresence);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->Form()["last_update_id"], "45");
}

TEST_F(PresenceClientTest, OnlyOneReportInFlight) {
  Connect(RegisterBody("q1", "", kServer, 40, true, /*ping=*/30));
  auto report = NextReport();
  scheduler_.AdvanceBy(300 * kSec);  // the answer never comes
  EXPECT_FALSE(transport_.Has(kPresence));
  report.Respond(200, PresenceAnswer("{}", kServer, 40));
}

TEST_F(PresenceClientTest, OldServerFallbacks) {
  // No realm fields: 60 s pings and a 140 s offline threshold.
  const std::string presences =
      R"({"2":)" + Entry(kServer - 150, kServer - 150) + R"(,"3":)" +
      Entry(kServer - 130, kServer - 130) + "}";
  Connect(RegisterBody("q1", presences, kServer, 40, /*realm=*/false));
  EXPECT_EQ(Client().ping_interval(), 60 * kSec);
  EXPECT_EQ(Client().table().offline_threshold_seconds(), 140);
  EXPECT_EQ(Client().table().GetStatus(2), PresenceStatus::kOffline);
  EXPECT_EQ(Client().table().GetStatus(3), PresenceStatus::kActive);
  EXPECT_EQ(TimeUntil(kPresence), 60 * kSec);
}

TEST_F(PresenceClientTest, PingIntervalOverride) {
  options_.ping_interval = 5 * kSec;
  Connect();
  EXPECT_EQ(TimeUntil(kPresence), 5 * kSec);
}

TEST_F(PresenceClientTest, ReportsIdleAfterFiveMinutesWithoutInput) {
  Connect();  // input at kT0, registered at kT0
  std::vector<std::string> statuses;
  for (int i = 0; i < 6; ++i) {
    auto r = NextReport();
    statuses.push_back(r.Form()["status"]);
    r.Respond(200, PresenceAnswer("{}", kServer + 60 * (i + 1), 40));
  }
  // Reports at 60..240 s are active; at 300 s (exactly five minutes without
  // input) and later, idle.
  EXPECT_EQ(statuses, (std::vector<std::string>{"active", "active", "active",
                                                "active", "idle", "idle"}));
  EXPECT_FALSE(Client().active());
}

TEST_F(PresenceClientTest, GoingIdleSendsNothingByItself) {
  Connect();
  auto r = NextReport();  // at 60 s
  r.Respond(200, PresenceAnswer("{}", kServer + 60, 40));
  scheduler_.AdvanceBy(59 * kSec);  // 119 s; nothing between ticks
  EXPECT_FALSE(transport_.Has(kPresence));
}

TEST_F(PresenceClientTest, ResumedInputSendsPingOnlyAtOnce) {
  Connect();
  // Idle from 300 s on; the report at 360 s says so.
  for (int i = 0; i < 6; ++i) {
    NextReport().Respond(200, PresenceAnswer("{}", kServer, 40));
  }
  ASSERT_FALSE(Client().active());
  scheduler_.AdvanceBy(10 * kSec);
  input_.RecordInput(scheduler_.Now());
  // Noticed within the activity check interval (1 s)...
  scheduler_.AdvanceBy(kSec);
  auto ping = transport_.Take(kPresence);
  ASSERT_TRUE(ping);
  auto form = ping->Form();
  EXPECT_EQ(form["ping_only"], "true");
  EXPECT_EQ(form["status"], "active");
  EXPECT_EQ(form["new_user_input"], "true");
  ping->Respond(200, Ok(""));
  EXPECT_TRUE(Client().active());
  // ...and only once.
  scheduler_.AdvanceBy(10 * kSec);
  EXPECT_FALSE(transport_.Has(kPresence));
}

TEST_F(PresenceClientTest, NotifyInputReportsResumeWithoutWaiting) {
  Connect();
  for (int i = 0; i < 6; ++i) {
    NextReport().Respond(200, PresenceAnswer("{}", kServer, 40));
  }
  input_.RecordInput(scheduler_.Now());
  Client().NotifyInput();
  auto ping = transport_.Take(kPresence);
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->Form()["ping_only"], "true");
}

TEST_F(PresenceClientTest, InputWhileActiveSendsNothingExtra) {
  Connect();
  scheduler_.AdvanceBy(30 * kSec);
  input_.RecordInput(scheduler_.Now());
  Client().NotifyInput();
  scheduler_.AdvanceBy(2 * kSec);
  EXPECT_FALSE(transport_.Has(kPresence));
}

TEST_F(PresenceClientTest, NewUserInputClearsOnlyAfterADeliveredReport) {
  Client().Start();
  transport_.Take(kRegister)->Respond(200, RegisterBody());
  // The announce fails: its input is still news for the next report.
  transport_.Take(kPresence)->Fail();
  auto r1 = NextReport();
  EXPECT_EQ(r1.Form()["new_user_input"], "true");
  r1.Respond(200, PresenceAnswer("{}", kServer + 60, 40));
  auto r2 = NextReport();
  EXPECT_EQ(r2.Form()["new_user_input"], "false");
  input_.RecordInput(scheduler_.Now());
  r2.Respond(200, PresenceAnswer("{}", kServer + 120, 40));
  EXPECT_EQ(NextReport().Form()["new_user_input"], "true");
}

// --- Merging
// -------------------------------------------------------------------

TEST_F(PresenceClientTest, IncrementalAnswersMergeAndUsersAgeIntoOffline) {
  Connect();  // bob (2) active at kServer - 10
  auto r1 = NextReport();
  // Dave (4) appears; bob is not in the answer and is 70 s old: active.
  r1.Respond(
      200, PresenceAnswer(R"({"4":)" + Entry(kServer + 59, kServer + 59) + "}",
                          kServer + 60, 41));
  const auto& t = Client().table();
  EXPECT_EQ(t.GetStatus(4), PresenceStatus::kActive);
  EXPECT_EQ(t.GetStatus(2), PresenceStatus::kActive);
  EXPECT_EQ(t.last_update_id(), 41);
  auto r2 = NextReport();
  EXPECT_EQ(r2.Form()["last_update_id"], "41");
  // Nothing new for 200 s after bob's last report: he ages out.
  r2.Respond(200, PresenceAnswer("{}", kServer + 190, 41));
  EXPECT_EQ(t.GetStatus(2), PresenceStatus::kOffline);
  EXPECT_EQ(t.Get(2)->last_active, kServer - 10);
}

TEST_F(PresenceClientTest, ModernEventsAreJudgedAgainstTheServersClock) {
  Connect();
  scheduler_.AdvanceBy(100 * kSec);
  // Server time is now about kServer + 100. Dave was active 250 s ago by the
  // server's clock: offline. (By the local clock, 1000 s behind, the same
  // timestamp would be in the future and read as active.)
  const std::int64_t old = kServer + 100 - 250;
  const std::int64_t fresh = kServer + 100 - 5;
  transport_.Take(kEvents)->Respond(
      200, Events(R"([{"type":"presence","presences":{"4":)" + Entry(old, old) +
                  R"(,"3":)" + Entry(fresh, fresh) + R"(},"id":0}])"));
  EXPECT_EQ(Client().table().GetStatus(4), PresenceStatus::kOffline);
  EXPECT_EQ(Client().table().GetStatus(3), PresenceStatus::kActive);
  EXPECT_EQ(Client().last_event_id(), 0);
}

TEST_F(PresenceClientTest, EventsAdvanceTheQueueCursorAndPollAgain) {
  Connect();
  transport_.Take(kEvents)->Respond(200, Events(R"([{"type":"heartbeat","id":0},
                      {"type":"presence","user_id":4,
                       "server_timestamp":1700001000.5,
                       "presence":{"website":{"client":"website",
                         "status":"active","timestamp":1700001000,
                         "pushable":false}},"id":1}])"));
  EXPECT_EQ(Client().table().GetStatus(4), PresenceStatus::kActive);
  auto poll = transport_.Take(kEvents);
  ASSERT_TRUE(poll);
  EXPECT_EQ(poll->Form()["last_event_id"], "1");
  EXPECT_EQ(poll->Form()["queue_id"], "q1");
}

TEST_F(PresenceClientTest, PresenceEnabledEventsDecideMyOwnStatus) {
  Connect();
  const auto& t = Client().table();
  ASSERT_EQ(t.current_user(), 1);
  EXPECT_EQ(t.GetStatus(1), PresenceStatus::kActive);
  transport_.Take(kEvents)->Respond(
      200, Events(R"([{"type":"user_settings","op":"update",
                       "property":"presence_enabled","value":false,"id":0}])"));
  EXPECT_EQ(t.GetStatus(1), PresenceStatus::kOffline);
  transport_.Take(kEvents)->Respond(
      200, Events(R"([{"type":"update_global_notifications",
                       "notification_name":"presence_enabled",
                       "setting":true,"id":1}])"));
  EXPECT_EQ(t.GetStatus(1), PresenceStatus::kActive);
}

TEST_F(PresenceClientTest, InvisibleAtRegisterIsOffline) {
  std::string body = RegisterBody();
  body.replace(body.find(R"("presence_enabled":true)"), 23,
               R"("presence_enabled":false)");
  Connect(body);
  EXPECT_EQ(Client().table().GetStatus(1), PresenceStatus::kOffline);
}

TEST_F(PresenceClientTest, DirectoryGivesNamesAndFillIn) {
  Connect();
  const auto& t = Client().table();
  ASSERT_NE(t.FindUser(2), nullptr);
  EXPECT_EQ(t.FindUser(2)->full_name, "Bob");
  // Alice (me), Bob, Carol with data or me; Dave without; the bot never.
  std::vector<UserId> ids;
  for (const auto& u : t.Users()) ids.push_back(u.user_id);
  EXPECT_EQ(ids, (std::vector<UserId>{1, 2, 3, 4}));
}

TEST_F(PresenceClientTest, NoUsersEndpointIsNotAnError) {
  StartRegistered();
  transport_.Take(kPresence)->Respond(200, Ok(""));
  transport_.Take(kUsers)->Respond(
      404, R"({"result":"error","msg":"Not Found","code":"BAD_REQUEST"})");
  EXPECT_EQ(Client().state(), ConnectionState::kConnected);
  EXPECT_FALSE(Client().table().has_directory());
}

TEST_F(PresenceClientTest, UnknownUsersRefetchTheDirectoryAtMostOncePerMinute) {
  Connect();
  auto event = [](UserId id, int event_id) {
    return Events(R"([{"type":"presence","presences":{")" + std::to_string(id) +
                  R"(":)" + Entry(kServer, kServer) + R"(},"id":)" +
                  std::to_string(event_id) + "}]");
  };
  transport_.Take(kEvents)->Respond(200, event(77, 0));
  EXPECT_FALSE(transport_.Has(kUsers));  // fetched less than a minute ago
  scheduler_.AdvanceBy(61 * kSec);
  while (auto r = transport_.Take(kPresence)) r->Respond(500, "");
  transport_.Take(kEvents)->Respond(200, event(77, 1));
  EXPECT_TRUE(transport_.Take(kUsers));
}

// --- Recovery
// ------------------------------------------------------------------

TEST_F(PresenceClientTest, BadEventQueueIdRegistersAgainAtOnce) {
  Connect();
  transport_.Take(kEvents)->Respond(200, Events("[]"));
  transport_.Take(kEvents)->Respond(
      400, R"({"result":"error","msg":"Bad event queue ID: q1",)"
           R"("code":"BAD_EVENT_QUEUE_ID","queue_id":"q1"})");
  EXPECT_EQ(Client().queue_id(), "");
  auto reg = transport_.Take(kRegister);
  ASSERT_TRUE(reg);  // no time passed
  const std::string presences =
      R"({"4":)" + Entry(kServer + 5, kServer + 5) + "}";
  reg->Respond(200, RegisterBody("q2", presences, kServer + 5, 50));
  EXPECT_EQ(Client().registrations(), 2);
  EXPECT_EQ(Client().queue_id(), "q2");
  EXPECT_EQ(Client().table().last_update_id(), 50);
  EXPECT_EQ(Client().table().GetStatus(4), PresenceStatus::kActive);
  auto poll = transport_.Take(kEvents);
  ASSERT_TRUE(poll);
  EXPECT_EQ(poll->Form()["queue_id"], "q2");
  EXPECT_EQ(poll->Form()["last_event_id"], "-1");
  // The ping loop was not restarted: no second announce.
  EXPECT_FALSE(transport_.Has(kPresence));
}

TEST_F(PresenceClientTest, BadQueueOnAFreshQueueBacksOffBeforeRegistering) {
  Connect();
  transport_.Take(kEvents)->Respond(
      400, R"({"result":"error","msg":"x","code":"BAD_EVENT_QUEUE_ID"})");
  EXPECT_FALSE(transport_.Has(kRegister));
  EXPECT_EQ(TimeUntil(kRegister), kSec / 2);
}

TEST_F(PresenceClientTest, NetworkErrorsBackOffExponentiallyWithJitter) {
  Client().Start();
  std::vector<Micros> waits;
  for (int i = 0; i < 8; ++i) {
    transport_.Take(kRegister)->Fail();
    EXPECT_EQ(Client().state(), ConnectionState::kReconnecting);
    waits.push_back(TimeUntil(kRegister));
  }
  // jitter 0.5 of a ceiling of 1, 2, 4, ... s capped at 60 s.
  EXPECT_EQ(waits,
            (std::vector<Micros>{kSec / 2, kSec, 2 * kSec, 4 * kSec, 8 * kSec,
                                 16 * kSec, 30 * kSec, 30 * kSec}));
  // Success resets the backoff: the next failure waits half a second again.
  transport_.Take(kRegister)->Respond(200, RegisterBody());
  EXPECT_EQ(Client().state(), ConnectionState::kConnected);
  transport_.Take(kEvents)->Fail();
  EXPECT_EQ(TimeUntil(kEvents), kSec / 2);
}

TEST_F(PresenceClientTest, JitterComesFromTheInjectedSource) {
  jitter_ = 0.1;
  Client().Start();
  transport_.Take(kRegister)->Fail();
  EXPECT_EQ(TimeUntil(kRegister), kSec / 10);
}

TEST_F(PresenceClientTest, FailedPollRetriesTheSameQueue) {
  Connect();
  transport_.Take(kEvents)->Respond(502, "Bad Gateway");
  EXPECT_EQ(Client().state(), ConnectionState::kReconnecting);
  EXPECT_EQ(TimeUntil(kEvents), kSec / 2);
  EXPECT_FALSE(transport_.Has(kRegister));
  EXPECT_EQ(transport_.Take(kEvents)->Form()["queue_id"], "q1");
}

TEST_F(PresenceClientTest, GarbageAnswersAreRetriedLikeServerErrors) {
  Client().Start();
  transport_.Take(kRegister)->Respond(200, "<html>proxy error</html>");
  EXPECT_EQ(Client().state(), ConnectionState::kReconnecting);
  EXPECT_EQ(TimeUntil(kRegister), kSec / 2);
  transport_.Take(kRegister)->Respond(200, Ok(R"("queue_id":"")"));
  EXPECT_EQ(Client().state(), ConnectionState::kReconnecting);
}

TEST_F(PresenceClientTest, FailedReportRetriesSoonerButBacksOff) {
  Connect();
  NextReport().Respond(503, "");
  EXPECT_EQ(TimeUntil(kPresence), kSec / 2);
  transport_.Take(kPresence)->Fail();
  EXPECT_EQ(TimeUntil(kPresence), kSec);
  transport_.Take(kPresence)->Respond(200, PresenceAnswer("{}", kServer, 40));
  EXPECT_EQ(TimeUntil(kPresence), 60 * kSec);
}

TEST_F(PresenceClientTest, RateLimitedReportWaitsForRetryAfter) {
  Connect();
  NextReport().Respond(
      429,
      R"({"result":"error","msg":"API usage exceeded rate limit",)"
      R"("code":"RATE_LIMIT_HIT","retry-after":7.5})",
      {{"Retry-After", "7.500"}});
  EXPECT_EQ(TimeUntil(kPresence), 7500 * 1000);
}

TEST_F(PresenceClientTest, RateLimitFromTheBodyWhenNoHeader) {
  Client().Start();
  transport_.Take(kRegister)->Respond(
      429, R"({"result":"error","msg":"x","code":"RATE_LIMIT_HIT",)"
           R"("retry-after":3.25})");
  EXPECT_EQ(Client().state(), ConnectionState::kReconnecting);
  EXPECT_EQ(TimeUntil(kRegister), 3250 * 1000);
}

TEST_F(PresenceClientTest, RateLimitHoldsBackEveryKindOfRequest) {
  Connect();
  // The poll is refused for 20 s; a report due meanwhile waits too.
  scheduler_.AdvanceBy(50 * kSec);
  transport_.Take(kEvents)->Respond(
      429, R"({"result":"error","msg":"x","code":"RATE_LIMIT_HIT"})",
      {{"Retry-After", "20"}});
  scheduler_.AdvanceBy(20 * kSec - 1);
  EXPECT_EQ(transport_.pending(), 0u);
  scheduler_.AdvanceBy(1);
  EXPECT_TRUE(transport_.Has(kEvents));
  EXPECT_TRUE(transport_.Has(kPresence));
}

TEST_F(PresenceClientTest, UnauthorizedStopsForGood) {
  Client().Start();
  transport_.Take(kRegister)->Respond(
      401,
      R"({"result":"error","msg":"Invalid API key","code":"UNAUTHORIZED"})",
      {{"WWW-Authenticate", R"(Basic realm="zulip")"}});
  EXPECT_EQ(Client().state(), ConnectionState::kFailed);
  EXPECT_NE(Client().state_detail().find("Invalid API key"), std::string::npos);
  scheduler_.AdvanceBy(3600 * kSec);
  EXPECT_EQ(transport_.pending(), 0u);
  EXPECT_EQ(observer_.states.back(), ConnectionState::kFailed);
}

TEST_F(PresenceClientTest, UnauthorizedReportStopsToo) {
  Connect();
  NextReport().Respond(401,
                       R"({"result":"error","msg":"Account is deactivated",)"
                       R"("code":"UNAUTHORIZED"})");
  EXPECT_EQ(Client().state(), ConnectionState::kFailed);
  EXPECT_EQ(transport_.pending(), 0u);  // the poll was cancelled
}

TEST_F(PresenceClientTest, StopFreesTheQueueAndIgnoresLateAnswers) {
  Connect();
  auto poll = transport_.Take(kEvents);
  ASSERT_TRUE(poll);
  Client().Stop();
  EXPECT_EQ(Client().state(), ConnectionState::kStopped);
  EXPECT_EQ(transport_.cancels(), 1);
  auto del = transport_.Take(kEvents);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->request.method, "DELETE");
  EXPECT_EQ(del->Form()["queue_id"], "q1");
  del->Respond(200, Ok(""));
  // An answer to the old poll arriving now changes nothing.
  poll->Respond(200, Events(R"([{"type":"presence","presences":{"8":)" +
                            Entry(kServer, kServer) + R"(},"id":5}])"));
  EXPECT_EQ(Client().table().Raw(8), nullptr);
  scheduler_.AdvanceBy(3600 * kSec);
  EXPECT_EQ(transport_.pending(), 0u);
}

TEST_F(PresenceClientTest, StartAfterStopRegistersAgain) {
  Connect();
  Client().Stop();
  while (transport_.pending()) transport_.Take(kEvents)->Respond(200, Ok(""));
  Client().Start();
  EXPECT_TRUE(transport_.Take(kRegister));
}

TEST_F(PresenceClientTest, WakingFromSuspendReportsAndPollsAgainAtOnce) {
  Connect();
  auto stale_poll = transport_.Take(kEvents);
  ASSERT_TRUE(stale_poll);
  // The laptop sleeps ten minutes; its timers fire late on waking.
  scheduler_.Jump(600 * kSec);
  scheduler_.RunDue();
  EXPECT_EQ(Client().resyncs(), 1);
  EXPECT_EQ(transport_.cancels(), 1);  // the dead long poll is dropped
  auto report = transport_.Take(kPresence);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->Form()["ping_only"], "false");
  EXPECT_EQ(report->Form()["status"], "idle");  // no input for 10 minutes
  auto poll = transport_.Take(kEvents);
  ASSERT_TRUE(poll);
  EXPECT_EQ(poll->Form()["queue_id"], "q1");
  // A late answer to the old poll is ignored.
  stale_poll->Respond(200, Events(R"([{"type":"presence","presences":{"8":)" +
                                  Entry(kServer, kServer) + R"(},"id":9}])"));
  EXPECT_EQ(Client().table().Raw(8), nullptr);
  // The queue did not survive the sleep: a new one, at once.
  poll->Respond(400,
                R"({"result":"error","msg":"x","code":"BAD_EVENT_QUEUE_ID"})");
  EXPECT_TRUE(transport_.Has(kRegister));
}

TEST_F(PresenceClientTest, ShortDelaysAreNotSuspends) {
  Connect();
  scheduler_.Jump(20 * kSec);
  scheduler_.RunDue();
  EXPECT_EQ(Client().resyncs(), 0);
  EXPECT_EQ(transport_.cancels(), 0);
}

TEST_F(PresenceClientTest, DestroyingTheClientCancelsItsTimers) {
  Connect();
  client_.reset();
  scheduler_.AdvanceBy(3600 * kSec);
  EXPECT_EQ(scheduler_.pending(), 0u);
}

// --- User status (issue #18)
// -------------------------------------------------

constexpr char kStatus[] = "/api/v1/users/me/status";

TEST_F(PresenceClientTest, RegistersForUserStatusWithTheExtensions) {
  Client().Start();
  auto reg = transport_.Take(kRegister);
  ASSERT_TRUE(reg);
  auto form = reg->Form();
  auto caps = boost::json::parse(form["client_capabilities"]).as_object();
  EXPECT_EQ(caps["user_status_extensions"], true);
  for (const char* field : {"event_types", "fetch_event_types"}) {
    auto types = boost::json::parse(form[field]).as_array();
    EXPECT_NE(std::find(types.begin(), types.end(),
                        boost::json::value("user_status")),
              types.end())
        << field;
  }
}

TEST_F(PresenceClientTest, StatusSnapshotAndEventsReachTheTable) {
  std::string body = RegisterBody();
  body.insert(body.size() - 1,
              R"(,"user_status":{"2":{"status_text":"In a meeting",)"
              R"("emoji_name":"calendar","emoji_code":"1f4c5",)"
              R"("reaction_type":"unicode_emoji","dnd":true,)"
              R"("dnd_end_time":1700001600}})");
  Connect(body);
  const auto& t = Client().table();
  ASSERT_NE(t.GetUserStatus(2), nullptr);
  EXPECT_EQ(t.GetUserStatus(2)->status_text, "In a meeting");
  // The server's clock is kServer (1000 s ahead of ours): dnd holds for
  // 600 s more by the server's clock, whatever ours says.
  EXPECT_TRUE(Client().IsDoNotDisturb(2));
  const int changes = observer_.changes;
  transport_.Take(kEvents)->Respond(
      200, Events(R"([{"type":"user_status","user_id":2,"away":true,"id":0},
                      {"type":"user_status","user_id":3,
                       "status_text":"Lunch","id":1}])"));
  EXPECT_GT(observer_.changes, changes);
  EXPECT_TRUE(t.GetUserStatus(2)->away);
  EXPECT_EQ(t.GetUserStatus(2)->status_text, "In a meeting");
  EXPECT_EQ(t.GetUserStatus(3)->status_text, "Lunch");
  // dnd_end_time passes by the server's clock: no event needed.
  scheduler_.AdvanceBy(601 * kSec);
  EXPECT_FALSE(Client().IsDoNotDisturb(2));
}

TEST_F(PresenceClientTest, SetOwnStatusSendsOnlyWhatIsSet) {
  Connect();
  std::optional<bool> ok;
  StatusUpdate u;
  u.status_text = "In a meeting";
  u.emoji_name = "calendar";
  u.emoji_code = "1f4c5";
  u.reaction_type = "unicode_emoji";
  u.scheduled_end_time = 1'700'003'600;
  Client().SetOwnStatus(u, [&](PresenceClient::CallStatus s) { ok = !!s; });
  auto call = transport_.Take(kStatus);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->request.method, "POST");
  EXPECT_EQ(call->Form(), (std::map<std::string, std::string>{
                              {"status_text", "In a meeting"},
                              {"emoji_name", "calendar"},
                              {"emoji_code", "1f4c5"},
                              {"reaction_type", "unicode_emoji"},
                              {"scheduled_end_time", "1700003600"}}));
  EXPECT_FALSE(ok);
  call->Respond(200, Ok(""));
  EXPECT_EQ(ok, true);
}

TEST_F(PresenceClientTest, ClearOwnStatusClearsTextAndEmoji) {
  Connect();
  Client().ClearOwnStatus();
  auto call = transport_.Take(kStatus);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->Form(), (std::map<std::string, std::string>{
                              {"status_text", ""}, {"emoji_name", ""}}));
  call->Respond(200, Ok(""));
}

TEST_F(PresenceClientTest, SetDoNotDisturbWithAndWithoutAnEnd) {
  Connect();
  Client().SetDoNotDisturb(true, 1'700'005'000);
  auto on = transport_.Take(kStatus);
  ASSERT_TRUE(on);
  EXPECT_EQ(on->Form(), (std::map<std::string, std::string>{
                            {"dnd", "true"}, {"dnd_end_time", "1700005000"}}));
  on->Respond(200, Ok(""));
  Client().SetDoNotDisturb(true);
  auto forever = transport_.Take(kStatus);
  ASSERT_TRUE(forever);
  EXPECT_EQ(forever->Form()["dnd_end_time"], "0");
  forever->Respond(200, Ok(""));
  Client().SetDoNotDisturb(false);
  auto off = transport_.Take(kStatus);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->Form(),
            (std::map<std::string, std::string>{{"dnd", "false"}}));
  off->Respond(200, Ok(""));
}

TEST_F(PresenceClientTest, SetOwnStatusReportsTheServersRefusal) {
  Connect();
  std::optional<PresenceClient::CallStatus> got;
  StatusUpdate u;
  u.status_text = std::string(61, 'x');
  Client().SetOwnStatus(u, [&](PresenceClient::CallStatus s) { got = s; });
  transport_.Take(kStatus)->Respond(
      400, R"({"result":"error","code":"BAD_REQUEST",)"
           R"x("msg":"status_text is too long (limit: 60 characters)"})x");
  ASSERT_TRUE(got);
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error(), Errc::kInvalidArgument);
  EXPECT_NE(got->error().message().find("status_text is too long"),
            std::string::npos);
  // A refusal does not disturb the connection.
  EXPECT_EQ(Client().state(), ConnectionState::kConnected);
  // After the client is gone the callback never runs.
  bool called = false;
  Client().SetOwnStatus(u, [&](PresenceClient::CallStatus) { called = true; });
  auto pending = transport_.Take(kStatus);
  ASSERT_TRUE(pending);
  client_.reset();
  pending->Respond(200, Ok(""));
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace presence::client
