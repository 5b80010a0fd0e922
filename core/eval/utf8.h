// UTF-8 validation, done here rather than left to a JSON parser so that every
// dataset format (JSON, JSONL, TSV) reports a bad byte the same way.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "embedapt/status.h"

namespace embedapt {

// True if `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF). Otherwise false, with the offset of the first byte
// of the first bad sequence in *bad_offset.
bool is_valid_utf8(std::string_view text, size_t* bad_offset);

// Reads the whole file at `path`, which must be UTF-8 text; otherwise
// Code::kInvalidArgument naming the file, line and byte of the first bad sequence.
Status read_utf8_file(const std::string& path, std::string* out);

}  // namespace embedapt
