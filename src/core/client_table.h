// ClientTable: a realm's per-client presence rows (issue #8), kept small
// enough for a realm where everyone is online (issue #17: a node-based map
// entry, a vector and a std::string per user cost about 150 bytes).
//
// Design. Entries are indexed by the member's slot in pages of kPageSize,
// allocated when the first member of the page gets a client row, so a realm
// at rest pays nothing and an online one pays one 40-byte entry per user, no
// hash, no node, no malloc header. The common case, one client row, lives in
// the entry itself; a user with two or more rows keeps them all in a side
// map (about a tenth of users in the workload). Client names are
// interned: a row holds a 4-byte id, and the table keeps each distinct name
// once, with the number of rows using it; a name no row uses is forgotten,
// so names sprayed by a client do not accumulate (rows are bounded per user).
//
// An entry also holds the user's place in the realm's client update-order
// list (prev/next, as SlotList wants) and its write-behind mark, which the
// realm manages.
//
// Thread safety: none; the realm guards it with its lock. Const methods only
// read, so they may run concurrently with each other.
#ifndef PRESENCE_CORE_CLIENT_TABLE_H_
#define PRESENCE_CORE_CLIENT_TABLE_H_

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace presence {

class ClientTable {
 public:
  static constexpr std::uint32_t kNil =
      std::numeric_limits<std::uint32_t>::max();
  static constexpr std::size_t kPageSize = 1024;

  // One client row with its name interned (see NameOf).
  struct Row {
    std::uint32_t name = kNil;
    PresenceTimes times;
    UpdateId last_update_id = 0;
    friend bool operator==(const Row&, const Row&) = default;
  };

  // A user's entry: its rows' summary and the realm's bookkeeping.
  struct Entry {
    PresenceTimes times;        // the single row's, when count == 1
    UpdateId update_id = 0;     // newest last_update_id among the rows
    std::uint32_t name = kNil;  // the single row's, when count == 1
    std::uint8_t count = 0;     // rows; 0: the user has none
    bool linked = false;        // in the realm's client update order
    bool dirty = false;         // to be written behind
    std::uint32_t prev = kNil;  // client update-order list (SlotList)
    std::uint32_t next = kNil;
  };

  ClientTable() = default;
  ClientTable(const ClientTable&) = delete;
  ClientTable& operator=(const ClientTable&) = delete;

  // The entry of `slot`, or nullptr if its page was never allocated (then
  // the user has no rows).
  const Entry* Find(std::uint32_t slot) const;
  // The entry of `slot` (count 0 if the user has no rows), allocating its
  // page if needed.
  Entry& At(std::uint32_t slot);
  // Whether `slot` has at least one row.
  bool Has(std::uint32_t slot) const {
    const Entry* e = Find(slot);
    return e != nullptr && e->count > 0;
  }

  // Appends `slot`'s rows to `out`, ordered by client name (byte order).
  void RowsOf(std::uint32_t slot, std::vector<Row>& out) const;
  // A copy of the row of `slot` named `name` (an id from FindName), if any.
  std::optional<Row> FindRow(std::uint32_t slot, std::uint32_t name) const;
  // Replaces `slot`'s rows (names already interned; at most one row a name;
  // at most 255 rows). The entry's update_id becomes the newest row's id
  // (left as it was if `rows` is empty); links and dirty are left alone.
  // Names no longer used by any row are forgotten.
  void SetRows(std::uint32_t slot, std::span<const Row> rows);
  // Updates the times and id of `slot`'s existing row `name` in place and
  // sets the entry's update_id to `id` (which is newer than every row's).
  void UpdateRow(std::uint32_t slot, std::uint32_t name,
                 const PresenceTimes& times, UpdateId id);

  // The id of a name some row uses, or kNil.
  std::uint32_t FindName(std::string_view name) const;
  // The id of `name`, interning it if needed. A name interned here and then
  // not given to any row by SetRows stays until DropUnused(id).
  std::uint32_t Intern(std::string_view name);
  // Forgets `id` if no row uses it.
  void DropUnused(std::uint32_t id);
  const std::string& NameOf(std::uint32_t id) const { return names_[id].text; }

  // The first slot >= `from` with rows, or kNil: a walk over the users with
  // rows, in slot order.
  std::uint32_t NextSlot(std::uint32_t from) const;

  // Distinct names held (for tests).
  std::size_t name_count() const { return by_name_.size(); }

 private:
  struct Name {
    std::string text;
    std::size_t rows = 0;  // rows using it
  };
  void Ref(std::uint32_t id) { ++names_[id].rows; }
  void Unref(std::uint32_t id);

  std::vector<std::unique_ptr<Entry[]>> pages_;
  // Rows of users with two or more, by slot (the entry's own fields then
  // hold only update_id and the bookkeeping).
  boost::unordered_flat_map<std::uint32_t, std::vector<Row>> more_;
  std::vector<Name> names_;              // by id
  std::vector<std::uint32_t> free_ids_;  // ids of forgotten names
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const {
      return std::hash<std::string_view>()(s);
    }
  };
  boost::unordered_flat_map<std::string, std::uint32_t, NameHash,
                            std::equal_to<>>
      by_name_;
};

static_assert(sizeof(ClientTable::Entry) == 40,
              "ClientTable::Entry grew: it is paid per online user");

}  // namespace presence

#endif  // PRESENCE_CORE_CLIENT_TABLE_H_
