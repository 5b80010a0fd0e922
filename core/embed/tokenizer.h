// WordPiece tokenization as BERT does it: basic tokenization (cleaning,
// optional lower-casing and accent stripping, punctuation and CJK splitting),
// then greedy longest-match-first word pieces from vocab.txt.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

class WordPieceTokenizer {
 public:
  struct Options {
    bool lower_case = true;
    bool strip_accents = true;  // BERT: follows lower_case unless the model says otherwise
    bool tokenize_chinese_chars = true;
  };

  // Reads vocab.txt (one token a line, the line number is the id).
  static Status load(const std::string& vocab_path, const Options& options,
                     std::unique_ptr<WordPieceTokenizer>* out);

  // Word-piece ids of `text`, without special tokens. Invalid UTF-8 is
  // replaced, never an error.
  std::vector<int32_t> tokenize(std::string_view text) const;

  // [CLS] tokens [SEP], the tokens truncated so the whole fits `max_length`.
  std::vector<int32_t> encode(std::string_view text, size_t max_length) const;

  size_t count_tokens(std::string_view text) const { return tokenize(text).size(); }

  int32_t pad_id() const { return pad_id_; }

 private:
  WordPieceTokenizer() = default;

  // Cleans control characters, maps whitespace to ' ', spaces out CJK
  // ideographs, strips accents and lower-cases, as options_ say.
  std::u32string normalize(std::string_view text) const;

  // Appends the pieces of one word (no spaces, no punctuation), or [UNK].
  void append_word_pieces(const std::u32string& word, std::vector<int32_t>* ids) const;

  Options options_;
  std::unordered_map<std::string, int32_t> vocab_;
  int32_t cls_id_ = 0, sep_id_ = 0, unk_id_ = 0, pad_id_ = 0;
};

}  // namespace embedapt
