// The metadata index: one RocksDB column family that answers a filter's
// leaves without reading any record.
//
// Every field of a record's metadata becomes one key (a list field one key per
// item), with an empty value:
//   field | tag | value | iid
// where field is a u32 big-endian length and the name; tag 's' (string),
// 'n' (number), 'b' (bool) or 'l' (an item of a list of strings); value is a
// u32 length and the bytes for 's' and 'l', one byte for 'b', and for 'n' the
// double in an order-preserving 8-byte encoding, so one field's numbers sort
// by value and a range is one contiguous scan. The iid (8 bytes big-endian)
// ends the key, so equality is one prefix scan and the keys of a record are
// unique. Numbers are compared as doubles: integers are exact up to 2^53.
//
// The keys of a record are written and deleted in the WriteBatch that writes
// or deletes the record, so the index never disagrees with the records.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "index/filter.h"
#include "index/vector_index.h"

namespace embedapt::metadata_index {

// The index keys of `metadata` (checked by ParseMetadata) for record `iid`.
std::vector<std::string> keys(const nlohmann::json& metadata, uint64_t iid);

// The iids whose metadata matches `node`, read from the index column family
// `cf` at the view `read` gives.
Status evaluate(const Filter::Node& node, rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                const rocksdb::ReadOptions& read, IdSet* out);

}  // namespace embedapt::metadata_index
