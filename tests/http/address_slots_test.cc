#include "http/address_slots.h"

#include <gtest/gtest.h>

#include <vector>

namespace presence::http {
namespace {

namespace ip = boost::asio::ip;

TEST(AddressSlotsTest, AnAddressHoldsAtMostItsMaximum) {
  auto slots = AddressSlots::Create(2);
  const auto a = ip::make_address("127.0.0.1");
  const auto b = ip::make_address("127.0.0.2");
  auto s1 = slots->Acquire(a);
  auto s2 = slots->Acquire(a);
  ASSERT_TRUE(s1 && s2);
  EXPECT_FALSE(slots->Acquire(a));
  // Another address has its own count.
  EXPECT_TRUE(slots->Acquire(b));
  EXPECT_EQ(slots->held(a), 2u);
  s1.reset();  // a connection ends: its slot is free again
  EXPECT_EQ(slots->held(a), 1u);
  EXPECT_TRUE(slots->Acquire(a));
}

TEST(AddressSlotsTest, MappedIpv4IsTheSameAddress) {
  auto slots = AddressSlots::Create(1);
  auto s = slots->Acquire(ip::make_address("127.0.0.1"));
  ASSERT_TRUE(s);
  EXPECT_FALSE(slots->Acquire(ip::make_address("::ffff:127.0.0.1")));
}

TEST(AddressSlotsTest, EmptyEntriesAreDroppedAndSlotsMayOutliveTheTable) {
  std::vector<AddressSlots::Slot> held;
  {
    auto slots = AddressSlots::Create(1);
    for (int i = 1; i <= 5; ++i) {
      auto s = slots->Acquire(ip::make_address("127.0.0." + std::to_string(i)));
      ASSERT_TRUE(s);
      held.push_back(std::move(*s));
    }
    EXPECT_EQ(slots->addresses(), 5u);
    held.erase(held.begin(), held.begin() + 3);
    EXPECT_EQ(slots->addresses(), 2u);
  }
  held.clear();  // the table lives as long as its last slot
}

}  // namespace
}  // namespace presence::http
