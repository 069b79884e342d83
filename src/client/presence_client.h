// PresenceClient: the client half of presence, on any Zulip-compatible
// server (presenced or Zulip >= 7.0; older servers get Zulip's fallbacks).
//
// What it does, following Zulip's web client (spec 4, 6.1-6.4):
// * Registers an event queue (POST /register) with slim_presence=true and
//   the simplified_presence_events capability, fetching presence, realm
//   settings (ping interval, offline threshold; 60 s / 140 s when an old
//   server leaves them out) and the user's presence_enabled setting.
// * Announces itself with one ping_only report, then reports every
//   server_presence_ping_interval_seconds (self-rescheduling, so a suspended
//   machine never fires a burst) with status "active" or "idle" as the
//   ActivityMonitor decides, new_user_input, and last_update_id = its
//   cursor; merges each answer into its PresenceTable (set_info).
// * When the person comes back after being idle, reports ping_only at once.
// * Long-polls GET /events and merges presence events (modern, slim or
//   legacy) and presence_enabled changes.
// * Keeps everyone's user status: `user_status` in fetch_event_types and
//   event_types, with presenced's `user_status_extensions` capability (a
//   scheduled end, do-not-disturb; other servers ignore it); the snapshot
//   and `user_status` events go into the table. SetOwnStatus,
//   ClearOwnStatus and SetDoNotDisturb change the user's own
//   (POST /users/me/status); the change comes back as an event.
// * Watches for suspend (a timer firing far too late): then drops its
//   connections, reports at once and polls again (spec 6.2's watchdog).
// * Fetches the people directory (GET /users; optional, for names and the
//   small-realm fill-in) after registering and when unknown users appear.
// * Recovers by itself:
//     BAD_EVENT_QUEUE_ID          -> registers a new queue at once;
//     network error, 5xx, garbage -> retries with exponential backoff and
//                                    full jitter (Backoff), so that clients
//                                    do not all reconnect at the same
//                                    instant after a server restart;
//     429 RATE_LIMIT_HIT          -> sends nothing before Retry-After;
//     401                         -> stops (kFailed): retrying bad
//                                    credentials cannot help.
//
// Everything that waits goes through the injected Scheduler and everything
// that talks through the injected Transport, so tests run it with a
// ManualScheduler and a fake transport, deterministically.
//
// Thread safety: a PresenceClient, its Transport and its Scheduler belong to
// one thread (the executor's). Observer callbacks run on that thread; they
// may read the client but must not destroy it.
#ifndef PRESENCE_CLIENT_PRESENCE_CLIENT_H_
#define PRESENCE_CLIENT_PRESENCE_CLIENT_H_

#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "client/activity_monitor.h"
#include "client/backoff.h"
#include "client/presence_table.h"
#include "client/scheduler.h"
#include "client/server_clock.h"
#include "client/transport.h"
#include "util/error.h"

namespace presence::client {

struct ClientOptions {
  std::string email;
  std::string api_key;
  // Idle after this long without input (Zulip's web app: 5 minutes).
  Micros idle_timeout = ActivityMonitor::kDefaultIdleTimeout;
  // How often the input source is looked at to notice the person coming
  // back (NotifyInput() notices at once).
  Micros activity_check_interval = SecondsToMicros(1);
  // Reconnection after failures.
  BackoffPolicy backoff;
  // Sent as presence_history_limit_days / history_limit_days when set.
  std::optional<int> history_limit_days;
  // Replaces the server's ping interval (tests, demos); not for production.
  std::optional<Micros> ping_interval;
  // Fetch GET /users for names and the small-realm fill-in.
  bool fetch_users = true;
  // At most this often when unknown users appear.
  Micros users_refetch_interval = SecondsToMicros(60);
  // The suspend watchdog (spec 6.2): when the activity check runs this much
  // later than it was due, the machine slept; the client drops its
  // connections, reports at once and polls again.
  Micros suspend_threshold = SecondsToMicros(30);
  // Deadline of every request but the long poll.
  Micros request_timeout = SecondsToMicros(30);
  // The long poll's deadline is the server's
  // event_queue_longpoll_timeout_seconds (90 s when not said) plus this.
  Micros long_poll_margin = SecondsToMicros(15);
  std::string api_prefix = "/api/v1";
};

// A change to the user's own status: only the fields set are sent (Zulip's
// rule: what is not passed stays as it is).
struct StatusUpdate {
  std::optional<std::string> status_text;  // "" clears the text
  // emoji_name "" clears the emoji; code and type need a name.
  std::optional<std::string> emoji_name;
  std::optional<std::string> emoji_code;
  std::optional<std::string> reaction_type;
  // Extension (presenced): the server clears the text and emoji at this
  // unix time; 0 removes the end. A change of text or emoji without it
  // removes any previous end on the server.
  std::optional<std::int64_t> scheduled_end_time;
  // Extension: do-not-disturb, and when it ends (0: no end; needs dnd).
  std::optional<bool> dnd;
  std::optional<std::int64_t> dnd_end_time;
};

enum class ConnectionState {
  kStopped,       // not started, or Stop() called
  kConnecting,    // registering a queue
  kConnected,     // registered; polling and pinging
  kReconnecting,  // a request failed; waiting to try again
  kFailed,        // the server refused the credentials; stopped
};

std::string_view ConnectionStateName(ConnectionState state);

class PresenceClient {
 public:
  class Observer {
   public:
    virtual ~Observer() = default;
    // The table changed (an answer, an event, the directory).
    virtual void OnPresenceChanged() {}
    // The connection state changed; `detail` says why, for people.
    virtual void OnStateChanged(ConnectionState state,
                                const std::string& detail) {}
  };

  // `transport`, `scheduler` and `input` must outlive the client.
  // `uniform` (values in [0, 1)) drives the backoff jitter; empty: random.
  PresenceClient(ClientOptions options, Transport* transport,
                 Scheduler* scheduler, const InputActivitySource* input,
                 Backoff::Uniform uniform = {});
  ~PresenceClient();

  PresenceClient(const PresenceClient&) = delete;
  PresenceClient& operator=(const PresenceClient&) = delete;

  void set_observer(Observer* observer) { observer_ = observer; }

  // Registers and starts reporting. No effect unless stopped or failed.
  void Start();

  // Stops every timer and request and frees the server's queue (a
  // best-effort DELETE /events whose answer is ignored). Start() may follow.
  void Stop();

  // Input just happened: if the person was idle, report at once.
  void NotifyInput();

  // --- The user's own status (POST /users/me/status) ----------------------
  // `done` (optional) gets the outcome: success, or an error whose message
  // is the server's ("HTTP 400: status_text is too long ..."). Sent at once
  // whatever the connection state; not retried. The table changes when the
  // server's user_status event arrives, not before.
  using CallStatus = boost::system::result<void, Error>;
  using StatusCallback = std::function<void(CallStatus)>;
  void SetOwnStatus(const StatusUpdate& update, StatusCallback done = {});
  // Clears the text and the emoji (and so any scheduled end).
  void ClearOwnStatus(StatusCallback done = {});
  // Do-not-disturb on (until `end`, unix seconds, if given) or off.
  void SetDoNotDisturb(bool on, std::optional<std::int64_t> end = std::nullopt,
                       StatusCallback done = {});
  // Whether `user` is in do-not-disturb now (the server's clock as
  // estimated): a chat client holds their notifications meanwhile.
  bool IsDoNotDisturb(UserId user) const {
    return table_.IsDoNotDisturb(user, ServerNow());
  }

  const PresenceTable& table() const { return table_; }
  // The server's time now, as best known (unix seconds).
  double ServerNow() const { return server_clock_.Now(scheduler_->Now()); }
  ConnectionState state() const { return state_; }
  const std::string& state_detail() const { return detail_; }
  // The current event queue ("" when none).
  const std::string& queue_id() const { return queue_id_; }
  std::int64_t last_event_id() const { return last_event_id_; }
  // Successful registrations so far (re-registrations included).
  int registrations() const { return registrations_; }
  // Successful periodic (not ping_only) reports so far.
  int reports() const { return reports_; }
  // Times the suspend watchdog fired.
  int resyncs() const { return resyncs_; }
  Micros ping_interval() const { return ping_interval_; }
  // What the next report will say.
  bool active() const { return monitor_.active(); }
  const ClientOptions& options() const { return options_; }

 private:
  enum class Outcome {
    kOk,
    kNetwork,       // no answer
    kServerError,   // 5xx, or an answer that cannot be read
    kClientError,   // another 4xx
    kRateLimited,   // 429
    kUnauthorized,  // 401
    kBadQueue,      // 400 BAD_EVENT_QUEUE_ID
  };
  struct Answer {
    Outcome outcome = Outcome::kNetwork;
    boost::json::object body;
    Micros retry_after = -1;  // 429: from Retry-After, -1 if not said
    std::string message;      // for state_detail
  };
  static Answer Classify(const Result<HttpResponse>& result);

  Transport::Callback Guard(std::function<void(const Answer&)> f);
  Scheduler::Task GuardTask(std::function<void()> f);
  HttpRequest MakeRequest(std::string method, std::string path,
                          std::string form) const;
  void SetState(ConnectionState state, std::string detail);
  void Fail(const std::string& why);
  void NotifyChanged();
  Micros RateLimitWait() const;
  void NoteRateLimit(const Answer& a);

  void Register();
  void OnRegistered(const boost::json::object& body);
  void Poll();
  void OnEvents(const boost::json::object& body);
  void RetryLater(const Answer& a, void (PresenceClient::*what)());

  void ScheduleTick(Micros delay);
  void Tick();
  void SendReport(bool ping_only);
  void OnReport(const Answer& a, bool ping_only, std::optional<Micros> mark);

  void ScheduleActivityCheck();
  void CheckActivity();
  void Resync();

  void MaybeFetchUsers(bool force);
  void OnUsers(const boost::json::object& body);

  ClientOptions options_;
  Transport* const transport_;
  Scheduler* const scheduler_;
  ActivityMonitor monitor_;
  Backoff events_backoff_;
  Backoff ping_backoff_;
  PresenceTable table_;
  ServerClock server_clock_;
  Observer* observer_ = nullptr;
  std::string authorization_;

  ConnectionState state_ = ConnectionState::kStopped;
  std::string detail_;
  std::uint64_t epoch_ = 0;  // bumped by Stop/Fail: stale callbacks ignored
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);

  std::string queue_id_;
  std::int64_t last_event_id_ = -1;
  int polls_on_queue_ = 0;  // successful polls of the current queue
  Micros registered_at_ = 0;
  int registrations_ = 0;
  int reports_ = 0;
  int resyncs_ = 0;
  Micros ping_interval_ = SecondsToMicros(kFallbackPingIntervalSeconds);
  Micros long_poll_timeout_ = SecondsToMicros(90);
  Micros rate_limited_until_ = 0;

  bool pinging_ = false;
  bool report_in_flight_ = false;
  bool ping_only_in_flight_ = false;
  bool users_in_flight_ = false;
  std::optional<Micros> users_fetched_at_;

  Scheduler::TimerId retry_timer_ = 0;  // Register or Poll after a failure
  Scheduler::TimerId ping_timer_ = 0;
  Scheduler::TimerId activity_timer_ = 0;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_PRESENCE_CLIENT_H_
