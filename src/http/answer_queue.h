// AnswerQueue: the long-poll answers one I/O thread owes, written in turns
// behind its requests (issue #17, "pings first").
//
// The rule. On an I/O thread, work that was read from a client (a ping, a
// register, a poll that finds nothing and parks, any request) runs in the
// order it became ready, as Asio runs it. Answers to long polls do not run
// there: a parked poll woken by its queue, and a poll that comes with its
// events already waiting, join this queue instead, and the queue answers
// them kSlice at a time, each slice posted behind whatever else is ready on
// the thread. However many answers are due (one presence change wakes every
// parked poll of a realm), a request that is read waits for at most one
// slice and the requests ahead of it, never for the whole fan-out; and no
// answer is lost or reordered, it comes later. What Zulip clients see
// under load: a long poll that returns a little later with several events
// instead of one (events keep arriving in its queue while it waits its
// turn), the same ids and order, and their pings answered at once. The
// queues' own bounds (--max-queue-events) still hold: a queue that
// overflows while its answer waits is dropped and its client registers
// again, as before.
//
// One queue per execution context (an Asio service), so every connection
// of an I/O thread shares its thread's queue with no lock on the request
// path. An item runs on its own executor: inline when the slice runs on it
// already (an io_context run by one thread, presenced's I/O threads), else
// posted there (a strand per connection, as in tests); the order among
// items is kept either way.
//
// Thread safety: Add from any thread; mu_ guards the list and whether a
// slice is posted. Slices run on the executor of the item that started the
// current run of the queue.
#ifndef PRESENCE_HTTP_ANSWER_QUEUE_H_
#define PRESENCE_HTTP_ANSWER_QUEUE_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <cstddef>
#include <deque>
#include <memory>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence::http {

class AnswerQueue : public boost::asio::execution_context::service {
 public:
  // What the queue runs: one deferred answer.
  class Item {
   public:
    // Runs on executor(): writes the answer (or finds there is none any
    // more, e.g. the connection left).
    virtual void AnswerNow() = 0;
    virtual boost::asio::any_io_executor executor() = 0;

   protected:
    virtual ~Item() = default;
  };

  // Answers per turn: about 0.5 ms of work at ~14 us per answer, so a
  // request read meanwhile waits about that long for the answers, however
  // many are due.
  static constexpr std::size_t kSlice = 32;

  static inline boost::asio::execution_context::id id;

  explicit AnswerQueue(boost::asio::execution_context& context)
      : boost::asio::execution_context::service(context) {}

  // The queue of the execution context `executor` belongs to (created on
  // first use).
  static AnswerQueue& Of(const boost::asio::any_io_executor& executor);

  // Queues `item` at the back; it runs in a later turn. Any thread.
  void Add(std::shared_ptr<Item> item) EXCLUDES(mu_);

  // Items queued and not yet run.
  std::size_t waiting() const EXCLUDES(mu_);

 private:
  void shutdown() override EXCLUDES(mu_);
  void RunSlice() EXCLUDES(mu_);

  mutable Mutex mu_;
  std::deque<std::shared_ptr<Item>> items_ GUARDED_BY(mu_);
  bool posted_ GUARDED_BY(mu_) = false;  // a RunSlice is pending
  bool shut_down_ GUARDED_BY(mu_) = false;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_ANSWER_QUEUE_H_
