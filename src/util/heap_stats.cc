#include "util/heap_stats.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace presence {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerAllocator = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerAllocator = true;
#else
constexpr bool kSanitizerAllocator = false;
#endif
#else
constexpr bool kSanitizerAllocator = false;
#endif

}  // namespace

// The sanitizer allocators' statistics interface (compiler-rt); weak, so a
// build without them links and sees null.
extern "C" {
std::size_t __sanitizer_get_current_allocated_bytes() __attribute__((weak));
std::size_t __sanitizer_get_heap_size() __attribute__((weak));
void __sanitizer_purge_allocator() __attribute__((weak));
}

namespace {
std::atomic<std::uint64_t> heap_stats_reads{0};
}  // namespace

std::uint64_t HeapStatsReads() {
  return heap_stats_reads.load(std::memory_order_relaxed);
}

HeapStats ReadHeapStats() {
  heap_stats_reads.fetch_add(1, std::memory_order_relaxed);
  HeapStats s;
  if (kSanitizerAllocator) {
    if (__sanitizer_get_current_allocated_bytes == nullptr ||
        __sanitizer_get_heap_size == nullptr) {
      return s;
    }
    s.available = true;
    s.in_use_bytes = __sanitizer_get_current_allocated_bytes();
    s.arena_bytes =
        std::max<std::uint64_t>(__sanitizer_get_heap_size(), s.in_use_bytes);
    s.free_bytes = s.arena_bytes - s.in_use_bytes;
    s.arenas = 1;
    return s;
  }
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  // Under a sanitizer, malloc is the sanitizer's: glibc's figures would
  // describe an allocator nobody uses.
  if (kSanitizerAllocator) return s;
  const struct mallinfo2 mi = mallinfo2();
  s.available = true;
  s.arena_bytes = mi.arena;
  s.in_use_bytes = mi.uordblks;
  s.free_bytes = mi.fordblks;
  s.releasable_bytes = mi.keepcost;
  s.mmap_bytes = mi.hblkhd;
  // malloc_info writes one <heap nr="N"> element per arena.
  char* text = nullptr;
  std::size_t size = 0;
  if (FILE* f = open_memstream(&text, &size)) {
    const bool ok = malloc_info(0, f) == 0;
    std::fclose(f);
    if (ok && text != nullptr) {
      for (const char* p = text; (p = std::strstr(p, "<heap nr=")) != nullptr;
           ++p) {
        ++s.arenas;
      }
    }
    std::free(text);
  }
#endif
  return s;
}

bool TrimHeap() {
  if (kSanitizerAllocator) {
    if (__sanitizer_purge_allocator == nullptr) return false;
    __sanitizer_purge_allocator();
    return true;
  }
#if defined(__GLIBC__)
  malloc_trim(0);
  return true;
#else
  return false;
#endif
}

std::uint64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  const long page = sysconf(_SC_PAGESIZE);
  if (n != 2 || page <= 0) return 0;
  return static_cast<std::uint64_t>(resident) *
         static_cast<std::uint64_t>(page);
}

bool HeapTrimPolicy::Due(std::uint64_t resident_bytes) {
  if (resident_bytes == 0) return true;
  if (settle_next_) {
    settle_next_ = false;
    settled_ = resident_bytes;
    return false;
  }
  if (resident_bytes <= settled_) {
    settled_ = resident_bytes;
    return false;
  }
  const std::uint64_t allowed =
      std::max(kMinGrowthBytes, settled_ / kGrowthDivisor);
  if (resident_bytes - settled_ <= allowed) return false;
  settle_next_ = true;
  return true;
}

}  // namespace presence
