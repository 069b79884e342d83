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
// Under a backlog, answers also wait and carry more (issue #17, item 7).
// An answer costs about the same whatever it carries, so when more than
// kBacklog answers are due and requests were answered on the thread since
// the last slice (NoteRequest), the queue paces itself: after a slice it rests
// as long as the slice took before the next one, leaving at least half of
// the thread to requests (and, on a shared machine, the core to others),
// and every poll that waits meanwhile gathers more events into its one
// answer. The rest is bounded: the queue rests only while its oldest
// answer has waited less than the coalescing wait (--answer-coalesce-ms,
// Configure); past it, slices follow each other at once again. A Zulip
// client sees its long poll answered up to that much later, with several
// events instead of one, which it handles as any answer. Under no backlog
// nothing changes: an answer waits for no timer.
//
// Under a backlog, each connection's answers are also spaced (issue #17,
// "when answers go out"): an answer costs about the same whatever it
// carries, and on a saturated machine an answer written early does not
// reach its client sooner, it waits in a socket (or in a client that is
// behind) while its events grow stale; a poll that waits in this queue
// instead gathers the events that arrive meanwhile into the same answer.
// So when more than kBacklog answers are due or held on the thread, an
// item whose connection was answered less than the answer interval ago
// (--answer-interval-ms, ConfigureInterval) is held until that interval
// has passed since its last answer, then queued at the back. Answers per
// second on the thread then stay under (connections / interval), and the
// CPU they leave goes to requests and to the clients. A Zulip client sees,
// under load only, its long poll answered at most once per interval with
// every event that arrived meanwhile; an event reaches it at most one
// interval (plus kHoldTick) later than it could have, plus the queueing
// that any answer sees. With kBacklog or fewer answers due, or on a
// connection not answered within the interval, nothing waits.
//
// A slice is also bounded in time (kSliceTime): answers that carry
// hundreds of events cost more each, and a request read meanwhile waits
// for at most that long.
//
// One queue per execution context (an Asio service), so every connection
// of an I/O thread shares its thread's queue with no lock on the request
// path. An item runs on its own executor: inline when the slice runs on it
// already (an io_context run by one thread, presenced's I/O threads), else
// posted there (a strand per connection, as in tests); the order among
// items is kept either way.
//
// Wake-ups in a batch (issue #17): one presence change wakes every parked
// poll of a realm from one task, 10,000 Adds in a row, each taking its
// queue's lock (contended by the thread that answers meanwhile) and reading
// the clock. An AnswerBatch open on the waking thread collects them instead
// and hands each queue its items together (AddMany): one lock, one clock
// read and at most one post per queue per kBatchFlush items. Items keep
// their order per queue; a queue gets its share every kBatchFlush items, so
// the other I/O thread starts answering while the rest are collected.
//
// Thread safety: Add and AddMany from any thread; mu_ guards the list, the
// held items and whether a slice or the hold timer is posted. Slices run on
// the executor of the item that started the current run of the queue; the
// hold timer on that of the item that started it. An item's last run time
// is an atomic, written when it runs and read when it is added. An AnswerBatch
// belongs to the thread that opened it.
#ifndef PRESENCE_HTTP_ANSWER_QUEUE_H_
#define PRESENCE_HTTP_ANSWER_QUEUE_H_

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

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

   private:
    friend class AnswerQueue;
    // When the queue last ran this item (steady clock, ns; 0: never).
    // Written by the thread that runs it, read by any thread that adds it.
    std::atomic<std::int64_t> last_run_ns_{0};
  };

  using Clock = std::chrono::steady_clock;

  // Answers per turn: about 0.5 ms of work at ~14 us per answer, so a
  // request read meanwhile waits about that long for the answers, however
  // many are due.
  static constexpr std::size_t kSlice = 32;
  // A slice stops early once it has run this long.
  static constexpr std::chrono::microseconds kSliceTime{500};
  // Answers due beyond which the queue paces itself (four slices).
  static constexpr std::size_t kBacklog = 4 * kSlice;
  // The default longest rest the pacing may add (--answer-coalesce-ms).
  static constexpr std::chrono::milliseconds kDefaultCoalesceWait{50};
  // The default answer interval under a backlog (--answer-interval-ms).
  static constexpr std::chrono::milliseconds kDefaultInterval{100};
  // Held items are looked at least this often, so one that a later-armed
  // timer would pass over waits at most this much beyond its interval.
  static constexpr std::chrono::milliseconds kHoldTick{5};

  static inline boost::asio::execution_context::id id;

  explicit AnswerQueue(boost::asio::execution_context& context)
      : boost::asio::execution_context::service(context) {}

  // The queue of the execution context `executor` belongs to (created on
  // first use).
  static AnswerQueue& Of(const boost::asio::any_io_executor& executor);

  // Queues `item` at the back; it runs in a later turn. Any thread. With an
  // AnswerBatch open on this thread, the item is queued when the batch
  // hands it over (at the latest when the batch closes).
  void Add(std::shared_ptr<Item> item) EXCLUDES(mu_);

  // Queues `items` at the back, in order, under one lock. Any thread;
  // `items` is left empty.
  void AddMany(std::vector<std::shared_ptr<Item>>& items) EXCLUDES(mu_);

  // Items queued and not yet run.
  std::size_t waiting() const EXCLUDES(mu_);

  // The longest an answer's wait may be stretched to gather more events
  // under a backlog (0: never; answers follow each other at once). Any
  // thread; the latest call wins.
  void Configure(std::chrono::microseconds coalesce_wait) {
    coalesce_wait_us_.store(coalesce_wait.count(), std::memory_order_relaxed);
  }

  // The answer interval under a backlog (0: answers are never held). Any
  // thread; the latest call wins.
  void ConfigureInterval(std::chrono::microseconds interval) {
    interval_us_.store(interval.count(), std::memory_order_relaxed);
  }

  // The rule alone (tests drive it with their own times): when an item
  // last run at `last_run` (Clock::time_point{} if never) and added at
  // `now`, with `backlog` items due or held, may run; nullopt: at once.
  static std::optional<Clock::time_point> HoldUntil(Clock::time_point last_run,
                                                    Clock::time_point now,
                                                    std::size_t backlog,
                                                    Clock::duration interval);

  // A request was answered on this queue's thread without parking (a ping,
  // a register, ...): the pacing rests only when such requests compete for
  // the thread, so a lone fan-out (one event to every parked poll, nobody
  // else asking) still runs at full speed. Any thread; cheap.
  void NoteRequest() { requests_.fetch_add(1, std::memory_order_relaxed); }

  // Rests taken so far (pacing under a backlog), for tests and metrics.
  std::uint64_t rests() const { return rests_.load(std::memory_order_relaxed); }

  // Items held so far for the answer interval, and held now.
  std::uint64_t holds() const { return holds_.load(std::memory_order_relaxed); }
  std::size_t held() const EXCLUDES(mu_);

 private:
  void shutdown() override EXCLUDES(mu_);
  void RunSlice() EXCLUDES(mu_);
  // Queues `item` (held or due), under mu_; sets `start` when a slice must
  // be posted and `hold` when the hold timer must be started.
  void Enqueue(std::shared_ptr<Item> item, Clock::time_point now,
               boost::asio::any_io_executor& start,
               boost::asio::any_io_executor& hold) REQUIRES(mu_);
  // On the hold timer's executor: queues the held items that are due, and
  // arms the timer again while any is held.
  void ReleaseHeld(boost::asio::any_io_executor ex) EXCLUDES(mu_);

  struct Queued {
    std::shared_ptr<Item> item;
    Clock::time_point added;
  };
  struct Held {
    Clock::time_point due;
    std::uint64_t seq;  // the order held in: equal dues leave in it
    std::shared_ptr<Item> item;
    // A min-heap on (due, seq) (std::push_heap keeps the largest first).
    bool operator<(const Held& o) const {
      return due != o.due ? due > o.due : seq > o.seq;
    }
  };

  std::atomic<std::int64_t> coalesce_wait_us_{
      std::chrono::microseconds(kDefaultCoalesceWait).count()};
  std::atomic<std::int64_t> interval_us_{
      std::chrono::microseconds(kDefaultInterval).count()};
  std::atomic<std::uint64_t> rests_{0};
  std::atomic<std::uint64_t> holds_{0};
  std::atomic<std::uint64_t> requests_{0};
  mutable Mutex mu_;
  std::deque<Queued> items_ GUARDED_BY(mu_);
  bool posted_ GUARDED_BY(mu_) = false;     // a RunSlice is pending
  std::vector<Held> held_ GUARDED_BY(mu_);  // a heap: see Held
  bool holding_ GUARDED_BY(mu_) = false;    // the hold timer runs
  std::uint64_t held_seq_ GUARDED_BY(mu_) = 0;
  // requests_ when the last slice ended.
  std::uint64_t requests_seen_ GUARDED_BY(mu_) = 0;
  bool shut_down_ GUARDED_BY(mu_) = false;
};

// Collects the AnswerQueue::Add calls made on this thread while it is open
// (see "Wake-ups in a batch" above), and hands them over per queue: when a
// queue has kBatchFlush of them, and all at Flush or when the batch closes.
// Batches nest: an inner one leaves the collecting to the outer one.
// Not copyable; lives on the stack of the thread that opened it.
class AnswerBatch {
 public:
  // Items per queue handed over at once: about two slices, so a queue's
  // thread starts on the first ones while the batch collects the rest.
  static constexpr std::size_t kBatchFlush = 2 * AnswerQueue::kSlice;

  AnswerBatch();
  ~AnswerBatch();
  AnswerBatch(const AnswerBatch&) = delete;
  AnswerBatch& operator=(const AnswerBatch&) = delete;

  // Hands every collected item to its queue now.
  void Flush();

  // The batch open on this thread (the outermost), or null.
  static AnswerBatch* Current();

 private:
  friend class AnswerQueue;
  void Collect(AnswerQueue* queue, std::shared_ptr<AnswerQueue::Item> item);

  struct Group {
    AnswerQueue* queue;
    std::vector<std::shared_ptr<AnswerQueue::Item>> items;
  };
  // One per queue seen (an I/O thread each: a handful).
  std::vector<Group> groups_;
  bool outermost_ = false;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_ANSWER_QUEUE_H_
