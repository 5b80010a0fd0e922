// Filter::Node: the parsed form of a metadata filter (see Filter in
// embedapt/store.h), and the checks a record's metadata passes before it is
// stored.
//
// A filter is a tree: kAnd / kOr / kNot over children, and leaves that test
// one field. Leaves are the operators the metadata index answers directly
// (index/metadata.h): equality of a scalar, a numeric range, membership of a
// string in a list field. $ne, $nin and the like parse into kNot over such a
// leaf, so every negation is one complement in the set algebra.
#pragma once

#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "embedapt/status.h"
#include "embedapt/store.h"

namespace embedapt {

// A scalar a filter compares with: a string, a number (compared as a double)
// or a bool.
struct FilterValue {
  enum Kind { kString, kNumber, kBool } kind = kString;
  std::string string;
  double number = 0;
  bool boolean = false;
};

struct Filter::Node {
  enum Kind {
    kAnd,       // every child matches (no children: every record)
    kOr,        // some child matches (no children: no record)
    kNot,       // the one child does not match; records lacking the field included
    kEqual,     // field == one of `values` (a one-element list for $eq, several for $in)
    kRange,     // lower <=/< field <=/< upper on a numeric field
    kContains,  // the string-list field holds `values[0]`
  } kind = kAnd;
  std::vector<Node> children;
  std::string field;
  std::vector<FilterValue> values;
  double lower = -std::numeric_limits<double>::infinity();
  double upper = std::numeric_limits<double>::infinity();
  bool lower_inclusive = true;
  bool upper_inclusive = true;
};

// Checks that `json` is metadata a store accepts: a JSON object whose values
// are strings, numbers, bools or lists of strings, within the kMaxMetadata*
// limits (embedapt/store.h). On success *out holds it parsed. Errors are one
// line naming `what` and the field.
Status ParseMetadata(std::string_view json, const std::string& what, nlohmann::json* out);

}  // namespace embedapt
