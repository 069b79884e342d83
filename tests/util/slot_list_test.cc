#include "util/slot_list.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace presence {
namespace {

struct Node {
  std::uint32_t prev = SlotList::kNil;
  std::uint32_t next = SlotList::kNil;
};

class SlotListTest : public ::testing::Test {
 protected:
  std::vector<std::uint32_t> Forward() const {
    std::vector<std::uint32_t> out;
    for (auto s = list_.head(); s != SlotList::kNil; s = nodes_[s].next) {
      out.push_back(s);
    }
    return out;
  }
  std::vector<std::uint32_t> Backward() const {
    std::vector<std::uint32_t> out;
    for (auto s = list_.tail(); s != SlotList::kNil; s = nodes_[s].prev) {
      out.push_back(s);
    }
    return out;
  }
  Node& At(std::uint32_t s) { return nodes_[s]; }

  std::vector<Node> nodes_ = std::vector<Node>(6);
  SlotList list_;
  std::function<Node&(std::uint32_t)> links_ =
      [this](std::uint32_t s) -> Node& { return At(s); };
};

TEST_F(SlotListTest, AnEmptyListHasNoEnds) {
  EXPECT_EQ(list_.head(), SlotList::kNil);
  EXPECT_EQ(list_.tail(), SlotList::kNil);
}

TEST_F(SlotListTest, AppendsKeepTheirOrderBothWays) {
  for (std::uint32_t s : {3u, 0u, 5u}) list_.Append(s, links_);
  EXPECT_EQ(Forward(), (std::vector<std::uint32_t>{3, 0, 5}));
  EXPECT_EQ(Backward(), (std::vector<std::uint32_t>{5, 0, 3}));
}

TEST_F(SlotListTest, UnlinkingTheMiddleHeadAndTailRelinksTheRest) {
  for (std::uint32_t s : {1u, 2u, 3u, 4u}) list_.Append(s, links_);
  list_.Unlink(2, links_);
  EXPECT_EQ(Forward(), (std::vector<std::uint32_t>{1, 3, 4}));
  list_.Unlink(1, links_);
  EXPECT_EQ(Forward(), (std::vector<std::uint32_t>{3, 4}));
  list_.Unlink(4, links_);
  EXPECT_EQ(Forward(), (std::vector<std::uint32_t>{3}));
  EXPECT_EQ(Backward(), (std::vector<std::uint32_t>{3}));
  EXPECT_EQ(nodes_[4].prev, SlotList::kNil);
  EXPECT_EQ(nodes_[4].next, SlotList::kNil);
  list_.Unlink(3, links_);
  EXPECT_EQ(list_.head(), SlotList::kNil);
  EXPECT_EQ(list_.tail(), SlotList::kNil);
}

TEST_F(SlotListTest, MovingASlotToTheTailIsUnlinkThenAppend) {
  for (std::uint32_t s : {0u, 1u, 2u}) list_.Append(s, links_);
  list_.Unlink(0, links_);
  list_.Append(0, links_);
  EXPECT_EQ(Forward(), (std::vector<std::uint32_t>{1, 2, 0}));
  EXPECT_EQ(Backward(), (std::vector<std::uint32_t>{0, 2, 1}));
}

}  // namespace
}  // namespace presence
