#include "util/arena.h"

#include <algorithm>

namespace presence {

char* Arena::Allocate(std::size_t n) {
  if (n <= left_) {
    char* p = next_;
    next_ += n;
    left_ -= n;
    return p;
  }
  if (n > kMaxChunk / 4) {
    // A chunk of its own: the current one keeps serving small requests.
    chunks_.push_back(std::make_unique_for_overwrite<char[]>(n));
    reserved_ += n;
    return chunks_.back().get();
  }
  // The rest of the current chunk (fewer than n bytes) is left unused.
  const std::size_t size = std::max(chunk_size_, n);
  chunk_size_ = std::min(chunk_size_ * 2, kMaxChunk);
  chunks_.push_back(std::make_unique_for_overwrite<char[]>(size));
  reserved_ += size;
  next_ = chunks_.back().get() + n;
  left_ = size - n;
  return chunks_.back().get();
}

}  // namespace presence
