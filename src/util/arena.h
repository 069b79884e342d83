// Arena: append-only storage for many small immutable byte strings.
//
// Design. Bytes are handed out from chunks that are never freed, moved or
// overwritten while the arena lives, so a pointer into it stays valid (and
// what it points at unchanged) for the arena's whole life, also in copies
// of structs that hold it. Chunks grow geometrically from kFirstChunk to
// kMaxChunk, so a small arena stays small; a request larger than a quarter
// of kMaxChunk gets a chunk of its own. Per string this costs only its
// bytes, where a std::string longer than its inline buffer costs a heap
// block with malloc's header and rounding besides the 32-byte object.
//
// Nothing is ever given back: replacing a string means allocating a new
// one and leaving the old bytes as garbage. Fit for data that changes
// rarely (user names), not for churn.
//
// Thread safety: none; the owner serialises Allocate. Reading bytes already
// handed out needs no lock (they never change).
#ifndef PRESENCE_UTIL_ARENA_H_
#define PRESENCE_UTIL_ARENA_H_

#include <cstddef>
#include <memory>
#include <vector>

namespace presence {

class Arena {
 public:
  static constexpr std::size_t kFirstChunk = 1024;
  static constexpr std::size_t kMaxChunk = 64 * 1024;

  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // `n` uninitialised bytes (n may be 0), valid until the arena is destroyed.
  char* Allocate(std::size_t n);

  // Bytes obtained from malloc so far (chunk capacity, used or not).
  std::size_t bytes_reserved() const { return reserved_; }

 private:
  std::vector<std::unique_ptr<char[]>> chunks_;
  char* next_ = nullptr;
  std::size_t left_ = 0;
  std::size_t chunk_size_ = kFirstChunk;  // of the next regular chunk
  std::size_t reserved_ = 0;
};

}  // namespace presence

#endif  // PRESENCE_UTIL_ARENA_H_
