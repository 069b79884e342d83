// RequestArena: the memory of one request's header fields.
//
// Beast's basic_fields allocates every field separately; a ping has five or
// more, each a malloc and a free. A session instead hands its parser an
// ArenaAllocator: fields are carved from a block the session keeps from
// request to request, nothing is freed one by one, and Reset() (when the
// next request starts, after the previous parser is gone) makes the block
// whole again. A request larger than the block takes more blocks, which
// Reset() gives back, so a session holds one block between requests.
//
// Thread safety: none; one per session, used on the session's executor.
#ifndef PRESENCE_HTTP_REQUEST_ARENA_H_
#define PRESENCE_HTTP_REQUEST_ARENA_H_

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace presence::http {

class RequestArena {
 public:
  static constexpr std::size_t kBlock = 1024;

  RequestArena() = default;
  RequestArena(const RequestArena&) = delete;
  RequestArena& operator=(const RequestArena&) = delete;

  // `align`: a power of two, at most alignof(std::max_align_t).
  void* Allocate(std::size_t n, std::size_t align) {
    assert(align != 0 && (align & (align - 1)) == 0 &&
           align <= alignof(std::max_align_t));
    if (blocks_.empty()) AddBlock(std::max(n + align, kBlock));
    std::size_t at = (used_ + align - 1) & ~(align - 1);
    if (at + n > size_) {
      AddBlock(std::max(n + align, kBlock));
      at = 0;
    }
    used_ = at + n;
    return blocks_.back().get() + at;
  }

  // Every allocation is over: keeps the first block, empty.
  void Reset() {
    if (blocks_.size() > 1) {
      blocks_.resize(1);
      size_ = first_size_;
    }
    used_ = 0;
  }

  // Bytes held now.
  std::size_t held() const {
    std::size_t n = 0;
    for (const Block& b : blocks_) n += b.size;
    return n;
  }

 private:
  // Blocks are aligned for any fundamental type.
  struct alignas(std::max_align_t) Unit {
    char bytes[alignof(std::max_align_t)];
  };
  struct Block {
    std::unique_ptr<Unit[]> units;
    std::size_t size;
    char* get() const { return reinterpret_cast<char*>(units.get()); }
  };
  void AddBlock(std::size_t n) {
    const std::size_t units = (n + sizeof(Unit) - 1) / sizeof(Unit);
    blocks_.push_back({std::make_unique<Unit[]>(units), units * sizeof(Unit)});
    size_ = blocks_.back().size;
    if (blocks_.size() == 1) first_size_ = size_;
    used_ = 0;
  }

  std::vector<Block> blocks_;
  std::size_t size_ = 0;        // of the last block
  std::size_t used_ = 0;        // bytes used in the last block
  std::size_t first_size_ = 0;  // of the first block
};

// A standard allocator over a RequestArena: deallocate does nothing.
template <class T>
class ArenaAllocator {
 public:
  using value_type = T;

  explicit ArenaAllocator(RequestArena* arena) noexcept : arena_(arena) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& other) noexcept  // NOLINT
      : arena_(other.arena()) {}

  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(arena_->Allocate(n * sizeof(T), alignof(T)));
  }
  void deallocate(T*, std::size_t) noexcept {}

  RequestArena* arena() const noexcept { return arena_; }

  template <class U>
  friend bool operator==(const ArenaAllocator& a,
                         const ArenaAllocator<U>& b) noexcept {
    return a.arena() == b.arena();
  }

 private:
  RequestArena* arena_;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_REQUEST_ARENA_H_
