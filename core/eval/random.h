// A small seeded generator whose output is the same on every platform and
// standard library, so that splits and bootstrap intervals are reproducible.
// (std::shuffle and std::uniform_int_distribution leave their algorithms
// unspecified; their results differ between libstdc++ and libc++.)
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace embedapt {

// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit counter run through a
// bijective mixer. Not for cryptography.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // A value in [0, bound), bound > 0: the high 64 bits of a 128-bit product
  // (bias below 2^-40 for the bounds used here).
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }

  // Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::vector<T>* items) {
    for (size_t i = items->size(); i > 1; --i) std::swap((*items)[i - 1], (*items)[below(i)]);
  }

 private:
  uint64_t state_;
};

}  // namespace embedapt
