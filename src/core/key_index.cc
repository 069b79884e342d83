#include "core/key_index.h"

namespace presence {

void KeyIndex::Insert(const Digest& digest, Ref ref, Holds holds) {
  // A digest is in one table at most: forget where it was before.
  overflow_.erase(digest);
  auto [it, inserted] = main_.try_emplace(Prefix(digest), ref);
  if (inserted) return;
  if (holds(it->second, digest)) {
    it->second = ref;  // the same key: a new holder
  } else {
    overflow_[digest] = ref;  // another key with the same prefix
  }
}

void KeyIndex::Erase(const Digest& digest, Ref ref) {
  if (auto o = overflow_.find(digest); o != overflow_.end()) {
    if (o->second == ref) overflow_.erase(o);
    return;
  }
  auto it = main_.find(Prefix(digest));
  if (it != main_.end() && it->second == ref) main_.erase(it);
}

std::optional<KeyIndex::Ref> KeyIndex::Find(const Digest& digest) const {
  if (!overflow_.empty()) {
    if (auto o = overflow_.find(digest); o != overflow_.end()) return o->second;
  }
  auto it = main_.find(Prefix(digest));
  if (it == main_.end()) return std::nullopt;
  return it->second;
}

}  // namespace presence
