// Snapshot files: a serialized index with the journal position it covers.
//
// Layout: magic "EMBSNAP1", u64 journal seq covered, u64 document-adapter
// version the index was built under (0: raw vectors), u64 payload length,
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
};

Status write_snapshot(const std::string& path, const SnapshotInfo& info, std::string_view payload);

// kNotFound if there is no file at `path`; kCorruption if its header or
// checksum is wrong.
Status read_snapshot(const std::string& path, SnapshotInfo* info, std::string* payload);

}  // namespace embedapt
