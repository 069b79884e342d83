// ClientTable: per-client rows paged by slot, names interned (issue #17).
#include "core/client_table.h"

#include <gtest/gtest.h>

#include <vector>

namespace presence {
namespace {

using Row = ClientTable::Row;

std::vector<Row> RowsOf(const ClientTable& t, std::uint32_t slot) {
  std::vector<Row> out;
  t.RowsOf(slot, out);
  return out;
}

TEST(ClientTableTest, AnEmptyTableAllocatesNoPage) {
  ClientTable t;
  EXPECT_EQ(t.Find(0), nullptr);
  EXPECT_EQ(t.Find(5000), nullptr);
  EXPECT_FALSE(t.Has(5000));
  EXPECT_EQ(t.NextSlot(0), ClientTable::kNil);
}

TEST(ClientTableTest, OneRowLivesInTheEntry) {
  ClientTable t;
  const auto web = t.Intern("website");
  const Row row{web, {100, 90}, 7};
  t.SetRows(3000, std::span<const Row>(&row, 1));
  EXPECT_TRUE(t.Has(3000));
  EXPECT_FALSE(t.Has(2999));
  EXPECT_EQ(t.Find(3000)->count, 1);
  EXPECT_EQ(t.Find(3000)->update_id, 7);
  EXPECT_EQ(RowsOf(t, 3000), std::vector<Row>{row});
  EXPECT_EQ(t.FindRow(3000, web), row);
  EXPECT_EQ(t.FindRow(3000, t.Intern("other")), std::nullopt);
  EXPECT_EQ(t.FindRow(3000, ClientTable::kNil), std::nullopt);
  EXPECT_EQ(t.NextSlot(0), 3000u);
  EXPECT_EQ(t.NextSlot(3001), ClientTable::kNil);
}

TEST(ClientTableTest, ManyRowsAreKeptInNameOrderWithTheNewestId) {
  ClientTable t;
  const auto z = t.Intern("ZulipMobile");
  const auto w = t.Intern("website");
  const auto a = t.Intern("Android");
  const std::vector<Row> rows = {
      {w, {10, 10}, 4}, {z, {20, 20}, 9}, {a, {30, 5}, 6}};
  t.SetRows(1, rows);
  const std::vector<Row> want = {rows[2], rows[1], rows[0]};  // byte order
  EXPECT_EQ(RowsOf(t, 1), want);
  EXPECT_EQ(t.Find(1)->count, 3);
  EXPECT_EQ(t.Find(1)->update_id, 9);
  EXPECT_EQ(t.FindRow(1, a), rows[2]);

  t.UpdateRow(1, w, {40, 40}, 12);
  EXPECT_EQ(t.Find(1)->update_id, 12);
  EXPECT_EQ(t.FindRow(1, w), (Row{w, {40, 40}, 12}));
}

TEST(ClientTableTest, UpdatingTheSingleRowMovesItsId) {
  ClientTable t;
  const auto w = t.Intern("website");
  const Row row{w, {1, 1}, 1};
  t.SetRows(0, std::span<const Row>(&row, 1));
  t.UpdateRow(0, w, {2, 1}, 5);
  EXPECT_EQ(t.FindRow(0, w), (Row{w, {2, 1}, 5}));
  EXPECT_EQ(t.Find(0)->update_id, 5);
}

TEST(ClientTableTest, NamesNoRowUsesAreForgottenAndTheirIdsReused) {
  ClientTable t;
  const auto a = t.Intern("a");
  const auto b = t.Intern("b");
  t.SetRows(0, std::vector<Row>{{a, {}, 1}, {b, {}, 2}});
  t.SetRows(1, std::vector<Row>{{a, {}, 3}});
  EXPECT_EQ(t.name_count(), 2u);
  t.SetRows(0, std::vector<Row>{{a, {}, 4}});  // b no longer used
  EXPECT_EQ(t.name_count(), 1u);
  EXPECT_EQ(t.FindName("b"), ClientTable::kNil);
  EXPECT_EQ(t.FindName("a"), a);
  const auto c = t.Intern("c");
  EXPECT_EQ(c, b);  // the freed id
  EXPECT_EQ(t.NameOf(c), "c");
  t.DropUnused(c);  // interned, never given to a row
  EXPECT_EQ(t.FindName("c"), ClientTable::kNil);
  t.DropUnused(c);  // twice is harmless
  EXPECT_EQ(t.Intern("d"), c);
  EXPECT_EQ(t.Intern("e"), b + 1);  // no id handed out twice
}

TEST(ClientTableTest, ReplacingRowsKeepsTheLinksAndTheMark) {
  ClientTable t;
  const auto a = t.Intern("a");
  ClientTable::Entry& e = t.At(2);
  e.prev = 1;
  e.next = 3;
  e.linked = true;
  e.dirty = true;
  t.SetRows(2, std::vector<Row>{{a, {}, 1}, {t.Intern("b"), {}, 2}});
  t.SetRows(2, std::vector<Row>{{a, {}, 8}});
  EXPECT_EQ(e.prev, 1u);
  EXPECT_EQ(e.next, 3u);
  EXPECT_TRUE(e.linked);
  EXPECT_TRUE(e.dirty);
  EXPECT_EQ(e.update_id, 8);
  EXPECT_EQ(&t.At(2), &e);  // entries never move
  t.At(1'000'000);          // a far page
  EXPECT_EQ(&t.At(2), &e);
}

TEST(ClientTableTest, NextSlotWalksUsersWithRowsAcrossPages) {
  ClientTable t;
  const auto a = t.Intern("a");
  std::vector<std::uint32_t> slots = {0, 1023, 1024, 5000, 70000};
  for (auto s : slots) t.SetRows(s, std::vector<Row>{{a, {}, 1}});
  t.At(6000);  // an entry without rows is not walked
  std::vector<std::uint32_t> seen;
  for (auto s = t.NextSlot(0); s != ClientTable::kNil; s = t.NextSlot(s + 1)) {
    seen.push_back(s);
  }
  EXPECT_EQ(seen, slots);
}

}  // namespace
}  // namespace presence
