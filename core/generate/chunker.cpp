#include "core/generate/chunker.h"

#include <cctype>
#include <cstdio>
#include <set>

#include "core/common/sha256.h"

namespace embedapt {

namespace {

// A sentence (or a piece of an overlong one) of one page. Units start
// after white space, so a chunk's text is the page's text from its first
// unit's offset to its last unit's end.
struct Unit {
  int page;
  size_t offset;  // in the page's text
  std::string_view text;
  size_t tokens;
};

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// True when the '.' at text[dot] ends an abbreviation or an initial
// ("Inc.", "U.S.", "e.g.", "D.C."), not a sentence.
bool ends_abbreviation(std::string_view text, size_t dot) {
  static const std::set<std::string> kAbbreviations = {
      "mr",  "mrs", "ms",  "dr",  "prof", "inc", "corp", "co",     "ltd",  "llc", "no",
      "nos", "vs",  "etc", "jr",  "sr",   "st",  "fig",  "approx", "dept", "jan", "feb",
      "mar", "apr", "jun", "jul", "aug",  "sep", "sept", "oct",    "nov",  "dec"};
  size_t start = dot;
  while (start > 0 && !is_space(text[start - 1]) && text[start - 1] != '(') --start;
  std::string word(text.substr(start, dot - start));
  if (word.size() == 1 && std::isalpha(static_cast<unsigned char>(word[0]))) return true;
  if (word.find('.') != std::string::npos) return true;
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kAbbreviations.count(word) > 0;
}

// Splits `text` after each sentence end (. ! ? then closing quotes or
// brackets, white space, and a capital, digit or opening mark) and at blank
// lines. Each piece keeps its trailing white space, so the pieces
// concatenate back to `text`.
std::vector<std::string_view> split_sentences(std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    size_t boundary = 0;  // where the next piece starts, 0 when not at a boundary
    if (c == '\n') {
      size_t j = i + 1;
      while (j < text.size() && is_space(text[j]) && text[j] != '\n') ++j;
      if (j < text.size() && text[j] == '\n') {  // a blank line ends a paragraph
        while (j < text.size() && is_space(text[j])) ++j;
        boundary = j;
      }
    } else if (c == '.' || c == '!' || c == '?') {
      size_t j = i + 1;
      while (j < text.size() && (text[j] == '"' || text[j] == '\'' || text[j] == ')' || text[j] == ']')) ++j;
      if (j < text.size() && is_space(text[j]) && !(c == '.' && ends_abbreviation(text, i))) {
        size_t k = j;
        while (k < text.size() && is_space(text[k])) ++k;
        unsigned char next = k < text.size() ? static_cast<unsigned char>(text[k]) : 'A';
        if (std::isupper(next) || std::isdigit(next) || next >= 0x80 || next == '"' || next == '(' ||
            next == '\'' || next == '[') {
          boundary = k;
        }
      }
    }
    if (boundary > 0) {
      pieces.push_back(text.substr(start, boundary - start));
      start = i = boundary;
    } else {
      ++i;
    }
  }
  if (start < text.size()) pieces.push_back(text.substr(start));
  return pieces;
}

// Cuts `piece` (over `limit` tokens) at line ends, else at spaces, else in
// halves (on a UTF-8 character boundary), recursively until each part fits.
void split_to_fit(std::string_view piece, size_t limit, const TokenCounter& count_tokens,
                  std::vector<std::string_view>* out) {
  size_t tokens = count_tokens(piece);
  if (tokens <= limit || piece.size() <= 1) {
    out->push_back(piece);
    return;
  }
  for (char separator : {'\n', ' '}) {
    // Cut after the separator nearest the middle, so parts shrink quickly.
    size_t mid = piece.size() / 2;
    size_t after = piece.find(separator, mid);
    size_t before = piece.rfind(separator, mid);
    size_t cut = std::string_view::npos;
    if (after != std::string_view::npos && after + 1 < piece.size()) cut = after + 1;
    if (before != std::string_view::npos && before > 0 &&
        (cut == std::string_view::npos || mid - before < cut - mid)) {
      cut = before + 1;
    }
    if (cut != std::string_view::npos && cut < piece.size()) {
      split_to_fit(piece.substr(0, cut), limit, count_tokens, out);
      split_to_fit(piece.substr(cut), limit, count_tokens, out);
      return;
    }
  }
  size_t cut = piece.size() / 2;
  while (cut > 0 && (static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80) --cut;
  if (cut == 0) cut = piece.size() / 2;
  split_to_fit(piece.substr(0, cut), limit, count_tokens, out);
  split_to_fit(piece.substr(cut), limit, count_tokens, out);
}

bool is_blank(std::string_view text) {
  for (char c : text) {
    if (!is_space(c)) return false;
  }
  return true;
}

std::string chunk_id(const std::string& document, const Unit& first, const Unit& last) {
  std::string key = document + '\0' + std::to_string(first.page) + ':' + std::to_string(first.offset) + '-' +
                    std::to_string(last.offset + last.text.size());
  return hex(sha256(key).substr(0, 8));
}

// The units of one page, consecutive in its text, as a chunk.
Chunk make_chunk(const std::string& document, std::string_view page_text, const std::vector<Unit>& units) {
  size_t begin = units.front().offset;
  size_t end = units.back().offset + units.back().text.size();
  std::string_view text = page_text.substr(begin, end - begin);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  return Chunk{chunk_id(document, units.front(), units.back()), document, units.front().page,
               std::string(text)};
}

}  // namespace

Status validate(const ChunkerOptions& options) {
  if (options.chunk_size == 0) return Status::InvalidArgument("chunk size must be positive");
  if (options.chunk_overlap >= options.chunk_size) {
    return Status::InvalidArgument("chunk overlap (" + std::to_string(options.chunk_overlap) +
                                   ") must be smaller than the chunk size (" +
                                   std::to_string(options.chunk_size) + ")");
  }
  return Status::OK();
}

void chunk_document(const Document& doc, const ChunkerOptions& options, const TokenCounter& count_tokens,
                    std::vector<Chunk>* chunks) {
  for (const Page& page : doc.pages) {
    std::string_view text = page.text;
    std::vector<Unit> units;
    for (std::string_view sentence : split_sentences(text)) {
      std::vector<std::string_view> parts;
      split_to_fit(sentence, options.chunk_size, count_tokens, &parts);
      for (std::string_view part : parts) {
        if (is_blank(part)) continue;
        units.push_back(
            {page.number, static_cast<size_t>(part.data() - text.data()), part, count_tokens(part)});
      }
    }

    std::vector<Unit> current;
    size_t current_tokens = 0;
    for (const Unit& unit : units) {
      if (!current.empty() && current_tokens + unit.tokens > options.chunk_size) {
        chunks->push_back(make_chunk(doc.name, text, current));
        // Carry the last whole units that fit in the overlap, if the next
        // unit still fits after them.
        std::vector<Unit> carried;
        size_t carried_tokens = 0;
        for (auto it = current.rbegin(); it != current.rend(); ++it) {
          if (carried_tokens + it->tokens > options.chunk_overlap) break;
          carried_tokens += it->tokens;
          carried.insert(carried.begin(), *it);
        }
        if (carried_tokens + unit.tokens > options.chunk_size) {
          carried.clear();
          carried_tokens = 0;
        }
        current = std::move(carried);
        current_tokens = carried_tokens;
      }
      current.push_back(unit);
      current_tokens += unit.tokens;
    }
    if (!current.empty()) chunks->push_back(make_chunk(doc.name, text, current));
  }
}

}  // namespace embedapt
