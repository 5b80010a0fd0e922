#include "core/eval/utf8.h"

#include <algorithm>
#include <cstdint>

#include "core/common/files.h"

namespace embedapt {

bool is_valid_utf8(std::string_view text, size_t* bad_offset) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t lead = s[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // Table 3-7 of the Unicode standard: the lead byte fixes the length and
    // the range of the second byte; later bytes are always 80..BF.
    size_t length = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) lo = 0xA0;  // overlong
      if (lead == 0xED) hi = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) lo = 0x90;  // overlong
      if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
    }
    bool ok = length > 0 && i + length <= n && s[i + 1] >= lo && s[i + 1] <= hi;
    for (size_t j = 2; ok && j < length; ++j) ok = s[i + j] >= 0x80 && s[i + j] <= 0xBF;
    if (!ok) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += length;
  }
  return true;
}

Status read_utf8_file(const std::string& path, std::string* out) {
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, out));
  size_t bad = 0;
  if (is_valid_utf8(*out, &bad)) return Status::OK();
  const size_t line = 1 + std::count(out->begin(), out->begin() + bad, '\n');
  return Status::InvalidArgument(path + ": invalid UTF-8 at byte " + std::to_string(bad) + " (line " +
                                 std::to_string(line) + ")");
}

}  // namespace embedapt
