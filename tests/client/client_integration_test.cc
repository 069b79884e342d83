// PresenceClient over HttpTransport against a real presenced on loopback:
// two clients see each other, idle and resume travel, a lost queue and a
// server restart are recovered from, 429 and bad keys are honoured.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "client/asio_scheduler.h"
#include "client/buddy_list.h"
#include "client/http_transport.h"
#include "client/presence_client.h"
#include "presenced_process.h"

namespace presence::client {
namespace {

using namespace std::chrono_literals;
using testing::PresencedProcess;
using testing::TempDir;

constexpr Micros kMs = 1000;

// Wraps a transport and records what went through it (loop thread only).
class RecordingTransport final : public Transport {
 public:
  struct Record {
    Micros sent_at = 0;
    HttpRequest request;
    unsigned status = 0;  // 0: no answer (yet)
    std::string retry_after;
    Micros answered_at = 0;
  };

  explicit RecordingTransport(Transport* inner, const Scheduler* clock)
      : inner_(inner), clock_(clock) {}

  void Send(HttpRequest request, Callback done) override {
    const std::size_t i = log_.size();
    log_.push_back({clock_->Now(), request});
    inner_->Send(std::move(request),
                 [this, i, done = std::move(done)](Result<HttpResponse> r) {
                   log_[i].answered_at = clock_->Now();
                   if (r) {
                     log_[i].status = r->status;
                     if (auto h = r->Header("Retry-After")) {
                       log_[i].retry_after = std::string(*h);
                     }
                   }
                   done(std::move(r));
                 });
  }
  void CancelAll() override { inner_->CancelAll(); }

  const std::vector<Record>& log() const { return log_; }

 private:
  Transport* inner_;
  const Scheduler* clock_;
  std::vector<Record> log_;
};

// One client with its real scheduler and transport, living on the loop.
struct LiveClient {
  std::unique_ptr<AsioScheduler> scheduler;
  std::unique_ptr<HttpTransport> http;
  std::unique_ptr<RecordingTransport> transport;
  ManualInputSource input;
  std::unique_ptr<PresenceClient> client;
};

class ClientIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = PresencedProcess::Start(dir_.path(), &error, "127.0.0.1:0",
                                      ExtraServerArgs());
    ASSERT_TRUE(server_) << error;
    auto realm = server_->CreateRealm();
    ASSERT_TRUE(realm);
    for (auto [email, name] : {std::pair{"alice@example.com", "Alice"},
                               std::pair{"bob@example.com", "Bob"},
                               std::pair{"carol@example.com", "Carol"}}) {
      auto u = server_->CreateUser(*realm, email, name);
      ASSERT_TRUE(u);
      users_.push_back(*u);
    }
    loop_ = std::thread([this] { ioc_.run(); });
  }

  void TearDown() override {
    if (!loop_.joinable()) return;  // SetUp failed before the loop ran
    OnLoop([this] {
      for (auto& c : clients_) {
        c->client->Stop();
        c->client.reset();
        c->transport.reset();
        c->http.reset();
        c->scheduler.reset();
      }
      return 0;
    });
    work_.reset();
    ioc_.stop();
    if (loop_.joinable()) loop_.join();
  }

  virtual std::vector<std::string> ExtraServerArgs() { return {}; }

  // Runs `f` on the loop thread and returns its value.
  template <class F>
  auto OnLoop(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(ioc_, [&task] { task(); });
    return result.get();
  }

  // Polls `pred` on the loop until it holds or `timeout` passes.
  template <class P>
  bool WaitFor(P pred, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (OnLoop(pred)) return true;
      std::this_thread::sleep_for(20ms);
    }
    return OnLoop(pred);
  }

  LiveClient* NewClient(const PresencedProcess::User& u,
                        ClientOptions options = {}) {
    options.email = u.email;
    options.api_key = u.key;
    options.backoff = BackoffPolicy{100 * kMs, 1000 * kMs, 2.0};
    auto live = std::make_unique<LiveClient>();
    LiveClient* raw = live.get();
    clients_.push_back(std::move(live));
    OnLoop([&] {
      raw->scheduler = std::make_unique<AsioScheduler>(ioc_.get_executor());
      raw->http = std::move(
          *HttpTransport::Create(ioc_.get_executor(), server_->url()));
      raw->transport = std::make_unique<RecordingTransport>(
          raw->http.get(), raw->scheduler.get());
      raw->input.RecordInput(raw->scheduler->Now());
      raw->client = std::make_unique<PresenceClient>(
          options, raw->transport.get(), raw->scheduler.get(), &raw->input);
      raw->client->Start();
      return 0;
    });
    return raw;
  }

  bool Sees(LiveClient* viewer, std::int64_t user, PresenceStatus status) {
    return viewer->client->table().GetStatus(user) == status;
  }

  TempDir dir_;
  std::unique_ptr<PresencedProcess> server_;
  std::vector<PresencedProcess::User> users_;
  boost::asio::io_context ioc_;
  std::optional<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_{ioc_.get_executor()};
  std::thread loop_;
  std::vector<std::unique_ptr<LiveClient>> clients_;
};

TEST_F(ClientIntegrationTest, TwoClientsSeeEachOtherWithNames) {
  ClientOptions fast;
  fast.ping_interval = 500 * kMs;
  LiveClient* alice = NewClient(users_[0], fast);
  LiveClient* bob = NewClient(users_[1], fast);
  const auto alice_id = users_[0].id, bob_id = users_[1].id;
  ASSERT_TRUE(WaitFor([&] {
    return Sees(alice, bob_id, PresenceStatus::kActive) &&
           Sees(bob, alice_id, PresenceStatus::kActive);
  }));
  ASSERT_TRUE(WaitFor([&] {
    const UserInfo* info = alice->client->table().FindUser(bob_id);
    return info != nullptr && info->full_name == "Bob" &&
           alice->client->table().current_user() == alice_id;
  }));
  // Carol never reported: listed (small realm), offline.
  EXPECT_TRUE(OnLoop([&] {
    auto row = alice->client->table().Get(users_[2].id);
    return row && row->status == PresenceStatus::kOffline && !row->has_data;
  }));
  // Many requests went over few connections (keep-alive): the long poll
  // holds one, the rest share the others.
  ASSERT_TRUE(WaitFor([&] { return alice->client->reports() >= 6; }));
  const auto connects = OnLoop([&] { return alice->http->connects(); });
  const auto requests = OnLoop([&] { return alice->transport->log().size(); });
  EXPECT_LE(connects, 4u);
  EXPECT_GE(requests, 2 * connects);
  EXPECT_EQ(OnLoop([&] { return alice->client->state(); }),
            ConnectionState::kConnected);
}

// Issue #18: the standard user status fields against the real server.
TEST_F(ClientIntegrationTest, OwnStatusReachesOthersAndIsCleared) {
  LiveClient* alice = NewClient(users_[0]);
  LiveClient* bob = NewClient(users_[1]);
  const auto alice_id = users_[0].id;
  ASSERT_TRUE(WaitFor([&] {
    return alice->client->state() == ConnectionState::kConnected &&
           bob->client->state() == ConnectionState::kConnected;
  }));
  std::promise<PresenceClient::CallStatus> answered;
  OnLoop([&] {
    StatusUpdate u;
    u.status_text = "In a meeting";
    u.emoji_name = "calendar";
    u.emoji_code = "1f4c5";
    u.reaction_type = "unicode_emoji";
    alice->client->SetOwnStatus(
        u, [&](PresenceClient::CallStatus s) { answered.set_value(s); });
    return 0;
  });
  auto result = answered.get_future().get();
  ASSERT_TRUE(result) << result.error().message();
  // Bob's table hears of it through his event queue, and so does Alice's.
  auto says = [&](LiveClient* viewer, std::string_view text) {
    return WaitFor([&] {
      const UserStatus* st = viewer->client->table().GetUserStatus(alice_id);
      return text.empty() ? st == nullptr
                          : st != nullptr && st->status_text == text &&
                                st->emoji_code == "1f4c5";
    });
  };
  ASSERT_TRUE(says(bob, "In a meeting"));
  ASSERT_TRUE(says(alice, "In a meeting"));
  EXPECT_FALSE(OnLoop([&] { return bob->client->IsDoNotDisturb(alice_id); }));
  // A newcomer gets it in the register snapshot.
  LiveClient* carol = NewClient(users_[2]);
  ASSERT_TRUE(says(carol, "In a meeting"));

  OnLoop([&] {
    alice->client->ClearOwnStatus();
    return 0;
  });
  EXPECT_TRUE(says(bob, ""));
  EXPECT_TRUE(says(carol, ""));
}

// Issue #18's extensions against the real server (branch avail18): a
// scheduled end and do-not-disturb reach another client, and end on the
// server's (test) clock with the server's own events.
TEST_F(ClientIntegrationTest, StatusEndAndDoNotDisturbEndOnTheServersClock) {
  constexpr std::int64_t kT = 1'700'000'000;  // 22:13:20 UTC
  ASSERT_TRUE(server_->SetClock(kT));
  LiveClient* alice = NewClient(users_[0]);
  LiveClient* bob = NewClient(users_[1]);
  const auto alice_id = users_[0].id;
  ASSERT_TRUE(WaitFor([&] {
    return alice->client->state() == ConnectionState::kConnected &&
           bob->client->state() == ConnectionState::kConnected;
  }));
  auto call = [&](StatusUpdate u) {
    std::promise<PresenceClient::CallStatus> answered;
    OnLoop([&] {
      alice->client->SetOwnStatus(
          u, [&](PresenceClient::CallStatus s) { answered.set_value(s); });
      return 0;
    });
    return answered.get_future().get();
  };
  StatusUpdate meeting;
  meeting.status_text = "In a meeting";
  meeting.scheduled_end_time = kT + 2400;  // 22:53:20
  auto r = call(meeting);
  ASSERT_TRUE(r) << r.error().message();
  StatusUpdate dnd;
  dnd.dnd = true;
  dnd.dnd_end_time = kT + 3600;
  r = call(dnd);
  ASSERT_TRUE(r) << r.error().message();

  ASSERT_TRUE(WaitFor([&] {
    const UserStatus* st = bob->client->table().GetUserStatus(alice_id);
    return st != nullptr && st->status_text == "In a meeting" &&
           st->scheduled_end_time == kT + 2400 && st->dnd &&
           st->dnd_end_time == kT + 3600;
  }));
  EXPECT_TRUE(OnLoop([&] { return bob->client->IsDoNotDisturb(alice_id); }));
  const auto row = OnLoop([&] {
    for (const auto& b :
         BuddyList::Build(bob->client->table(), bob->client->ServerNow(), 0)) {
      if (b.user_id == alice_id) return b;
    }
    return BuddyRow{};
  });
  EXPECT_EQ(row.status_text, "In a meeting");
  EXPECT_EQ(row.status_until, "until 22:53");
  EXPECT_TRUE(row.dnd);
  EXPECT_EQ(row.dnd_until, "until 23:13");

  // The server clears the status at its end, and says so.
  ASSERT_TRUE(server_->SetClock(kT + 2401));
  ASSERT_TRUE(WaitFor([&] {
    const UserStatus* st = bob->client->table().GetUserStatus(alice_id);
    return st != nullptr && st->status_text.empty() &&
           !st->scheduled_end_time && st->dnd;
  }));
  // And do-not-disturb at its end.
  ASSERT_TRUE(server_->SetClock(kT + 3601));
  EXPECT_TRUE(WaitFor(
      [&] { return bob->client->table().GetUserStatus(alice_id) == nullptr; }));
}

TEST_F(ClientIntegrationTest, IdleAndResumeReachOthers) {
  ClientOptions alice_opts;
  alice_opts.idle_timeout = 1500 * kMs;
  alice_opts.ping_interval = 500 * kMs;
  ClientOptions bob_opts;
  bob_opts.ping_interval = 500 * kMs;
  LiveClient* alice = NewClient(users_[0], alice_opts);
  LiveClient* bob = NewClient(users_[1], bob_opts);
  const auto alice_id = users_[0].id;
  ASSERT_TRUE(
      WaitFor([&] { return Sees(bob, alice_id, PresenceStatus::kActive); }));

  // Alice stops typing; after 1.5 s her reports say idle. Then five
  // minutes pass on the server: her last "active" is 300 s old, her idle
  // reports are fresh, and Bob sees her idle.
  ASSERT_TRUE(WaitFor([&] { return !alice->client->active(); }));
  // Any "active" report still in flight has landed: every presence report
  // so far has its answer, and the latest says idle.
  ASSERT_TRUE(WaitFor([&] {
    const auto& log = alice->transport->log();
    const RecordingTransport::Record* last = nullptr;
    for (const auto& r : log) {
      if (r.request.target != "/api/v1/users/me/presence") continue;
      if (r.status == 0) return false;
      last = &r;
    }
    return last != nullptr && last->status == 200 &&
           last->request.body.find("status=idle") != std::string::npos;
  })) << "no answered idle report after Alice went idle";
  ASSERT_TRUE(server_->SetClock(
      OnLoop([&] { return bob->client->ServerNow(); }) + 300));
  ASSERT_TRUE(
      WaitFor([&] { return Sees(bob, alice_id, PresenceStatus::kIdle); }));

  // She types: one ping_only "active" goes out at once, and Bob sees her
  // active again.
  const std::size_t before =
      OnLoop([&] { return alice->transport->log().size(); });
  OnLoop([&] {
    alice->input.RecordInput(alice->scheduler->Now());
    alice->client->NotifyInput();
    return 0;
  });
  bool ping_only_active = OnLoop([&] {
    const auto& log = alice->transport->log();
    if (log.size() <= before) return false;
    const auto& req = log[before].request;
    return req.target == "/api/v1/users/me/presence" &&
           req.body.find("ping_only=true") != std::string::npos &&
           req.body.find("status=active") != std::string::npos &&
           req.body.find("new_user_input=true") != std::string::npos;
  });
  EXPECT_TRUE(ping_only_active);
  EXPECT_TRUE(
      WaitFor([&] { return Sees(bob, alice_id, PresenceStatus::kActive); }));
}

TEST_F(ClientIntegrationTest, LostQueueIsRegisteredAgain) {
  LiveClient* alice = NewClient(users_[0]);
  ASSERT_TRUE(WaitFor(
      [&] { return alice->client->state() == ConnectionState::kConnected; }));
  const std::string queue = OnLoop([&] { return alice->client->queue_id(); });
  // Someone (here: the test, with Alice's key) deletes the queue; the
  // parked poll answers BAD_EVENT_QUEUE_ID.
  auto del = testing::Api(server_->url(), "DELETE", "/events", users_[0].email,
                          users_[0].key, "queue_id=" + queue);
  ASSERT_TRUE(del);
  ASSERT_EQ(del->status, 200u) << del->body;
  ASSERT_TRUE(WaitFor([&] {
    return alice->client->registrations() == 2 &&
           alice->client->state() == ConnectionState::kConnected;
  }));
  EXPECT_NE(OnLoop([&] { return alice->client->queue_id(); }), queue);
  // The new queue works: Bob's first report reaches Alice as an event.
  LiveClient* bob = NewClient(users_[1]);
  (void)bob;
  EXPECT_TRUE(WaitFor(
      [&] { return Sees(alice, users_[1].id, PresenceStatus::kActive); }));
}

TEST_F(ClientIntegrationTest, SurvivesAServerRestart) {
  ClientOptions fast;
  fast.ping_interval = 300 * kMs;
  LiveClient* alice = NewClient(users_[0], fast);
  ASSERT_TRUE(WaitFor([&] { return alice->client->reports() >= 1; }));
  const int port = server_->port();
  server_->Stop();
  ASSERT_TRUE(WaitFor([&] {
    return alice->client->state() == ConnectionState::kReconnecting;
  }));
  std::string error;
  server_ = PresencedProcess::Start(dir_.path(), &error,
                                    "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(server_) << error;
  ASSERT_TRUE(WaitFor([&] {
    return alice->client->registrations() >= 2 &&
           alice->client->state() == ConnectionState::kConnected;
  }));
  const int reports = OnLoop([&] { return alice->client->reports(); });
  EXPECT_TRUE(WaitFor([&] { return alice->client->reports() > reports + 1; }));
  // It came back through backoff, not a tight loop: the failed attempts
  // while the server was down are few.
  const auto failures = OnLoop([&] {
    int n = 0;
    for (const auto& r : alice->transport->log()) n += r.status == 0;
    return n;
  });
  EXPECT_LT(failures, 40);
}

TEST_F(ClientIntegrationTest, BadApiKeyFails) {
  PresencedProcess::User wrong = users_[0];
  wrong.key = std::string(32, 'x');
  LiveClient* c = NewClient(wrong);
  ASSERT_TRUE(
      WaitFor([&] { return c->client->state() == ConnectionState::kFailed; }));
  const std::size_t sent = OnLoop([&] { return c->transport->log().size(); });
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(OnLoop([&] { return c->transport->log().size(); }), sent);
}

class RateLimitedIntegrationTest : public ClientIntegrationTest {
 protected:
  std::vector<std::string> ExtraServerArgs() override {
    return {"--rate-limit", "6"};
  }
};

TEST_F(RateLimitedIntegrationTest, HonoursRetryAfter) {
  ClientOptions fast;
  fast.ping_interval = 100 * kMs;
  fast.fetch_users = false;
  LiveClient* alice = NewClient(users_[0], fast);
  // 6 requests a minute: register, announce and a few reports, then 429.
  auto first_429 = [&]() -> std::optional<RecordingTransport::Record> {
    for (const auto& r : alice->transport->log()) {
      if (r.status == 429) return r;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(WaitFor([&] { return first_429().has_value(); }));
  const auto limited = *OnLoop(first_429);
  ASSERT_FALSE(limited.retry_after.empty());
  const Micros retry_after =
      static_cast<Micros>(std::stod(limited.retry_after) * 1e6);
  ASSERT_GT(retry_after, 2'000'000) << "window too short to observe";
  // For the next 2 s (well inside Retry-After) no report goes out.
  std::this_thread::sleep_for(2s);
  const int after = OnLoop([&] {
    int n = 0;
    for (const auto& r : alice->transport->log()) {
      n += r.sent_at > limited.answered_at &&
           r.request.target == "/api/v1/users/me/presence";
    }
    return n;
  });
  EXPECT_EQ(after, 0);
  EXPECT_NE(OnLoop([&] { return alice->client->state(); }),
            ConnectionState::kFailed);
}

}  // namespace
}  // namespace presence::client
