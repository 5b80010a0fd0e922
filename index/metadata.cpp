#include "index/metadata.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <memory>

#include "index/codec.h"

namespace embedapt::metadata_index {
namespace {

using nlohmann::json;

void put_u32(std::string* dst, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) dst->push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string field_prefix(const std::string& field, char tag) {
  std::string key;
  put_u32(&key, static_cast<uint32_t>(field.size()));
  key.append(field);
  key.push_back(tag);
  return key;
}

// Flips the sign bit of positive doubles and every bit of negative ones, so
// bytewise order of the big-endian result is numeric order.
std::string ordered_double(double v) {
  if (v == 0) v = 0;  // -0.0 and 0.0 are one value
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  bits = (bits >> 63) ? ~bits : bits | (uint64_t{1} << 63);
  return codec::key_u64(bits);
}

double parse_ordered_double(std::string_view key) {
  uint64_t bits = 0;
  codec::parse_key_u64(key, &bits);
  bits = (bits >> 63) ? bits & ~(uint64_t{1} << 63) : ~bits;
  double v = 0;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

std::string string_value(std::string_view s) {
  std::string value;
  put_u32(&value, static_cast<uint32_t>(s.size()));
  value.append(s);
  return value;
}

// The key prefix shared by every record whose `field` equals `value`.
std::string equal_prefix(const std::string& field, const FilterValue& value) {
  switch (value.kind) {
    case FilterValue::kString:
      return field_prefix(field, 's') + string_value(value.string);
    case FilterValue::kNumber:
      return field_prefix(field, 'n') + ordered_double(value.number);
    case FilterValue::kBool:
      return field_prefix(field, 'b') + std::string(1, value.boolean ? '\1' : '\0');
  }
  return {};
}

class Reader {
 public:
  Reader(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::ReadOptions& read)
      : it_(db->NewIterator(read, cf)) {}

  // Appends the iid of every key starting with `prefix`.
  Status scan_prefix(const std::string& prefix, std::vector<int64_t>* out) {
    for (it_->Seek(prefix); it_->Valid() && it_->key().starts_with(prefix); it_->Next()) {
      EMBEDAPT_RETURN_IF_ERROR(append_iid(out));
    }
    return check();
  }

  // Appends the iid of every numeric key of `node.field` within its range.
  Status scan_range(const Filter::Node& node, std::vector<int64_t>* out) {
    const std::string prefix = field_prefix(node.field, 'n');
    for (it_->Seek(prefix + ordered_double(node.lower)); it_->Valid() && it_->key().starts_with(prefix);
         it_->Next()) {
      if (it_->key().size() != prefix.size() + 16) return corrupt();
      const double v = parse_ordered_double({it_->key().data() + prefix.size(), 8});
      if (v > node.upper || (v == node.upper && !node.upper_inclusive)) break;
      if (v == node.lower && !node.lower_inclusive) continue;
      EMBEDAPT_RETURN_IF_ERROR(append_iid(out));
    }
    return check();
  }

 private:
  Status append_iid(std::vector<int64_t>* out) {
    if (it_->key().size() < 8) return corrupt();
    uint64_t iid = 0;
    codec::parse_key_u64({it_->key().data() + it_->key().size() - 8, 8}, &iid);
    out->push_back(static_cast<int64_t>(iid));
    return Status::OK();
  }
  Status check() {
    if (it_->status().ok()) return Status::OK();
    return Status::IOError("reading the metadata index: " + it_->status().ToString());
  }
  Status corrupt() { return Status::Corruption("metadata index: malformed key"); }

  std::unique_ptr<rocksdb::Iterator> it_;
};

void sort_unique(std::vector<int64_t>* ids) {
  std::sort(ids->begin(), ids->end());
  ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
}

std::vector<int64_t> intersect(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<int64_t> unite(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<int64_t> subtract(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// Sets carry a complement flag, so a negation never lists every record:
// A and not B = A - B, not A and not B = not (A or B), A or not B =
// not (B - A), not A or not B = not (A and B).
Status evaluate_node(const Filter::Node& node, Reader* reader, IdSet* out) {
  out->ids.clear();
  out->complement = false;
  switch (node.kind) {
    case Filter::Node::kEqual:
      for (const FilterValue& value : node.values) {
        EMBEDAPT_RETURN_IF_ERROR(reader->scan_prefix(equal_prefix(node.field, value), &out->ids));
      }
      sort_unique(&out->ids);
      return Status::OK();
    case Filter::Node::kContains:
      EMBEDAPT_RETURN_IF_ERROR(reader->scan_prefix(
          field_prefix(node.field, 'l') + string_value(node.values[0].string), &out->ids));
      sort_unique(&out->ids);
      return Status::OK();
    case Filter::Node::kRange:
      EMBEDAPT_RETURN_IF_ERROR(reader->scan_range(node, &out->ids));
      sort_unique(&out->ids);
      return Status::OK();
    case Filter::Node::kNot:
      EMBEDAPT_RETURN_IF_ERROR(evaluate_node(node.children[0], reader, out));
      out->complement = !out->complement;
      return Status::OK();
    case Filter::Node::kAnd:
    case Filter::Node::kOr:
      break;
  }
  const bool conjunction = node.kind == Filter::Node::kAnd;
  // Over the children: positive sets P, complemented sets N. And: P1 & P2 &
  // ... minus (N1 | N2 | ...). Or: P1 | P2 | ... or not (N1 & N2 & ...).
  bool any_positive = false, any_negative = false;
  std::vector<int64_t> positive, negative;
  IdSet child;
  for (const Filter::Node& c : node.children) {
    EMBEDAPT_RETURN_IF_ERROR(evaluate_node(c, reader, &child));
    std::vector<int64_t>& acc = child.complement ? negative : positive;
    bool& any = child.complement ? any_negative : any_positive;
    const bool intersecting = conjunction != child.complement;
    if (!any) {
      acc = std::move(child.ids);
    } else {
      acc = intersecting ? intersect(acc, child.ids) : unite(acc, child.ids);
    }
    any = true;
    // Nothing can match a conjunction with an empty positive set.
    if (conjunction && any_positive && positive.empty()) return Status::OK();
  }
  if (conjunction) {
    if (any_positive) {
      out->ids = subtract(positive, negative);
    } else {
      out->ids = std::move(negative);
      out->complement = true;  // no children: not (nothing) = every record
    }
  } else if (any_negative) {
    out->ids = subtract(negative, positive);
    out->complement = true;
  } else {
    out->ids = std::move(positive);
  }
  return Status::OK();
}

}  // namespace

std::vector<std::string> keys(const json& metadata, uint64_t iid) {
  std::vector<std::string> out;
  const std::string suffix = codec::key_u64(iid);
  for (const auto& [field, value] : metadata.items()) {
    if (value.is_string()) {
      out.push_back(field_prefix(field, 's') + string_value(value.get_ref<const std::string&>()) + suffix);
    } else if (value.is_boolean()) {
      out.push_back(field_prefix(field, 'b') + std::string(1, value.get<bool>() ? '\1' : '\0') + suffix);
    } else if (value.is_number()) {
      out.push_back(field_prefix(field, 'n') + ordered_double(value.get<double>()) + suffix);
    } else if (value.is_array()) {
      for (const json& item : value) {
        out.push_back(field_prefix(field, 'l') + string_value(item.get_ref<const std::string&>()) + suffix);
      }
    }
  }
  // A list naming an item twice gives one key.
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status evaluate(const Filter::Node& node, rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                const rocksdb::ReadOptions& read, IdSet* out) {
  Reader reader(db, cf, read);
  return evaluate_node(node, &reader, out);
}

}  // namespace embedapt::metadata_index
