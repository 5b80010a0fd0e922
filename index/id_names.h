// IdNames: the string id of every live record by its internal id (iid), in
// memory, so an ids-only search names its hits without reading RocksDB.
//
// A search names about k hits whose iids are scattered over the whole store,
// so each lookup is a cache miss: in a node-based std::unordered_map two (the
// bucket, then the node), taken one after the other, which cost an IVF1024
// search of 100k x 384 vectors at nprobe 1 about 6% of its CPU time (10 hits;
// tools/bench/store_bench). Here a key and its name share a slot of one
// open-addressing table (linear probing, power-of-two capacity, at most half
// full), and prefetch() lets a caller start every hit's miss before reading
// any of them.
//
// Not thread-safe: the store guards it with its index mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace embedapt {

class IdNames {
 public:
  IdNames() = default;

  // The name of `iid`, or nullptr when it has none. The pointer lives until
  // the next set() or erase().
  const std::string* find(int64_t iid) const;

  // Starts loading the slot where find(iid) begins, without waiting for it.
  void prefetch(int64_t iid) const;

  // Names `iid` (replacing any name it had). iid must be positive: the store
  // numbers records from 1, and 0 marks an empty slot.
  void set(int64_t iid, std::string name);

  // Forgets `iid`; nothing when it has no name.
  void erase(int64_t iid);

  size_t size() const { return size_; }

 private:
  struct Slot {
    int64_t iid = 0;  // 0: empty
    std::string name;
  };

  size_t home(int64_t iid) const;
  void grow();

  std::vector<Slot> slots_;  // empty, or a power of two of them
  size_t size_ = 0;
};

}  // namespace embedapt
