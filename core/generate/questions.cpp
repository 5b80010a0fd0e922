#include "core/generate/questions.h"

#include <cctype>
#include <regex>
#include <set>

namespace embedapt {

// Kept identical to docs/prompts/questions.txt, which documents it.
const char kDefaultQuestionPrompt[] =
    "Below is an excerpt from a document.\n"
    "\n"
    "---------------------\n"
    "{chunk}\n"
    "---------------------\n"
    "\n"
    "Write {n} questions that a reader could answer from this excerpt alone, without any other knowledge. "
    "Ask about different facts; do not ask the same thing twice. Each question is one sentence that ends "
    "with a question mark and makes sense on its own: do not refer to \"the excerpt\", \"the text\" or "
    "\"the context\".\n"
    "\n"
    "Reply with the questions only, one per line: no numbering, no answers, no introduction.\n";

Status validate_prompt(std::string_view prompt) {
  if (prompt.find("{chunk}") == std::string_view::npos) {
    return Status::InvalidArgument("the prompt has no {chunk} placeholder for the chunk's text");
  }
  return Status::OK();
}

std::string render_prompt(std::string_view prompt, std::string_view chunk, int n) {
  std::string out;
  size_t i = 0;
  while (i < prompt.size()) {
    if (prompt.substr(i, 7) == "{chunk}") {
      out.append(chunk);
      i += 7;
    } else if (prompt.substr(i, 3) == "{n}") {
      out.append(std::to_string(n));
      i += 3;
    } else {
      out.push_back(prompt[i++]);
    }
  }
  return out;
}

namespace {

constexpr size_t kMaxQuestionLine = 1000;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Removes one layer of list markup from the front of `line`; false when
// there was none. Markers: emphasis and heading characters, bullets,
// numbering ("1.", "(2)", "Q3:", "Question 4 -", "Question:"), option
// letters ("a)", "(B)"), "(Bonus)" and "Or,".
bool strip_marker(std::string* line) {
  static const std::regex kMarker(
      R"(^(?:[*_#>]+|(?:-|\+|•|·|–)\s|\(?(?:q(?:uestion)?\s*)?\d+\s*(?:[.):](?!\d)|-\s)|)"
      R"(q(?:uestion)?\s*\d*\s*[:.\-]|\(?[a-d]\)|\(bonus\)|bonus:|or,|or:)\s*)",
      std::regex::icase);
  std::smatch match;
  if (!std::regex_search(*line, match, kMarker) || match.length(0) == 0) return false;
  *line = std::string(trim(line->substr(match.length(0))));
  return true;
}

// A leading quote whose closing twin was cut with the text after the '?'.
void strip_unbalanced_quote(std::string* line) {
  for (std::string_view open : {"\"", "\xE2\x80\x9C", "'"}) {
    std::string_view close = open == "\xE2\x80\x9C" ? "\xE2\x80\x9D" : open;
    if (!starts_with(*line, open)) continue;
    size_t count = 0;
    for (size_t at = line->find(close); at != std::string::npos; at = line->find(close, at + close.size())) {
      ++count;
    }
    bool balanced = open == close ? count % 2 == 0 : count > 0;
    if (!balanced) *line = std::string(trim(line->substr(open.size())));
  }
}

// Lower-case words without punctuation: the identity of a question.
std::string normalise(std::string_view question) {
  std::string key;
  for (char c : question) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || u >= 0x80) {
      key.push_back(static_cast<char>(std::tolower(u)));
    } else if (!key.empty() && key.back() != ' ') {
      key.push_back(' ');
    }
  }
  return std::string(trim(key));
}

size_t word_count(std::string_view s) {
  size_t words = 0;
  bool in_word = false;
  for (char c : s) {
    bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

}  // namespace

std::vector<std::string> parse_questions(std::string_view reply, size_t max_questions) {
  static const std::regex kAnswer(R"(^answers?\b)", std::regex::icase);
  std::vector<std::string> questions;
  std::set<std::string> seen;
  size_t start = 0;
  while (start < reply.size() && questions.size() < max_questions) {
    size_t end = reply.find('\n', start);
    if (end == std::string_view::npos) end = reply.size();
    std::string line(trim(reply.substr(start, end - start)));
    start = end + 1;
    // No question is this long; skipping such lines also keeps std::regex,
    // which recurses per character, off huge inputs.
    if (line.size() > kMaxQuestionLine) continue;

    while (strip_marker(&line)) {
    }
    if (std::regex_search(line, kAnswer)) continue;
    size_t mark = line.rfind('?');
    if (mark == std::string::npos) continue;
    line.erase(mark + 1);
    strip_unbalanced_quote(&line);
    while (strip_marker(&line)) {
    }
    // A question starts with a word or a quotation, never a digit or a mark.
    unsigned char first = line.empty() ? 0 : static_cast<unsigned char>(line[0]);
    if (word_count(line) < 3 || !(std::isalpha(first) || first == '"' || first >= 0x80)) continue;
    if (!seen.insert(normalise(line)).second) continue;
    questions.push_back(std::move(line));
  }
  return questions;
}

}  // namespace embedapt
