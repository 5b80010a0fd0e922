#include "core/generate/markup.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <regex>
#include <set>
#include <string>

#include "core/common/utf8.h"

namespace embedapt {

namespace {

constexpr size_t kMaxMarkupLine = 4096;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The named references documents commonly use; others are kept as written.
uint32_t named_entity(const std::string& name) {
  static const std::pair<const char*, uint32_t> kNames[] = {
      {"amp", '&'},      {"lt", '<'},       {"gt", '>'},        {"quot", '"'},     {"apos", '\''},
      {"nbsp", 0xA0},    {"ndash", 0x2013}, {"mdash", 0x2014},  {"lsquo", 0x2018}, {"rsquo", 0x2019},
      {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"hellip", 0x2026}, {"copy", 0xA9},    {"reg", 0xAE},
      {"trade", 0x2122}, {"euro", 0x20AC},  {"pound", 0xA3},    {"bull", 0x2022},  {"middot", 0xB7},
      {"eacute", 0xE9},  {"egrave", 0xE8},  {"agrave", 0xE0},   {"ccedil", 0xE7},  {"auml", 0xE4},
      {"ouml", 0xF6},    {"uuml", 0xFC},    {"szlig", 0xDF},
  };
  for (const auto& [n, cp] : kNames) {
    if (name == n) return cp;
  }
  return 0;
}

// Decodes the reference starting at html[i] == '&' into *out; returns the
// index after it, or i + 1 (having appended '&') when it is not one.
size_t decode_reference(std::string_view html, size_t i, std::string* out) {
  size_t semi = html.find(';', i);
  if (semi == std::string_view::npos || semi - i > 10) {
    out->push_back('&');
    return i + 1;
  }
  std::string_view body = html.substr(i + 1, semi - i - 1);
  uint32_t cp = 0;
  if (body.size() > 1 && body[0] == '#') {
    bool hex = body[1] == 'x' || body[1] == 'X';
    std::string digits(body.substr(hex ? 2 : 1));
    if (!digits.empty() && std::all_of(digits.begin(), digits.end(),
                                       [hex](char c) { return hex ? std::isxdigit(c) : std::isdigit(c); })) {
      cp = static_cast<uint32_t>(std::min(std::stoul(digits, nullptr, hex ? 16 : 10), 0x110000UL));
    }
  } else {
    cp = named_entity(std::string(body));
  }
  if (cp == 0) {
    out->push_back('&');
    return i + 1;
  }
  append_utf8(cp == 0xA0 ? ' ' : cp, out);
  return semi + 1;
}

bool is_block_tag(const std::string& tag) {
  static const std::set<std::string> kBlocks = {
      "address", "article",    "aside",  "blockquote", "br",    "dd",    "div",  "dl",
      "dt",      "figcaption", "figure", "footer",     "form",  "h1",    "h2",   "h3",
      "h4",      "h5",         "h6",     "header",     "hr",    "li",    "main", "nav",
      "ol",      "p",          "pre",    "section",    "table", "title", "tr",   "ul"};
  return kBlocks.count(tag) > 0;
}

bool is_hidden_tag(const std::string& tag) {
  return tag == "head" || tag == "script" || tag == "style" || tag == "noscript" || tag == "template" ||
         tag == "svg";
}

// Trims each line, and keeps at most one empty line between paragraphs.
std::string tidy_lines(const std::string& text) {
  std::string out;
  size_t start = 0;
  int blank_run = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.remove_prefix(1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.remove_suffix(1);
    if (line.empty()) {
      ++blank_run;
    } else {
      if (!out.empty()) out.append(blank_run > 0 ? "\n\n" : "\n");
      out.append(line);
      blank_run = 0;
    }
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string html_to_text(std::string_view html) {
  std::string text;
  std::string hidden;  // the hidden element we are inside, "" when none
  int pre_depth = 0;
  bool pending_space = false;
  size_t i = 0;
  while (i < html.size()) {
    char c = html[i];
    bool tag_start =
        c == '<' && i + 1 < html.size() &&
        (std::isalpha(static_cast<unsigned char>(html[i + 1])) || html[i + 1] == '/' || html[i + 1] == '!');
    if (tag_start) {
      if (html.substr(i, 4) == "<!--") {
        size_t end = html.find("-->", i + 4);
        i = end == std::string_view::npos ? html.size() : end + 3;
        continue;
      }
      size_t end = html.find('>', i + 1);
      if (end == std::string_view::npos) break;  // an unterminated tag ends the text
      std::string_view inside = html.substr(i + 1, end - i - 1);
      i = end + 1;
      bool closing = !inside.empty() && inside.front() == '/';
      if (closing) inside.remove_prefix(1);
      size_t name_end = 0;
      while (name_end < inside.size() && (std::isalnum(static_cast<unsigned char>(inside[name_end]))))
        ++name_end;
      std::string tag = lower(inside.substr(0, name_end));
      if (!hidden.empty()) {
        if (closing && tag == hidden) hidden.clear();
        continue;
      }
      bool self_closing = !inside.empty() && inside.back() == '/';
      if (!closing && !self_closing && is_hidden_tag(tag)) {
        hidden = tag;
        continue;
      }
      if (tag == "pre") pre_depth = std::max(0, pre_depth + (closing ? -1 : 1));
      if (is_block_tag(tag)) {
        // One line break per boundary (</li><li> is one), a blank line around paragraphs and headings.
        size_t breaks = tag == "p" || (tag.size() == 2 && tag[0] == 'h' && std::isdigit(tag[1])) ? 2 : 1;
        size_t trailing = 0;
        while (trailing < text.size() && text[text.size() - 1 - trailing] == '\n') ++trailing;
        if (tag == "br") breaks = trailing + 1;
        if (trailing < breaks) text.append(breaks - trailing, '\n');
        pending_space = false;
      } else if (tag == "td" || tag == "th") {
        pending_space = true;
      }
      continue;
    }
    if (!hidden.empty()) {
      ++i;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c)) && pre_depth == 0) {
      pending_space = true;
      ++i;
      continue;
    }
    if (pending_space && !text.empty() && text.back() != '\n') text.push_back(' ');
    pending_space = false;
    if (c == '&') {
      i = decode_reference(html, i, &text);
    } else {
      text.push_back(c);
      ++i;
    }
  }
  return tidy_lines(to_valid_utf8(text));
}

std::string markdown_to_text(std::string_view markdown) {
  static const std::regex kImage(R"(!\[([^\]]*)\]\([^)]*\))");
  static const std::regex kLink(R"(\[([^\]]+)\]\([^)]*\))");
  static const std::regex kHeading(R"(^\s{0,3}#{1,6}\s+)");
  static const std::regex kQuote(R"(^\s*>\s?)");
  static const std::regex kEmphasis(R"((\*\*|__|\*|`)(\S(?:.*?\S)?)\1)");
  static const std::regex kFence(R"(^\s*(```|~~~).*$)");
  std::string out;
  size_t start = 0;
  while (start <= markdown.size()) {
    size_t end = markdown.find('\n', start);
    if (end == std::string_view::npos) end = markdown.size();
    std::string line(markdown.substr(start, end - start));
    start = end + 1;
    // std::regex recurses per character: a huge line (minified or generated
    // text) could exhaust the stack, so such lines are kept as they are.
    if (line.size() > kMaxMarkupLine) {
      out += line;
      out.push_back('\n');
      continue;
    }
    if (std::regex_match(line, kFence)) continue;
    line = std::regex_replace(line, kImage, "$1");
    line = std::regex_replace(line, kLink, "$1");
    line = std::regex_replace(line, kHeading, "", std::regex_constants::format_first_only);
    line = std::regex_replace(line, kQuote, "", std::regex_constants::format_first_only);
    line = std::regex_replace(line, kEmphasis, "$2");
    out += line;
    out.push_back('\n');
  }
  return tidy_lines(to_valid_utf8(out));
}

}  // namespace embedapt
