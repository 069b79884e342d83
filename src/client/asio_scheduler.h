// AsioScheduler: the real Scheduler, on an Asio executor and the system
// clock. Give it the same (single-threaded, or strand) executor as the
// HttpTransport so that timers and answers never run at the same time.
//
// Thread safety: use it from the executor's thread only. It may be
// destroyed there at any time: its pending timers are cancelled and their
// tasks never run.
#ifndef PRESENCE_CLIENT_ASIO_SCHEDULER_H_
#define PRESENCE_CLIENT_ASIO_SCHEDULER_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>

#include "client/scheduler.h"

namespace presence::client {

class AsioScheduler final : public Scheduler {
 public:
  explicit AsioScheduler(boost::asio::any_io_executor executor);
  ~AsioScheduler() override;

  Micros Now() const override;
  TimerId RunAfter(Micros delay, Task task) override;
  void Cancel(TimerId id) override;

 private:
  struct Timers {
    std::map<TimerId, std::shared_ptr<boost::asio::steady_timer>> by_id;
  };

  boost::asio::any_io_executor executor_;
  RealClock clock_;
  TimerId next_id_ = 1;
  std::shared_ptr<Timers> timers_ = std::make_shared<Timers>();
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_ASIO_SCHEDULER_H_
