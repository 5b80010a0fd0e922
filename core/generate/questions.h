// The question-asking prompt and the parser that turns an LLM's reply into
// clean questions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

// The built-in prompt (documented in docs/prompts/questions.txt). "{chunk}"
// is replaced by the chunk's text and "{n}" by the number of questions.
extern const char kDefaultQuestionPrompt[];

// InvalidArgument unless `prompt` holds "{chunk}" (without it the LLM never
// sees the text); "{n}" is optional.
Status validate_prompt(std::string_view prompt);

// `prompt` with every "{chunk}" and "{n}" substituted.
std::string render_prompt(std::string_view prompt, std::string_view chunk, int n);

// The questions in an LLM reply, one per line, cleaned:
//  - numbering ("1.", "2)", "Q1:", "Question 1:"), bullets, a "(Bonus)" tag,
//    an option letter ("a)") before a question, and enclosing quotes or
//    emphasis are stripped;
//  - text after the last '?' (a parenthetical note, a follow-up instruction)
//    is cut;
//  - lines without a '?' are dropped: preambles ("Here are two
//    questions..."), answers ("Answer:", "Answer Key:"), fragments ("Or,"),
//    options ("a) Sales and Marketing"), headings ("Question 1:");
//  - lines that start with "Answer" or with anything but a letter or a
//    quote after stripping, near-empty questions (under three words), lines
//    over 1000 bytes, and duplicates (same words ignoring case and
//    punctuation) are dropped.
// At most `max_questions` are returned, in reply order.
std::vector<std::string> parse_questions(std::string_view reply, size_t max_questions);

}  // namespace embedapt
