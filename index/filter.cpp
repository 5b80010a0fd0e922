#include "index/filter.h"

#include <cmath>
#include <limits>

namespace embedapt {
namespace {

using nlohmann::json;

// Nesting of $and / $or / $not a filter may have: deep enough for any real
// query, shallow enough that parsing and evaluating never exhaust the stack.
constexpr int kMaxFilterDepth = 32;
constexpr size_t kMaxFilterBytes = 1u << 20;

Status bad(const std::string& message) { return Status::InvalidArgument("filter: " + message); }

// A field name or an operator as messages show it: in single quotes.
std::string quoted(const std::string& name) { return "'" + name + "'"; }

std::string type_name(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a bool";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

Status parse_scalar(const json& v, const std::string& where, FilterValue* out) {
  if (v.is_string()) {
    out->kind = FilterValue::kString;
    out->string = v.get<std::string>();
  } else if (v.is_boolean()) {
    out->kind = FilterValue::kBool;
    out->boolean = v.get<bool>();
  } else if (v.is_number()) {
    out->kind = FilterValue::kNumber;
    out->number = v.get<double>();
  } else {
    return bad(where + " needs a string, number or bool, got " + type_name(v));
  }
  return Status::OK();
}

Filter::Node negate(Filter::Node child) {
  Filter::Node node;
  node.kind = Filter::Node::kNot;
  node.children.push_back(std::move(child));
  return node;
}

Status parse_object(const json& object, int depth, Filter::Node* out);

// The operator object of one field: {"$gte": 1, "$lt": 5, "$ne": 3, ...},
// every operator must hold. Range bounds on the field merge into one range.
Status parse_field(const std::string& field, const json& condition, int depth, Filter::Node* out) {
  out->kind = Filter::Node::kAnd;
  if (!condition.is_object()) {
    Filter::Node leaf;
    leaf.kind = Filter::Node::kEqual;
    leaf.field = field;
    leaf.values.emplace_back();
    EMBEDAPT_RETURN_IF_ERROR(parse_scalar(condition, quoted(field), &leaf.values[0]));
    out->children.push_back(std::move(leaf));
    return Status::OK();
  }
  if (condition.empty()) return bad(quoted(field) + " has an empty operator object");
  Filter::Node range;
  range.kind = Filter::Node::kRange;
  range.field = field;
  bool has_range = false;
  for (const auto& [op, operand] : condition.items()) {
    const std::string where = op + " on " + quoted(field);
    Filter::Node leaf;
    leaf.field = field;
    if (op == "$eq" || op == "$ne") {
      leaf.kind = Filter::Node::kEqual;
      leaf.values.emplace_back();
      EMBEDAPT_RETURN_IF_ERROR(parse_scalar(operand, where, &leaf.values[0]));
      out->children.push_back(op == "$eq" ? std::move(leaf) : negate(std::move(leaf)));
    } else if (op == "$in" || op == "$nin") {
      if (!operand.is_array()) return bad(where + " needs a list, got " + type_name(operand));
      leaf.kind = Filter::Node::kEqual;
      for (const json& item : operand) {
        leaf.values.emplace_back();
        EMBEDAPT_RETURN_IF_ERROR(parse_scalar(item, where, &leaf.values.back()));
      }
      out->children.push_back(op == "$in" ? std::move(leaf) : negate(std::move(leaf)));
    } else if (op == "$gt" || op == "$gte" || op == "$lt" || op == "$lte") {
      if (!operand.is_number()) return bad(where + " needs a number, got " + type_name(operand));
      const double bound = operand.get<double>();
      has_range = true;
      if (op[1] == 'g') {  // the tighter lower bound wins; at a tie the exclusive one
        if (bound > range.lower || (bound == range.lower && op == "$gt")) {
          range.lower = bound;
          range.lower_inclusive = op == "$gte";
        }
      } else if (bound < range.upper || (bound == range.upper && op == "$lt")) {
        range.upper = bound;
        range.upper_inclusive = op == "$lte";
      }
    } else if (op == "$contains") {
      if (!operand.is_string()) return bad(where + " needs a string, got " + type_name(operand));
      leaf.kind = Filter::Node::kContains;
      leaf.values.emplace_back();
      leaf.values[0].string = operand.get<std::string>();
      out->children.push_back(std::move(leaf));
    } else if (op == "$not") {
      if (!operand.is_object()) return bad(where + " needs an operator object, got " + type_name(operand));
      if (depth >= kMaxFilterDepth) return bad("nested deeper than " + std::to_string(kMaxFilterDepth));
      Filter::Node inner;
      EMBEDAPT_RETURN_IF_ERROR(parse_field(field, operand, depth + 1, &inner));
      out->children.push_back(negate(std::move(inner)));
    } else {
      return bad("unknown operator " + quoted(op) + " on " + quoted(field) +
                 " (expected $eq $ne $gt $gte $lt $lte $in $nin $contains $not)");
    }
  }
  if (has_range) out->children.push_back(std::move(range));
  return Status::OK();
}

Status parse_list(const std::string& op, const json& operand, int depth, Filter::Node* out) {
  if (!operand.is_array() || operand.empty()) {
    return bad(op + " needs a non-empty list of filters, got " + type_name(operand));
  }
  out->kind = op == "$and" ? Filter::Node::kAnd : Filter::Node::kOr;
  for (const json& item : operand) {
    out->children.emplace_back();
    EMBEDAPT_RETURN_IF_ERROR(parse_object(item, depth + 1, &out->children.back()));
  }
  return Status::OK();
}

// {"field": condition, "$and": [...], "$or": [...], "$not": {...}}: every
// entry must hold.
Status parse_object(const json& object, int depth, Filter::Node* out) {
  if (!object.is_object()) return bad("expected an object, got " + type_name(object));
  if (depth > kMaxFilterDepth) return bad("nested deeper than " + std::to_string(kMaxFilterDepth));
  out->kind = Filter::Node::kAnd;
  for (const auto& [key, value] : object.items()) {
    out->children.emplace_back();
    Filter::Node* child = &out->children.back();
    if (key == "$and" || key == "$or") {
      EMBEDAPT_RETURN_IF_ERROR(parse_list(key, value, depth, child));
    } else if (key == "$not") {
      Filter::Node inner;
      EMBEDAPT_RETURN_IF_ERROR(parse_object(value, depth + 1, &inner));
      *child = negate(std::move(inner));
    } else if (!key.empty() && key[0] == '$') {
      return bad("unknown operator " + quoted(key) + " (expected $and $or $not or a field name)");
    } else if (key.empty()) {
      return bad("empty field name");
    } else {
      EMBEDAPT_RETURN_IF_ERROR(parse_field(key, value, depth, child));
    }
  }
  return Status::OK();
}

}  // namespace

Status Filter::parse(std::string_view text, Filter* out) {
  if (text.size() > kMaxFilterBytes) {
    return bad(std::to_string(text.size()) + " bytes exceeds " + std::to_string(kMaxFilterBytes));
  }
  nlohmann::json parsed =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return bad("not valid JSON");
  auto root = std::make_shared<Node>();
  EMBEDAPT_RETURN_IF_ERROR(parse_object(parsed, 0, root.get()));
  out->root_ = root->children.empty() ? nullptr : std::move(root);
  out->json_ = out->root_ ? parsed.dump() : "";
  return Status::OK();
}

Status ParseMetadata(std::string_view text, const std::string& what, nlohmann::json* out) {
  auto bad_metadata = [&](const std::string& message) {
    return Status::InvalidArgument(what + ": metadata " + message);
  };
  if (text.size() > kMaxMetadataBytes) {
    return bad_metadata("of " + std::to_string(text.size()) + " bytes exceeds " +
                        std::to_string(kMaxMetadataBytes));
  }
  nlohmann::json parsed =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return bad_metadata("is not valid JSON");
  if (!parsed.is_object()) return bad_metadata("must be a JSON object, got " + type_name(parsed));
  if (parsed.size() > kMaxMetadataFields) {
    return bad_metadata("has " + std::to_string(parsed.size()) + " fields, more than " +
                        std::to_string(kMaxMetadataFields));
  }
  for (const auto& [field, value] : parsed.items()) {
    if (field.empty() || field.size() > kMaxMetadataFieldBytes || field[0] == '$') {
      return bad_metadata("field name " + quoted(field) + " must be 1 to " +
                          std::to_string(kMaxMetadataFieldBytes) + " bytes and not start with '$'");
    }
    if (value.is_string() || value.is_boolean()) continue;
    if (value.is_number()) {
      if (!std::isfinite(value.get<double>()))
        return bad_metadata("field " + quoted(field) + " is not finite");
      continue;
    }
    if (value.is_array()) {
      if (value.size() > kMaxMetadataListItems) {
        return bad_metadata("field " + quoted(field) + " lists more than " +
                            std::to_string(kMaxMetadataListItems) + " items");
      }
      for (const json& item : value) {
        if (!item.is_string()) {
          return bad_metadata("field " + quoted(field) + " is a list holding " + type_name(item) +
                              "; lists hold strings only");
        }
      }
      continue;
    }
    return bad_metadata("field " + quoted(field) + " is " + type_name(value) +
                        "; values are strings, numbers, bools or lists of strings");
  }
  *out = std::move(parsed);
  return Status::OK();
}

}  // namespace embedapt
