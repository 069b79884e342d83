// SlotById: a realm's index from user id to slot (the member's place in
// its vector), where the id is read back through the slot.
//
// Design (issue #17: memory per user with a million users): Zulip's user
// ids are dense (an import numbers users 1..N), so while the ids of a realm
// lie in a range not much wider than its member count, the index is a plain
// array of 4-byte slots by (id - base): 4 bytes a member where the hash set
// with its free room costs about 10, and a lookup is one load. Ids are not
// trusted to be dense: the array stays dense only while its span is at
// most kSpanFactor x the member count plus kSlack, so no id (a huge one, a
// negative one, one below the first) can make it grow past that bound; an
// id that would moves every slot into an open-addressing set of 4-byte
// slots (hashed through the id the slot reads back), once, and the index
// stays hashed from then on. Members are never removed.
//
// Thread safety: none of its own; the realm's lock guards it.
#ifndef PRESENCE_CORE_SLOT_BY_ID_H_
#define PRESENCE_CORE_SLOT_BY_ID_H_

#include <algorithm>
#include <boost/unordered/unordered_flat_set.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/types.h"

namespace presence {

// IdOf: a copyable functor, `UserId operator()(std::uint32_t slot) const`,
// valid for every slot inserted.
template <class IdOf>
class SlotById {
 public:
  static constexpr std::uint32_t kNil =
      std::numeric_limits<std::uint32_t>::max();
  // The array's span (largest id - base + 1) stays at most
  // kSpanFactor x size() + kSlack entries (4 bytes each), and its capacity
  // at most a quarter above that.
  static constexpr std::size_t kSpanFactor = 2;
  static constexpr std::size_t kSlack = 1024;

  explicit SlotById(IdOf id_of)
      : id_of_(id_of), set_(0, Hash{id_of}, Eq{id_of}) {}

  // The slot of `id`, or kNil.
  std::uint32_t Find(UserId id) const {
    if (dense_mode_) {
      if (id < base_) return kNil;
      const std::uint64_t d = Offset(id);
      return d < dense_.size() ? dense_[d] : kNil;
    }
    auto it = set_.find(ByIdKey{id});
    return it == set_.end() ? kNil : *it;
  }

  // The same as a pointer to the stored slot, or end() (nullptr), for call
  // sites written against a set's find(). Valid until the next insert.
  const std::uint32_t* find(UserId id) const {
    if (dense_mode_) {
      if (id < base_) return nullptr;
      const std::uint64_t d = Offset(id);
      return d < dense_.size() && dense_[d] != kNil ? &dense_[d] : nullptr;
    }
    auto it = set_.find(ByIdKey{id});
    return it == set_.end() ? nullptr : &*it;
  }
  const std::uint32_t* end() const { return nullptr; }

  // Adds `slot`. Precondition: its id is not in the index.
  void Insert(std::uint32_t slot) {
    const UserId id = id_of_(slot);
    if (dense_mode_) {
      if (count_ == 0 && dense_.empty()) base_ = id;
      if (id >= base_ && Offset(id) < Span(count_ + 1)) {
        const std::uint64_t d = Offset(id);
        if (d >= dense_.size()) {
          if (d >= dense_.capacity()) {
            // Grown by a quarter (never past the bound's quarter): its
            // spare room is memory per member.
            const std::size_t c = dense_.capacity();
            dense_.reserve(std::max<std::size_t>(d + 1, c + c / 4 + 16));
          }
          dense_.resize(d + 1, kNil);
        }
        dense_[d] = slot;
        ++count_;
        return;
      }
      ToHash();
    }
    set_.insert(slot);
    ++count_;
  }

  // Adds slots [first, last) in bulk (loading). Precondition: their ids are
  // distinct and not in the index. When they stay dense they are placed
  // here and true is returned; otherwise the index is hashed and nothing
  // is inserted: the caller inserts them with InsertHashed, in the order it
  // likes (util/hash_order.h).
  bool InsertRangeDense(std::uint32_t first, std::uint32_t last) {
    if (first == last) return dense_mode_;
    if (!dense_mode_) {
      set_.reserve(count_ + (last - first));
      return false;
    }
    UserId lo = id_of_(first), hi = lo;
    for (std::uint32_t s = first + 1; s < last; ++s) {
      const UserId id = id_of_(s);
      lo = std::min(lo, id);
      hi = std::max(hi, id);
    }
    if (count_ == 0 && dense_.empty()) base_ = lo;
    const std::size_t after = count_ + (last - first);
    if (lo < base_ || Offset(hi) >= Span(after)) {
      ToHash();
      set_.reserve(after);
      return false;
    }
    const std::uint64_t need = Offset(hi) + 1;
    if (need > dense_.size()) {
      if (need > dense_.capacity()) dense_.reserve(need);  // exactly
      dense_.resize(need, kNil);
    }
    for (std::uint32_t s = first; s < last; ++s) dense_[Offset(id_of_(s))] = s;
    count_ = after;
    return true;
  }

  // Inserts into the hashed index. Precondition: !dense().
  void InsertHashed(std::uint32_t slot) {
    set_.insert(slot);
    ++count_;
  }

  // The hash the set places `slot` by (for util/hash_order.h).
  std::size_t HashOf(std::uint32_t slot) const {
    return Mix(static_cast<std::uint64_t>(id_of_(slot)));
  }

  // A hint that `n` members are coming (hashed index only: a dense one
  // sizes itself by their ids).
  void Reserve(std::size_t n) {
    if (!dense_mode_) set_.reserve(n);
  }

  bool dense() const { return dense_mode_; }
  std::size_t size() const { return count_; }
  // Bytes held by the index's tables.
  std::size_t bytes() const {
    return dense_.capacity() * sizeof(std::uint32_t) +
           (dense_mode_ ? 0
                        : set_.bucket_count() * (sizeof(std::uint32_t) + 1));
  }

 private:
  struct ByIdKey {
    UserId id;
  };
  struct Hash {
    using is_transparent = void;
    using is_avalanching = std::true_type;
    IdOf id_of;
    std::size_t operator()(std::uint32_t slot) const {
      return Mix(static_cast<std::uint64_t>(id_of(slot)));
    }
    std::size_t operator()(ByIdKey key) const {
      return Mix(static_cast<std::uint64_t>(key.id));
    }
  };
  struct Eq {
    using is_transparent = void;
    IdOf id_of;
    UserId Of(std::uint32_t slot) const { return id_of(slot); }
    UserId Of(ByIdKey key) const { return key.id; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return Of(a) == Of(b);
    }
  };

  // A 64-bit finaliser (splitmix64's): every input bit reaches every
  // output bit, so the set may use the high bits as the position.
  static std::uint64_t Mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // id - base_ without overflow. Precondition: id >= base_.
  std::uint64_t Offset(UserId id) const {
    return static_cast<std::uint64_t>(id) - static_cast<std::uint64_t>(base_);
  }
  static std::uint64_t Span(std::size_t members) {
    return std::uint64_t{members} * kSpanFactor + kSlack;
  }
  // Moves every slot into the set, for good.
  void ToHash() {
    set_.reserve(count_ + 1);
    for (std::uint32_t slot : dense_) {
      if (slot != kNil) set_.insert(slot);
    }
    std::vector<std::uint32_t>().swap(dense_);
    dense_mode_ = false;
  }

  IdOf id_of_;
  bool dense_mode_ = true;
  UserId base_ = 0;                   // the id at dense_[0]
  std::size_t count_ = 0;             // slots in the index
  std::vector<std::uint32_t> dense_;  // slot by id - base_, kNil: none
  boost::unordered_flat_set<std::uint32_t, Hash, Eq> set_;
};

}  // namespace presence

#endif  // PRESENCE_CORE_SLOT_BY_ID_H_
