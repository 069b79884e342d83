// SlotList: an intrusive doubly linked list of slots (indexes into a table
// the caller owns), in the order they were appended.
//
// Design. The links live in the caller's records (fields `prev` and `next`
// of type std::uint32_t), so a list costs two words per record and nothing
// per link; the list itself holds only the two ends. Records are reached
// through `links(slot)`, passed to every call, because the table may have
// moved since the last call (a std::vector grows). Used for the realm's
// update orders: a write unlinks the row and appends it, so the rows
// changed after a cursor are the tail run.
//
// Thread safety: none; the owner guards the list with the table's lock.
#ifndef PRESENCE_UTIL_SLOT_LIST_H_
#define PRESENCE_UTIL_SLOT_LIST_H_

#include <cstdint>
#include <limits>

namespace presence {

class SlotList {
 public:
  static constexpr std::uint32_t kNil =
      std::numeric_limits<std::uint32_t>::max();

  std::uint32_t head() const { return head_; }  // the oldest append
  std::uint32_t tail() const { return tail_; }  // the newest append
  void Clear() { head_ = tail_ = kNil; }

  // Appends `slot`, which must not be linked.
  template <class Links>
  void Append(std::uint32_t slot, Links&& links) {
    auto& node = links(slot);
    node.prev = tail_;
    node.next = kNil;
    if (tail_ != kNil) {
      links(tail_).next = slot;
    } else {
      head_ = slot;
    }
    tail_ = slot;
  }

  // Removes `slot`, which must be linked, and resets its links.
  template <class Links>
  void Unlink(std::uint32_t slot, Links&& links) {
    auto& node = links(slot);
    const std::uint32_t prev = node.prev;
    const std::uint32_t next = node.next;
    if (prev != kNil) {
      links(prev).next = next;
    } else {
      head_ = next;
    }
    if (next != kNil) {
      links(next).prev = prev;
    } else {
      tail_ = prev;
    }
    auto& again = links(slot);
    again.prev = again.next = kNil;
  }

 private:
  std::uint32_t head_ = kNil;
  std::uint32_t tail_ = kNil;
};

}  // namespace presence

#endif  // PRESENCE_UTIL_SLOT_LIST_H_
