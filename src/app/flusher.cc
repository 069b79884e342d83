#include "app/flusher.h"

#include "app/log.h"

namespace presence::app {

Flusher::Flusher(PresenceService* service, std::chrono::milliseconds interval,
                 api::Metrics* metrics)
    : service_(service), metrics_(metrics), interval_(interval) {}

Flusher::~Flusher() { Stop(); }

void Flusher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Flusher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Flusher::Run() {
  bool reported = false;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    auto stats = service_->Flush();
    if (metrics_ != nullptr && (!stats || stats->rows > 0)) {
      metrics_->RecordFlush(stats ? stats->rows : 0,
                            std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - start)
                                .count(),
                            static_cast<bool>(stats));
    }
    if (!stats && !reported) {
      // Sticky: say it once, loudly; /healthz keeps saying it.
      Log("error", "store_failed", {{"reason", service_->failure()}});
      reported = true;
    }
    lock.lock();
  }
}

}  // namespace presence::app
