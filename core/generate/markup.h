// Plain text from the markup formats the loaders accept.
#pragma once

#include <string>
#include <string_view>

namespace embedapt {

// The text a browser would show: drops comments and the contents of head,
// script, style, noscript, template and svg; block elements (p, div, li,
// headings, table rows, br...) become line breaks; runs of white space
// collapse (except inside pre); character references are decoded. Never
// fails: malformed markup yields whatever text it holds.
std::string html_to_text(std::string_view html);

// Markdown with its markup stripped lightly: heading hashes, emphasis
// markers, code fences and backticks, block-quote markers, and links and
// images reduced to their text. List bullets and line structure are kept.
std::string markdown_to_text(std::string_view markdown);

}  // namespace embedapt
