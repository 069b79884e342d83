#include "api/rate_limiter.h"

#include <algorithm>

namespace presence::api {

RateLimiter::RateLimiter(std::int64_t limit, std::int64_t window_seconds)
    : limit_(limit),
      window_us_(window_seconds * 1'000'000),
      // Offsets must reach a base up to half the range old plus a window or
      // two (the sweep moves a base up at most once per window).
      inline_capacity_(window_us_ < kOffsetRange / 4 ? kInline : 0),
      max_ring_(limit > 0 ? static_cast<std::size_t>(limit) : 0),
      first_ring_(std::min(max_ring_, kRingStart)) {}

void RateLimiter::HeapLog::push_back(std::int64_t t, std::size_t max_capacity) {
  if (size == capacity) {
    auto bigger = std::max<std::size_t>(
        size + 1,
        std::min(max_capacity, std::max<std::size_t>(2 * capacity, 4)));
    auto grown = std::make_unique<std::int64_t[]>(bigger);
    for (std::size_t i = 0; i < size; ++i) grown[i] = at(i);
    ring = std::move(grown);
    capacity = bigger;
    head = 0;
  }
  ring[Index(size)] = t;
  if (size == 0) oldest = t;
  newest = t;
  ++size;
}

void RateLimiter::HeapLog::Assign(const std::int64_t* times, std::size_t n,
                                  std::size_t min_capacity) {
  const std::size_t want = std::max(n, min_capacity);
  if (capacity < want) {
    ring = std::make_unique<std::int64_t[]>(want);
    capacity = want;
  }
  std::copy(times, times + n, ring.get());
  head = 0;
  size = n;
  if (n > 0) {
    oldest = times[0];
    newest = times[n - 1];
  }
}

RateDecision RateLimiter::Check(UserId user, std::int64_t now_us) {
  RateDecision d;
  d.limit = limit_;
  if (limit_ <= 0) return d;
  const std::int64_t page_no = user >> 8;  // kPageUsers == 1 << 8
  static_assert(kPageUsers == 1 << 8);
  Shard& shard = shards_[static_cast<std::uint64_t>(page_no) % shards_.size()];
  MutexLock lock(shard.mu);
  const std::int64_t horizon = now_us - window_us_;
  // Forget requests that left the window, once per window.
  if (now_us - shard.last_sweep > window_us_) {
    SweepLocked(shard, horizon);
    shard.last_sweep = now_us;
  }
  auto [page_it, fresh_page] = shard.pages.try_emplace(page_no);
  if (fresh_page) {
    page_it->second = std::make_unique<Page>();
    page_it->second->base = horizon;
  }
  Page& page = *page_it->second;
  Slot& slot = page.slots[static_cast<std::size_t>(user & (kPageUsers - 1))];

  if (slot.first == kSpilled) {
    auto heap_it = shard.spilled.find(user);
    HeapLog& heap = heap_it->second;
    while (heap.size > 0 && heap.front() <= horizon) heap.pop_front();
    auto n = static_cast<std::int64_t>(heap.size);
    const bool allowed = n < limit_;
    if (allowed) {
      // Never before the newest time logged (a clock that stepped back);
      // a log that emptied held only times before now.
      const std::size_t had = heap.capacity;
      heap.push_back(heap.size > 0 ? std::max(now_us, heap.back()) : now_us,
                     max_ring_);
      shard.ring_slots += heap.capacity - had;
      ++n;
    }
    const std::int64_t oldest = heap.front();  // n >= 1: limit_ > 0
    if (static_cast<std::size_t>(n) <= inline_capacity_) {
      // Few enough left to go back in place (if the times fit there).
      std::int64_t times[kInline];
      for (std::size_t i = 0; i < heap.size; ++i) times[i] = heap.at(i);
      shard.ring_slots -= heap.capacity;
      shard.spilled.erase(heap_it);
      StoreLocked(shard, page, slot, user, times, static_cast<std::size_t>(n));
    }
    return MakeRateDecision(limit_, window_us_, now_us, allowed, n, oldest);
  }

  // Zeroed: gcc -O3 cannot see that n >= 1 below (limit_ > 0) and warns.
  std::int64_t times[kInline + 1] = {};
  std::size_t n = 0;
  const bool was_empty = slot.first == kEmpty;
  if (!was_empty) {
    times[n++] = page.base + slot.first;
    if (slot.second != kEmpty) times[n++] = page.base + slot.second;
  }
  std::size_t gone = 0;
  while (gone < n && times[gone] <= horizon) ++gone;
  std::copy(times + gone, times + n, times);
  n -= gone;
  const bool allowed = static_cast<std::int64_t>(n) < limit_;
  if (allowed) {
    times[n] = n > 0 ? std::max(now_us, times[n - 1]) : now_us;
    ++n;
  }
  // limit_ > 0, so an empty log always takes the request: n >= 1.
  if (was_empty) ++page.used;
  StoreLocked(shard, page, slot, user, times, n);
  return MakeRateDecision(limit_, window_us_, now_us, allowed,
                          static_cast<std::int64_t>(n), times[0]);
}

void RateLimiter::StoreLocked(Shard& shard, Page& page, Slot& slot, UserId user,
                              const std::int64_t* times, std::size_t n) {
  const auto fits = [base = page.base](std::int64_t t) {
    return t >= base && t - base < kOffsetRange;
  };
  // The times are in order: the first and the last bound them all.
  if (n <= inline_capacity_ && fits(times[0]) && fits(times[n - 1])) {
    slot.first = static_cast<std::uint32_t>(times[0] - page.base);
    slot.second =
        n > 1 ? static_cast<std::uint32_t>(times[1] - page.base) : kEmpty;
    return;
  }
  // More requests than fit in place: the ring a steady heavy user needs,
  // now. Times that do not fit (a clock that jumped, a long window): only
  // what they need.
  HeapLog& heap = shard.spilled[user];
  const std::size_t had = heap.capacity;
  heap.Assign(times, n,
              n > inline_capacity_ && inline_capacity_ > 0 ? first_ring_ : n);
  shard.ring_slots += heap.capacity - had;
  slot.first = kSpilled;
  slot.second = kEmpty;
}

void RateLimiter::SweepLocked(Shard& shard, std::int64_t horizon) {
  // Heap logs with nothing in the window, and their slots.
  std::vector<UserId> dropped;
  for (const auto& [user, heap] : shard.spilled) {
    if (heap.size == 0 || heap.back() <= horizon) dropped.push_back(user);
  }
  for (UserId user : dropped) {
    auto heap_it = shard.spilled.find(user);
    shard.ring_slots -= heap_it->second.capacity;
    shard.spilled.erase(heap_it);
    auto it = shard.pages.find(user >> 8);
    Page& page = *it->second;
    page.slots[static_cast<std::size_t>(user & (kPageUsers - 1))] = Slot{};
    --page.used;
  }
  std::vector<std::int64_t> empty_pages;
  for (auto& [page_no, page_ptr] : shard.pages) {
    Page& page = *page_ptr;
    // A base old enough that offsets could soon overflow moves up to the
    // horizon: every time still in the window is after it.
    const bool rebase = horizon - page.base > kOffsetRange / 2;
    for (std::size_t i = 0; i < page.slots.size(); ++i) {
      Slot& slot = page.slots[i];
      if (slot.first == kEmpty || slot.first == kSpilled) continue;
      std::int64_t times[kInline];
      std::size_t n = 0;
      times[n++] = page.base + slot.first;
      if (slot.second != kEmpty) times[n++] = page.base + slot.second;
      if (times[n - 1] <= horizon) {
        slot = Slot{};
        --page.used;
        continue;
      }
      if (!rebase) continue;
      std::size_t gone = 0;
      while (times[gone] <= horizon) ++gone;  // the last one is not
      std::copy(times + gone, times + n, times);
      n -= gone;
      const std::int64_t old_base = page.base;
      page.base = horizon;
      StoreLocked(shard, page, slot,
                  page_no * kPageUsers + static_cast<std::int64_t>(i), times,
                  n);
      page.base = old_base;
    }
    if (rebase) page.base = horizon;
    if (page.used == 0) empty_pages.push_back(page_no);
  }
  for (std::int64_t page_no : empty_pages) shard.pages.erase(page_no);
  // Open-addressing tables never shrink by themselves: after a burst of
  // users has left, give the memory back (with room to spare, so a table
  // that merely breathes is not rebuilt every window).
  if (shard.pages.size() * 4 < shard.pages.bucket_count()) {
    shard.pages.rehash(0);
  }
  if (shard.spilled.size() * 4 < shard.spilled.bucket_count()) {
    shard.spilled.rehash(0);
  }
}

RateLimiter::Usage RateLimiter::usage() const {
  Usage u;
  for (const Shard& shard : shards_) {
    MutexLock lock(shard.mu);
    for (const auto& [page_no, page] : shard.pages) u.users += page->used;
    u.pages += shard.pages.size();
    u.spilled += shard.spilled.size();
    // A slot and its one byte of metadata.
    u.bytes += shard.pages.bucket_count() *
               (sizeof(std::pair<std::int64_t, std::unique_ptr<Page>>) + 1);
    u.bytes += shard.pages.size() * sizeof(Page);
    u.bytes +=
        shard.spilled.bucket_count() * (sizeof(std::pair<UserId, HeapLog>) + 1);
    u.ring_bytes += shard.ring_slots * sizeof(std::int64_t);
  }
  u.bytes += u.ring_bytes;
  return u;
}

std::size_t RateLimiter::RingSlotsByWalkForTesting() const {
  std::size_t slots = 0;
  for (const Shard& shard : shards_) {
    MutexLock lock(shard.mu);
    for (const auto& [user, heap] : shard.spilled) slots += heap.capacity;
  }
  return slots;
}

RateDecision MakeRateDecision(std::int64_t limit, std::int64_t window_us,
                              std::int64_t now_us, bool allowed,
                              std::int64_t in_window, std::int64_t oldest_us) {
  RateDecision d;
  d.limit = limit;
  d.allowed = allowed;
  if (!allowed) {
    d.retry_after = static_cast<double>(oldest_us + window_us - now_us) / 1e6;
  }
  d.remaining = std::max<std::int64_t>(limit - in_window, 0);
  d.reset_unix = static_cast<double>(oldest_us + window_us) / 1e6;
  return d;
}

}  // namespace presence::api
