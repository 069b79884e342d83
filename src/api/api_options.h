// Settings the API layer needs from the command line.
#ifndef PRESENCE_API_API_OPTIONS_H_
#define PRESENCE_API_API_OPTIONS_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/rate_limiter.h"
#include "util/clock.h"

namespace presence {
class FaultInjector;
}  // namespace presence

namespace presence::api {

class Metrics;

// The highest Zulip feature level whose presence behaviour presenced serves
// (simplified_presence_events, FL 419). Raised as newer behaviour lands.
inline constexpr int kZulipFeatureLevel = 419;
inline constexpr const char* kZulipVersion = "11.0-presenced-0.1";

struct ApiOptions {
  std::string root_domain = "localhost";
  // Bearer token of the admin API; empty disables it (every call is 401).
  std::string admin_token;
  // Set with --test-clock: POST /admin/v1/clock moves it. Null otherwise.
  ManualClock* test_clock = nullptr;
  // Seconds a parked GET /events waits before answering with a heartbeat.
  int heartbeat_seconds = 45;
  // Zulip's api_by_user limit: requests per user per 60 s (0: no limit).
  int rate_limit_per_minute = 200;
  // GET /events' own budget, per user per 60 s (0: no limit): polls that
  // neither park alone on their queue nor bring new events (EventHub's
  // "cost"); a parked poll per queue and its answers are free.
  int events_poll_limit_per_minute = 120;
  // The longest list /register takes in event_types and in
  // fetch_event_types, and in presence_user_ids (also PATCH /events).
  std::size_t max_event_types = 100;
  std::size_t max_presence_user_ids = 10'000;
  // Where requests are counted and timed (GET /metrics); may be null.
  Metrics* metrics = nullptr;
  // Which parts this listener serves: with --admin-listen the main listener
  // serves no /admin and the admin listener no /api or web page.
  bool serve_api = true;
  bool serve_admin = true;
  // The operator's endpoints besides /admin: GET /metrics, and /healthz with
  // the store's failure text. A listener without them answers /metrics 404
  // and /healthz with its status only (200 {"status":"ok"}, or 503 with
  // "failed" or "unavailable" and no reason).
  bool serve_metrics = true;
  // Set with --test-faults: POST /admin/v1/faults makes store writes fail.
  FaultInjector* fault_injector = nullptr;
  // Scale-out: the address ("host:port") of the other node that owns an
  // event queue this node does not have, found from the node id its id
  // starts with; nullopt if it is this node's or unknown. Empty in
  // single-node mode.
  std::function<std::optional<std::string>(std::string_view queue_id)>
      queue_owner;
  // The same from what this node knows without asking the store: nullopt
  // if queue_owner would ask it (the owner's address is not cached), else
  // queue_owner's answer. Empty: always ask queue_owner.
  std::function<std::optional<std::optional<std::string>>(
      std::string_view queue_id)>
      queue_owner_cached;
  // Scale-out with --test-clock: the addresses of the group's other live
  // nodes, to which POST /admin/v1/clock is relayed so that one call sets
  // the group's clock. Empty in single-node mode.
  std::function<std::vector<std::string>()> clock_peers;
  // Scale-out: runs a task that may wait on the shared store (a route with
  // kMayWait, the first request for a realm not loaded yet, a queue owner
  // not cached) on a thread that is not an I/O thread (app/
  // store_workers.h); false if it cannot take more (the request then gets
  // 503). Empty (single-node mode, most tests): such work runs inline.
  std::function<bool(std::function<void()>)> offload;
  // Where notable events are logged (one structured line each); may be
  // empty. Never given keys or tokens.
  std::function<void(
      std::string_view event,
      const std::vector<std::pair<std::string, std::string>>& fields)>
      log;
};

}  // namespace presence::api

#endif  // PRESENCE_API_API_OPTIONS_H_
