// ActivityMonitor: decides whether the person at this client is "active" or
// "idle", the way Zulip's web app does (spec 6.1).
//
// An InputActivitySource says when the person last gave input (a key press,
// a mouse move, the system's idle time...). The client is active while that
// was less than `idle_timeout` ago (5 minutes by default, Zulip's
// DEFAULT_IDLE_TIMEOUT_MS) and idle after. Going idle sends nothing: the next
// periodic report carries "idle". Coming back is different: Poll() says
// `resumed` once, and the client reports at once (a ping_only report) so
// that others see the person back without waiting up to a minute.
//
// new_user_input (sent with every report, for Zulip's analytics) is true when
// there was input since the last report that reached the server.
//
// Thread safety: ActivityMonitor is used from one thread. ManualInputSource
// may be fed from any thread.
#ifndef PRESENCE_CLIENT_ACTIVITY_MONITOR_H_
#define PRESENCE_CLIENT_ACTIVITY_MONITOR_H_

#include <atomic>
#include <limits>
#include <optional>

#include "util/clock.h"

namespace presence::client {

// Where input activity comes from. Times are on the same clock as the
// client's scheduler (microseconds since the Unix epoch).
class InputActivitySource {
 public:
  virtual ~InputActivitySource() = default;
  // The time of the most recent input, or nullopt if there never was any.
  virtual std::optional<Micros> LastInputTime() const = 0;
};

// An InputActivitySource the application feeds: call RecordInput on every
// key press or mouse move.
class ManualInputSource final : public InputActivitySource {
 public:
  void RecordInput(Micros when) {
    Micros prev = last_.load(std::memory_order_relaxed);
    while (prev < when && !last_.compare_exchange_weak(
                              prev, when, std::memory_order_release)) {
    }
  }
  std::optional<Micros> LastInputTime() const override {
    const Micros t = last_.load(std::memory_order_acquire);
    if (t == kNone) return std::nullopt;
    return t;
  }

 private:
  static constexpr Micros kNone = std::numeric_limits<Micros>::min();
  std::atomic<Micros> last_{kNone};
};

class ActivityMonitor {
 public:
  static constexpr Micros kDefaultIdleTimeout = SecondsToMicros(5 * 60);

  // `source` must outlive the monitor.
  explicit ActivityMonitor(const InputActivitySource* source,
                           Micros idle_timeout = kDefaultIdleTimeout);

  struct Update {
    bool active = false;   // the state now
    bool resumed = false;  // it was idle at the previous Poll and is active now
  };

  // Re-reads the source at `now`. The first call never reports `resumed`.
  Update Poll(Micros now);

  // The state found by the last Poll (false before the first).
  bool active() const { return active_; }

  // For the next report: was there input since the last delivered report?
  // (True at start when there was any input at all.)
  bool HasNewInput() const;

  // The input time the next report covers; pass it to ReportDelivered when
  // that report succeeds.
  std::optional<Micros> InputMark() const { return source_->LastInputTime(); }

  // A report carrying input up to `mark` reached the server: new_user_input
  // turns false until more input arrives.
  void ReportDelivered(std::optional<Micros> mark);

  Micros idle_timeout() const { return idle_timeout_; }

 private:
  const InputActivitySource* source_;
  const Micros idle_timeout_;
  bool polled_ = false;
  bool active_ = false;
  std::optional<Micros> delivered_;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_ACTIVITY_MONITOR_H_
