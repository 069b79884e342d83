#include "util/clock.h"

#include <chrono>

namespace presence {

Micros RealClock::NowMicros() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace presence
