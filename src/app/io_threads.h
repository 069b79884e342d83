// IoThreads: the server's I/O threads, one io_context each, each run by its
// thread alone: a connection stays on one thread, and its handlers take no
// lock shared with the other threads (one shared io_context made every
// completion contend on its scheduler's lock and wake sleeping threads).
// The first context (main()) also runs the acceptors, timers and signals,
// on the thread that calls Run().
//
// Thread safety: Picker's function runs on the acceptors' thread only; Stop
// may be called from a handler of any context.
#ifndef PRESENCE_APP_IO_THREADS_H_
#define PRESENCE_APP_IO_THREADS_H_

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "http/http_server.h"

namespace presence::app {

class IoThreads {
 public:
  // `threads` I/O threads (0: one per hardware thread).
  explicit IoThreads(unsigned threads);

  boost::asio::io_context& main() { return *contexts_[0]; }
  // The i-th context (0: main()), i < size().
  boost::asio::io_context& context(unsigned i) { return *contexts_[i]; }
  unsigned size() const { return static_cast<unsigned>(contexts_.size()); }
  // Hands out the contexts in turn, for new connections.
  http::ExecutorPicker Picker();
  // Called on each I/O thread with its context, before it runs it
  // (`on_start`) and after it stopped (`on_exit`), while every context
  // still exists: for what a thread keeps of its own (the Redis store's
  // asynchronous connections). Set before Run.
  void SetThreadHooks(std::function<void(boost::asio::io_context&)> on_start,
                      std::function<void()> on_exit);
  // Runs every context, this thread running main(), until Stop().
  void Run();
  void Stop();

 private:
  using WorkGuard =
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  // The others run until Stop even with no connection yet.
  std::vector<WorkGuard> keep_running_;
  std::size_t next_ = 0;  // the acceptors' thread only
  std::function<void(boost::asio::io_context&)> on_start_;
  std::function<void()> on_exit_;
};

}  // namespace presence::app

#endif  // PRESENCE_APP_IO_THREADS_H_
