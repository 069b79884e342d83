#include "core/client_table.h"

#include <algorithm>
#include <cassert>

namespace presence {

const ClientTable::Entry* ClientTable::Find(std::uint32_t slot) const {
  const std::size_t page = slot / kPageSize;
  if (page >= pages_.size() || !pages_[page]) return nullptr;
  return &pages_[page][slot % kPageSize];
}

ClientTable::Entry& ClientTable::At(std::uint32_t slot) {
  const std::size_t page = slot / kPageSize;
  if (page >= pages_.size()) pages_.resize(page + 1);
  if (!pages_[page]) pages_[page] = std::make_unique<Entry[]>(kPageSize);
  return pages_[page][slot % kPageSize];
}

void ClientTable::RowsOf(std::uint32_t slot, std::vector<Row>& out) const {
  const Entry* e = Find(slot);
  if (e == nullptr || e->count == 0) return;
  if (e->count == 1) {
    out.push_back(Row{e->name, e->times, e->update_id});
    return;
  }
  const auto& rows = more_.at(slot);
  out.insert(out.end(), rows.begin(), rows.end());
}

std::optional<ClientTable::Row> ClientTable::FindRow(std::uint32_t slot,
                                                     std::uint32_t name) const {
  const Entry* e = Find(slot);
  if (e == nullptr || e->count == 0 || name == kNil) return std::nullopt;
  if (e->count == 1) {
    if (e->name != name) return std::nullopt;
    return Row{e->name, e->times, e->update_id};
  }
  for (const Row& r : more_.at(slot)) {
    if (r.name == name) return r;
  }
  return std::nullopt;
}

void ClientTable::SetRows(std::uint32_t slot, std::span<const Row> rows) {
  assert(rows.size() <= std::numeric_limits<std::uint8_t>::max());
  Entry& e = At(slot);
  // Take the new names' references before dropping the old ones, so a name
  // kept from the old set is never forgotten in between.
  for (const Row& r : rows) Ref(r.name);
  if (e.count == 1) {
    Unref(e.name);
  } else if (e.count > 1) {
    auto it = more_.find(slot);
    for (const Row& r : it->second) Unref(r.name);
    more_.erase(it);
  }
  e.count = static_cast<std::uint8_t>(rows.size());
  e.name = kNil;
  e.times = {};
  if (rows.empty()) return;
  UpdateId newest = rows.front().last_update_id;
  for (const Row& r : rows) newest = std::max(newest, r.last_update_id);
  e.update_id = newest;
  if (rows.size() == 1) {
    e.name = rows.front().name;
    e.times = rows.front().times;
  } else {
    std::vector<Row> sorted(rows.begin(), rows.end());
    std::sort(sorted.begin(), sorted.end(), [&](const Row& a, const Row& b) {
      return names_[a.name].text < names_[b.name].text;
    });
    more_.emplace(slot, std::move(sorted));
  }
}

void ClientTable::UpdateRow(std::uint32_t slot, std::uint32_t name,
                            const PresenceTimes& times, UpdateId id) {
  Entry& e = At(slot);
  e.update_id = id;
  if (e.count == 1) {
    assert(e.name == name);
    e.times = times;
    return;
  }
  for (Row& r : more_.at(slot)) {
    if (r.name == name) {
      r.times = times;
      r.last_update_id = id;
      return;
    }
  }
  assert(false && "UpdateRow: no such row");
}

std::uint32_t ClientTable::NextSlot(std::uint32_t from) const {
  for (std::size_t p = from / kPageSize; p < pages_.size(); ++p) {
    if (!pages_[p]) continue;
    for (std::size_t i = p == from / kPageSize ? from % kPageSize : 0;
         i < kPageSize; ++i) {
      if (pages_[p][i].count > 0) {
        return static_cast<std::uint32_t>(p * kPageSize + i);
      }
    }
  }
  return kNil;
}

std::uint32_t ClientTable::FindName(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? kNil : it->second;
}

std::uint32_t ClientTable::Intern(std::string_view name) {
  if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  std::uint32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
    names_[id] = Name{std::string(name), 0};
  } else {
    id = static_cast<std::uint32_t>(names_.size());
    names_.push_back(Name{std::string(name), 0});
  }
  by_name_.emplace(std::string(name), id);
  return id;
}

void ClientTable::DropUnused(std::uint32_t id) {
  if (id == kNil || id >= names_.size() || names_[id].rows > 0) return;
  auto it = by_name_.find(names_[id].text);
  if (it == by_name_.end() || it->second != id) return;  // already free
  by_name_.erase(it);
  std::string().swap(names_[id].text);
  free_ids_.push_back(id);
}

void ClientTable::Unref(std::uint32_t id) {
  assert(names_[id].rows > 0);
  if (--names_[id].rows == 0) DropUnused(id);
}

}  // namespace presence
