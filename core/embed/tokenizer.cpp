#include "core/embed/tokenizer.h"

#include <algorithm>
#include <fstream>

#include "core/common/utf8.h"

namespace embedapt {
namespace {

struct CodepointRange {
  char32_t first, last;
};
struct CodepointMapping {
  char32_t codepoint;
  const char* utf8;
};

#include "core/embed/tokenizer_tables.inc"

constexpr size_t kMaxCharsPerWord = 100;  // longer words become [UNK], as in BERT

template <size_t N>
bool in_ranges(const CodepointRange (&table)[N], char32_t cp) {
  auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                             [](char32_t c, const CodepointRange& r) { return c < r.first; });
  return it != std::begin(table) && cp <= (it - 1)->last;
}

template <size_t N>
const char* find_mapping(const CodepointMapping (&table)[N], char32_t cp) {
  auto it = std::lower_bound(std::begin(table), std::end(table), cp,
                             [](const CodepointMapping& m, char32_t c) { return m.codepoint < c; });
  return it != std::end(table) && it->codepoint == cp ? it->utf8 : nullptr;
}

// Appends the code points of a table's UTF-8 string (always well formed).
void append_codepoints(const char* utf8, std::u32string* out) {
  std::string_view s(utf8);
  for (size_t pos = 0; pos < s.size();) out->push_back(decode_utf8(s, &pos));
}

// The ideograph blocks BERT surrounds with spaces (not Hangul, kana or
// other scripts of the region, which are written with spaces).
bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_whitespace(char32_t cp) { return cp == ' ' || in_ranges(kWhitespaceRanges, cp); }

bool is_punctuation(char32_t cp) { return in_ranges(kPunctuationRanges, cp); }

// NFD with the nonspacing marks dropped, for one code point.
void append_without_accents(char32_t cp, std::u32string* out) {
  constexpr char32_t kHangulFirst = 0xAC00, kHangulCount = 11172;
  constexpr char32_t kLeadBase = 0x1100, kVowelBase = 0x1161, kTailBase = 0x11A7;
  constexpr char32_t kVowelCount = 21, kTailCount = 28;
  if (cp < 0x80) {  // most text: ASCII is in neither table, so skip the lookups
    out->push_back(cp);
    return;
  }
  if (cp >= kHangulFirst && cp < kHangulFirst + kHangulCount) {
    char32_t index = cp - kHangulFirst;
    out->push_back(kLeadBase + index / (kVowelCount * kTailCount));
    out->push_back(kVowelBase + (index % (kVowelCount * kTailCount)) / kTailCount);
    if (index % kTailCount != 0) out->push_back(kTailBase + index % kTailCount);
  } else if (const char* decomposed = find_mapping(kDecomposedWithoutMarks, cp)) {
    append_codepoints(decomposed, out);
  } else if (!in_ranges(kNonspacingMarkRanges, cp)) {
    out->push_back(cp);
  }
}

void append_lower(char32_t cp, std::u32string* out) {
  if (cp < 0x80) {
    out->push_back(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
  } else if (const char* lower = find_mapping(kLowercase, cp)) {
    append_codepoints(lower, out);
  } else {
    out->push_back(cp);
  }
}

}  // namespace

Status WordPieceTokenizer::load(const std::string& vocab_path, const Options& options,
                                std::unique_ptr<WordPieceTokenizer>* out) {
  std::ifstream in(vocab_path, std::ios::binary);
  if (!in) return Status::NotFound(vocab_path + ": cannot open the vocabulary");
  std::unique_ptr<WordPieceTokenizer> tokenizer(new WordPieceTokenizer());
  tokenizer->options_ = options;
  std::string line;
  int32_t id = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokenizer->vocab_[line] = id++;  // a repeated token keeps its last id, as Hugging Face does
  }
  if (in.bad()) return Status::IOError(vocab_path + ": read failed");
  auto special = [&](const char* token, int32_t* id_out) {
    auto it = tokenizer->vocab_.find(token);
    if (it == tokenizer->vocab_.end()) {
      return Status::Corruption(vocab_path + ": the vocabulary has no " + token + " token");
    }
    *id_out = it->second;
    return Status::OK();
  };
  EMBEDAPT_RETURN_IF_ERROR(special("[CLS]", &tokenizer->cls_id_));
  EMBEDAPT_RETURN_IF_ERROR(special("[SEP]", &tokenizer->sep_id_));
  EMBEDAPT_RETURN_IF_ERROR(special("[UNK]", &tokenizer->unk_id_));
  EMBEDAPT_RETURN_IF_ERROR(special("[PAD]", &tokenizer->pad_id_));
  *out = std::move(tokenizer);
  return Status::OK();
}

std::u32string WordPieceTokenizer::normalize(std::string_view text) const {
  std::u32string normalized, unaccented;
  normalized.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = decode_utf8(text, &pos);
    if (cp == 0 || cp == kReplacementCharacter || in_ranges(kControlRanges, cp)) continue;
    if (is_whitespace(cp)) {
      normalized.push_back(' ');
    } else if (options_.tokenize_chinese_chars && is_cjk_ideograph(cp)) {
      normalized.append({U' ', cp, U' '});
    } else {
      // Accents are stripped before lower-casing, as Hugging Face's fast
      // BertNormalizer does (the order sentence-transformers sees).
      unaccented.clear();
      if (options_.strip_accents) {
        append_without_accents(cp, &unaccented);
      } else {
        unaccented.push_back(cp);
      }
      for (char32_t c : unaccented) {
        if (options_.lower_case) {
          append_lower(c, &normalized);
        } else {
          normalized.push_back(c);
        }
      }
    }
  }
  return normalized;
}

void WordPieceTokenizer::append_word_pieces(const std::u32string& word, std::vector<int32_t>* ids) const {
  if (word.size() > kMaxCharsPerWord) {
    ids->push_back(unk_id_);
    return;
  }
  std::string utf8;
  std::vector<size_t> boundaries;  // byte offset where each character starts, plus the end
  for (char32_t cp : word) {
    boundaries.push_back(utf8.size());
    append_utf8(cp, &utf8);
  }
  boundaries.push_back(utf8.size());

  // Greedy longest match first; one unmatched remainder makes the whole word [UNK].
  size_t first_piece = ids->size();
  std::string piece;
  for (size_t start = 0; start < word.size();) {
    size_t end = word.size();
    int32_t found = -1;
    for (; end > start; --end) {
      piece.assign(start > 0 ? "##" : "");
      piece.append(utf8, boundaries[start], boundaries[end] - boundaries[start]);
      auto it = vocab_.find(piece);
      if (it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {
      ids->resize(first_piece);
      ids->push_back(unk_id_);
      return;
    }
    ids->push_back(found);
    start = end;
  }
}

std::vector<int32_t> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> ids;
  std::u32string word;
  auto flush = [&] {
    if (!word.empty()) append_word_pieces(word, &ids);
    word.clear();
  };
  for (char32_t cp : normalize(text)) {
    if (cp == ' ') {
      flush();
    } else if (is_punctuation(cp)) {
      flush();
      word.push_back(cp);
      flush();
    } else {
      word.push_back(cp);
    }
  }
  flush();
  return ids;
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, size_t max_length) const {
  std::vector<int32_t> tokens = tokenize(text);
  size_t room = max_length > 2 ? max_length - 2 : 0;
  if (tokens.size() > room) tokens.resize(room);
  std::vector<int32_t> ids;
  ids.reserve(tokens.size() + 2);
  ids.push_back(cls_id_);
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  ids.push_back(sep_id_);
  return ids;
}

}  // namespace embedapt
