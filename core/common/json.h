// Reading JSON from files and lines a user hands the library.
//
// nlohmann's parser keeps its own stack, but dump(), copies and comparisons
// of what it built recurse once per level: a metadata line of 100,000
// brackets parsed fine and then overflowed the stack in dump(). Every
// document the project reads has a few levels; anything past
// kMaxJsonDepth is refused while parsing, before it is built.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "embedapt/status.h"

namespace embedapt {

constexpr int kMaxJsonDepth = 64;

// Parses `text` into *out. InvalidArgument, prefixed by `where`, if it is not
// JSON or nests arrays and objects deeper than kMaxJsonDepth.
Status parse_json(std::string_view text, const std::string& where, nlohmann::json* out);

}  // namespace embedapt
