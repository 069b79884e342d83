#include "api/events_api.h"

#include <algorithm>
#include <chrono>
#include <span>

#include "api/event_encoder.h"
#include "api/json_writer.h"
#include "api/presence_format.h"
#include "api/user_status.h"
#include "api/zulip_api.h"
#include "core/constants.h"

namespace presence::api {
namespace {

constexpr std::string_view kSuccessHead = R"({"result":"success","msg":"")";

ApiError BadQueue(std::string_view queue_id) {
  ApiError e =
      ApiError::BadRequest("Bad event queue ID: " + std::string(queue_id));
  e.code = "BAD_EVENT_QUEUE_ID";
  e.extra["queue_id"] = queue_id;
  return e;
}

bool Contains(const std::optional<std::vector<std::string>>& list,
              std::string_view name) {
  return !list || std::find(list->begin(), list->end(), name) != list->end();
}

ApiError TooLong(std::string_view name, std::size_t max) {
  return ApiError::BadRequest(std::string(name) + " has more than " +
                              std::to_string(max) + " entries");
}

// The error for a list parameter longer than `max`, if it is.
std::optional<ApiError> TooLong(
    const std::optional<std::vector<std::string>>& list, std::string_view name,
    std::size_t max) {
  if (!list || list->size() <= max) return std::nullopt;
  return TooLong(name, max);
}

// A JSON list of at most `max` user ids, or an error naming the parameter.
ApiResult<std::optional<std::vector<UserId>>> UserIdList(RequestParams& params,
                                                         std::string_view name,
                                                         std::size_t max) {
  auto list = params.GetJsonList(name);
  if (!list) return list.error();
  if (!*list) return std::optional<std::vector<UserId>>();
  if ((*list)->size() > max) return TooLong(name, max);
  std::vector<UserId> ids;
  ids.reserve((*list)->size());
  for (const auto& v : **list) {
    if (!v.is_int64()) {
      return ApiError::BadRequest(std::string(name) +
                                  " is not a list of user ids");
    }
    ids.push_back(v.as_int64());
  }
  return std::optional<std::vector<UserId>>(std::move(ids));
}

// GET /events' answer: the events with their ids, the queue id, then `tail`
// (the ignored parameters, if any, and the closing brace).
std::string EventsBody(std::span<const QueuedEvent> events,
                       std::string_view queue_id, std::string_view tail) {
  std::size_t size = kSuccessHead.size() + 32 + queue_id.size() + tail.size();
  for (const QueuedEvent& e : events) size += e.body->json().size() + 24;
  std::string body;
  body.reserve(size);
  body.append(kSuccessHead);
  body.append(",\"events\":[");
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i) body.push_back(',');
    AppendEventWithId(body, events[i].body->json(), events[i].id);
  }
  body.append("],\"queue_id\":");
  AppendJsonString(body, queue_id);
  body.append(tail);
  return body;
}

}  // namespace

std::int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

EventsApi::EventsApi(PresenceService* service, EventHub* hub,
                     const ApiOptions* options)
    : service_(service),
      hub_(hub),
      options_(options),
      poll_limiter_(options->events_poll_limit_per_minute, 60) {}

std::optional<Response> EventsApi::RelayIfForeign(
    const Request& req, RequestParams& params,
    const std::optional<std::string>* owner) const {
  if (!options_->queue_owner || req.forwarded) return std::nullopt;
  auto queue_id = params.GetString("queue_id");
  if (!queue_id || hub_->SpecOf(*queue_id)) return std::nullopt;
  std::optional<std::string> found =
      owner != nullptr ? *owner : options_->queue_owner(*queue_id);
  if (!found) return std::nullopt;
  Response r = ErrorResponse(BadQueue(*queue_id));
  r.forward_to = std::move(*found);
  return r;
}

std::optional<std::string> EventsApi::ForeignQueue(
    const Request& req, RequestParams& params) const {
  if (!options_->queue_owner || req.forwarded) return std::nullopt;
  auto queue_id = params.GetString("queue_id");
  if (!queue_id || hub_->SpecOf(*queue_id)) return std::nullopt;
  return queue_id;
}

namespace {

// What POST /register asked for, its parameters read and checked.
struct RegisterArgs {
  QueueSpec spec;
  // The state to answer with (fetch_event_types, else event_types; nullopt:
  // everything).
  std::optional<std::vector<std::string>> fetch;
  std::optional<std::int64_t> history_limit_days;
  bool modern = false;           // slim or simplified presence
  bool settings_object = false;  // user_settings as an object
};

ApiResult<RegisterArgs> ReadRegisterArgs(const Caller& caller,
                                         RequestParams& params,
                                         const ApiOptions& options) {
  // Alphabetical, as Zulip's typed parameters; the first bad one wins.
  auto caps = params.GetJsonObject("client_capabilities");
  if (!caps) return caps.error();
  // Zulip's capabilities are a small fixed set and only a few booleans are
  // read here (unknown names are ignored, as Zulip ignores them); nothing of
  // the object is kept, but parsing costs per entry: bounded like the lists.
  if (*caps && (*caps)->size() > options.max_event_types) {
    return TooLong("client_capabilities", options.max_event_types);
  }
  auto event_types = params.GetJsonStringList("event_types");
  if (!event_types) return event_types.error();
  if (auto e = TooLong(*event_types, "event_types", options.max_event_types)) {
    return *e;
  }
  auto fetch_types = params.GetJsonStringList("fetch_event_types");
  if (!fetch_types) return fetch_types.error();
  if (auto e =
          TooLong(*fetch_types, "fetch_event_types", options.max_event_types)) {
    return *e;
  }
  auto history = params.GetJsonInt("presence_history_limit_days");
  if (!history) return history.error();
  auto subset =
      UserIdList(params, "presence_user_ids", options.max_presence_user_ids);
  if (!subset) return subset.error();
  auto slim = params.GetJsonBool("slim_presence");
  if (!slim) return slim.error();

  auto cap = [&](std::string_view name) {
    if (!*caps) return false;
    auto it = (*caps)->find(name);
    return it != (*caps)->end() && it->value().is_bool() &&
           it->value().as_bool();
  };
  const bool simplified = cap("simplified_presence_events");
  RegisterArgs a;
  a.settings_object = cap("user_settings_object");
  a.modern = simplified || slim->value_or(false);
  a.history_limit_days = *history;
  QueueSpec& spec = a.spec;
  spec.realm_id = caller.realm->id();
  spec.user_id = caller.user_id;
  spec.event_types = EventTypeSet::Of(*event_types);
  spec.shape = simplified              ? PresenceShape::kModern
               : slim->value_or(false) ? PresenceShape::kSlim
                                       : PresenceShape::kLegacy;
  spec.presence_transitions = cap("presence_transitions");
  spec.per_client = cap("presence_per_client");
  spec.status_extensions = cap("user_status_extensions");
  spec.presence_user_ids = *subset;
  if (spec.presence_user_ids) {
    auto& ids = *spec.presence_user_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  a.fetch = *fetch_types ? *fetch_types : *event_types;
  return a;
}

// The user_settings part of the register answer.
void AppendUserSettings(std::string& body, const Caller& caller,
                        bool settings_object) {
  bool enabled = true;
  caller.realm->WithMember(caller.user_id, [&](const Member* m) {
    if (m) enabled = m->presence_enabled;
  });
  if (settings_object) {
    body.append(",\"user_settings\":{\"presence_enabled\":");
    body.append(enabled ? "true}" : "false}");
  } else {
    body.append(",\"presence_enabled\":");
    body.append(enabled ? "true" : "false");
  }
}

}  // namespace

ApiResult<Response> EventsApi::Register(const Caller& caller,
                                        RequestParams& params) const {
  auto args = ReadRegisterArgs(caller, params, *options_);
  if (!args) return args.error();
  const QueueSpec& spec = args->spec;
  // The queue exists before the snapshot is taken, so no change can fall
  // between the two (a change may be in both; clients merge by max).
  const std::string queue_id = hub_->Register(spec, SteadyMicros());

  std::string body(kSuccessHead);
  body.append(",\"queue_id\":");
  AppendJsonString(body, queue_id);
  body.append(",\"last_event_id\":-1,\"zulip_feature_level\":");
  AppendInt(body, kZulipFeatureLevel);
  body.append(",\"zulip_version\":");
  AppendJsonString(body, kZulipVersion);
  body.append(",\"zulip_merge_base\":\"\"");
  if (Contains(args->fetch, "presence")) {
    const Micros now = service_->Now();
    FetchQuery query;
    query.history_limit_days = args->history_limit_days;
    body.push_back(',');
    UpdateId last = AppendPresences(
        body, *service_, caller, query, args->modern, now,
        spec.presence_user_ids ? &*spec.presence_user_ids : nullptr,
        spec.per_client);
    body.append(",\"server_timestamp\":");
    AppendSeconds(body, now);
    body.append(",\"presence_last_update_id\":");
    AppendInt(body, last);
  }
  if (Contains(args->fetch, "realm")) {
    body.append(",\"realm_presence_disabled\":");
    body.append(caller.realm->presence_disabled() ? "true" : "false");
    body.append(",\"server_presence_ping_interval_seconds\":");
    AppendInt(body, kPingIntervalSeconds);
    body.append(",\"server_presence_offline_threshold_seconds\":");
    AppendInt(body, kOfflineThresholdSeconds);
    body.append(",\"event_queue_longpoll_timeout_seconds\":");
    AppendInt(body, options_->heartbeat_seconds + 45);
  }
  if (Contains(args->fetch, "user_settings")) {
    AppendUserSettings(body, caller, args->settings_object);
  }
  if (Contains(args->fetch, "user_status")) {
    // Zulip's get_all_users_status_dict: active users the caller may see
    // whose status says something.
    const StatusShape shape =
        spec.status_extensions ? StatusShape::kExtended : StatusShape::kZulip;
    body.append(",\"user_status\":{");
    bool first = true;
    caller.realm->ForEachVisibleStatus(
        caller.user_id, [&](const Member& m, const store::UserStatus& status) {
          if (StatusSaysNothing(status, m.presence_enabled, shape)) return;
          if (!first) body.push_back(',');
          first = false;
          body.push_back('"');
          AppendInt(body, m.id);
          body.append("\":");
          AppendStatusObject(body, status, m.presence_enabled, shape);
        });
    body.push_back('}');
  }
  AppendIgnoredParameters(body, params);
  body.push_back('}');
  Response r;
  r.body = std::move(body);
  r.next_request_later = true;
  return r;
}

ApiResult<Response> EventsApi::GetEvents(const Request& req,
                                         const Caller& caller,
                                         RequestParams& params) const {
  auto dont_block = params.GetJsonBool("dont_block");
  if (!dont_block) return dont_block.error();
  auto last_event_id = params.GetJsonInt("last_event_id");
  if (!last_event_id) return last_event_id.error();
  auto queue_id = params.RequireString("queue_id");
  if (!queue_id) return queue_id.error();
  std::string tail;
  AppendIgnoredParameters(tail, params);
  tail.push_back('}');

  const bool block = !dont_block->value_or(false) && !req.force_nonblocking &&
                     req.waiter != nullptr;
  // A poll that costs is counted in the caller's poll budget, under the
  // hub's lock (so a refused one changes nothing). A poll handled again in
  // full after it parked was counted when it came.
  std::optional<RateDecision> refused;
  auto admit = [&] {
    if (req.resumed || !poll_limiter_.enabled()) return true;
    RateDecision d =
        poll_limiter_.Check(caller.user_id, RealClock().NowMicros());
    if (!d.allowed) refused = d;
    return d.allowed;
  };
  // The answer is formatted from the queue itself, under the hub's lock
  // (no copy of the events), unless it is to wait for its turn.
  bool has_events = false;
  std::string body;
  auto take = [&](std::span<const QueuedEvent> events) {
    has_events = !events.empty();
    if (has_events && block && req.answer_in_turn) return;
    body = EventsBody(events, *queue_id, tail);
  };
  std::weak_ptr<EventQueue> handle;
  PollResult poll =
      hub_->Poll(*queue_id, caller.user_id, *last_event_id, block, req.waiter,
                 SteadyMicros(), admit, take, block ? &handle : nullptr);
  if (poll.status == PollStatus::kRefused) return RateLimitedResponse(*refused);
  if (poll.status == PollStatus::kBadQueue) return BadQueue(*queue_id);
  Response r;
  // Events already waiting: answered in the HTTP layer's turn for answers,
  // behind the requests read meanwhile (issue #17, pings first).
  const bool in_turn = block && req.answer_in_turn &&
                       poll.status == PollStatus::kEvents && has_events;
  if (poll.status == PollStatus::kParked || in_turn) {
    r.parked = true;
    r.ready = in_turn;
    ParkedPoll& p = r.parked_poll;
    p.queue_id = std::move(*queue_id);
    p.queue = std::move(handle);
    p.last_event_id = *last_event_id;
    p.realm = caller.realm;
    p.user_id = caller.user_id;
    p.directory_generation = caller.directory_generation;
    p.tail = std::move(tail);
    return r;
  }
  r.body = std::move(body);
  return r;
}

std::optional<Response> EventsApi::Resume(
    const ParkedPoll& parked, const std::shared_ptr<QueueWaiter>& waiter,
    bool superseded) const {
  // Authentication would not give the same caller any more (or might not):
  // only the whole request knows the answer.
  if (parked.realm == nullptr ||
      parked.realm->directory_generation() != parked.directory_generation) {
    return std::nullopt;
  }
  std::string body;
  auto take = [&](std::span<const QueuedEvent> events) {
    body = EventsBody(events, parked.queue_id, parked.tail);
  };
  PollResult poll = hub_->Poll(
      parked.queue_id, parked.user_id, parked.last_event_id,
      /*block=*/!superseded, waiter, SteadyMicros(), [] { return true; }, take,
      &parked.queue);
  // The queue is gone (deleted, dropped with its deactivated user, or
  // overflowed): the answer depends on who asks now, which only the whole
  // request (authentication first) can tell.
  if (poll.status == PollStatus::kBadQueue) return std::nullopt;
  Response r;
  if (poll.status == PollStatus::kParked) {
    r.parked = true;
    r.parked_poll = parked;
    return r;
  }
  r.body = std::move(body);
  return r;
}

ApiResult<Response> EventsApi::DeleteQueue(const Caller& caller,
                                           RequestParams& params) const {
  auto queue_id = params.RequireString("queue_id");
  if (!queue_id) return queue_id.error();
  if (!hub_->Delete(*queue_id, caller.user_id)) return BadQueue(*queue_id);
  return SuccessResponse(&params);
}

ApiResult<Response> EventsApi::PatchQueue(const Caller& caller,
                                          RequestParams& params) const {
  // `null` goes back to everyone; a list (possibly empty) is the subset.
  auto raw = params.GetString("presence_user_ids");
  if (!raw) return ApiError::MissingArgument("presence_user_ids");
  std::optional<std::vector<UserId>> ids;
  if (*raw != "null") {
    auto subset = UserIdList(params, "presence_user_ids",
                             options_->max_presence_user_ids);
    if (!subset) return subset.error();
    ids = std::move(*subset);
  }
  auto queue_id = params.RequireString("queue_id");
  if (!queue_id) return queue_id.error();
  if (!hub_->SetPresenceSubset(*queue_id, caller.user_id, std::move(ids))) {
    return BadQueue(*queue_id);
  }
  return SuccessResponse(&params);
}

}  // namespace presence::api
