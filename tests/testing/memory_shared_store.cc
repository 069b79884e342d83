#include "testing/memory_shared_store.h"

#include <algorithm>
#include <tuple>
#include <variant>

#include "core/presence_rules.h"
#include "util/ascii.h"

namespace presence::store {

// One subscription: its queue and the thread that empties it into the sink.
// The queue, `busy` and `stop` are guarded by Subscriber::mu.
struct MemorySharedStore::Subscriber {
  struct Lost {};
  using Item = std::variant<FeedEntry, Lost>;

  FeedSink* sink = nullptr;
  const void* owner = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  bool paused = false;
  bool busy = false;
  bool stop = false;
  std::thread thread;

  void Run() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return stop || (!paused && !queue.empty()); });
      if (stop) return;
      Item item = std::move(queue.front());
      queue.pop_front();
      busy = true;
      lock.unlock();
      if (auto* e = std::get_if<FeedEntry>(&item)) {
        sink->OnFeedEntry(*e);
      } else {
        sink->OnFeedLost();
      }
      lock.lock();
      busy = false;
      cv.notify_all();
    }
  }

  void Push(Item item) {
    std::lock_guard lock(mu);
    queue.push_back(std::move(item));
    cv.notify_all();
  }

  void Stop() {
    {
      std::lock_guard lock(mu);
      stop = true;
      cv.notify_all();
    }
    if (thread.joinable()) thread.join();
  }
};

// A second handle on the same shared state with its own subscription.
class MemorySharedStore::Connection final : public SharedStore {
 public:
  explicit Connection(MemorySharedStore* s) : s_(s) {}
  ~Connection() override { s_->Unsubscribe(this); }

  StoreResult<Snapshot> Load() override { return s_->Load(); }
  StoreResult<RealmId> InsertRealm(const RealmRecord& r) override {
    return s_->InsertRealm(r);
  }
  StoreStatus UpdateRealm(const RealmRecord& r) override {
    return s_->UpdateRealm(r);
  }
  StoreResult<UserId> InsertUser(const UserRecord& u) override {
    return s_->InsertUser(u);
  }
  StoreStatus UpdateUser(const UserRecord& u) override {
    return s_->UpdateUser(u);
  }
  StoreResult<bool> UpdateUserIf(const UserRecord& expected,
                                 const UserRecord& u) override {
    return s_->UpdateUserIf(expected, u);
  }
  StoreStatus SetAccess(const AccessRecord& a) override {
    return s_->SetAccess(a);
  }
  StoreStatus ReserveUpdateIds(RealmId realm, UpdateId id) override {
    return s_->ReserveUpdateIds(realm, id);
  }
  StoreStatus WritePresence(std::span<const PresenceRecord> rows,
                            std::span<const ClientPresenceRecord> clients,
                            std::span<const SequenceRecord> seqs) override {
    return s_->WritePresence(rows, clients, seqs);
  }
  StoreStatus Subscribe(FeedSink* sink) override {
    return s_->Subscribe(sink, this);
  }
  void Unsubscribe() override { s_->Unsubscribe(this); }
  using SharedStore::Report;
  StoreResult<WriteResult> Report(RealmId realm, UserId user, Micros now,
                                  ReportStatus status,
                                  const ReportClient& client) override {
    return s_->Report(realm, user, now, status, client);
  }
  StoreResult<WriteResult> SetPresenceEnabled(RealmId realm, UserId user,
                                              bool enabled,
                                              Micros now) override {
    return s_->SetPresenceEnabled(realm, user, enabled, now);
  }
  StoreResult<UpdateId> CurrentSeq(RealmId realm) override {
    return s_->CurrentSeq(realm);
  }
  StoreResult<UpdateId> Fence(RealmId realm, UpdateId log,
                              UpdateId update_id) override {
    return s_->Fence(realm, log, update_id);
  }
  StoreResult<std::optional<RealmId>> FindRealmId(
      std::string_view sub) override {
    return s_->FindRealmId(sub);
  }
  StoreResult<RealmState> ReadRealm(RealmId realm, UpdateId since) override {
    return s_->ReadRealm(realm, since);
  }
  StoreResult<RateCount> CountRequest(UserId user, Micros now,
                                      std::int64_t limit,
                                      Micros window) override {
    return s_->CountRequest(user, now, limit, window);
  }
  StoreStatus Ping() override { return s_->Ping(); }
  StoreResult<std::int64_t> RegisterNode(
      std::string_view address, std::chrono::milliseconds ttl) override {
    return s_->RegisterNode(address, ttl);
  }
  StoreStatus RefreshNode(std::int64_t node, std::string_view address,
                          std::chrono::milliseconds ttl) override {
    return s_->RefreshNode(node, address, ttl);
  }
  StoreResult<std::optional<std::string>> NodeAddress(
      std::int64_t node) override {
    return s_->NodeAddress(node);
  }
  StoreResult<std::vector<std::pair<std::int64_t, std::string>>> LiveNodes()
      override {
    return s_->LiveNodes();
  }

 private:
  MemorySharedStore* const s_;
};

MemorySharedStore::MemorySharedStore() = default;

MemorySharedStore::~MemorySharedStore() {
  std::vector<std::unique_ptr<Subscriber>> subs;
  {
    std::lock_guard lock(mu_);
    subs.swap(subscribers_);
  }
  for (auto& s : subs) s->Stop();
}

std::unique_ptr<SharedStore> MemorySharedStore::NewConnection() {
  return std::make_unique<Connection>(this);
}

StoreStatus MemorySharedStore::CheckAvailableLocked() const {
  if (unavailable_) {
    return Error(Errc::kUnavailable, "memory shared store: unavailable (test)");
  }
  return {};
}

UpdateId MemorySharedStore::TakeSeqLocked(RealmId realm) {
  return ++log_[realm];
}

UpdateId MemorySharedStore::TakeUpdateIdLocked(RealmId realm) {
  RealmRecord& r = realms_.at(realm);
  ++r.last_update_id;
  r.reserved_update_id = std::max(r.reserved_update_id, r.last_update_id);
  return r.last_update_id;
}

void MemorySharedStore::PublishLocked(const FeedEntry& entry) {
  ++published_;
  if (drop_next_ > 0) {
    --drop_next_;
    return;
  }
  for (auto& s : subscribers_) s->Push(entry);
}

// --- Store -------------------------------------------------------------------

StoreResult<Snapshot> MemorySharedStore::Load() {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto snap = base_.Load();
  if (!snap) return snap;
  // The sequence and the rows live here, not in base_.
  for (auto& r : snap->realms) {
    r.last_update_id = realms_.at(r.id).last_update_id;
    r.reserved_update_id = realms_.at(r.id).reserved_update_id;
  }
  snap->presence.clear();
  for (const auto& [id, row] : rows_) snap->presence.push_back(row);
  snap->client_presence.clear();
  for (const auto& [id, list] : clients_) {
    for (const auto& c : list) snap->client_presence.push_back(c);
  }
  return snap;
}

StoreResult<RealmId> MemorySharedStore::InsertRealm(const RealmRecord& realm) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto id = base_.InsertRealm(realm);
  if (!id) return id;
  RealmRecord rec = realm;
  rec.id = *id;
  realms_[*id] = rec;
  PublishLocked(FeedEntry{.realm_id = *id, .seq = 0, .realm = rec});
  return id;
}

StoreStatus MemorySharedStore::UpdateRealm(const RealmRecord& realm) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st;
  if (auto st = base_.UpdateRealm(realm); !st) return st;
  RealmRecord& rec = realms_.at(realm.id);
  rec.subdomain = realm.subdomain;
  rec.name = realm.name;
  rec.presence_disabled = realm.presence_disabled;
  rec.deactivated = realm.deactivated;
  const UpdateId seq = TakeSeqLocked(realm.id);
  PublishLocked(FeedEntry{.realm_id = realm.id, .seq = seq, .realm = rec});
  return {};
}

StoreResult<UserId> MemorySharedStore::InsertUser(const UserRecord& user) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto id = base_.InsertUser(user);
  if (!id) return id;
  UserRecord rec = user;
  rec.id = *id;
  users_[*id] = rec;
  const UpdateId seq = TakeSeqLocked(user.realm_id);
  PublishLocked(FeedEntry{.realm_id = user.realm_id, .seq = seq, .user = rec});
  return id;
}

StoreStatus MemorySharedStore::UpdateUser(const UserRecord& user) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st;
  if (auto st = base_.UpdateUser(user); !st) return st;
  users_[user.id] = user;
  const UpdateId seq = TakeSeqLocked(user.realm_id);
  PublishLocked(FeedEntry{.realm_id = user.realm_id, .seq = seq, .user = user});
  return {};
}

StoreResult<bool> MemorySharedStore::UpdateUserIf(const UserRecord& expected,
                                                  const UserRecord& user) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto it = users_.find(user.id);
  if (it == users_.end()) return Errc::kNotFound;
  if (it->second != expected) return false;
  if (auto st = base_.UpdateUser(user); !st) return st.error();
  users_[user.id] = user;
  const UpdateId seq = TakeSeqLocked(user.realm_id);
  PublishLocked(FeedEntry{.realm_id = user.realm_id, .seq = seq, .user = user});
  return true;
}

StoreStatus MemorySharedStore::SetAccess(const AccessRecord& access) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st;
  if (auto st = base_.SetAccess(access); !st) return st;
  AccessRecord sorted = access;
  std::sort(sorted.visible.begin(), sorted.visible.end());
  sorted.visible.erase(
      std::unique(sorted.visible.begin(), sorted.visible.end()),
      sorted.visible.end());
  const UpdateId seq = TakeSeqLocked(access.realm_id);
  PublishLocked(
      FeedEntry{.realm_id = access.realm_id, .seq = seq, .access = sorted});
  return {};
}

StoreStatus MemorySharedStore::ReserveUpdateIds(RealmId realm,
                                                UpdateId reserved) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st;
  if (auto st = base_.ReserveUpdateIds(realm, reserved); !st) return st;
  RealmRecord& rec = realms_.at(realm);
  rec.reserved_update_id = std::max(rec.reserved_update_id, reserved);
  return {};
}

StoreStatus MemorySharedStore::WritePresence(
    std::span<const PresenceRecord> rows,
    std::span<const ClientPresenceRecord> clients,
    std::span<const SequenceRecord> sequences) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st;
  if (auto st = base_.WritePresence(rows, clients, sequences); !st) return st;
  for (const auto& row : rows) rows_[row.user_id] = row;
  // Client rows replace per user (Store::WritePresence), kept by name.
  std::map<UserId, std::vector<ClientPresenceRecord>> by_user;
  for (const auto& c : clients) by_user[c.user_id].push_back(c);
  for (auto& [user, list] : by_user) {
    std::sort(list.begin(), list.end(),
              [](const auto& a, const auto& b) { return a.client < b.client; });
    clients_[user] = std::move(list);
  }
  for (const auto& s : sequences) {
    RealmRecord& rec = realms_.at(s.realm_id);
    rec.last_update_id = s.last_update_id;
    rec.reserved_update_id =
        std::max(rec.reserved_update_id, s.reserved_update_id);
  }
  return {};
}

// --- SharedStore -------------------------------------------------------------

StoreStatus MemorySharedStore::Subscribe(FeedSink* sink) {
  return Subscribe(sink, this);
}

void MemorySharedStore::Unsubscribe() { Unsubscribe(this); }

StoreStatus MemorySharedStore::Subscribe(FeedSink* sink, const void* owner) {
  auto sub = std::make_unique<Subscriber>();
  sub->sink = sink;
  sub->owner = owner;
  Subscriber* raw = sub.get();
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st;
  raw->paused = paused_;
  raw->thread = std::thread([raw] { raw->Run(); });
  subscribers_.push_back(std::move(sub));
  return {};
}

void MemorySharedStore::Unsubscribe(const void* owner) {
  std::vector<std::unique_ptr<Subscriber>> gone;
  {
    std::lock_guard lock(mu_);
    auto it =
        std::stable_partition(subscribers_.begin(), subscribers_.end(),
                              [&](const auto& s) { return s->owner != owner; });
    for (auto i = it; i != subscribers_.end(); ++i)
      gone.push_back(std::move(*i));
    subscribers_.erase(it, subscribers_.end());
  }
  for (auto& s : gone) s->Stop();
}

StoreResult<WriteResult> MemorySharedStore::Report(RealmId realm, UserId user,
                                                   Micros now,
                                                   ReportStatus status,
                                                   const ReportClient& client) {
  std::lock_guard lock(mu_);
  ++steps_;
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto r = realms_.find(realm);
  if (r == realms_.end()) return Errc::kNotFound;
  auto u = users_.find(user);
  if (u == users_.end() || u->second.realm_id != realm ||
      !u->second.is_active || u->second.is_bot || !u->second.presence_enabled) {
    return WriteResult{.wrote = false, .seq = log_[realm]};
  }
  std::optional<PresenceTimes> before;
  if (auto row = rows_.find(user); row != rows_.end()) {
    before = PresenceTimes{row->second.last_connected, row->second.last_active};
  }
  ReportOutcome out = ApplyReport(before, now, status);
  // The client's row (Realm::RecordClientLocked's rules), decided first.
  std::vector<ClientPresenceRecord> list;
  bool client_wrote = false;
  bool client_due = false;
  std::size_t changed = 0;
  if (!client.name.empty()) {
    list = clients_[user];
    auto pos = std::find_if(list.begin(), list.end(), [&](const auto& c) {
      return c.client == client.name;
    });
    std::optional<PresenceTimes> cb;
    if (pos != list.end()) cb = {pos->last_connected, pos->last_active};
    ReportOutcome co = ApplyReport(cb, now, status);
    client_wrote = co.wrote;
    client_due = co.created || co.became_online;
    if (client_wrote && pos == list.end()) {
      auto staler = [](const auto& a, const auto& b) {
        return std::tie(a.last_connected, a.last_update_id) <
               std::tie(b.last_connected, b.last_update_id);
      };
      while (!list.empty() &&
             list.size() >= std::max<std::size_t>(1, client.max_rows)) {
        list.erase(std::min_element(list.begin(), list.end(), staler));
      }
      pos = list.insert(
          std::lower_bound(list.begin(), list.end(), client.name,
                           [](const auto& c, std::string_view name) {
                             return c.client < name;
                           }),
          ClientPresenceRecord{.realm_id = realm,
                               .user_id = user,
                               .client = std::string(client.name)});
    }
    if (client_wrote) {
      pos->last_connected = co.after.last_connected;
      pos->last_active = co.after.last_active;
      changed = static_cast<std::size_t>(pos - list.begin());
    }
  }
  if (!out.wrote && !client_wrote) {
    return WriteResult{.wrote = false, .seq = log_[realm]};
  }
  const UpdateId seq = TakeSeqLocked(realm);
  const UpdateId id = TakeUpdateIdLocked(realm);
  FeedEntry entry{.realm_id = realm, .seq = seq, .written_at = now};
  if (out.wrote) {
    PresenceRecord row{user, realm, out.after.last_connected,
                       out.after.last_active, id};
    rows_[user] = row;
    entry.row = row;
    entry.event_due =
        !r->second.presence_disabled && (out.created || out.became_online);
  }
  if (client_wrote) {
    list[changed].last_update_id = id;
    clients_[user] = list;
    entry.client_user = user;
    entry.clients = list;
    entry.client_event_due = !r->second.presence_disabled && client_due;
  }
  PublishLocked(entry);
  return WriteResult{true, seq};
}

StoreResult<WriteResult> MemorySharedStore::SetPresenceEnabled(RealmId realm,
                                                               UserId user,
                                                               bool enabled,
                                                               Micros now) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto u = users_.find(user);
  if (u == users_.end() || u->second.realm_id != realm) return Errc::kNotFound;
  if (u->second.presence_enabled == enabled) {
    return WriteResult{.wrote = false, .seq = log_[realm]};
  }
  UserRecord rec = u->second;
  rec.presence_enabled = enabled;
  if (auto st = base_.UpdateUser(rec); !st) return st.error();
  u->second = rec;
  std::optional<PresenceTimes> before;
  auto row_it = rows_.find(user);
  if (row_it != rows_.end()) {
    before = PresenceTimes{row_it->second.last_connected,
                           row_it->second.last_active};
  }
  const std::optional<PresenceTimes> after =
      ApplyPresenceEnabled(before, enabled, now);
  const UpdateId seq = TakeSeqLocked(realm);
  FeedEntry entry{.realm_id = realm, .seq = seq, .user = rec};
  if (after) {
    rows_[user] = PresenceRecord{user, realm, after->last_connected,
                                 after->last_active, TakeUpdateIdLocked(realm)};
  }
  if (!enabled) {
    // Client rows no fresher than the user row (Realm::ClampClientsLocked).
    auto lists = clients_.find(user);
    auto now_row = rows_.find(user);
    const PresenceTimes top =
        now_row == rows_.end() ? PresenceTimes{}
                               : PresenceTimes{now_row->second.last_connected,
                                               now_row->second.last_active};
    if (lists != clients_.end()) {
      bool changed = false;
      for (auto& c : lists->second) {
        const Micros lc = std::min(c.last_connected, top.last_connected);
        const Micros la = std::min(c.last_active, top.last_active);
        if (lc != c.last_connected || la != c.last_active) changed = true;
        c.last_connected = lc;
        c.last_active = la;
      }
      if (changed) {
        const UpdateId id =
            after ? rows_.at(user).last_update_id : TakeUpdateIdLocked(realm);
        for (auto& c : lists->second) c.last_update_id = id;
        entry.client_user = user;
        entry.clients = lists->second;
        entry.written_at = now;
      }
    }
  }
  auto it = rows_.find(user);
  if (it != rows_.end() && (enabled || after)) {
    // The row as it stands (written now or not): watchers are told of the
    // toggle with the current row, as the single-node core does; going
    // invisible with nothing to back-date tells nobody.
    entry.row = it->second;
    entry.event_due = true;
    entry.forced = true;
    entry.written_at = now;
  }
  PublishLocked(entry);
  return WriteResult{true, seq};
}

StoreResult<UpdateId> MemorySharedStore::CurrentSeq(RealmId realm) {
  std::lock_guard lock(mu_);
  ++steps_;
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto it = realms_.find(realm);
  if (it == realms_.end()) return Errc::kNotFound;
  return log_[realm];
}

StoreResult<UpdateId> MemorySharedStore::Fence(RealmId realm, UpdateId log,
                                               UpdateId update_id) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto it = realms_.find(realm);
  if (it == realms_.end()) return Errc::kNotFound;
  UpdateId& current = log_[realm];
  current = std::max(current, log);
  RealmRecord& r = it->second;
  r.last_update_id = std::max(r.last_update_id, update_id);
  r.reserved_update_id = std::max(r.reserved_update_id, r.last_update_id);
  const std::int64_t fences = ++fences_[realm];
  const UpdateId seq = TakeSeqLocked(realm);
  PublishLocked(FeedEntry{.realm_id = realm, .seq = seq, .fences = fences});
  return seq;
}

struct MemorySharedStore::Checkpoint {
  std::map<RealmId, RealmRecord> realms;
  std::map<UserId, PresenceRecord> rows;
  std::map<UserId, std::vector<ClientPresenceRecord>> clients;
  std::map<RealmId, UpdateId> log;
};

std::shared_ptr<const MemorySharedStore::Checkpoint>
MemorySharedStore::SaveCheckpoint() const {
  std::lock_guard lock(mu_);
  return std::make_shared<const Checkpoint>(Checkpoint{
      .realms = realms_, .rows = rows_, .clients = clients_, .log = log_});
}

void MemorySharedStore::Rewind(const Checkpoint& checkpoint) {
  std::lock_guard lock(mu_);
  for (const auto& [id, r] : checkpoint.realms) {
    realms_.at(id).last_update_id = r.last_update_id;
    realms_.at(id).reserved_update_id = r.reserved_update_id;
  }
  rows_ = checkpoint.rows;
  clients_ = checkpoint.clients;
  log_ = checkpoint.log;
}

StoreResult<std::optional<RealmId>> MemorySharedStore::FindRealmId(
    std::string_view subdomain) {
  std::lock_guard lock(mu_);
  ++find_realm_calls_;
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  const std::string folded = AsciiLower(std::string(subdomain));
  for (const auto& [id, r] : realms_) {
    if (AsciiLower(r.subdomain) == folded) return std::optional<RealmId>(id);
  }
  return std::optional<RealmId>();
}

StoreResult<RealmState> MemorySharedStore::ReadRealm(RealmId realm,
                                                     UpdateId since) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto it = realms_.find(realm);
  if (it == realms_.end()) return Errc::kNotFound;
  auto snap = base_.Load();
  if (!snap) return snap.error();
  RealmState state;
  state.realm = it->second;
  state.seq = log_[realm];
  state.fences = fences_[realm];
  for (const auto& u : snap->users) {
    if (u.realm_id == realm) state.users.push_back(u);
  }
  for (const auto& [id, row] : rows_) {
    if (row.realm_id == realm && row.last_update_id > since) {
      state.rows.push_back(row);
    }
  }
  for (const auto& a : snap->access) {
    if (a.realm_id == realm) state.access.push_back(a);
  }
  for (const auto& [id, list] : clients_) {
    UpdateId newest = 0;
    for (const auto& c : list) newest = std::max(newest, c.last_update_id);
    if (list.empty() || list.front().realm_id != realm || newest <= since) {
      continue;
    }
    state.clients.insert(state.clients.end(), list.begin(), list.end());
  }
  return state;
}

StoreResult<RateCount> MemorySharedStore::CountRequest(UserId user, Micros now,
                                                       std::int64_t limit,
                                                       Micros window) {
  std::lock_guard lock(mu_);
  ++steps_;
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto& log = requests_[user];
  while (!log.empty() && log.front() <= now - window) log.pop_front();
  RateCount c;
  c.allowed = static_cast<std::int64_t>(log.size()) < limit;
  if (c.allowed) log.push_back(now);
  c.in_window = static_cast<std::int64_t>(log.size());
  c.oldest = log.empty() ? now : log.front();
  return c;
}

StoreStatus MemorySharedStore::Ping() {
  std::lock_guard lock(mu_);
  return CheckAvailableLocked();
}

// Registrations expire in real (steady) time, as Redis's do in its clock.
StoreResult<std::int64_t> MemorySharedStore::RegisterNode(
    std::string_view address, std::chrono::milliseconds ttl) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  const std::int64_t id = next_node_++;
  PruneNodesLocked();
  nodes_[id] =
      Node{std::string(address), std::chrono::steady_clock::now() + ttl};
  return id;
}

StoreStatus MemorySharedStore::RefreshNode(std::int64_t node,
                                           std::string_view address,
                                           std::chrono::milliseconds ttl) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  PruneNodesLocked();
  nodes_[node] =
      Node{std::string(address), std::chrono::steady_clock::now() + ttl};
  return {};
}

StoreResult<std::optional<std::string>> MemorySharedStore::NodeAddress(
    std::int64_t node) {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  auto it = nodes_.find(node);
  if (it == nodes_.end() ||
      it->second.deadline <= std::chrono::steady_clock::now()) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(it->second.address);
}

StoreResult<std::vector<std::pair<std::int64_t, std::string>>>
MemorySharedStore::LiveNodes() {
  std::lock_guard lock(mu_);
  if (auto st = CheckAvailableLocked(); !st) return st.error();
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<std::int64_t, std::string>> out;
  for (const auto& [id, node] : nodes_) {
    if (node.deadline > now) out.emplace_back(id, node.address);
  }
  return out;
}

void MemorySharedStore::PruneNodesLocked() {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(nodes_,
                [&](const auto& n) { return n.second.deadline <= now; });
}

// --- Test controls -----------------------------------------------------------

std::size_t MemorySharedStore::steps() const {
  std::lock_guard lock(mu_);
  return steps_;
}

std::size_t MemorySharedStore::find_realm_calls() const {
  std::lock_guard lock(mu_);
  return find_realm_calls_;
}

void MemorySharedStore::PauseFeed() {
  std::lock_guard lock(mu_);
  paused_ = true;
  for (auto& s : subscribers_) {
    std::lock_guard sl(s->mu);
    s->paused = true;
  }
}

void MemorySharedStore::ResumeFeed() {
  std::lock_guard lock(mu_);
  paused_ = false;
  for (auto& s : subscribers_) {
    std::lock_guard sl(s->mu);
    s->paused = false;
    s->cv.notify_all();
  }
}

void MemorySharedStore::DropNextEntries(int n) {
  std::lock_guard lock(mu_);
  drop_next_ += n;
}

void MemorySharedStore::InterruptFeed() {
  std::lock_guard lock(mu_);
  for (auto& s : subscribers_) s->Push(Subscriber::Lost{});
}

void MemorySharedStore::SetUnavailable(bool unavailable) {
  std::lock_guard lock(mu_);
  unavailable_ = unavailable;
}

void MemorySharedStore::WaitFeedIdle() {
  std::vector<Subscriber*> subs;
  {
    std::lock_guard lock(mu_);
    for (auto& s : subscribers_) subs.push_back(s.get());
  }
  for (Subscriber* s : subs) {
    std::unique_lock sl(s->mu);
    s->cv.wait(sl, [&] { return s->paused || (s->queue.empty() && !s->busy); });
  }
}

std::size_t MemorySharedStore::published() const {
  std::lock_guard lock(mu_);
  return published_;
}

}  // namespace presence::store
