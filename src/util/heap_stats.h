// HeapStats: the C library allocator's own account of the process heap, for
// /metrics. RSS alone cannot tell memory the program holds from memory it
// freed but the allocator kept (high-water marks, fragmentation, one arena
// per thread); these figures can.
//
// On glibc (2.33 and later) they come from mallinfo2() and malloc_info().
// When a sanitizer's allocator replaces glibc's (the ASan and TSan builds),
// they are that allocator's own account (its heap size, bytes allocated,
// the rest counted as free, one "arena"), so the same figures exist and are
// tested in every build. Elsewhere `available` is false and every figure 0.
//
// Thread safety: ReadHeapStats may be called from any thread. It takes each
// arena's lock in turn and walks its free lists, so it costs tens of
// microseconds; call it from a background thread every second or so (the
// flush thread samples it for /metrics), never per request.
#ifndef PRESENCE_UTIL_HEAP_STATS_H_
#define PRESENCE_UTIL_HEAP_STATS_H_

#include <cstdint>

namespace presence {

struct HeapStats {
  bool available = false;
  // Bytes the allocator obtained for its arenas (brk and per-thread heaps),
  // mmapped blocks excluded: mallinfo2().arena = in_use + free.
  std::uint64_t arena_bytes = 0;
  // Bytes of arena memory in allocated chunks (mallinfo2().uordblks).
  std::uint64_t in_use_bytes = 0;
  // Bytes of arena memory in free chunks, kept by the allocator
  // (mallinfo2().fordblks). Resident only where they were touched before.
  std::uint64_t free_bytes = 0;
  // Of free_bytes, what sits at the top of the main arena and could be
  // returned to the system by trimming (mallinfo2().keepcost).
  std::uint64_t releasable_bytes = 0;
  // Bytes in blocks large enough to get their own mmap (mallinfo2().hblkhd).
  std::uint64_t mmap_bytes = 0;
  // Number of arenas (the main one and one per thread that contended for
  // it), from malloc_info(); 0 if it could not be read.
  std::uint64_t arenas = 0;
};

HeapStats ReadHeapStats();

// How many times ReadHeapStats ran in this process (tests check that a
// scrape of /metrics does not run it: the flush thread samples it).
std::uint64_t HeapStatsReads();

// Gives the whole free pages inside every arena back to the system
// (glibc's malloc_trim(0), which madvises them away; the arenas keep their
// address space, so arena_bytes does not drop, RSS does). Without it, glibc
// returns only what is free at the top of the main arena, and memory freed
// after a burst stays resident. Takes each arena's lock in turn: call it
// from a background thread, every few seconds at most. Returns false where
// it is not available (not glibc, or a sanitizer's allocator).
bool TrimHeap();

// The process's resident set in bytes (/proc/self/statm), or 0 where it
// cannot be read. One small read: cheap enough for every few seconds.
std::uint64_t ResidentBytes();

// HeapTrimPolicy: whether a periodic look at the process should trim the
// heap (issue #17, the million run's RSS).
//
// Trimming at every look made RSS a sawtooth under steady load: the heap's
// free chunks are scattered among live ones, and the allocator hands them
// out again within seconds, so each trim gave back pages that were faulted
// in again 2-4 s later (a million users and 19,000 parked polls: 20-30 MB
// down and back up every 10 s, for nothing). Left untrimmed, though, the
// pages a burst freed stay resident for good. So a trim is due only when
// the resident set has grown, since it last settled, by more than
// kGrowthDivisor-th of that level (at least kMinGrowthBytes): a burst's
// pages are given back, the pages steady load keeps reusing are not. The
// level settles at the first look after a trim (the pages the load
// reuses are back by then) and follows the resident set down, so a trim
// is also due after growth from a lower point. Until the first trim, the
// first look settles it.
//
// Thread safety: none; one owner (the flush thread).
class HeapTrimPolicy {
 public:
  static constexpr std::uint64_t kGrowthDivisor = 32;  // about 3%
  static constexpr std::uint64_t kMinGrowthBytes = std::uint64_t{1} << 20;

  // One look, with the resident bytes now (0: unknown, then a trim is
  // always due, as before this policy). True: trim now (the caller does).
  bool Due(std::uint64_t resident_bytes);
  // The level growth is measured from (0 until a look settled it).
  std::uint64_t settled_bytes() const { return settled_; }

 private:
  std::uint64_t settled_ = 0;
  // The next look sets the level (at the start, and after each trim).
  bool settle_next_ = true;
};

}  // namespace presence

#endif  // PRESENCE_UTIL_HEAP_STATS_H_
