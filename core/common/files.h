// Whole-file reads and crash-safe whole-file writes.
#pragma once

#include <string>
#include <string_view>

#include "embedapt/status.h"

namespace embedapt {

// Reads the whole file at `path` into *out.
Status read_file(const std::string& path, std::string* out);

// Writes `data` to `path` so that after a crash the file holds either its old
// content or all of `data`: write a temporary file beside it, fsync, rename,
// fsync the directory. A symlink stays and its target is replaced so; a path
// that is neither a file nor a directory (a FIFO, a terminal, /dev/stdout)
// is written to directly, with no such promise.
Status write_file_atomic(const std::string& path, std::string_view data);

}  // namespace embedapt
