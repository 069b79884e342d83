#include "app/io_threads.h"

#include <cstdlib>
#include <exception>
#include <thread>

#include "app/log.h"

namespace presence::app {

IoThreads::IoThreads(unsigned threads) {
  if (threads == 0) threads = std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; ++i) {
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
  }
  for (unsigned i = 1; i < threads; ++i) {
    keep_running_.push_back(boost::asio::make_work_guard(*contexts_[i]));
  }
}

http::ExecutorPicker IoThreads::Picker() {
  return [this]() -> boost::asio::any_io_executor {
    return contexts_[next_++ % contexts_.size()]->get_executor();
  };
}

void IoThreads::SetThreadHooks(
    std::function<void(boost::asio::io_context&)> on_start,
    std::function<void()> on_exit) {
  on_start_ = std::move(on_start);
  on_exit_ = std::move(on_exit);
}

void IoThreads::Run() {
  auto run = [this](boost::asio::io_context& ctx) {
    if (on_start_) on_start_(ctx);
    try {
      ctx.run();
    } catch (const std::exception& e) {
      // Sessions catch what the API throws (answered 500, that connection
      // closed). Anything that still reaches the loop comes from the HTTP
      // layer's own state, which is then unknown: stop at once, and say
      // why in one clear line rather than std::terminate's.
      Log("fatal", "io_thread_exception", {{"what", e.what()}});
      std::abort();
    }
    if (on_exit_) on_exit_();
  };
  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    pool.emplace_back([&run, this, i] { run(*contexts_[i]); });
  }
  run(*contexts_[0]);
  for (auto& t : pool) t.join();
}

void IoThreads::Stop() {
  keep_running_.clear();
  for (auto& c : contexts_) c->stop();
}

}  // namespace presence::app
