#include "index/id_names.h"

#include <cassert>
#include <utility>

namespace embedapt {

// Fibonacci hashing: the top bits of iid times 2^64 / phi. The store hands out
// iids in sequence, and this spreads runs and strides of them over the table.
size_t IdNames::home(int64_t iid) const {
  const uint64_t mixed = static_cast<uint64_t>(iid) * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(mixed >> 32) & (slots_.size() - 1);
}

const std::string* IdNames::find(int64_t iid) const {
  if (slots_.empty() || iid <= 0) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t i = home(iid);; i = (i + 1) & mask) {  // ends: at most half the slots are full
    if (slots_[i].iid == iid) return &slots_[i].name;
    if (slots_[i].iid == 0) return nullptr;
  }
}

void IdNames::prefetch(int64_t iid) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[home(iid)]);
}

void IdNames::set(int64_t iid, std::string name) {
  assert(iid > 0);
  if (2 * (size_ + 1) > slots_.size()) grow();
  const size_t mask = slots_.size() - 1;
  size_t i = home(iid);
  while (slots_[i].iid != 0 && slots_[i].iid != iid) i = (i + 1) & mask;
  if (slots_[i].iid == 0) ++size_;
  slots_[i].iid = iid;
  slots_[i].name = std::move(name);
}

// Backward-shift deletion: the slots after the hole that could sit in it move
// back, so every key stays reachable from its home without tombstones.
void IdNames::erase(int64_t iid) {
  if (slots_.empty() || iid <= 0) return;
  const size_t mask = slots_.size() - 1;
  size_t hole = home(iid);
  while (slots_[hole].iid != iid) {
    if (slots_[hole].iid == 0) return;
    hole = (hole + 1) & mask;
  }
  for (size_t next = (hole + 1) & mask; slots_[next].iid != 0; next = (next + 1) & mask) {
    // The entry at `next` may fill the hole unless its home lies cyclically
    // in (hole, next]: then the hole is before its home and finds would miss it.
    const size_t want = home(slots_[next].iid);
    const bool home_after_hole = hole <= next ? (hole < want && want <= next) : (hole < want || want <= next);
    if (home_after_hole) continue;
    slots_[hole] = std::move(slots_[next]);
    hole = next;
  }
  slots_[hole].iid = 0;
  slots_[hole].name.clear();
  --size_;
}

void IdNames::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 16 : 2 * old.size(), Slot());
  size_ = 0;
  for (Slot& slot : old) {
    if (slot.iid != 0) set(slot.iid, std::move(slot.name));
  }
}

}  // namespace embedapt
