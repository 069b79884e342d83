// ServerClock: the client's estimate of the server's clock.
//
// Presence ages are judged against the server's time (spec 6.3), which
// arrives with every answer as `server_timestamp`. Modern presence events
// carry no clock, and a display needs "now" between answers, so the client
// remembers the offset between the server's last stated time and its own
// clock at that moment and extrapolates. Before any observation it is the
// local clock.
//
// Thread safety: none; one owner.
#ifndef PRESENCE_CLIENT_SERVER_CLOCK_H_
#define PRESENCE_CLIENT_SERVER_CLOCK_H_

#include <optional>

#include "util/clock.h"

namespace presence::client {

class ServerClock {
 public:
  // The server said its time was `server_seconds` when the local clock read
  // `local_now`.
  void Observe(double server_seconds, Micros local_now) {
    offset_ = server_seconds - static_cast<double>(local_now) / 1e6;
  }

  // The server's time now, in unix seconds.
  double Now(Micros local_now) const {
    return static_cast<double>(local_now) / 1e6 + offset_.value_or(0.0);
  }

  bool observed() const { return offset_.has_value(); }

 private:
  std::optional<double> offset_;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_SERVER_CLOCK_H_
