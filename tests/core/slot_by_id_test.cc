#include "core/slot_by_id.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <unordered_map>
#include <vector>

namespace presence {
namespace {

struct IdOfSlot {
  const std::vector<UserId>* ids;
  UserId operator()(std::uint32_t slot) const { return (*ids)[slot]; }
};

// A realm's members as the index sees them: ids by slot, and the same
// kept in a plain map to compare with.
class Members {
 public:
  std::uint32_t Add(UserId id) {
    ids_.push_back(id);
    const auto slot = static_cast<std::uint32_t>(ids_.size() - 1);
    reference_[id] = slot;
    return slot;
  }
  void Insert(UserId id) { index_.Insert(Add(id)); }
  // Appends `ids` and indexes them in bulk, as a load does.
  void InsertBulk(const std::vector<UserId>& ids) {
    const auto first = static_cast<std::uint32_t>(ids_.size());
    for (UserId id : ids) Add(id);
    const auto last = static_cast<std::uint32_t>(ids_.size());
    if (!index_.InsertRangeDense(first, last)) {
      for (std::uint32_t s = first; s < last; ++s) index_.InsertHashed(s);
    }
  }
  // Every member is found at its slot, and `probes` absent ids are not.
  void Check(const std::vector<UserId>& probes) const {
    ASSERT_EQ(index_.size(), reference_.size());
    for (const auto& [id, slot] : reference_) {
      ASSERT_EQ(index_.Find(id), slot) << id;
      ASSERT_NE(index_.find(id), index_.end()) << id;
      ASSERT_EQ(*index_.find(id), slot) << id;
    }
    for (UserId id : probes) {
      if (reference_.count(id)) continue;
      ASSERT_EQ(index_.Find(id), SlotById<IdOfSlot>::kNil) << id;
      ASSERT_EQ(index_.find(id), index_.end()) << id;
    }
  }
  const SlotById<IdOfSlot>& index() const { return index_; }

 private:
  std::vector<UserId> ids_;
  std::unordered_map<UserId, std::uint32_t> reference_;
  SlotById<IdOfSlot> index_{IdOfSlot{&ids_}};
};

const std::vector<UserId> kEdges = {0,
                                    1,
                                    2,
                                    -1,
                                    1023,
                                    1024,
                                    1025,
                                    std::int64_t{1} << 32,
                                    std::numeric_limits<UserId>::max(),
                                    std::numeric_limits<UserId>::min()};

// An import (ids 1..N, in order, in bulk) is indexed densely: 4 bytes a
// member.
TEST(SlotByIdTest, AnImportIsDense) {
  Members m;
  std::vector<UserId> ids;
  for (UserId id = 1; id <= 100'000; ++id) ids.push_back(id);
  m.InsertBulk(ids);
  EXPECT_TRUE(m.index().dense());
  EXPECT_EQ(m.index().bytes(), 100'000 * sizeof(std::uint32_t));
  m.Check(kEdges);
  // New users one by one after it, ids going up: still dense.
  for (UserId id = 100'001; id <= 110'000; ++id) m.Insert(id);
  EXPECT_TRUE(m.index().dense());
  EXPECT_LE(m.index().bytes(), 110'000 * 5 + 64);
  m.Check({0, 110'001, 200'000, -5});
}

// One huge id (any caller may pick one) never grows the array: the index
// becomes a hash set, and everything is still found.
TEST(SlotByIdTest, AHugeIdSwitchesToTheHash) {
  for (UserId huge : {std::int64_t{1} << 40, std::int64_t{5'000}, UserId{-7},
                      std::numeric_limits<UserId>::max(),
                      std::numeric_limits<UserId>::min()}) {
    Members m;
    for (UserId id = 1000; id < 1500; ++id) m.Insert(id);
    ASSERT_TRUE(m.index().dense());
    m.Insert(huge);
    EXPECT_FALSE(m.index().dense()) << huge;
    // No more than a set of ~500 4-byte slots (with its free room).
    EXPECT_LE(m.index().bytes(), 8192u) << huge;
    m.Check(kEdges);
    // And it stays a hash (no flapping back).
    m.Insert(1500);
    EXPECT_FALSE(m.index().dense());
    m.Check({999, 1501, 4'999});
  }
}

TEST(SlotByIdTest, ASparseBulkLoadIsHashed) {
  Members m;
  std::vector<UserId> ids;
  for (UserId i = 1; i <= 5000; ++i) ids.push_back(i * 7);
  m.InsertBulk(ids);
  EXPECT_FALSE(m.index().dense());
  m.Check({0, 6, 8, 35'007});
}

// Randomised against a plain map: ids dense, loosely dense or sparse,
// inserted one by one and in bulk, the array's memory always within its
// bound.
TEST(SlotByIdTest, RandomisedAgainstAMap) {
  std::mt19937_64 rng(17);
  for (int round = 0; round < 60; ++round) {
    Members m;
    std::unordered_map<UserId, bool> used;
    const int spread = 1 + round % 4;  // ids ~ spread x count
    const bool huge_at_end = round % 5 == 0;
    std::vector<UserId> probes(kEdges);
    UserId next = static_cast<UserId>(rng() % 1000) - 500;
    const int batches = 1 + static_cast<int>(rng() % 8);
    for (int b = 0; b < batches; ++b) {
      const int n = 1 + static_cast<int>(rng() % 3000);
      std::vector<UserId> ids;
      for (int i = 0; i < n; ++i) {
        next += 1 + static_cast<UserId>(rng() % static_cast<unsigned>(spread));
        UserId id = next;
        if (rng() % 50 == 0) id -= static_cast<UserId>(rng() % 2000);
        if (used.count(id)) continue;
        used[id] = true;
        ids.push_back(id);
        probes.push_back(id + 1);
        probes.push_back(id - 1);
      }
      if (rng() % 2) {
        m.InsertBulk(ids);
      } else {
        for (UserId id : ids) m.Insert(id);
      }
      if (m.index().dense()) {
        const std::size_t bound =
            (m.index().size() * SlotById<IdOfSlot>::kSpanFactor +
             SlotById<IdOfSlot>::kSlack) *
                5 / 4 +
            16;
        ASSERT_LE(m.index().bytes(), bound * sizeof(std::uint32_t)) << round;
      }
      m.Check(probes);
    }
    if (huge_at_end && !used.count(std::int64_t{1} << 50)) {
      m.Insert(std::int64_t{1} << 50);
      EXPECT_FALSE(m.index().dense());
      m.Check(probes);
    }
  }
}

}  // namespace
}  // namespace presence
