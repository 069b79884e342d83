// Clock: the only source of presence time.
//
// The core never reads the system clock itself; it is handed a Clock. Times are
// microseconds since the Unix epoch (int64). RealClock reads the system clock;
// ManualClock holds whatever it was last set to (tests and `--test-clock`).
//
// Thread safety: both implementations may be read and set from any thread.
#ifndef PRESENCE_UTIL_CLOCK_H_
#define PRESENCE_UTIL_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace presence {

// Microseconds since the Unix epoch.
using Micros = std::int64_t;

inline constexpr Micros kMicrosPerSecond = 1'000'000;

constexpr Micros SecondsToMicros(std::int64_t s) {
  return s * kMicrosPerSecond;
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros NowMicros() const = 0;
};

class RealClock final : public Clock {
 public:
  Micros NowMicros() const override;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(Micros start) : now_(start) {}
  Micros NowMicros() const override {
    return now_.load(std::memory_order_acquire);
  }
  void Set(Micros now) { now_.store(now, std::memory_order_release); }
  void Advance(Micros delta) {
    now_.fetch_add(delta, std::memory_order_acq_rel);
  }

 private:
  std::atomic<Micros> now_;
};

}  // namespace presence

#endif  // PRESENCE_UTIL_CLOCK_H_
