// UTF-8 encoding, decoding and validation, shared by the tokenizer, the
// dataset readers and the document loaders so that every part of the library
// agrees on what a well-formed sequence is: no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "embedapt/status.h"

namespace embedapt {

// The code point substituted for anything that is not valid UTF-8.
constexpr char32_t kReplacementCharacter = 0xFFFD;

// Decodes the code point starting at text[*pos] (requires *pos < text.size())
// and advances *pos past it. A malformed, truncated, overlong, surrogate or
// out-of-range sequence yields U+FFFD and advances *pos by exactly one byte,
// so decoding resumes at the next byte.
char32_t decode_utf8(std::string_view text, size_t* pos);

// Appends the UTF-8 encoding of `cp` to *out. Surrogates and values above
// U+10FFFF have no encoding and are appended as U+FFFD, so *out stays valid.
void append_utf8(char32_t cp, std::string* out);

// True if `text` is well-formed UTF-8. Otherwise false, with the offset of the
// first byte of the first bad sequence in *bad_offset (if not null).
bool is_valid_utf8(std::string_view text, size_t* bad_offset);

// `text` with every byte that does not start a valid sequence replaced by
// U+FFFD (one replacement per such byte); valid sequences are kept as written.
std::string to_valid_utf8(std::string_view text);

// Text from elsewhere (a server's reply or error message, a child process's
// error, a parser's complaint quoting its input) as a message may quote it:
// one line of at most `max_bytes`, cut at a character boundary with "..."
// after, control characters (newlines, terminal escapes) as spaces and
// malformed bytes as U+FFFD. Messages are printed to terminals.
std::string quotable(std::string_view text, size_t max_bytes = 300);

// Reads the whole file at `path`, which must be UTF-8 text; otherwise
// Code::kInvalidArgument naming the file, line and byte of the first bad sequence.
Status read_utf8_file(const std::string& path, std::string* out);

}  // namespace embedapt
