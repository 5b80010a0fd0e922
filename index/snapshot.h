// Snapshot files: a serialized index with the journal position it covers.
//
// Layout: magic "EMBSNAP2", u64 journal seq covered, u64 document-adapter
// version the index was built under (0: raw vectors), the store's id (32 hex
// characters: a snapshot from another store is refused), u64 payload length,
// sha256(payload), payload. Written atomically (temp file, fsync, rename), so
// the file is either the previous snapshot or the whole new one; the checksum
// catches everything else (bit rot, a truncated copy, a stray edit).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "embedapt/status.h"

namespace embedapt {

struct SnapshotInfo {
  uint64_t seq = 0;
  uint64_t doc_adapter = 0;
  std::string store_id;  // kStoreIdBytes characters
};

constexpr size_t kStoreIdBytes = 32;

Status write_snapshot(const std::string& path, const SnapshotInfo& info, std::string_view payload);

// Reads the file at `path` into *file; *payload views the index bytes inside
// it (a snapshot is as large as the index: it is never copied). kNotFound if
// there is no file; kCorruption if its header or checksum is wrong.
Status read_snapshot(const std::string& path, SnapshotInfo* info, std::string* file,
                     std::string_view* payload);

// The parsing half of read_snapshot, for a file already in memory (*payload
// views `file`); with `check_sum` false the checksum is not compared (the
// fuzzer's way past it).
Status parse_snapshot(std::string_view file, bool check_sum, SnapshotInfo* info, std::string_view* payload);

}  // namespace embedapt
