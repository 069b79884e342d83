#include "core/key_index.h"

namespace presence {

void KeyIndex::Reserve(std::size_t n) {
  if (wide_mode_) {
    wide_.reserve(n);
  } else {
    narrow_.reserve(n);
  }
}

void KeyIndex::Admit(Ref ref) {
  if (wide_mode_ || Fits(ref)) return;
  wide_.reserve(narrow_.size() + 1);
  for (const auto& [key, v] : narrow_) wide_.emplace(key, Unpack(v));
  narrow_ = {};  // gives its memory back
  wide_mode_ = true;
}

void KeyIndex::Insert(const Digest& digest, Ref ref, Holds holds) {
  Admit(ref);
  // A digest is in one table at most: forget where it was before.
  overflow_.erase(digest);
  WithMain([&](auto& main, auto encode) {
    auto [it, inserted] = main.try_emplace(KeyOf(Prefix(digest)), encode(ref));
    if (inserted) return;
    if (holds(Unpack(it->second), digest)) {
      it->second = encode(ref);  // the same key: a new holder
    } else {
      overflow_[digest] = ref;  // another key with the same table key
    }
  });
}

bool KeyIndex::TryInsertNew(std::uint64_t prefix, Ref ref) {
  const std::uint32_t key = KeyOf(prefix);
  if (OverflowHasKey(key)) return false;
  Admit(ref);
  return WithMain([&](auto& main, auto encode) {
    return main.try_emplace(key, encode(ref)).second;
  });
}

void KeyIndex::Erase(const Digest& digest, Ref ref) {
  if (auto o = overflow_.find(digest); o != overflow_.end()) {
    if (o->second == ref) overflow_.erase(o);
    return;
  }
  WithMain([&](auto& main, auto) {
    auto it = main.find(KeyOf(Prefix(digest)));
    if (it != main.end() && Unpack(it->second) == ref) main.erase(it);
  });
}

std::optional<KeyIndex::Ref> KeyIndex::Find(const Digest& digest) const {
  if (!overflow_.empty()) {
    if (auto o = overflow_.find(digest); o != overflow_.end()) return o->second;
  }
  return WithMain([&](const auto& main) -> std::optional<Ref> {
    auto it = main.find(KeyOf(Prefix(digest)));
    if (it == main.end()) return std::nullopt;
    return Unpack(it->second);
  });
}

}  // namespace presence
