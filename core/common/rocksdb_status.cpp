#include "core/common/rocksdb_status.h"

#include <rocksdb/status.h>

namespace embedapt {

Status from_rocksdb(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::OK();
  const std::string why = s.ToString();
  if (s.IsNotFound()) return Status::NotFound(context);
  if (s.IsCorruption()) return Status::Corruption(context + ": " + why);
  // RocksDB reports a LOCK file held by another process as an IOError
  // "While lock file: ...", and one held by this process as "lock hold by
  // current process ...".
  const bool locked = why.find("While lock file") != std::string::npos ||
                      why.find("lock hold by current process") != std::string::npos;
  if (s.IsBusy() || (s.IsIOError() && locked)) {
    return Status::Busy(context +
                        ": held open for writing by another process (or another handle in this one): " + why);
  }
  if (s.IsInvalidArgument()) return Status::InvalidArgument(context + ": " + why);
  if (s.IsNotSupported()) return Status::NotSupported(context + ": " + why);
  return Status::IOError(context + ": " + why);
}

}  // namespace embedapt
