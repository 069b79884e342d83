#include "client/presence_client.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "util/crypto.h"

namespace presence::client {
namespace {

// application/x-www-form-urlencoded value (RFC 3986 unreserved kept).
std::string FormEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

void AddField(std::string& form, std::string_view name,
              std::string_view value) {
  if (!form.empty()) form.push_back('&');
  form.append(name);
  form.push_back('=');
  form.append(FormEncode(value));
}

std::optional<std::int64_t> Int(const boost::json::object& o,
                                std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  return std::nullopt;
}

std::optional<double> Number(const boost::json::object& o,
                             std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return std::nullopt;
}

std::optional<bool> Bool(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_bool()) return std::nullopt;
  return v->as_bool();
}

std::string_view String(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return v->as_string();
}

// "2023-11-14T22:13:20.000000+00:00" (or with Z, or without a zone: UTC)
// -> unix seconds.
std::optional<std::int64_t> ParseIsoDate(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (s.size() < 19 ||
      std::sscanf(std::string(s.substr(0, 19)).c_str(),
                  "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6) {
    return std::nullopt;
  }
  // days_from_civil (Howard Hinnant).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(yy - era * 400);
  const unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = std::int64_t{era} * 146097 + doe - 719468;
  std::int64_t t = days * 86400 + h * 3600 + mi * 60 + sec;
  std::string_view rest = s.substr(19);
  while (!rest.empty() &&
         (rest.front() == '.' ||
          std::isdigit(static_cast<unsigned char>(rest.front())))) {
    rest.remove_prefix(1);
  }
  int oh = 0, om = 0;
  if (rest.size() >= 6 && (rest[0] == '+' || rest[0] == '-') &&
      std::sscanf(std::string(rest.substr(1, 5)).c_str(), "%2d:%2d", &oh,
                  &om) == 2) {
    const int off = oh * 3600 + om * 60;
    t -= rest[0] == '+' ? off : -off;
  }
  return t;
}

std::string Seconds(Micros m) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(m) / 1e6);
  return buf;
}

// A queue refused this soon after it was made, before any successful poll,
// is re-registered after a backoff rather than at once.
constexpr Micros kFreshQueue = SecondsToMicros(5);

}  // namespace

std::string_view ConnectionStateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kStopped:
      return "stopped";
    case ConnectionState::kConnecting:
      return "connecting";
    case ConnectionState::kConnected:
      return "connected";
    case ConnectionState::kReconnecting:
      return "reconnecting";
    case ConnectionState::kFailed:
      return "failed";
  }
  return "stopped";
}

PresenceClient::PresenceClient(ClientOptions options, Transport* transport,
                               Scheduler* scheduler,
                               const InputActivitySource* input,
                               Backoff::Uniform uniform)
    : options_(std::move(options)),
      transport_(transport),
      scheduler_(scheduler),
      monitor_(input, options_.idle_timeout),
      events_backoff_(options_.backoff, uniform),
      ping_backoff_(options_.backoff, uniform),
      authorization_("Basic " +
                     Base64Encode(options_.email + ":" + options_.api_key)) {
  if (options_.ping_interval) ping_interval_ = *options_.ping_interval;
}

PresenceClient::~PresenceClient() {
  alive_.reset();
  scheduler_->Cancel(retry_timer_);
  scheduler_->Cancel(ping_timer_);
  scheduler_->Cancel(activity_timer_);
}

// --- Plumbing ---------------------------------------------------------------

PresenceClient::Answer PresenceClient::Classify(
    const Result<HttpResponse>& result) {
  Answer a;
  if (!result) {
    a.outcome = Outcome::kNetwork;
    a.message = result.error().message();
    return a;
  }
  const HttpResponse& r = *result;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (!ec && v.is_object()) a.body = std::move(v.as_object());
  const std::string_view msg = String(a.body, "msg");
  a.message = "HTTP " + std::to_string(r.status);
  if (!msg.empty()) a.message += ": " + std::string(msg);

  if (r.status == 200) {
    if (String(a.body, "result") == "success") {
      a.outcome = Outcome::kOk;
    } else {
      a.outcome = Outcome::kServerError;
      a.message = "unreadable answer from the server";
    }
  } else if (r.status == 429) {
    a.outcome = Outcome::kRateLimited;
    std::optional<double> secs;
    if (auto h = r.Header("Retry-After")) {
      std::string text(*h);
      char* end = nullptr;
      const double d = std::strtod(text.c_str(), &end);
      if (end != text.c_str() && std::isfinite(d)) secs = d;
    }
    if (!secs) secs = Number(a.body, "retry-after");
    if (secs) {
      a.retry_after =
          static_cast<Micros>(std::ceil(std::max(*secs, 0.0) * 1e6));
    }
  } else if (r.status == 401) {
    a.outcome = Outcome::kUnauthorized;
  } else if (r.status == 400 &&
             String(a.body, "code") == "BAD_EVENT_QUEUE_ID") {
    a.outcome = Outcome::kBadQueue;
  } else if (r.status >= 500) {
    a.outcome = Outcome::kServerError;
  } else {
    a.outcome = Outcome::kClientError;
  }
  return a;
}

Transport::Callback PresenceClient::Guard(
    std::function<void(const Answer&)> f) {
  return [weak = std::weak_ptr<char>(alive_), epoch = epoch_, this,
          f = std::move(f)](Result<HttpResponse> r) {
    if (weak.expired() || epoch != epoch_) return;
    f(Classify(r));
  };
}

Scheduler::Task PresenceClient::GuardTask(std::function<void()> f) {
  return [weak = std::weak_ptr<char>(alive_), epoch = epoch_, this,
          f = std::move(f)] {
    if (weak.expired() || epoch != epoch_) return;
    f();
  };
}

HttpRequest PresenceClient::MakeRequest(std::string method, std::string path,
                                        std::string form) const {
  HttpRequest req;
  req.method = std::move(method);
  req.target = options_.api_prefix + path;
  req.headers.emplace_back("Authorization", authorization_);
  req.headers.emplace_back("Accept", "application/json");
  if (req.method == "GET" || req.method == "DELETE") {
    if (!form.empty()) req.target += "?" + form;
  } else {
    req.headers.emplace_back("Content-Type",
                             "application/x-www-form-urlencoded");
    req.body = std::move(form);
  }
  req.timeout = options_.request_timeout;
  return req;
}

void PresenceClient::SetState(ConnectionState state, std::string detail) {
  if (state == state_ && detail == detail_) return;
  state_ = state;
  detail_ = std::move(detail);
  if (observer_ != nullptr) observer_->OnStateChanged(state_, detail_);
}

void PresenceClient::NotifyChanged() {
  if (observer_ != nullptr) observer_->OnPresenceChanged();
}

void PresenceClient::Fail(const std::string& why) {
  ++epoch_;
  scheduler_->Cancel(retry_timer_);
  scheduler_->Cancel(ping_timer_);
  scheduler_->Cancel(activity_timer_);
  transport_->CancelAll();
  pinging_ = report_in_flight_ = ping_only_in_flight_ = users_in_flight_ =
      false;
  queue_id_.clear();
  SetState(ConnectionState::kFailed, why);
}

Micros PresenceClient::RateLimitWait() const {
  return std::max<Micros>(rate_limited_until_ - scheduler_->Now(), 0);
}

void PresenceClient::NoteRateLimit(const Answer& a) {
  if (a.retry_after >= 0) {
    rate_limited_until_ =
        std::max(rate_limited_until_, scheduler_->Now() + a.retry_after);
  }
}

// --- Lifecycle
// ----------------------------------------------------------------

void PresenceClient::Start() {
  if (state_ != ConnectionState::kStopped &&
      state_ != ConnectionState::kFailed) {
    return;
  }
  ++epoch_;
  events_backoff_.Reset();
  ping_backoff_.Reset();
  monitor_.Poll(scheduler_->Now());
  ScheduleActivityCheck();
  Register();
}

void PresenceClient::Stop() {
  if (state_ == ConnectionState::kStopped) return;
  ++epoch_;
  scheduler_->Cancel(retry_timer_);
  scheduler_->Cancel(ping_timer_);
  scheduler_->Cancel(activity_timer_);
  transport_->CancelAll();
  if (!queue_id_.empty()) {
    std::string form;
    AddField(form, "queue_id", queue_id_);
    transport_->Send(MakeRequest("DELETE", "/events", std::move(form)),
                     [](Result<HttpResponse>) {});
  }
  queue_id_.clear();
  pinging_ = report_in_flight_ = ping_only_in_flight_ = users_in_flight_ =
      false;
  SetState(ConnectionState::kStopped, "stopped");
}

void PresenceClient::RetryLater(const Answer& a,
                                void (PresenceClient::*what)()) {
  Micros delay;
  if (a.outcome == Outcome::kRateLimited && a.retry_after >= 0) {
    NoteRateLimit(a);
    delay = RateLimitWait();
  } else {
    delay = std::max(events_backoff_.NextDelay(), RateLimitWait());
  }
  SetState(ConnectionState::kReconnecting,
           a.message + "; retrying in " + Seconds(delay));
  scheduler_->Cancel(retry_timer_);
  retry_timer_ =
      scheduler_->RunAfter(delay, GuardTask([this, what] { (this->*what)(); }));
}

// --- Event queue
// --------------------------------------------------------------

void PresenceClient::Register() {
  if (state_ != ConnectionState::kReconnecting) {
    SetState(ConnectionState::kConnecting, "registering");
  }
  std::string form;
  AddField(form, "event_types",
           R"(["presence","user_settings","user_status"])");
  AddField(form, "fetch_event_types",
           R"(["presence","realm","user_settings","user_status"])");
  AddField(form, "slim_presence", "true");
  AddField(form, "client_capabilities",
           R"({"simplified_presence_events":true,"user_settings_object":true,)"
           R"("presence_per_client":true,"user_status_extensions":true})");
  if (options_.history_limit_days) {
    AddField(form, "presence_history_limit_days",
             std::to_string(*options_.history_limit_days));
  }
  transport_->Send(MakeRequest("POST", "/register", std::move(form)),
                   Guard([this](const Answer& a) {
                     switch (a.outcome) {
                       case Outcome::kOk:
                         return OnRegistered(a.body);
                       case Outcome::kUnauthorized:
                         return Fail(a.message);
                       default:
                         return RetryLater(a, &PresenceClient::Register);
                     }
                   }));
}

void PresenceClient::OnRegistered(const boost::json::object& body) {
  const std::string_view queue_id = String(body, "queue_id");
  const auto last_event_id = Int(body, "last_event_id");
  if (queue_id.empty() || !last_event_id) {
    Answer a;
    a.outcome = Outcome::kServerError;
    a.message = "register answer without a queue";
    return RetryLater(a, &PresenceClient::Register);
  }
  queue_id_ = std::string(queue_id);
  last_event_id_ = *last_event_id;
  polls_on_queue_ = 0;
  registered_at_ = scheduler_->Now();
  ++registrations_;
  events_backoff_.Reset();

  if (!options_.ping_interval) {
    // At least a second: a confused server must not make this a busy loop.
    ping_interval_ = SecondsToMicros(std::max<std::int64_t>(
        Int(body, "server_presence_ping_interval_seconds")
            .value_or(kFallbackPingIntervalSeconds),
        1));
  }
  table_.set_offline_threshold_seconds(
      static_cast<int>(std::clamp<std::int64_t>(
          Int(body, "server_presence_offline_threshold_seconds")
              .value_or(kFallbackOfflineThresholdSeconds),
          1, 365 * 86400)));
  if (auto disabled = Bool(body, "realm_presence_disabled")) {
    table_.set_realm_presence_disabled(*disabled);
  }
  if (auto t = Int(body, "event_queue_longpoll_timeout_seconds")) {
    long_poll_timeout_ = SecondsToMicros(*t);
  }
  if (const auto* settings = body.if_contains("user_settings");
      settings != nullptr && settings->is_object()) {
    if (auto e = Bool(settings->as_object(), "presence_enabled")) {
      table_.set_presence_enabled(*e);
    }
  } else if (auto e = Bool(body, "presence_enabled")) {
    table_.set_presence_enabled(*e);
  }
  if (const auto* presences = body.if_contains("presences")) {
    const Micros now = scheduler_->Now();
    const auto server_ts = Number(body, "server_timestamp");
    if (server_ts) server_clock_.Observe(*server_ts, now);
    (void)table_.SetInfoFromJson(*presences, server_clock_.Now(now),
                                 Int(body, "presence_last_update_id"));
  }
  if (const auto* statuses = body.if_contains("user_status")) {
    (void)table_.SetStatusesFromJson(*statuses);
  }
  SetState(ConnectionState::kConnected, "connected");
  NotifyChanged();

  if (!pinging_) {
    pinging_ = true;
    SendReport(/*ping_only=*/true);  // announce, as the web app does
    ScheduleTick(ping_interval_);
  }
  MaybeFetchUsers(/*force=*/true);
  Poll();
}

void PresenceClient::Poll() {
  if (queue_id_.empty()) return Register();
  std::string form;
  AddField(form, "queue_id", queue_id_);
  AddField(form, "last_event_id", std::to_string(last_event_id_));
  HttpRequest req = MakeRequest("GET", "/events", std::move(form));
  req.timeout = long_poll_timeout_ + options_.long_poll_margin;
  transport_->Send(std::move(req), Guard([this](const Answer& a) {
                     switch (a.outcome) {
                       case Outcome::kOk:
                         return OnEvents(a.body);
                       case Outcome::kBadQueue:
                         // The server forgot the queue (restart, timeout,
                         // overflow): a new queue and a fresh snapshot. At
                         // once, unless the queue was refused moments after
                         // it was made without ever working (a server doing
                         // that every time would make this a busy loop).
                         queue_id_.clear();
                         if (polls_on_queue_ == 0 &&
                             scheduler_->Now() - registered_at_ < kFreshQueue) {
                           return RetryLater(a, &PresenceClient::Register);
                         }
                         return Register();
                       case Outcome::kUnauthorized:
                         return Fail(a.message);
                       default:
                         return RetryLater(a, &PresenceClient::Poll);
                     }
                   }));
}

void PresenceClient::OnEvents(const boost::json::object& body) {
  events_backoff_.Reset();
  ++polls_on_queue_;
  if (state_ != ConnectionState::kConnected) {
    SetState(ConnectionState::kConnected, "connected");
  }
  bool changed = false;
  if (const auto* events = body.if_contains("events");
      events != nullptr && events->is_array()) {
    const double reference = ServerNow();
    for (const auto& ev : events->as_array()) {
      if (!ev.is_object()) continue;
      const auto& e = ev.as_object();
      if (auto id = Int(e, "id"))
        last_event_id_ = std::max(last_event_id_, *id);
      const std::string_view type = String(e, "type");
      if (type == "presence") {
        auto applied = table_.ApplyEvent(e, reference);
        changed |= applied && *applied;
      } else if (type == "user_status") {
        changed |= table_.ApplyUserStatusEvent(e);
      } else if (type == "user_settings" &&
                 String(e, "property") == "presence_enabled") {
        if (auto v = Bool(e, "value")) {
          table_.set_presence_enabled(*v);
          changed = true;
        }
      } else if (type == "update_global_notifications" &&
                 String(e, "notification_name") == "presence_enabled") {
        if (auto v = Bool(e, "setting")) {
          table_.set_presence_enabled(*v);
          changed = true;
        }
      }
    }
  }
  if (changed) {
    NotifyChanged();
    MaybeFetchUsers(/*force=*/false);
  }
  Poll();
}

// --- Own status
// ---------------------------------------------------------------

void PresenceClient::SetOwnStatus(const StatusUpdate& u, StatusCallback done) {
  std::string form;
  if (u.status_text) AddField(form, "status_text", *u.status_text);
  if (u.emoji_name) AddField(form, "emoji_name", *u.emoji_name);
  if (u.emoji_code) AddField(form, "emoji_code", *u.emoji_code);
  if (u.reaction_type) AddField(form, "reaction_type", *u.reaction_type);
  if (u.scheduled_end_time) {
    AddField(form, "scheduled_end_time", std::to_string(*u.scheduled_end_time));
  }
  if (u.dnd) AddField(form, "dnd", *u.dnd ? "true" : "false");
  if (u.dnd_end_time) {
    AddField(form, "dnd_end_time", std::to_string(*u.dnd_end_time));
  }
  // Not Guard(): the answer is the caller's even after Stop().
  transport_->Send(
      MakeRequest("POST", "/users/me/status", std::move(form)),
      [weak = std::weak_ptr<char>(alive_), this,
       done = std::move(done)](Result<HttpResponse> r) {
        if (weak.expired()) return;
        const Answer a = Classify(r);
        if (a.outcome == Outcome::kRateLimited) NoteRateLimit(a);
        if (!done) return;
        if (a.outcome == Outcome::kOk) return done(CallStatus{});
        const Errc code = a.outcome == Outcome::kUnauthorized
                              ? Errc::kUnauthenticated
                          : a.outcome == Outcome::kClientError ||
                                  a.outcome == Outcome::kBadQueue
                              ? Errc::kInvalidArgument
                              : Errc::kUnavailable;
        done(CallStatus(boost::system::in_place_error, Error(code, a.message)));
      });
}

void PresenceClient::ClearOwnStatus(StatusCallback done) {
  StatusUpdate u;
  u.status_text = "";
  u.emoji_name = "";
  SetOwnStatus(u, std::move(done));
}

void PresenceClient::SetDoNotDisturb(bool on, std::optional<std::int64_t> end,
                                     StatusCallback done) {
  StatusUpdate u;
  u.dnd = on;
  if (on) u.dnd_end_time = end.value_or(0);
  SetOwnStatus(u, std::move(done));
}

// --- Reports
// ------------------------------------------------------------------

void PresenceClient::ScheduleTick(Micros delay) {
  scheduler_->Cancel(ping_timer_);
  ping_timer_ = scheduler_->RunAfter(delay, GuardTask([this] { Tick(); }));
}

void PresenceClient::Tick() {
  ping_timer_ = 0;
  if (const Micros wait = RateLimitWait(); wait > 0) {
    return ScheduleTick(wait);
  }
  SendReport(/*ping_only=*/false);
}

void PresenceClient::SendReport(bool ping_only) {
  if (ping_only ? ping_only_in_flight_ : report_in_flight_) return;
  const bool active = monitor_.Poll(scheduler_->Now()).active;
  const bool new_input = monitor_.HasNewInput();
  const std::optional<Micros> mark = monitor_.InputMark();
  std::string form;
  AddField(form, "status", active ? "active" : "idle");
  AddField(form, "ping_only", ping_only ? "true" : "false");
  AddField(form, "new_user_input", new_input ? "true" : "false");
  AddField(form, "slim_presence", "true");
  // presenced's per-client extension (which device a user is on); other
  // servers list it in ignored_parameters_unsupported.
  AddField(form, "per_client", "true");
  AddField(form, "last_update_id", std::to_string(table_.last_update_id()));
  if (options_.history_limit_days) {
    AddField(form, "history_limit_days",
             std::to_string(*options_.history_limit_days));
  }
  (ping_only ? ping_only_in_flight_ : report_in_flight_) = true;
  transport_->Send(MakeRequest("POST", "/users/me/presence", std::move(form)),
                   Guard([this, ping_only, mark](const Answer& a) {
                     OnReport(a, ping_only, mark);
                   }));
}

void PresenceClient::OnReport(const Answer& a, bool ping_only,
                              std::optional<Micros> mark) {
  (ping_only ? ping_only_in_flight_ : report_in_flight_) = false;
  if (a.outcome == Outcome::kUnauthorized) return Fail(a.message);
  if (a.outcome == Outcome::kOk) monitor_.ReportDelivered(mark);
  if (a.outcome == Outcome::kRateLimited) NoteRateLimit(a);
  if (ping_only) return;  // its answer carries no data; the loop goes on

  switch (a.outcome) {
    case Outcome::kOk: {
      ++reports_;
      ping_backoff_.Reset();
      const Micros now = scheduler_->Now();
      if (const auto* presences = a.body.if_contains("presences")) {
        const auto server_ts = Number(a.body, "server_timestamp");
        if (server_ts) server_clock_.Observe(*server_ts, now);
        (void)table_.SetInfoFromJson(*presences, server_clock_.Now(now),
                                     Int(a.body, "presence_last_update_id"));
        NotifyChanged();
        MaybeFetchUsers(/*force=*/false);
      }
      return ScheduleTick(ping_interval_);
    }
    case Outcome::kRateLimited:
      if (a.retry_after >= 0) return ScheduleTick(RateLimitWait());
      [[fallthrough]];
    default:
      // Try again sooner than the next regular report, backing off, but
      // never later than it.
      return ScheduleTick(std::min(ping_backoff_.NextDelay(), ping_interval_));
  }
}

// --- Activity
// -----------------------------------------------------------------

void PresenceClient::ScheduleActivityCheck() {
  scheduler_->Cancel(activity_timer_);
  const Micros due = scheduler_->Now() + options_.activity_check_interval;
  activity_timer_ = scheduler_->RunAfter(
      options_.activity_check_interval, GuardTask([this, due] {
        // Also the suspend watchdog: a timer this late
        // means the machine slept.
        if (scheduler_->Now() - due > options_.suspend_threshold) {
          return Resync();
        }
        CheckActivity();
        ScheduleActivityCheck();
      }));
}

void PresenceClient::Resync() {
  // After a suspend the connections are probably dead without knowing it
  // (the long poll would only notice at its deadline) and the person may
  // have left: drop every request, report at once, poll again. A queue
  // that outlived the sleep goes on; one that did not answers
  // BAD_EVENT_QUEUE_ID and is replaced.
  ++resyncs_;
  ++epoch_;
  scheduler_->Cancel(retry_timer_);
  scheduler_->Cancel(ping_timer_);
  transport_->CancelAll();
  report_in_flight_ = ping_only_in_flight_ = users_in_flight_ = false;
  events_backoff_.Reset();
  ScheduleActivityCheck();
  monitor_.Poll(scheduler_->Now());
  if (!pinging_ || queue_id_.empty()) return Register();
  ScheduleTick(0);
  Poll();
}

void PresenceClient::NotifyInput() {
  if (state_ == ConnectionState::kStopped ||
      state_ == ConnectionState::kFailed) {
    return;
  }
  CheckActivity();
}

void PresenceClient::CheckActivity() {
  const auto update = monitor_.Poll(scheduler_->Now());
  // Back from idle: tell the server now, not at the next tick (spec 6.1).
  if (update.resumed && pinging_ && RateLimitWait() == 0) {
    SendReport(/*ping_only=*/true);
  }
}

// --- People
// -------------------------------------------------------------------

void PresenceClient::MaybeFetchUsers(bool force) {
  if (!options_.fetch_users || users_in_flight_) return;
  const Micros now = scheduler_->Now();
  if (!force) {
    if (!table_.HasUsersMissingFromDirectory()) return;
    if (users_fetched_at_ &&
        now - *users_fetched_at_ < options_.users_refetch_interval) {
      return;
    }
  }
  if (RateLimitWait() > 0) return;
  users_in_flight_ = true;
  users_fetched_at_ = now;
  transport_->Send(MakeRequest("GET", "/users", ""),
                   Guard([this](const Answer& a) {
                     users_in_flight_ = false;
                     if (a.outcome == Outcome::kOk) return OnUsers(a.body);
                     if (a.outcome == Outcome::kRateLimited) NoteRateLimit(a);
                     if (a.outcome == Outcome::kUnauthorized) Fail(a.message);
                     // Otherwise (an old server without GET /users, a
                     // network error): go on without names.
                   }));
}

void PresenceClient::OnUsers(const boost::json::object& body) {
  const auto* members = body.if_contains("members");
  if (members == nullptr || !members->is_array()) return;
  std::vector<UserInfo> users;
  for (const auto& m : members->as_array()) {
    if (!m.is_object()) continue;
    const auto& o = m.as_object();
    auto id = Int(o, "user_id");
    if (!id) continue;
    UserInfo u;
    u.user_id = *id;
    u.email = std::string(String(o, "email"));
    u.full_name = std::string(String(o, "full_name"));
    u.is_bot = Bool(o, "is_bot").value_or(false);
    u.is_active = Bool(o, "is_active").value_or(true);
    u.date_joined = ParseIsoDate(String(o, "date_joined"));
    users.push_back(std::move(u));
  }
  table_.SetUsers(std::move(users));
  if (auto me = table_.FindUserByEmail(options_.email)) {
    table_.set_current_user(*me);
  }
  NotifyChanged();
}

}  // namespace presence::client
