#include "core/common/utf8.h"

#include <algorithm>
#include <cstdint>

#include "core/common/files.h"

namespace embedapt {

char32_t decode_utf8(std::string_view text, size_t* pos) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(*pos);
  size_t len;
  char32_t cp;
  if (lead < 0x80) {
    ++*pos;
    return lead;
  } else if ((lead & 0xE0) == 0xC0) {
    len = 2, cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    len = 3, cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    len = 4, cp = lead & 0x07;
  } else {
    ++*pos;
    return kReplacementCharacter;
  }
  if (*pos + len > text.size()) {
    ++*pos;
    return kReplacementCharacter;
  }
  for (size_t i = 1; i < len; ++i) {
    if ((byte(*pos + i) & 0xC0) != 0x80) {
      ++*pos;
      return kReplacementCharacter;
    }
    cp = (cp << 6) | (byte(*pos + i) & 0x3F);
  }
  static constexpr char32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++*pos;
    return kReplacementCharacter;
  }
  *pos += len;
  return cp;
}

void append_utf8(char32_t cp, std::string* out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacementCharacter;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

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

std::string to_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  // A valid sequence decodes to its code point, whose encoding is the same
  // bytes; anything else decodes to U+FFFD one byte at a time.
  for (size_t pos = 0; pos < text.size();) append_utf8(decode_utf8(text, &pos), &out);
  return out;
}

std::string quotable(std::string_view text, size_t max_bytes) {
  std::string out, piece;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t cp = decode_utf8(text, &pos);
    piece.clear();
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {  // C0 (ESC among them), DEL and C1
      piece = " ";
    } else {
      append_utf8(cp, &piece);
    }
    if (out.size() + piece.size() > max_bytes) return out + "...";
    out += piece;
  }
  return out;
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
