#include "core/realm.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "core/constants.h"
#include "util/ascii.h"
#include "util/crypto.h"
#include "util/hash_order.h"

namespace presence {

namespace {

// Orders client rows stalest first: oldest last report, then oldest write.
bool StalerClient(const ClientTable::Row& a, const ClientTable::Row& b) {
  if (a.times.last_connected != b.times.last_connected) {
    return a.times.last_connected < b.times.last_connected;
  }
  return a.last_update_id < b.last_update_id;
}

}  // namespace

std::size_t Realm::EmailHash::operator()(std::uint32_t slot) const {
  if (slot == known->slot) return known->hash;
  return HashIgnoreCase((*members)[slot].email());
}

std::size_t Realm::EmailHash::operator()(std::string_view email) const {
  return HashIgnoreCase(email);
}

Realm::Realm(const store::RealmRecord& record, UpdateIdReserver* ids,
             bool fresh)
    : id_(record.id),
      ids_(ids),
      subdomain_(record.subdomain),
      name_(record.name),
      presence_disabled_(record.presence_disabled),
      deactivated_(record.deactivated),
      // Continue after the reservation: ids up to it may have been handed out
      // before a crash even if their rows never reached the disk.
      last_update_id_(
          fresh ? record.last_update_id
                : std::max(record.last_update_id, record.reserved_update_id)),
      reserved_update_id_(record.reserved_update_id),
      collected_update_id_(last_update_id_) {}

const char* Realm::StoreTextLocked(std::string_view email,
                                   std::string_view name) {
  // Sizes fit 32 bits: request bodies are capped far below 4 GiB, and stored
  // values came through the same API.
  char header[2 * Member::kMaxSizeBytes];
  char* end = Member::WriteSize(
      Member::WriteSize(header, static_cast<std::uint32_t>(email.size())),
      static_cast<std::uint32_t>(name.size()));
  const auto header_size = static_cast<std::size_t>(end - header);
  char* p = text_.Allocate(header_size + email.size() + name.size());
  std::memcpy(p, header, header_size);
  std::memcpy(p + header_size, email.data(), email.size());
  std::memcpy(p + header_size + email.size(), name.data(), name.size());
  return p;
}

std::string Realm::subdomain() const {
  ReaderLock lock(mu_);
  return subdomain_;
}
std::string Realm::name() const {
  ReaderLock lock(mu_);
  return name_;
}
bool Realm::presence_disabled() const {
  ReaderLock lock(mu_);
  return presence_disabled_;
}
bool Realm::deactivated() const {
  ReaderLock lock(mu_);
  return deactivated_;
}
UpdateId Realm::last_update_id() const {
  ReaderLock lock(mu_);
  return last_update_id_;
}
std::size_t Realm::member_count() const {
  ReaderLock lock(mu_);
  return members_.size();
}

std::size_t Realm::active_count() const {
  ReaderLock lock(mu_);
  return active_members_;
}

void Realm::Reserve(std::size_t n) {
  WriterLock lock(mu_);
  members_.reserve(n);
  slot_by_id_.Reserve(n);
  slot_by_email_.reserve(n);
}

std::uint32_t Realm::AddMember(const store::UserRecord& user) {
  WriterLock lock(mu_);
  return AddMemberLocked(user);
}

std::uint32_t Realm::LoadMembers(std::span<const store::UserRecord> users) {
  WriterLock lock(mu_);
  const auto first = static_cast<std::uint32_t>(members_.size());
  for (const store::UserRecord& user : users) {
    AddMemberLocked(user, /*index=*/false);
  }
  return first;
}

void Realm::IndexLoadedMembers() {
  WriterLock lock(mu_);
  IndexLoadedLocked();
}

namespace {

// Below this many slots a bulk fill is not worth its buffers.
constexpr std::size_t kBulkIndexMin = 4096;
// From this many slots the two sets are filled on two threads.
constexpr std::size_t kParallelIndexMin = 65536;
// How far ahead of the insert the member to hash is fetched.
constexpr std::size_t kPrefetchAhead = 16;

// Inserts slots [first, last) into `set`, whose hasher takes the hash as
// its position (the high bits), in the order of those positions
// (util/hash_order.h), so that consecutive inserts land in neighbouring
// groups of the table. `prefetch(slot)` is
// called a few inserts ahead so that the set's own hashing of the slot
// finds the member in the cache.
template <class Insert, class Hash, class Prefetch>
void InsertInHashOrder(Insert&& insert, std::uint32_t first, std::uint32_t last,
                       Hash&& hash, Prefetch&& prefetch) {
  const std::size_t n = last - first;
  if (n < kBulkIndexMin) {
    for (std::uint32_t s = first; s < last; ++s) insert(s);
    return;
  }
  const std::vector<std::uint32_t> order = OrderByHash(n, [&](std::size_t i) {
    return hash(first + static_cast<std::uint32_t>(i));
  });
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) prefetch(first + order[i + kPrefetchAhead]);
    insert(first + order[i]);
  }
}

}  // namespace

void Realm::IndexLoadedLocked() {
  // SlotLocked answers the index's "none" as Member::kNil.
  static_assert(decltype(slot_by_id_)::kNil == Member::kNil);
  const auto first = indexed_;
  const auto last = static_cast<std::uint32_t>(members_.size());
  if (first == last) return;
  slot_by_email_.reserve(last);
  auto fill_ids = [this, first, last] {
    mu_.AssertHeld();  // by the caller, who waits for this
    // Dense ids (an import's 1..N) go to the array in slot order.
    if (slot_by_id_.InsertRangeDense(first, last)) return;
    InsertInHashOrder(
        [this](std::uint32_t slot) {
          mu_.AssertHeld();
          slot_by_id_.InsertHashed(slot);
        },
        first, last,
        [this](std::uint32_t slot) {
          mu_.AssertHeld();
          return slot_by_id_.HashOf(slot);
        },
        [this](std::uint32_t slot) {
          mu_.AssertHeld();
          __builtin_prefetch(&members_[slot]);
        });
  };
  auto fill_emails = [this, first, last] {
    mu_.AssertHeld();  // by the caller, who waits for this
    const std::size_t n = last - first;
    if (n < kBulkIndexMin) {
      for (std::uint32_t s = first; s < last; ++s) slot_by_email_.insert(s);
      return;
    }
    // Every email hashed once, in slot order (members_ and their text are
    // read front to back), then inserted in hash order with its hash
    // known (see KnownHash): the set's table is then walked front to back
    // too, and only the hashes array is read at random, a few inserts
    // ahead.
    std::vector<std::size_t> hashes(n);
    for (std::size_t i = 0; i < n; ++i) {
      hashes[i] = HashIgnoreCase(members_[first + i].email());
    }
    const std::vector<std::uint32_t> order =
        OrderByHash(n, [&](std::size_t i) { return hashes[i]; });
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kPrefetchAhead < n) {
        __builtin_prefetch(&hashes[order[i + kPrefetchAhead]]);
      }
      email_known_ = {first + order[i], hashes[order[i]]};
      slot_by_email_.insert(email_known_.slot);
    }
    email_known_.slot = Member::kNil;
  };
  if (last - first >= kParallelIndexMin) {
    // The caller holds mu_ exclusively and waits: the helper thread works
    // under that hold, on a set nobody else touches meanwhile.
    std::thread helper(fill_emails);
    fill_ids();
    helper.join();
  } else {
    fill_ids();
    fill_emails();
  }
  indexed_ = last;
}

std::uint32_t Realm::AddMemberLocked(const store::UserRecord& user,
                                     bool index) {
  if (index) IndexLoadedLocked();
  if (user.is_active) ++active_members_;
  Member m;
  m.id = user.id;
  m.text = StoreTextLocked(user.email, user.full_name);
  m.date_joined = user.date_joined;
  m.api_key_hash = user.api_key_hash;
  m.role = user.role;
  m.is_bot = user.is_bot;
  m.is_active = user.is_active;
  m.presence_enabled = user.presence_enabled;
  m.can_access_all_users = user.can_access_all_users;
  auto slot = static_cast<std::uint32_t>(members_.size());
  members_.push_back(m);
  if (user.status) statuses_[slot] = *user.status;
  if (index) {
    // Both hash members_[slot].
    slot_by_id_.Insert(slot);
    slot_by_email_.insert(slot);
    indexed_ = slot + 1;
  }
  return slot;
}

void Realm::LoadPresence(const store::PresenceRecord& row) {
  LoadPresence(std::span<const store::PresenceRecord>(&row, 1));
}

void Realm::LoadPresence(std::span<const store::PresenceRecord> rows) {
  WriterLock lock(mu_);
  IndexLoadedLocked();
  for (const store::PresenceRecord& row : rows) LoadPresenceLocked(row);
}

void Realm::LoadPresenceLocked(const store::PresenceRecord& row) {
  // Rows come in user id order, and so did the members loaded: the row's
  // member is usually at the hint or a few slots on (users without a row
  // in between), which saves a random lookup per row. A miss falls back to
  // the id set; ids are unique, so a match at the hint is the member.
  std::uint32_t slot = Member::kNil;
  const std::size_t end =
      std::min<std::size_t>(members_.size(), std::size_t{load_hint_} + 8);
  for (std::size_t s = load_hint_; s < end; ++s) {
    if (members_[s].id == row.user_id) {
      slot = static_cast<std::uint32_t>(s);
      break;
    }
  }
  if (slot == Member::kNil) {
    auto it = slot_by_id_.find(row.user_id);
    if (it == slot_by_id_.end()) return;
    slot = *it;
  }
  load_hint_ = slot + 1;
  Member& m = members_[slot];
  m.has_row = true;
  m.times = {row.last_connected, row.last_active};
  m.last_update_id = row.last_update_id;
}

void Realm::FinishLoad() {
  WriterLock lock(mu_);
  IndexLoadedLocked();
  // Sorted with their keys beside them: sorting slots through members_
  // missed the cache on every comparison (a fifth of a 1M-user start).
  std::vector<std::pair<UpdateId, std::uint32_t>> rows;
  for (std::uint32_t i = 0; i < members_.size(); ++i) {
    members_[i].prev = members_[i].next = Member::kNil;
    if (members_[i].has_row) rows.emplace_back(members_[i].last_update_id, i);
  }
  std::sort(rows.begin(), rows.end());
  order_.Clear();
  for (const auto& [id, slot] : rows) {
    order_.Append(slot, MemberLinks());
    last_update_id_ = std::max(last_update_id_, id);
  }
  // Client rows: apply the bound (it may have been lowered since they were
  // written; the trimmed set is written back by the next flush), then order
  // the users by their newest client-row id.
  std::vector<std::pair<UpdateId, std::uint32_t>> order;
  for (std::uint32_t slot = clients_.NextSlot(0); slot != ClientTable::kNil;
       slot = clients_.NextSlot(slot + 1)) {
    ClientTable::Entry& entry = clients_.At(slot);
    entry.prev = entry.next = Member::kNil;
    entry.linked = false;
    if (entry.count > max_clients_) {
      auto& rows = client_scratch_;
      rows.clear();
      clients_.RowsOf(slot, rows);
      while (rows.size() > max_clients_) {
        rows.erase(std::min_element(rows.begin(), rows.end(), StalerClient));
      }
      clients_.SetRows(slot, rows);
      if (!entry.dirty) {
        entry.dirty = true;
        client_dirty_.push_back(slot);
      }
    }
    order.emplace_back(entry.update_id, slot);
    last_update_id_ = std::max(last_update_id_, entry.update_id);
  }
  std::sort(order.begin(), order.end());
  client_order_.Clear();
  for (auto& [id, slot] : order) AppendClientsLocked(slot, clients_.At(slot));
  // Loaded ids are not writes: the first flush sees only those made since.
  collected_update_id_ = last_update_id_;
}

void Realm::LoadAccess(const store::AccessRecord& access) {
  SetAccess(access.viewer, access.visible);
}

void Realm::SetPresenceDisabled(bool disabled) {
  WriterLock lock(mu_);
  presence_disabled_ = disabled;
}

bool Realm::UpdateMember(const store::UserRecord& user) {
  WriterLock lock(mu_);
  auto it = slot_by_id_.find(user.id);
  if (it == slot_by_id_.end()) return false;
  Member& m = members_[*it];
  if (m.is_active != user.is_active) {
    if (user.is_active) {
      ++active_members_;
    } else {
      --active_members_;
    }
  }
  // A rename writes a new record: copies of the Member keep the old one.
  if (m.full_name() != user.full_name) {
    m.text = StoreTextLocked(m.email(), user.full_name);
  }
  m.role = user.role;
  m.is_bot = user.is_bot;
  m.is_active = user.is_active;
  m.can_access_all_users = user.can_access_all_users;
  m.api_key_hash = user.api_key_hash;
  if (user.status) {
    statuses_[*it] = *user.status;
  } else {
    statuses_.erase(*it);
  }
  directory_generation_.fetch_add(1, std::memory_order_release);
  return true;
}

void Realm::SetAccess(UserId viewer, std::vector<UserId> visible) {
  std::sort(visible.begin(), visible.end());
  visible.erase(std::unique(visible.begin(), visible.end()), visible.end());
  WriterLock lock(mu_);
  if (visible.empty()) {
    access_.erase(viewer);
  } else {
    access_[viewer] = std::move(visible);
  }
}

std::optional<store::UserRecord> Realm::UserRecordOf(UserId id) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(id);
  if (it == slot_by_id_.end()) return std::nullopt;
  const Member& m = members_[*it];
  store::UserRecord r;
  r.id = m.id;
  r.realm_id = id_;
  r.email = m.email();
  r.full_name = m.full_name();
  r.role = m.role;
  r.is_bot = m.is_bot;
  r.is_active = m.is_active;
  r.presence_enabled = m.presence_enabled;
  r.can_access_all_users = m.can_access_all_users;
  r.date_joined = m.date_joined;
  r.api_key_hash = m.api_key_hash;
  if (auto s = statuses_.find(*it); s != statuses_.end()) r.status = s->second;
  return r;
}

std::optional<store::UserStatus> Realm::StatusOf(UserId id) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(id);
  if (it == slot_by_id_.end()) return std::nullopt;
  auto s = statuses_.find(*it);
  if (s == statuses_.end()) return std::nullopt;
  return s->second;
}

void Realm::ForEachVisibleStatus(
    UserId viewer_id,
    FunctionRef<void(const Member&, const store::UserStatus&)> fn) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(viewer_id);
  if (it == slot_by_id_.end()) return;
  const Member& viewer = members_[*it];
  for (const auto& [slot, status] : statuses_) {
    const Member& m = members_[slot];
    if (m.is_active && CanSeeLocked(viewer, m.id)) fn(m, status);
  }
}

void Realm::ForEachStatus(
    FunctionRef<void(UserId, const store::UserStatus&)> fn) const {
  ReaderLock lock(mu_);
  for (const auto& [slot, status] : statuses_) fn(members_[slot].id, status);
}

std::optional<Member> Realm::MemberById(UserId id) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(id);
  if (it == slot_by_id_.end()) return std::nullopt;
  return members_[*it];
}

std::optional<UserId> Realm::FindIdByEmail(std::string_view email) const {
  ReaderLock lock(mu_);
  auto it = slot_by_email_.find(email);
  if (it == slot_by_email_.end()) return std::nullopt;
  return members_[*it].id;
}

bool Realm::EmailTaken(std::string_view email) const {
  return FindIdByEmail(email).has_value();
}

Result<UpdateId> Realm::NextUpdateIdLocked() {
  if (last_update_id_ + 1 > reserved_update_id_) {
    // Ran past the reservation before the flusher raised it: reserve now.
    // This holds the realm lock across one store call, which waits for a
    // running group commit: it happens only when the rate jumps past what
    // the last flush reserved for (CollectDirty).
    UpdateId want = last_update_id_ + reserve_ahead_;
    if (auto st = ids_->ReserveUpdateIds(id_, want); !st) return st.error();
    reserved_update_id_ = want;
  }
  return ++last_update_id_;
}

void Realm::TouchLocked(std::uint32_t slot, const PresenceTimes& times,
                        UpdateId id, bool dirty) {
  Member& m = members_[slot];
  if (m.has_row) order_.Unlink(slot, MemberLinks());
  m.has_row = true;
  m.times = times;
  m.last_update_id = id;
  order_.Append(slot, MemberLinks());
  if (dirty && !m.dirty) {
    m.dirty = true;
    dirty_.push_back(slot);
  }
}

PresenceChange Realm::ChangeOfLocked(const Member& m, Micros now,
                                     bool event_due, bool forced) const {
  PresenceChange c;
  c.realm_id = id_;
  c.user_id = m.id;
  c.email = m.email();
  c.date_joined = m.date_joined;
  c.times = m.times;
  c.update_id = m.last_update_id;
  c.written_at = now;
  c.event_due = event_due;
  c.forced = forced;
  return c;
}

bool Realm::ReportWouldWriteLocked(UserId user, Micros now, ReportStatus status,
                                   std::string_view client) const {
  const std::uint32_t slot = SlotLocked(user);
  if (slot == Member::kNil) return false;
  const Member& m = members_[slot];
  if (!m.is_active || m.is_bot || !m.presence_enabled) return false;
  std::optional<PresenceTimes> before;
  if (m.has_row) before = m.times;
  if (ApplyReport(before, now, status).wrote) return true;
  if (client.empty()) return false;
  auto row = clients_.FindRow(slot, clients_.FindName(client));
  if (!row) return true;  // a new client row
  return ApplyReport(row->times, now, status).wrote;
}

bool Realm::ReportWritesNothing(UserId user, Micros now, ReportStatus status,
                                std::string_view client) const {
  ReaderLock lock(mu_);
  const std::uint32_t slot = SlotLocked(user);
  if (slot == Member::kNil) return false;
  const Member& m = members_[slot];
  if (!m.is_active || m.is_bot || !m.presence_enabled || !m.has_row) {
    return false;
  }
  return !ReportWouldWriteLocked(user, now, status, client);
}

Result<std::optional<PresenceChange>> Realm::RecordReport(
    UserId user, Micros now, ReportStatus status, std::string_view client) {
  {
    // Most reports change nothing (a ping within 55 s of the last one):
    // find that out under the shared lock, so that the I/O threads do not
    // queue for the exclusive one on every ping of a realm.
    ReaderLock lock(mu_);
    if (!ReportWouldWriteLocked(user, now, status, client)) {
      return std::optional<PresenceChange>();
    }
  }
  // Something to write: everything is decided again under the exclusive
  // lock (another writer may have come first).
  WriterLock lock(mu_);
  auto it = slot_by_id_.find(user);
  if (it == slot_by_id_.end()) return std::optional<PresenceChange>();
  const std::uint32_t slot = *it;
  Member& m = members_[slot];
  if (!m.is_active || m.is_bot || !m.presence_enabled) {
    return std::optional<PresenceChange>();
  }
  std::optional<PresenceTimes> before;
  if (m.has_row) before = m.times;
  ReportOutcome out = ApplyReport(before, now, status);
  if (!out.wrote && client.empty()) return std::optional<PresenceChange>();
  UpdateId id = 0;
  if (out.wrote) {
    auto next = NextUpdateIdLocked();
    if (!next) return next.error();
    id = *next;
    TouchLocked(slot, out.after, id);
  }
  ClientReport by_client;
  if (!client.empty()) {
    auto c = RecordClientLocked(slot, client, now, status, id);
    if (!c) return c.error();
    by_client = *c;
  }
  if (!out.wrote && !by_client.wrote) return std::optional<PresenceChange>();
  const bool due =
      out.wrote && !presence_disabled_ && (out.created || out.became_online);
  PresenceChange change = ChangeOfLocked(m, now, due, false);
  change.row_written = out.wrote;
  change.client_event_due = !presence_disabled_ && by_client.event_due;
  return std::optional<PresenceChange>(std::move(change));
}

Result<Realm::ClientReport> Realm::RecordClientLocked(std::uint32_t slot,
                                                      std::string_view client,
                                                      Micros now,
                                                      ReportStatus status,
                                                      UpdateId shared_id) {
  const std::uint32_t name = clients_.FindName(client);
  const std::optional<ClientTable::Row> found = clients_.FindRow(slot, name);
  std::optional<PresenceTimes> before;
  if (found) before = found->times;
  ReportOutcome out = ApplyReport(before, now, status);
  if (!out.wrote) return ClientReport{};  // a new row always writes
  UpdateId id = shared_id;
  if (id == 0) {
    auto next = NextUpdateIdLocked();
    if (!next) return next.error();
    id = *next;
  }
  ClientTable::Entry& entry = clients_.At(slot);
  if (found) {
    clients_.UpdateRow(slot, name, out.after, id);
  } else {
    auto& rows = client_scratch_;
    rows.clear();
    clients_.RowsOf(slot, rows);
    // The bound: the stalest client makes room for the new one.
    while (!rows.empty() && rows.size() >= max_clients_) {
      rows.erase(std::min_element(rows.begin(), rows.end(), StalerClient));
    }
    rows.push_back({clients_.Intern(client), out.after, id});
    clients_.SetRows(slot, rows);
  }
  TouchClientsLocked(slot, entry, id);
  return ClientReport{true, out.created || out.became_online};
}

void Realm::UnlinkClientsLocked(std::uint32_t slot, ClientTable::Entry& entry) {
  if (!entry.linked) return;
  client_order_.Unlink(slot, ClientLinks());
  entry.linked = false;
}

void Realm::AppendClientsLocked(std::uint32_t slot, ClientTable::Entry& entry) {
  client_order_.Append(slot, ClientLinks());
  entry.linked = true;
}

void Realm::TouchClientsLocked(std::uint32_t slot, ClientTable::Entry& entry,
                               UpdateId id) {
  UnlinkClientsLocked(slot, entry);
  entry.update_id = id;
  AppendClientsLocked(slot, entry);
  if (!entry.dirty) {
    entry.dirty = true;
    client_dirty_.push_back(slot);
  }
}

Status Realm::ClampClientsLocked(std::uint32_t slot, UpdateId id) {
  if (!clients_.Has(slot)) return {};
  auto& rows = client_scratch_;
  rows.clear();
  clients_.RowsOf(slot, rows);
  const PresenceTimes& user = members_[slot].times;
  bool changed = false;
  for (ClientTable::Row& row : rows) {
    PresenceTimes t{std::min(row.times.last_connected, user.last_connected),
                    std::min(row.times.last_active, user.last_active)};
    if (t != row.times) {
      row.times = t;
      changed = true;
    }
  }
  if (!changed) return {};
  if (id == 0) {
    auto next = NextUpdateIdLocked();
    if (!next) return next.error();
    id = *next;
  }
  for (ClientTable::Row& row : rows) row.last_update_id = id;
  clients_.SetRows(slot, rows);
  TouchClientsLocked(slot, clients_.At(slot), id);
  return {};
}

bool Realm::ClientRowsLocked(std::uint32_t slot,
                             std::vector<ClientTable::Row>& scratch,
                             ClientRowList& out) const {
  if (!clients_.Has(slot)) return false;
  scratch.clear();
  clients_.RowsOf(slot, scratch);  // in name order
  out.resize(scratch.size());
  for (std::size_t i = 0; i < scratch.size(); ++i) {
    out[i].client = clients_.NameOf(scratch[i].name);
    out[i].times = scratch[i].times;
    out[i].last_update_id = scratch[i].last_update_id;
  }
  return true;
}

ClientRowList Realm::ClientsOf(UserId user) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(user);
  if (it == slot_by_id_.end()) return {};
  std::vector<ClientTable::Row> scratch;
  ClientRowList out;
  ClientRowsLocked(*it, scratch, out);
  return out;
}

void Realm::LoadClientPresence(const store::ClientPresenceRecord& row) {
  WriterLock lock(mu_);
  IndexLoadedLocked();
  auto it = slot_by_id_.find(row.user_id);
  if (it == slot_by_id_.end() || row.client.empty()) return;
  const std::uint32_t slot = *it;
  if (clients_.FindRow(slot, clients_.FindName(row.client))) return;
  auto& rows = client_scratch_;
  rows.clear();
  clients_.RowsOf(slot, rows);
  // More rows than any bound allows (1-64) cannot come from a store this
  // server wrote; FinishLoad trims to the bound anyway.
  if (rows.size() >= std::numeric_limits<std::uint8_t>::max()) return;
  rows.push_back({clients_.Intern(row.client),
                  {row.last_connected, row.last_active},
                  row.last_update_id});
  clients_.SetRows(slot, rows);
}

void Realm::SetMaxClientsPerUser(std::size_t n) {
  WriterLock lock(mu_);
  max_clients_ = std::max<std::size_t>(1, n);
}

Result<std::optional<PresenceChange>> Realm::SetPresenceEnabled(UserId user,
                                                                bool enabled,
                                                                Micros now) {
  WriterLock lock(mu_);
  auto it = slot_by_id_.find(user);
  if (it == slot_by_id_.end()) return std::optional<PresenceChange>();
  const std::uint32_t slot = *it;
  Member& m = members_[slot];
  if (m.presence_enabled == enabled) return std::optional<PresenceChange>();
  std::optional<PresenceTimes> before;
  if (m.has_row) before = m.times;
  const std::optional<PresenceTimes> after =
      ApplyPresenceEnabled(before, enabled, now);
  if (!enabled && !after) {
    m.presence_enabled = false;
    // Nothing to back-date on the user row; client rows (up to 55 s
    // fresher) still must not say more than it does.
    if (auto st = ClampClientsLocked(slot, 0); !st) return st.error();
    return std::optional<PresenceChange>();
  }
  if (after) {
    auto id = NextUpdateIdLocked();
    if (!id) return id.error();
    TouchLocked(slot, *after, *id);
    // Invisible: back-date the client rows with the user row (same write).
    if (!enabled) {
      if (auto st = ClampClientsLocked(slot, *id); !st) return st.error();
    }
  }
  m.presence_enabled = enabled;
  if (!m.has_row) return std::optional<PresenceChange>();
  return std::optional<PresenceChange>(ChangeOfLocked(m, now, true, true));
}

bool Realm::CanSeeLocked(const Member& viewer, UserId target) const {
  if (!viewer.limited() || viewer.id == target) return true;
  auto it = access_.find(viewer.id);
  if (it == access_.end()) return false;
  return std::binary_search(it->second.begin(), it->second.end(), target);
}

std::size_t Realm::CountViewers(UserId target) const {
  ReaderLock lock(mu_);
  std::size_t n = 0;
  for (const Member& m : members_) {
    if (m.is_active && CanSeeLocked(m, target)) ++n;
  }
  return n;
}

bool Realm::CanSee(UserId viewer, UserId target) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(viewer);
  if (it == slot_by_id_.end()) return false;
  return CanSeeLocked(members_[*it], target);
}

void Realm::CanSeeEach(std::span<const UserId> viewers, UserId target,
                       std::vector<std::uint8_t>& visible) const {
  visible.assign(viewers.size(), 0);
  ReaderLock lock(mu_);
  for (std::size_t i = 0; i < viewers.size(); ++i) {
    auto it = slot_by_id_.find(viewers[i]);
    if (it != slot_by_id_.end()) {
      visible[i] = CanSeeLocked(members_[*it], target) ? 1 : 0;
    }
  }
}

template <class Visit>
UpdateId Realm::FetchLocked(const Member& viewer, const FetchQuery& query,
                            Micros now, Visit&& visit) const {
  const UpdateId none = query.last_update_id.value_or(-1);
  const std::int64_t days =
      query.history_limit_days.value_or(kDefaultHistoryLimitDays);
  if (days == 0) return none;
  // Clamp so that absurd day counts cannot overflow the multiplication.
  const std::int64_t clamped =
      std::clamp<std::int64_t>(days, -1'000'000, 1'000'000);
  const Micros cutoff = now - SecondsToMicros(clamped * kSecondsPerDay);
  const bool incremental = query.last_update_id && *query.last_update_id > 0;

  UpdateId max_id = -1;
  bool any = false;
  // Client rows are handed to the visitor through one list, refilled per
  // user (the table keeps them interned, not as ClientPresence).
  std::vector<ClientTable::Row> row_scratch;
  ClientRowList row_list;
  auto consider = [&](std::uint32_t slot) REQUIRES_SHARED(mu_) {
    const Member& m = members_[slot];
    if (!m.has_row || !m.listed()) return;
    if (!incremental && !(m.times.last_connected != kNoTime &&
                          m.times.last_connected >= cutoff)) {
      return;
    }
    if (!CanSeeLocked(viewer, m.id)) return;
    any = true;
    const bool has_rows =
        query.per_client && ClientRowsLocked(slot, row_scratch, row_list);
    UpdateId id = m.last_update_id;
    if (has_rows) id = std::max(id, clients_.Find(slot)->update_id);
    max_id = std::max(max_id, id);
    visit(m, has_rows ? &row_list : nullptr);
  };

  if (query.last_update_id && query.per_client) {
    // Users whose row or client rows changed after the cursor: the tail runs
    // of both update-order lists, each user once.
    const UpdateId cursor = *query.last_update_id;
    std::vector<std::uint32_t> slots;
    for (auto s = order_.tail(); s != Member::kNil; s = members_[s].prev) {
      if (members_[s].last_update_id <= cursor) break;
      slots.push_back(s);
    }
    for (auto s = client_order_.tail(); s != Member::kNil;) {
      const ClientTable::Entry& entry = *clients_.Find(s);
      if (entry.update_id <= cursor) break;
      slots.push_back(s);
      s = entry.prev;
    }
    std::sort(slots.begin(), slots.end());
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    for (auto s : slots) consider(s);
  } else if (query.last_update_id) {
    // Rows are in update order: the ones newer than the cursor are the tail.
    const UpdateId cursor = *query.last_update_id;
    for (auto s = order_.tail(); s != Member::kNil; s = members_[s].prev) {
      if (members_[s].last_update_id <= cursor) break;
      consider(s);
    }
  } else if (viewer.limited()) {
    // Only the access list and the viewer: never walk the whole realm.
    auto self = slot_by_id_.find(viewer.id);
    if (self != slot_by_id_.end()) consider(*self);
    if (auto it = access_.find(viewer.id); it != access_.end()) {
      for (UserId u : it->second) {
        if (u == viewer.id) continue;
        if (auto s = slot_by_id_.find(u); s != slot_by_id_.end()) {
          consider(*s);
        }
      }
    }
  } else {
    for (auto s = order_.tail(); s != Member::kNil; s = members_[s].prev) {
      consider(s);
    }
  }
  return any ? max_id : none;
}

UpdateId Realm::Fetch(UserId viewer_id, const FetchQuery& query, Micros now,
                      FunctionRef<void(const Member&)> visit) const {
  ReaderLock lock(mu_);
  if (presence_disabled_) return -1;
  auto viewer_slot = slot_by_id_.find(viewer_id);
  if (viewer_slot == slot_by_id_.end()) {
    return query.last_update_id.value_or(-1);
  }
  return FetchLocked(members_[*viewer_slot], query, now,
                     [&](const Member& m, const ClientRowList*) { visit(m); });
}

UpdateId Realm::FetchWithClients(
    UserId viewer_id, const FetchQuery& query, Micros now,
    FunctionRef<void(const Member&, const ClientRowList*)> visit) const {
  ReaderLock lock(mu_);
  if (presence_disabled_) return -1;
  auto viewer_slot = slot_by_id_.find(viewer_id);
  if (viewer_slot == slot_by_id_.end()) {
    return query.last_update_id.value_or(-1);
  }
  return FetchLocked(members_[*viewer_slot], query, now, visit);
}

void Realm::WithMember(UserId id, FunctionRef<void(const Member*)> fn) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(id);
  fn(it == slot_by_id_.end() ? nullptr : &members_[*it]);
}

void Realm::WithMemberAt(std::uint32_t slot,
                         FunctionRef<void(const Member*)> fn) const {
  ReaderLock lock(mu_);
  fn(slot < members_.size() ? &members_[slot] : nullptr);
}

void Realm::ForEachMember(FunctionRef<void(const Member&)> fn) const {
  ReaderLock lock(mu_);
  for (const Member& m : members_) fn(m);
}

void Realm::ForEachVisibleMember(UserId viewer_id,
                                 FunctionRef<void(const Member&)> fn) const {
  ReaderLock lock(mu_);
  auto it = slot_by_id_.find(viewer_id);
  if (it == slot_by_id_.end()) return;
  const Member& viewer = members_[*it];
  for (const Member& m : members_) {
    if (CanSeeLocked(viewer, m.id)) fn(m);
  }
}

bool Realm::CollectDirty(std::vector<store::PresenceRecord>& rows,
                         std::vector<store::ClientPresenceRecord>& clients,
                         store::SequenceRecord& sequence) {
  // The dirty lists are taken at once, and their rows read kCollectChunk at
  // a time, the lock released in between: every ping of the realm needs it
  // exclusively, and one hold for a whole batch (about 40,000 rows when
  // 1M users each ping once a minute and a commit takes a second) kept them
  // waiting 22-47 ms on every flush (issue #17, the million run's ping
  // p99). A row stays marked dirty until its chunk reads it, so a write
  // meanwhile changes what the chunk reads and queues it nowhere else; a
  // write after its chunk marks it dirty again, for the next flush.
  std::vector<std::uint32_t> slots;
  std::vector<std::uint32_t> client_slots;
  {
    WriterLock lock(mu_);
    // Reserve for the rate seen since the last flush: the ids reserved now
    // become usable only once this batch commits, so what is left of the
    // old reservation must last this commit and the next interval (issue
    // #17: at 16,700 writes/s a fixed 10,000 ran out every second, and a
    // ping then reserved under the realm's lock while the commit ran).
    const UpdateId used = last_update_id_ - collected_update_id_;
    collected_update_id_ = last_update_id_;
    reserve_ahead_ = std::max(kReserveAhead, kReserveIntervals * used);
    // Topped up while three intervals' worth are left, so at least two are
    // left when a flush collects: its commit may take as long as two
    // intervals at this rate (or one at twice the rate) before a writer
    // runs out.
    const bool low =
        last_update_id_ + reserve_ahead_ * 3 / 4 > reserved_update_id_;
    if (dirty_.empty() && client_dirty_.empty() && !low) return false;
    slots.swap(dirty_);
    client_slots.swap(client_dirty_);
  }
  // Room for every row before any chunk takes the lock: a batch of 40,000
  // rows grown by doubling would copy itself 16 times, the larger copies
  // (and their fresh pages' faults) inside a chunk's hold. Grown
  // geometrically, as the caller's vectors collect several realms in turn.
  const auto make_room = [](auto& v, std::size_t more) {
    if (v.capacity() - v.size() < more) {
      v.reserve(std::max(v.size() + more, 2 * v.capacity()));
    }
  };
  make_room(rows, slots.size());
  make_room(clients, client_slots.size());
  for (std::size_t i = 0; i < slots.size(); i += kCollectChunk) {
    WriterLock lock(mu_);
    const std::size_t end = std::min(slots.size(), i + kCollectChunk);
    for (std::size_t k = i; k < end; ++k) {
      Member& m = members_[slots[k]];
      m.dirty = false;
      rows.push_back({m.id, id_, m.times.last_connected, m.times.last_active,
                      m.last_update_id});
    }
  }
  // Every row of a dirty user: the store replaces a user's set as a whole.
  for (std::size_t i = 0; i < client_slots.size(); i += kCollectChunk) {
    WriterLock lock(mu_);
    const std::size_t end = std::min(client_slots.size(), i + kCollectChunk);
    for (std::size_t k = i; k < end; ++k) {
      const std::uint32_t slot = client_slots[k];
      if (clients_.Find(slot) == nullptr) continue;
      clients_.At(slot).dirty = false;
      auto& scratch = client_scratch_;
      scratch.clear();
      clients_.RowsOf(slot, scratch);
      for (const ClientTable::Row& row : scratch) {
        clients.push_back({id_, members_[slot].id, clients_.NameOf(row.name),
                           row.times.last_connected, row.times.last_active,
                           row.last_update_id});
      }
    }
  }
  // The sequence is read last, so that it covers every row read above.
  WriterLock lock(mu_);
  const bool low =
      last_update_id_ + reserve_ahead_ * 3 / 4 > reserved_update_id_;
  // The emptied lists keep their room for the next batch, unless writers
  // started new ones meanwhile.
  slots.clear();
  if (dirty_.empty()) dirty_.swap(slots);
  client_slots.clear();
  if (client_dirty_.empty()) client_dirty_.swap(client_slots);
  sequence.realm_id = id_;
  sequence.last_update_id = last_update_id_;
  sequence.reserved_update_id =
      low ? last_update_id_ + reserve_ahead_ : reserved_update_id_;
  return true;
}

void Realm::OnFlushed(const store::SequenceRecord& sequence) {
  WriterLock lock(mu_);
  reserved_update_id_ =
      std::max(reserved_update_id_, sequence.reserved_update_id);
}

void Realm::OnFlushFailed(
    const std::vector<store::PresenceRecord>& rows,
    const std::vector<store::ClientPresenceRecord>& clients) {
  WriterLock lock(mu_);
  for (const auto& r : rows) {
    if (r.realm_id != id_) continue;
    auto it = slot_by_id_.find(r.user_id);
    if (it == slot_by_id_.end()) continue;
    Member& m = members_[*it];
    if (!m.dirty) {
      m.dirty = true;
      dirty_.push_back(*it);
    }
  }
  for (const auto& r : clients) {
    if (r.realm_id != id_) continue;
    auto it = slot_by_id_.find(r.user_id);
    if (it == slot_by_id_.end()) continue;
    const ClientTable::Entry* c = clients_.Find(*it);
    if (c == nullptr || c->count == 0 || c->dirty) continue;
    clients_.At(*it).dirty = true;
    client_dirty_.push_back(*it);
  }
}

// --- Changes made elsewhere ----------------------------------------------

Realm::MemberDelta Realm::UpsertMember(const store::UserRecord& user) {
  MemberDelta delta;
  {
    WriterLock lock(mu_);
    auto it = slot_by_id_.find(user.id);
    if (it != slot_by_id_.end()) {
      delta.slot = *it;
      Member& m = members_[*it];
      delta.deactivated = m.is_active && !user.is_active;
      if (m.presence_enabled != user.presence_enabled) {
        delta.presence_enabled = user.presence_enabled;
      }
      if (!ConstantTimeEqual(m.api_key_hash, user.api_key_hash)) {
        delta.replaced_key = m.api_key_hash;
      }
      auto s = statuses_.find(*it);
      const store::UserStatus* before =
          s == statuses_.end() ? nullptr : &s->second;
      delta.status_changed = user.status
                                 ? before == nullptr || *before != *user.status
                                 : before != nullptr;
      m.presence_enabled = user.presence_enabled;
    } else {
      delta.added = true;
    }
  }
  if (delta.added) {
    delta.slot = AddMember(user);
  } else {
    UpdateMember(user);
  }
  return delta;
}

std::optional<PresenceChange> Realm::ApplyRow(const store::PresenceRecord& row,
                                              Micros written_at, bool event_due,
                                              bool forced) {
  WriterLock lock(mu_);
  auto it = slot_by_id_.find(row.user_id);
  if (it == slot_by_id_.end()) return std::nullopt;
  Member& m = members_[*it];
  if (!m.has_row || row.last_update_id > m.last_update_id) {
    TouchLocked(*it, {row.last_connected, row.last_active}, row.last_update_id,
                /*dirty=*/false);
    last_update_id_ = std::max(last_update_id_, row.last_update_id);
  }
  return ChangeOfLocked(m, written_at, event_due, forced);
}

std::optional<PresenceChange> Realm::ApplyClientRows(
    UserId user, std::span<const store::ClientPresenceRecord> rows,
    Micros written_at) {
  WriterLock lock(mu_);
  auto it = slot_by_id_.find(user);
  if (it == slot_by_id_.end()) return std::nullopt;
  const std::uint32_t slot = *it;
  UpdateId newest = 0;
  bool any = false;
  for (const auto& r : rows) {
    if (r.client.empty()) continue;
    newest = std::max(newest, r.last_update_id);
    any = true;
  }
  const ClientTable::Entry* held = clients_.Find(slot);
  // Entries come in update-id order (the feed, or a resync's rows sorted):
  // an older list than the one held is a duplicate.
  if (any &&
      (held == nullptr || held->count == 0 || newest > held->update_id)) {
    auto& list = client_scratch_;
    list.clear();
    for (const auto& r : rows) {
      if (r.client.empty()) continue;
      // Past any bound (1-64): the store applied the bound already.
      if (list.size() >= std::numeric_limits<std::uint8_t>::max()) break;
      list.push_back({clients_.Intern(r.client),
                      {r.last_connected, r.last_active},
                      r.last_update_id});
    }
    ClientTable::Entry& entry = clients_.At(slot);
    UnlinkClientsLocked(slot, entry);
    clients_.SetRows(slot, list);
    entry.update_id = newest;
    AppendClientsLocked(slot, entry);
    last_update_id_ = std::max(last_update_id_, newest);
  }
  PresenceChange change =
      ChangeOfLocked(members_[slot], written_at, false, false);
  change.row_written = false;
  return change;
}

void Realm::ApplySettings(const store::RealmRecord& record) {
  WriterLock lock(mu_);
  name_ = record.name;
  presence_disabled_ = record.presence_disabled;
  deactivated_ = record.deactivated;
  directory_generation_.fetch_add(1, std::memory_order_release);
}

void Realm::ReplaceAccess(const std::vector<store::AccessRecord>& lists) {
  {
    WriterLock lock(mu_);
    access_.clear();
  }
  for (const auto& a : lists) SetAccess(a.viewer, a.visible);
}

}  // namespace presence
