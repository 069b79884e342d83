#include "core/replica_writer.h"

#include <algorithm>
#include <span>

namespace presence {

ReplicaWriter::ReplicaWriter(store::SharedStore* store, SharedOptions options)
    : store_(store),
      options_(options),
      unknown_subdomains_(std::chrono::duration_cast<std::chrono::microseconds>(
                              options.unknown_subdomain_window)
                              .count()),
      batcher_(
          [shared = store](RealmId realm,
                           std::span<const store::GateRequest> requests,
                           store::GateBatchCallback done) {
            shared->GateBatch(realm, requests, std::move(done));
          },
          options.gate_batch) {}

ReplicaWriter::~ReplicaWriter() {
  if (subscribed_) store_->Unsubscribe();
  CancelWaits();
  if (sweeper_.joinable()) sweeper_.join();
}

void ReplicaWriter::CancelWaits() {
  std::vector<std::function<void(Status)>> left;
  {
    MutexLock apply(apply_mu_);
    stopping_ = true;
    for (auto& [realm, waiting] : waiters_) {
      for (auto& [seq, w] : waiting) left.push_back(std::move(w.done));
    }
    waiters_.clear();
    waiting_ = 0;
    for (auto& [realm, done] : fence_due_) left.push_back(std::move(done));
    fence_due_.clear();
    sweep_cv_.NotifyAll();
  }
  for (auto& done : left) done(Errc::kUnavailable);
}

StoreStatus ReplicaWriter::Start(const WriterContext& context) {
  context_ = context;
  // Subscribe first: an entry published while the snapshot is read is then
  // either in the snapshot or delivered (and kept until the load is done).
  if (auto st = store_->Subscribe(this); !st) return st;
  subscribed_ = true;
  // The realms as they stand, each read in one atomic step (with its log
  // sequence number, which the snapshot does not carry).
  auto snap = store_->Load();
  if (!snap) return snap.error();
  MutexLock apply(apply_mu_);
  for (const auto& r : snap->realms) {
    if (LoadRealmLocked(r.id) == nullptr) return Errc::kUnavailable;
  }
  loaded_ = true;
  sweeper_ = std::thread([this] { SweepWaiters(); });
  auto early = std::move(early_entries_);
  early_entries_.clear();
  for (const auto& e : early) ApplyEntryLocked(e);
  applied_cv_.NotifyAll();
  return {};
}

ReplicaWriter::ReplicaState& ReplicaWriter::StateOf(RealmId realm) const {
  MutexLock lock(states_mu_);
  auto& state = states_[realm];
  if (!state) state = std::make_unique<ReplicaState>();
  return *state;
}

UpdateId ReplicaWriter::AppliedSeq(RealmId realm) const {
  return StateOf(realm).applied_seq.load(std::memory_order_acquire);
}

void ReplicaWriter::AdvanceLocked(RealmId realm, UpdateId seq) {
  auto& applied = StateOf(realm).applied_seq;
  if (seq > applied.load(std::memory_order_relaxed)) {
    applied.store(seq, std::memory_order_release);
  }
}

void ReplicaWriter::Announce(const std::optional<PresenceChange>& change) {
  if (change) context_.listener->OnPresenceChange(*change);
}

void ReplicaWriter::OnFeedEntry(const store::FeedEntry& entry) {
  std::vector<std::function<void(Status)>> ready;
  {
    MutexLock apply(apply_mu_);
    if (!loaded_) {
      early_entries_.push_back(entry);
      return;
    }
    ApplyEntryLocked(entry);
    applied_cv_.NotifyAll();
    if (waiting_ > 0) TakeReadyLocked(entry.realm_id, ready);
  }
  // Outside the lock: each only hands the request back to its I/O thread.
  for (auto& done : ready) done(Status{});
}

void ReplicaWriter::OnFeedLost() {
  std::vector<std::function<void(Status)>> ready;
  {
    MutexLock apply(apply_mu_);
    if (!loaded_) return;  // the load reads everything anyway
    for (Realm* r : context_.directory->Realms()) (void)ResyncLocked(*r);
    applied_cv_.NotifyAll();
    TakeAllReadyLocked(ready);
  }
  for (auto& done : ready) done(Status{});
}

void ReplicaWriter::TakeReadyLocked(
    RealmId realm, std::vector<std::function<void(Status)>>& ready) {
  auto it = waiters_.find(realm);
  if (it == waiters_.end()) return;
  const UpdateId applied = AppliedSeq(realm);
  auto& waiting = it->second;
  auto end = waiting.upper_bound(applied);
  for (auto w = waiting.begin(); w != end; ++w) {
    ready.push_back(std::move(w->second.done));
    --waiting_;
  }
  waiting.erase(waiting.begin(), end);
  if (waiting.empty()) waiters_.erase(it);
}

void ReplicaWriter::TakeAllReadyLocked(
    std::vector<std::function<void(Status)>>& ready) {
  std::vector<RealmId> realms;
  realms.reserve(waiters_.size());
  for (const auto& [realm, waiting] : waiters_) realms.push_back(realm);
  for (RealmId realm : realms) TakeReadyLocked(realm, ready);
}

void ReplicaWriter::WaitAppliedAsync(const Realm& realm, UpdateId seq,
                                     std::function<void(Status)> done) {
  if (AppliedSeq(realm.id()) >= seq) return done(Status{});
  {
    MutexLock apply(apply_mu_);
    // Applied under apply_mu_: checked again, no entry can slip between.
    if (AppliedSeq(realm.id()) < seq && !stopping_) {
      waiters_[realm.id()].emplace(
          seq, Waiter{.deadline =
                          std::chrono::steady_clock::now() + options_.feed_wait,
                      .done = std::move(done)});
      if (waiting_++ == 0) sweep_cv_.NotifyAll();
      return;
    }
  }
  done(AppliedSeq(realm.id()) >= seq ? Status{} : Status(Errc::kUnavailable));
}

void ReplicaWriter::SweepWaiters() {
  MutexLock apply(apply_mu_);
  while (!stopping_) {
    if (!fence_due_.empty()) {
      auto due = std::move(fence_due_);
      fence_due_.clear();
      std::vector<std::pair<RealmId, Status>> fenced;
      std::vector<std::function<void(Status)>> ready;
      std::vector<std::pair<std::function<void(Status)>, Status>> answers;
      for (auto& [id, done] : due) {
        // One fence per realm for every request that asked at once.
        auto seen =
            std::find_if(fenced.begin(), fenced.end(),
                         [id = id](const auto& f) { return f.first == id; });
        if (seen == fenced.end()) {
          Realm* r = context_.directory->FindRealmById(id);
          fenced.emplace_back(
              id, r != nullptr ? FenceLocked(*r) : Status(Errc::kUnavailable));
          seen = fenced.end() - 1;
        }
        answers.emplace_back(std::move(done), seen->second);
      }
      TakeAllReadyLocked(ready);
      applied_cv_.NotifyAll();
      apply_mu_.Unlock();
      for (auto& [done, st] : answers) done(st);
      for (auto& done : ready) done(Status{});
      apply_mu_.Lock();
      continue;
    }
    if (waiting_ == 0) {
      sweep_cv_.Wait(apply_mu_);
      continue;
    }
    // Entries are usually back within a millisecond; a waiter still here
    // after feed_wait means the feed is late or lost one: read its realm
    // again (off the I/O threads), then answer what that brought in.
    const auto now = std::chrono::steady_clock::now();
    auto next = now + options_.feed_wait;
    std::vector<RealmId> late;
    for (const auto& [realm, waiting] : waiters_) {
      for (const auto& [seq, w] : waiting) {
        if (w.deadline <= now) {
          late.push_back(realm);
          break;
        }
        next = std::min(next, w.deadline);
      }
    }
    std::vector<std::function<void(Status)>> ready;
    std::vector<std::function<void(Status)>> failed;
    for (RealmId id : late) {
      if (Realm* r = context_.directory->FindRealmById(id)) {
        (void)ResyncLocked(*r);
      }
      TakeReadyLocked(id, ready);
      // Whoever is still behind after a fresh read cannot be served.
      auto it = waiters_.find(id);
      if (it == waiters_.end()) continue;
      for (auto w = it->second.begin(); w != it->second.end();) {
        if (w->second.deadline <= now) {
          failed.push_back(std::move(w->second.done));
          --waiting_;
          w = it->second.erase(w);
        } else {
          ++w;
        }
      }
      if (it->second.empty()) waiters_.erase(it);
    }
    if (!ready.empty() || !failed.empty()) {
      applied_cv_.NotifyAll();
      apply_mu_.Unlock();
      for (auto& done : ready) done(Status{});
      for (auto& done : failed) done(Errc::kUnavailable);
      apply_mu_.Lock();
      continue;
    }
    // Woken early by the destructor only; a new waiter's deadline is
    // later than every one already here. (The predicate runs with apply_mu_
    // held, which the analysis cannot see in a lambda.)
    (void)sweep_cv_.WaitFor(
        apply_mu_,
        std::chrono::duration_cast<std::chrono::milliseconds>(next - now) +
            std::chrono::milliseconds(1),
        [this]() NO_THREAD_SAFETY_ANALYSIS {
          return stopping_ || !fence_due_.empty();
        });
  }
}

void ReplicaWriter::ApplyEntryLocked(const store::FeedEntry& entry) {
  if (entry.realm) unknown_subdomains_.Forget(entry.realm->subdomain);
  Realm* realm = context_.directory->FindRealmById(entry.realm_id);
  if (realm == nullptr) {
    // A realm created elsewhere (or whose first entries we missed): read it
    // whole; the entry is part of what is read.
    LoadRealmLocked(entry.realm_id);
    return;
  }
  if (entry.seq == 0) return;  // announces a realm we already have
  if (entry.fences > 0) {
    // The store went back and was fenced: read the realm whole (it brings
    // back what this replica dropped as duplicates), unless this replica
    // did so after that fence already.
    if (entry.fences > StateOf(realm->id()).fences.load()) {
      (void)ResyncLocked(*realm, Read::kWhole);
    }
    return;
  }
  const UpdateId last = AppliedSeq(realm->id());
  if (entry.seq <= last) {
    // Already applied (or read in a resync): the replica's row is then at
    // least as new as the entry's. A newer row under a number applied here
    // means the store went back and handed the number out again.
    if (entry.row) {
      auto have = RowIdOf(*realm, entry.row->user_id);
      if (have && *have < entry.row->last_update_id) (void)FenceLocked(*realm);
    }
    return;
  }
  if (entry.seq > last + 1) {
    // Entries were lost: read the realm again, which includes this one.
    (void)ResyncLocked(*realm);
    if (entry.seq <= AppliedSeq(realm->id())) return;
  }
  ApplyChangeLocked(*realm, entry);
  AdvanceLocked(realm->id(), entry.seq);
}

void ReplicaWriter::ApplyChangeLocked(Realm& realm,
                                      const store::FeedEntry& entry) {
  if (entry.realm) realm.ApplySettings(*entry.realm);
  if (entry.user) ApplyUserLocked(realm, *entry.user);
  if (entry.access) {
    realm.SetAccess(entry.access->viewer, entry.access->visible);
  }
  // Client rows first: a change announced for the row is fanned out with
  // the client rows of the same write.
  std::optional<PresenceChange> change;
  if (entry.clients) {
    change = realm.ApplyClientRows(entry.client_user, *entry.clients,
                                   entry.written_at);
  }
  if (entry.row) {
    change = realm.ApplyRow(*entry.row, entry.written_at, entry.event_due,
                            entry.forced);
  }
  if (change && entry.clients) {
    change->client_event_due = entry.client_event_due;
  }
  Announce(change);
}

void ReplicaWriter::ApplyUserLocked(Realm& realm,
                                    const store::UserRecord& user) {
  Realm::MemberDelta delta = realm.UpsertMember(user);
  if (delta.added || delta.replaced_key) {
    // One step: no request sees neither the old key nor the new one.
    Directory& dir = *context_.directory;
    dir.Exclusive([&] {
      dir.AssertHeld();
      if (delta.replaced_key) {
        dir.UnindexKeyLocked(realm.id(), delta.slot, *delta.replaced_key);
      }
      dir.IndexKeyLocked(realm.id(), delta.slot, user.api_key_hash);
    });
  }
  PresenceListener& listener = *context_.listener;
  if (delta.deactivated) listener.OnUserDeactivated(realm.id(), user.id);
  if (delta.presence_enabled) {
    listener.OnPresenceEnabledChange(realm.id(), user.id,
                                     *delta.presence_enabled);
  }
  // Every node announces the status it applies (the writing node too: its
  // own write comes back through the feed).
  if (delta.status_changed && user.status) {
    listener.OnUserStatusChange(realm.id(), user.id, *user.status);
  }
}

std::optional<UpdateId> ReplicaWriter::RowIdOf(const Realm& realm,
                                               UserId user) {
  std::optional<UpdateId> id;
  realm.WithMember(user, [&](const Member* m) {
    if (m != nullptr) id = m->has_row ? m->last_update_id : 0;
  });
  return id;
}

Status ReplicaWriter::FenceLocked(Realm& realm) {
  const UpdateId applied = AppliedSeq(realm.id());
  auto taken = store_->Fence(realm.id(), applied, realm.last_update_id());
  if (!taken) return Errc::kUnavailable;
  return ResyncLocked(realm, Read::kWhole);
}

Status ReplicaWriter::Fence(const Realm& realm) {
  MutexLock apply(apply_mu_);
  // The replica is this writer's to change; the caller's view is read-only.
  Status st = FenceLocked(const_cast<Realm&>(realm));
  applied_cv_.NotifyAll();
  return st;
}

void ReplicaWriter::FenceAsync(const Realm& realm,
                               std::function<void(Status)> done) {
  {
    MutexLock apply(apply_mu_);
    if (!stopping_) {
      fence_due_.emplace_back(realm.id(), std::move(done));
      sweep_cv_.NotifyAll();
      return;
    }
  }
  done(Errc::kUnavailable);
}

Status ReplicaWriter::ResyncLocked(Realm& realm, Read read) {
  ReplicaState& rs = StateOf(realm.id());
  auto state = store_->ReadRealm(
      realm.id(), read == Read::kSince ? realm.last_update_id() : 0);
  if (!state) return Errc::kUnavailable;
  // (A read behind what was applied here is no proof the store went back:
  // a demoted master answers reads from its old data. Fences are counted.)
  if (read == Read::kSince && state->fences > rs.fences.load()) {
    // A fence this replica has not seen (its entry was lost with the feed):
    // what it dropped as duplicates is only in a whole read.
    return ResyncLocked(realm, Read::kWhole);
  }
  realm.ApplySettings(state->realm);
  for (const auto& u : state->users) ApplyUserLocked(realm, u);
  realm.ReplaceAccess(state->access);
  auto rows = std::move(state->rows);
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.last_update_id < b.last_update_id;
  });
  // What happened in between is not known: watchers get the rows (so
  // transitions and subsets stay right) without a presence event.
  const Micros now = context_.clock->NowMicros();
  for (const auto& row : rows) {
    // A whole read brings every row: announce only those newer here.
    auto have = RowIdOf(realm, row.user_id);
    if (have && *have >= row.last_update_id) continue;
    Announce(realm.ApplyRow(row, now, /*event_due=*/false, false));
  }
  ApplyClientRowsLocked(realm, state->clients, now);
  rs.fences.store(std::max(rs.fences.load(), state->fences));
  AdvanceLocked(realm.id(), state->seq);
  return {};
}

void ReplicaWriter::ApplyClientRowsLocked(
    Realm& realm, const std::vector<store::ClientPresenceRecord>& clients,
    Micros now) {
  // One run per user (the records come by user), applied oldest first so
  // that the realm's client update order stays sorted. Nothing to announce:
  // what happened in between is not known, and no user row changed here.
  struct Run {
    UpdateId newest;
    std::size_t begin;
    std::size_t end;
  };
  std::vector<Run> runs;
  for (std::size_t i = 0; i < clients.size();) {
    std::size_t end = i;
    UpdateId newest = 0;
    while (end < clients.size() && clients[end].user_id == clients[i].user_id) {
      newest = std::max(newest, clients[end].last_update_id);
      ++end;
    }
    runs.push_back({newest, i, end});
    i = end;
  }
  std::sort(runs.begin(), runs.end(),
            [](const Run& a, const Run& b) { return a.newest < b.newest; });
  for (const Run& run : runs) {
    (void)realm.ApplyClientRows(
        clients[run.begin].user_id,
        std::span<const store::ClientPresenceRecord>(clients.data() + run.begin,
                                                     run.end - run.begin),
        now);
  }
}

Realm* ReplicaWriter::LoadRealmLocked(RealmId id) {
  Directory& dir = *context_.directory;
  if (Realm* known = dir.FindRealmById(id)) return known;
  auto state = store_->ReadRealm(id, 0);
  if (!state) return nullptr;
  auto realm = std::make_unique<Realm>(state->realm, ids(), /*fresh=*/true);
  realm->Reserve(state->users.size());
  std::vector<std::uint32_t> slots;
  slots.reserve(state->users.size());
  for (const auto& u : state->users) slots.push_back(realm->AddMember(u));
  for (const auto& p : state->rows) realm->LoadPresence(p);
  for (const auto& c : state->clients) realm->LoadClientPresence(c);
  for (const auto& a : state->access) realm->LoadAccess(a);
  realm->FinishLoad();
  StateOf(id).fences.store(state->fences);
  AdvanceLocked(id, state->seq);
  Realm* raw = nullptr;
  dir.Exclusive([&] {
    dir.AssertHeld();
    raw = dir.AddRealmLocked(std::move(realm));
    for (std::size_t i = 0; i < slots.size(); ++i) {
      dir.IndexKeyLocked(id, slots[i], state->users[i].api_key_hash);
    }
  });
  return raw;
}

Realm* ReplicaWriter::LoadRealm(RealmId id) {
  if (Realm* known = context_.directory->FindRealmById(id)) return known;
  MutexLock apply(apply_mu_);
  Realm* realm = LoadRealmLocked(id);
  applied_cv_.NotifyAll();
  return realm;
}

Realm* ReplicaWriter::LoadRealm(std::string_view subdomain) {
  const Clock* clock = options_.cache_clock;
  const Micros now = clock != nullptr ? clock->NowMicros() : 0;
  if (clock != nullptr && unknown_subdomains_.Contains(subdomain, now)) {
    return nullptr;
  }
  auto id = store_->FindRealmId(subdomain);
  if (!id) return nullptr;  // a store error is not remembered
  if (!*id) {
    if (clock != nullptr) unknown_subdomains_.Add(subdomain, now);
    return nullptr;
  }
  MutexLock apply(apply_mu_);
  Realm* realm = LoadRealmLocked(**id);
  applied_cv_.NotifyAll();
  return realm;
}

Status ReplicaWriter::WaitApplied(const Realm& realm, UpdateId seq) {
  // Most calls find the replica there already (a no-op report of a quiet
  // realm): no lock.
  if (AppliedSeq(realm.id()) >= seq) return {};
  MutexLock apply(apply_mu_);
  if (applied_cv_.WaitFor(apply_mu_, options_.feed_wait,
                          [&] { return AppliedSeq(realm.id()) >= seq; })) {
    return {};
  }
  // The feed is late or lost the entry: read the realm from the store. The
  // replica is this writer's to change; the caller's view is read-only.
  Realm& r = const_cast<Realm&>(realm);
  if (auto st = ResyncLocked(r); !st) return st;
  applied_cv_.NotifyAll();
  if (AppliedSeq(realm.id()) >= seq) return {};
  return Errc::kUnavailable;
}

std::optional<std::string> ReplicaWriter::StoreUnavailable() const {
  auto ping = store_->Ping();
  if (ping) return std::nullopt;
  return "shared store unreachable: " + ping.error().message();
}

void ReplicaWriter::StoreUnavailableAsync(
    std::function<void(std::optional<std::string>)> done) const {
  store_->PingAsync([done = std::move(done)](StoreStatus ping) {
    if (ping) return done(std::nullopt);
    done("shared store unreachable: " + ping.error().message());
  });
}

void ReplicaWriter::HealthAsync(std::function<void(WriterHealth)> done) const {
  store_->HealthAsync([done = std::move(done)](store::StoreHealth h) {
    if (!h.reachable) {
      return done(WriterHealth{
          "shared store unreachable: " + h.reachable.error().message(),
          std::nullopt});
    }
    done(WriterHealth{std::nullopt, std::move(h.degraded)});
  });
}

Status ReplicaWriter::Sync(const Realm& realm) {
  // The realm's log number, from a read that started after this call did;
  // concurrent callers share reads (ReplicaState).
  ReplicaState& g = StateOf(realm.id());
  StoreResult<UpdateId> seq = UpdateId{0};
  {
    MutexLock lock(g.gate_mu);
    const std::uint64_t need = g.started + 1;
    while (g.done < need) {
      if (g.in_flight) {
        g.gate_cv.Wait(g.gate_mu);
        continue;
      }
      g.in_flight = true;
      const std::uint64_t mine = ++g.started;
      g.gate_mu.Unlock();  // no lock held across the store's round trip
      StoreResult<UpdateId> read = store_->CurrentSeq(realm.id());
      g.gate_mu.Lock();
      g.result = read;
      g.done = mine;
      g.in_flight = false;
      g.gate_cv.NotifyAll();
    }
    seq = g.result;
  }
  if (!seq) return Errc::kUnavailable;
  if (g.applied_seq.load(std::memory_order_acquire) >= *seq) return {};
  return WaitApplied(realm, *seq);
}

Status ReplicaWriter::Report(const Caller& caller, ReportStatus status,
                             Micros now, std::string_view client) {
  const store::ReportClient by{
      .name = client, .max_rows = context_.directory->max_clients_per_user()};
  const UpdateId before = AppliedSeq(caller.realm->id());
  auto written =
      store_->Report(caller.realm->id(), caller.user_id, now, status, by);
  if (!written) return Errc::kUnavailable;
  if (WentBack(before, *written)) return Fence(*caller.realm);
  // Written or not: the script decided against the realm as it stood at
  // `seq` (another node's write of this user included), so the answer must
  // not be served from a replica behind it.
  return WaitApplied(*caller.realm, written->seq);
}

std::int64_t ReplicaWriter::SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void ReplicaWriter::Confirm(ReplicaState& state, std::int64_t sent) {
  std::int64_t was = state.confirmed_at.load(std::memory_order_relaxed);
  while (was < sent &&
         !state.confirmed_at.compare_exchange_weak(
             was, sent, std::memory_order_release, std::memory_order_relaxed)) {
  }
}

bool ReplicaWriter::AnswersLocally(const Caller& caller,
                                   const RequestGate& gate,
                                   const ReplicaState& state) const {
  if (!gate.report || !gate.cursor || options_.fresh_for.count() <= 0) {
    return false;
  }
  // The client's own reports (on any node) are at or below its cursor.
  const Realm& realm = *caller.realm;
  if (realm.last_update_id() < *gate.cursor) return false;
  // Everyone else's: the replica had all the store had a moment ago.
  const std::int64_t age =
      SteadyNanos() - state.confirmed_at.load(std::memory_order_acquire);
  if (age < 0 || age > std::chrono::nanoseconds(options_.fresh_for).count()) {
    return false;
  }
  // Rows only move forward while the user is visible: a row fresh here is
  // fresh in the store, where the report then writes nothing either.
  return realm.ReportWritesNothing(caller.user_id, gate.now, *gate.report,
                                   gate.client);
}

void ReplicaWriter::Gate(const Caller& caller, const RequestGate& gate,
                         GateDone done) {
  const Realm* realm = caller.realm;
  ReplicaState& state = StateOf(realm->id());
  const bool counted = gate.rate_limit > 0;
  // The rate decision: a leased request, or counted in the store step.
  std::optional<store::RateCount> leased;
  if (counted && options_.rate_lease > 1) {
    leased = leases_.Spend(realm->id(), caller.user_id, gate.rate_now);
  }
  if ((!counted || leased) && AnswersLocally(caller, gate, state)) {
    return done({Status{}, leased});
  }
  std::int64_t charge = 1;
  if (counted && !leased && options_.rate_lease > 1) {
    charge =
        leases_.Charge(realm->id(), caller.user_id,
                       RateLease::Lease(gate.rate_limit, options_.rate_lease));
  }
  store::GateRequest request{
      .user = caller.user_id,
      .rate_limit = leased ? 0 : gate.rate_limit,
      .rate_now = gate.rate_now,
      .rate_window = gate.rate_window,
      .rate_charge = charge,
      .report = gate.report,
      .now = gate.now,
      .client = std::string(gate.client),
      .max_clients = context_.directory->max_clients_per_user()};
  // Taken before the step waits for its realm's call in flight (the
  // batcher): it is sent later, so both stay true of what it sees.
  const std::int64_t sent = SteadyNanos();
  const UpdateId before = AppliedSeq(realm->id());
  batcher_.Submit(
      realm->id(), std::move(request),
      [this, realm, &state, counted, leased, charge, sent, before,
       user = caller.user_id, rate_now = gate.rate_now,
       window = gate.rate_window,
       done = std::move(done)](StoreResult<store::GateResult> r) mutable {
        leases_.Settle(realm->id(), user, charge, r ? &r->rate : nullptr,
                       rate_now, window);
        if (!r) return done({Errc::kUnavailable, std::nullopt});
        std::optional<store::RateCount> rate = leased;
        if (counted && !leased) rate = r->rate;
        if (rate && !rate->allowed) return done({Status{}, rate});
        if (WentBack(before, r->write)) {
          // Fenced and read whole, the replica has the write.
          return FenceAsync(*realm, [rate, done = std::move(done)](Status st) {
            done({st, rate});
          });
        }
        // As Report: written or not, the answer is served from a
        // replica that has everything the step saw, which was at least
        // all the store had when the step was sent.
        WaitAppliedAsync(
            *realm, r->write.seq,
            [&state, sent, rate, done = std::move(done)](Status st) {
              if (st) Confirm(state, sent);
              done({st, rate});
            });
      });
}

Result<RealmId> ReplicaWriter::CreateRealm(store::RealmRecord record) {
  record.reserved_update_id = 0;
  auto id = store_->InsertRealm(record);
  if (!id) {
    if (id.error() == Errc::kAlreadyExists) return id.error().code();
    return Errc::kUnavailable;
  }
  MutexLock apply(apply_mu_);
  if (LoadRealmLocked(*id) == nullptr) return Errc::kUnavailable;
  applied_cv_.NotifyAll();
  return *id;
}

Status ReplicaWriter::DirectoryWrite(Realm& realm, const StoreStatus& written) {
  if (!written) {
    const Error& e = written.error();
    if (e == Errc::kAlreadyExists || e == Errc::kNotFound ||
        e == Errc::kInvalidArgument) {
      return e.code();
    }
    return Errc::kUnavailable;
  }
  return Sync(realm);
}

Status ReplicaWriter::UpdateRealm(Realm& realm,
                                  const store::RealmRecord& record) {
  return DirectoryWrite(realm, store_->UpdateRealm(record));
}

Result<UserId> ReplicaWriter::CreateUser(Realm& realm,
                                         const store::UserRecord& record) {
  auto id = store_->InsertUser(record);
  if (!id) {
    if (auto st = DirectoryWrite(realm, id.error()); !st) return st.error();
  }
  if (auto st = Sync(realm); !st) return st.error();
  return *id;
}

Status ReplicaWriter::UpdateUser(Realm& realm, UserId user,
                                 const UserPatch& patch) {
  auto rec = realm.UserRecordOf(user);
  if (!rec) return Errc::kNotFound;
  if (patch.is_active || patch.role || patch.full_name || patch.is_bot ||
      patch.can_access_all_users || patch.status) {
    if (patch.is_active) rec->is_active = *patch.is_active;
    if (patch.role) rec->role = *patch.role;
    if (patch.full_name) rec->full_name = *patch.full_name;
    if (patch.is_bot) rec->is_bot = *patch.is_bot;
    if (patch.can_access_all_users) {
      rec->can_access_all_users = *patch.can_access_all_users;
    }
    if (patch.status) rec->status = *patch.status;
    if (auto st = DirectoryWrite(realm, store_->UpdateUser(*rec)); !st) {
      return st;
    }
  }
  if (patch.presence_enabled) {
    const UpdateId before = AppliedSeq(realm.id());
    auto w = store_->SetPresenceEnabled(
        realm.id(), user, *patch.presence_enabled, context_.clock->NowMicros());
    if (!w) return DirectoryWrite(realm, w.error());
    if (WentBack(before, *w)) return Fence(realm);
    return WaitApplied(realm, w->seq);
  }
  return {};
}

Result<WriteIf> ReplicaWriter::UpdateStatusIf(Realm& realm,
                                              const store::UserRecord& expected,
                                              const store::UserStatus& status) {
  store::UserRecord rec = expected;
  rec.status = status;
  auto wrote = store_->UpdateUserIf(expected, rec);
  if (!wrote) {
    Status st = DirectoryWrite(realm, wrote.error());
    return st ? Errc::kUnavailable : st.error();
  }
  if (!*wrote) return WriteIf::kStale;
  // Every node announces it when its feed applies it (this one too).
  if (auto st = Sync(realm); !st) return st.error();
  return WriteIf::kWritten;
}

Status ReplicaWriter::SetAccess(Realm& realm, store::AccessRecord record) {
  return DirectoryWrite(realm, store_->SetAccess(record));
}

}  // namespace presence
