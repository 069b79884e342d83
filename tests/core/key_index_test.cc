#include "core/key_index.h"

#include <gtest/gtest.h>

#include <map>

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

}  // namespace
}  // namespace presence
