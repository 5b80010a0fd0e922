// The one translation of RocksDB's status into ours, for every module that
// keeps data in RocksDB (the store, the embedding cache).
#pragma once

#include <string>

#include "embedapt/status.h"

namespace rocksdb {
class Status;
}

namespace embedapt {

// ok -> OK; NotFound -> kNotFound with `context` alone (RocksDB's text adds
// nothing); Corruption -> kCorruption; a held LOCK file (another process, or
// another handle in this one, has the database open for writing) and
// RocksDB's Busy -> kBusy saying so; InvalidArgument and NotSupported keep
// their codes; anything else -> kIOError. Messages are "<context>: <why>".
Status from_rocksdb(const rocksdb::Status& s, const std::string& context);

}  // namespace embedapt
