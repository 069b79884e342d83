#include "core/key_index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

namespace presence {
namespace {

// A digest whose first 8 bytes are `prefix` and whose last byte is `tail`.
Digest Crafted(std::uint8_t prefix, std::uint8_t tail) {
  Digest d{};
  d.fill(0);
  d[0] = prefix;
  d[31] = tail;
  return d;
}

// Holders as the service would see them: ref -> the key it holds now.
class KeyIndexTest : public ::testing::Test {
 protected:
  void Give(KeyIndex::Ref ref, const Digest& d) {
    holder_key_[ref] = d;
    index_.Insert(d, ref, Holds());
  }
  KeyIndex::Holds Holds() { return holds_; }
  // What Authenticate does: the candidate, verified against its holder.
  std::optional<KeyIndex::Ref> Verified(const Digest& d) const {
    auto ref = index_.Find(d);
    if (!ref) return std::nullopt;
    auto it = holder_key_.find(*ref);
    if (it == holder_key_.end() || it->second != d) return std::nullopt;
    return ref;
  }

  KeyIndex index_;
  std::map<KeyIndex::Ref, Digest> holder_key_;
  std::function<bool(KeyIndex::Ref, const Digest&)> holds_ =
      [this](KeyIndex::Ref ref, const Digest& d) {
        auto it = holder_key_.find(ref);
        return it != holder_key_.end() && it->second == d;
      };
};

TEST_F(KeyIndexTest, FindsEachKey) {
  Give(1, Sha256("a"));
  Give(2, Sha256("b"));
  EXPECT_EQ(Verified(Sha256("a")), 1u);
  EXPECT_EQ(Verified(Sha256("b")), 2u);
  EXPECT_EQ(Verified(Sha256("c")), std::nullopt);
  EXPECT_EQ(index_.overflow_size(), 0u);
}

TEST_F(KeyIndexTest, KeysSharingAPrefixAreBothFound) {
  const Digest a = Crafted(7, 1);
  const Digest b = Crafted(7, 2);
  ASSERT_EQ(KeyIndex::Prefix(a), KeyIndex::Prefix(b));
  Give(1, a);
  Give(2, b);
  EXPECT_EQ(index_.size(), 2u);
  EXPECT_EQ(index_.overflow_size(), 1u);
  EXPECT_EQ(Verified(a), 1u);
  EXPECT_EQ(Verified(b), 2u);
  // A third key with the prefix, never given: not found.
  EXPECT_EQ(Verified(Crafted(7, 3)), std::nullopt);
}

TEST_F(KeyIndexTest, ErasingEitherOfTwoCollidingKeysKeepsTheOther) {
  const Digest a = Crafted(7, 1);
  const Digest b = Crafted(7, 2);
  Give(1, a);
  Give(2, b);
  index_.Erase(a, 1);
  holder_key_.erase(1);
  EXPECT_EQ(Verified(a), std::nullopt);
  EXPECT_EQ(Verified(b), 2u);

  Give(1, a);  // back, now in the main table's free place
  index_.Erase(b, 2);
  holder_key_.erase(2);
  EXPECT_EQ(Verified(a), 1u);
  EXPECT_EQ(Verified(b), std::nullopt);
  EXPECT_EQ(index_.size(), 1u);
}

TEST_F(KeyIndexTest, ReplacingAKeyWithOneOfTheSamePrefix) {
  const Digest old_key = Crafted(9, 1);
  const Digest new_key = Crafted(9, 2);
  Give(5, old_key);
  // What a key change does: the holder's key changes, then the index.
  holder_key_[5] = new_key;
  index_.Erase(old_key, 5);
  index_.Insert(new_key, 5, Holds());
  EXPECT_EQ(Verified(new_key), 5u);
  EXPECT_EQ(Verified(old_key), std::nullopt);
  EXPECT_EQ(index_.size(), 1u);
}

TEST_F(KeyIndexTest, EraseLeavesAnotherHoldersEntryAlone) {
  const Digest a = Crafted(3, 1);
  Give(1, a);
  index_.Erase(a, 2);              // 2 does not hold it
  index_.Erase(Crafted(3, 9), 2);  // same prefix, other holder
  EXPECT_EQ(Verified(a), 1u);
  const Digest b = Crafted(3, 2);
  Give(2, b);          // in the overflow table
  index_.Erase(b, 1);  // not 1's
  EXPECT_EQ(Verified(b), 2u);
}

TEST_F(KeyIndexTest, SameKeyInsertedAgainHasTheNewHolder) {
  const Digest a = Crafted(4, 1);
  Give(1, a);
  Give(2, a);  // the last holder wins, as a map assignment would
  EXPECT_EQ(Verified(a), 2u);
  EXPECT_EQ(index_.size(), 1u);
  // The same for a key that lives in the overflow table.
  const Digest b = Crafted(4, 2);
  Give(3, b);
  Give(4, b);
  EXPECT_EQ(Verified(b), 4u);
  EXPECT_EQ(Verified(a), 2u);
  EXPECT_EQ(index_.size(), 2u);
}

// Issue #17: the table keys 4 bytes of the digest (bytes 4..7, the top of
// Prefix), so digests differing only elsewhere share a table key.
Digest WithTableKey(std::uint32_t key, std::uint8_t tail) {
  Digest d{};
  d.fill(0);
  std::uint64_t prefix = std::uint64_t{key} << 32 | 0x55;
  std::memcpy(d.data(), &prefix, sizeof prefix);
  d[31] = tail;
  return d;
}

TEST_F(KeyIndexTest, Issue17_DigestsSharingOnlyTheTableKeyAreBothFound) {
  const Digest a = WithTableKey(42, 1);
  Digest b = WithTableKey(42, 2);
  b[0] = 0x99;  // another 8-byte prefix, the same 4-byte table key
  ASSERT_NE(KeyIndex::Prefix(a), KeyIndex::Prefix(b));
  ASSERT_EQ(KeyIndex::KeyOf(KeyIndex::Prefix(a)),
            KeyIndex::KeyOf(KeyIndex::Prefix(b)));
  Give(1, a);
  Give(2, b);
  EXPECT_EQ(index_.overflow_size(), 1u);
  EXPECT_EQ(Verified(a), 1u);
  EXPECT_EQ(Verified(b), 2u);
}

TEST_F(KeyIndexTest, Issue17_TryInsertNewRefusesATableKeyInTheOverflow) {
  const Digest a = WithTableKey(5, 1);
  const Digest b = WithTableKey(5, 2);
  Give(1, a);
  Give(2, b);  // overflow
  index_.Erase(a, 1);
  holder_key_.erase(1);
  // The main table no longer has table key 5, the overflow does: a load of
  // a key with it must go through Insert (it could be b).
  EXPECT_FALSE(index_.TryInsertNew(KeyIndex::Prefix(b), 3));
  // Another table key still loads the fast way.
  const Digest c = WithTableKey(6, 1);
  holder_key_[3] = c;
  EXPECT_TRUE(index_.TryInsertNew(KeyIndex::Prefix(c), 3));
  EXPECT_EQ(Verified(c), 3u);
  EXPECT_EQ(Verified(b), 2u);
}

TEST_F(KeyIndexTest, Issue17_AReferenceTooWideMovesEveryKeyTo8Bytes) {
  const KeyIndex::Ref small = KeyIndex::Ref{255} << 32 | ((1u << 24) - 1);
  const KeyIndex::Ref big_slot = KeyIndex::Ref{1} << 32 | (1u << 24);
  const KeyIndex::Ref big_realm = KeyIndex::Ref{256} << 32 | 7;
  Give(small, Sha256("small"));
  Give(2, Sha256("two"));
  EXPECT_FALSE(index_.wide());
  EXPECT_EQ(Verified(Sha256("small")), small);
  Give(big_slot, Sha256("big slot"));
  EXPECT_TRUE(index_.wide());
  Give(big_realm, Sha256("big realm"));
  EXPECT_EQ(Verified(Sha256("small")), small);
  EXPECT_EQ(Verified(Sha256("two")), 2u);
  EXPECT_EQ(Verified(Sha256("big slot")), big_slot);
  EXPECT_EQ(Verified(Sha256("big realm")), big_realm);
  EXPECT_EQ(index_.size(), 4u);
}

// The index against a model of what it replaced (a map from the full digest
// to its holder), under random inserts, loads, key changes and erases, with
// table keys drawn from a small set so that collisions are common, and
// references that eventually need 8 bytes.
TEST_F(KeyIndexTest, Issue17_RandomOperationsMatchAMapOfFullDigests) {
  for (int seed = 1; seed <= 4; ++seed) {
    KeyIndex index;
    std::map<KeyIndex::Ref, Digest> holder_key;
    std::map<Digest, KeyIndex::Ref> model;
    std::mt19937_64 rng(seed);
    std::vector<Digest> pool;
    for (int i = 0; i < 200; ++i) {
      Digest d = WithTableKey(static_cast<std::uint32_t>(rng() % 40),
                              static_cast<std::uint8_t>(i));
      d[30] = static_cast<std::uint8_t>(i >> 8);
      pool.push_back(d);
    }
    auto holds = [&](KeyIndex::Ref ref, const Digest& d) {
      auto it = holder_key.find(ref);
      return it != holder_key.end() && it->second == d;
    };
    auto random_ref = [&](int step) -> KeyIndex::Ref {
      const KeyIndex::Ref slot = rng() % 30;
      // The second half of seeds 3 and 4 use references that do not fit.
      if (seed >= 3 && step > 1000 && rng() % 4 == 0) {
        return (KeyIndex::Ref{300} << 32) | slot;
      }
      return (KeyIndex::Ref{rng() % 2} << 32) | slot;
    };
    for (int step = 0; step < 3000; ++step) {
      const KeyIndex::Ref ref = random_ref(step);
      const Digest& d = pool[rng() % pool.size()];
      switch (rng() % 3) {
        case 0:
        case 1: {  // ref takes key d (a key change erases the old one)
          if (auto old = holder_key.find(ref); old != holder_key.end()) {
            index.Erase(old->second, ref);
            if (auto m = model.find(old->second);
                m != model.end() && m->second == ref) {
              model.erase(m);
            }
          }
          holder_key[ref] = d;
          if (step % 5 == 0 && index.TryInsertNew(KeyIndex::Prefix(d), ref)) {
            // The loader's path, taken only when nothing has the table key.
          } else {
            index.Insert(d, ref, holds);
          }
          model[d] = ref;
          break;
        }
        case 2: {  // ref loses its key
          auto old = holder_key.find(ref);
          if (old == holder_key.end()) break;
          index.Erase(old->second, ref);
          if (auto m = model.find(old->second);
              m != model.end() && m->second == ref) {
            model.erase(m);
          }
          holder_key.erase(old);
          break;
        }
      }
      for (const Digest& q : pool) {
        std::optional<KeyIndex::Ref> want;
        if (auto m = model.find(q); m != model.end()) want = m->second;
        std::optional<KeyIndex::Ref> got = index.Find(q);
        if (got && !holds(*got, q)) got.reset();  // what Authenticate does
        ASSERT_EQ(got, want) << "seed " << seed << " step " << step;
      }
      ASSERT_EQ(index.size(), model.size()) << "seed " << seed;
    }
    EXPECT_EQ(index.wide(), seed >= 3);
  }
}

}  // namespace
}  // namespace presence
