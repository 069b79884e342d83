#include "app/loop_lag.h"

#include <cstdio>

namespace presence::app {

void LoopLag::Watch(boost::asio::io_context& ctx) {
  probes_.push_back(std::make_unique<Probe>(ctx));
  Probe& probe = *probes_.back();
  probe.timer.expires_after(kPeriod);
  Arm(probe);
}

std::optional<LoopLag::ThreadTimes> LoopLag::ReadThreadTimes() {
  std::FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
  if (f == nullptr) return std::nullopt;
  unsigned long long cpu = 0, wait = 0;
  const int read = std::fscanf(f, "%llu %llu", &cpu, &wait);
  std::fclose(f);
  if (read != 2) return std::nullopt;
  return ThreadTimes{cpu, wait};
}

void LoopLag::SampleTimes(Probe& probe) {
  const std::optional<ThreadTimes> now = ReadThreadTimes();
  if (now && probe.last && now->cpu_ns >= probe.last->cpu_ns &&
      now->wait_ns >= probe.last->wait_ns) {
    metrics_->RecordIoThreadTimes(now->cpu_ns - probe.last->cpu_ns,
                                  now->wait_ns - probe.last->wait_ns);
  }
  probe.last = now;
}

void LoopLag::Arm(Probe& probe) {
  probe.timer.async_wait([this, &probe](const boost::system::error_code& ec) {
    if (ec) return;
    const auto now = boost::asio::steady_timer::clock_type::now();
    metrics_->RecordLoopLag(
        std::chrono::duration<double>(now - probe.timer.expiry()).count());
    // The first tick sets the baseline (the time before it was start-up).
    if (probe.ticks++ % kTimesEvery == 0) SampleTimes(probe);
    // From now, not from the last due time: one long stall counts once.
    probe.timer.expires_at(now + kPeriod);
    Arm(probe);
  });
}

}  // namespace presence::app
