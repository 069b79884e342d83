// DeadlineList: the deadlines of many connections without a timer each
// (issue #17, many parked polls).
//
// A connection has at most one deadline at a time (the idle timeout of a
// read or a write, the heartbeat of a parked poll), and there are only a
// few durations. Deadlines of one duration, set at non-decreasing times,
// fall due in the order they were set: each duration is a FIFO lane (a
// doubly linked list through the entries), so setting a deadline links the
// entry at its lane's tail, clearing it unlinks it, both O(1), with no
// allocation and no system call, and the earliest deadline is the earliest
// of the lanes' heads. An Asio timer and its pending wait per connection
// cost about 120 B in the session plus a pending operation of one to a few
// hundred bytes; an entry costs 32 B.
//
// SessionDeadlines puts one DeadlineList per execution context (an I/O
// thread) behind one Asio timer, armed for the earliest head: entries due
// are unlinked and their owners told, on their executors.
//
// Thread safety: DeadlineList has none (SessionDeadlines guards its list
// with its mutex). An Entry is linked in at most one list.
#ifndef PRESENCE_HTTP_DEADLINE_LIST_H_
#define PRESENCE_HTTP_DEADLINE_LIST_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence::http {

class DeadlineList {
  struct Lane;

 public:
  using Clock = std::chrono::steady_clock;

  class Entry {
   public:
    Entry() = default;
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    // The owner unlinks it first (DeadlineList::Clear).
    ~Entry() = default;

    bool linked() const { return lane_ != nullptr; }
    Clock::time_point due() const { return due_; }

   private:
    friend class DeadlineList;
    Entry* prev_ = nullptr;
    Entry* next_ = nullptr;
    Lane* lane_ = nullptr;
    Clock::time_point due_{};
  };

  DeadlineList() = default;
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  // Sets `e`'s deadline to now + after, replacing the one it had. `now`
  // must not be earlier than the `now` of any earlier Set with the same
  // `after` (a lane's order is the order of its deadlines). True if `e` is
  // now the earliest deadline of its lane (its timer may need arming).
  bool Set(Entry& e, Clock::duration after, Clock::time_point now);
  // Unlinks `e` if linked.
  void Clear(Entry& e);
  // The earliest deadline, or Clock::time_point::max() if none.
  Clock::time_point Earliest() const;
  // Unlinks every entry due by `now`, earliest first per lane, into `due`.
  void PopDue(Clock::time_point now, std::vector<Entry*>& due);
  std::size_t size() const { return size_; }

 private:
  struct Lane {
    Clock::duration after{};
    Entry* head = nullptr;
    Entry* tail = nullptr;
  };
  Lane& LaneFor(Clock::duration after);

  // One per duration (a few); a lane never moves once made, entries point
  // to it.
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::size_t size_ = 0;
};

// One DeadlineList per execution context behind one Asio timer.
class SessionDeadlines : public boost::asio::execution_context::service {
 public:
  // What a deadline tells.
  class Owner {
   public:
    // Runs on executor(); the owner checks whether its deadline still
    // stands (it may have been set again meanwhile).
    virtual void DeadlinePassed() = 0;
    virtual boost::asio::any_io_executor executor() = 0;
    // A reference that keeps the owner alive while DeadlinePassed runs, or
    // null if it is being destroyed.
    virtual std::shared_ptr<Owner> LockOwner() = 0;

   protected:
    virtual ~Owner() = default;
  };
  // An owner's entry: the owner clears it before it is destroyed.
  struct Slot : DeadlineList::Entry {
    Owner* owner = nullptr;
  };

  static inline boost::asio::execution_context::id id;

  explicit SessionDeadlines(boost::asio::execution_context& context);

  // The service of the context `executor` belongs to (made on first use).
  static SessionDeadlines& Of(const boost::asio::any_io_executor& executor);

  // Sets `slot`'s deadline to now + after (see DeadlineList::Set); its
  // owner's DeadlinePassed runs once it passes, unless set again or
  // cleared first. `ex`: where the service's timer runs (the first call's
  // is kept). Returns the now it read (one clock read per request, not
  // two: issue #17).
  DeadlineList::Clock::time_point Set(Slot& slot,
                                      DeadlineList::Clock::duration after,
                                      const boost::asio::any_io_executor& ex)
      EXCLUDES(mu_);
  void Clear(Slot& slot) EXCLUDES(mu_);
  std::size_t size() const EXCLUDES(mu_);

 private:
  void shutdown() override EXCLUDES(mu_);
  void ArmLocked(DeadlineList::Clock::time_point at) REQUIRES(mu_);
  void OnTimer() EXCLUDES(mu_);

  mutable Mutex mu_;
  DeadlineList list_ GUARDED_BY(mu_);
  std::optional<boost::asio::steady_timer> timer_ GUARDED_BY(mu_);
  // When the pending wait fires (max: none pending).
  DeadlineList::Clock::time_point armed_at_ GUARDED_BY(mu_) =
      DeadlineList::Clock::time_point::max();
  bool shut_down_ GUARDED_BY(mu_) = false;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_DEADLINE_LIST_H_
