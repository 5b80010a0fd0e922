// LlamaIndex's EmbeddingQAFinetuneDataset JSON, read and written.
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

#include "core/common/files.h"
#include "core/common/utf8.h"
#include "core/eval/dataset.h"

namespace embedapt {

namespace {

using Json = nlohmann::json;

// A parsed document plus what a plain parse loses: the file order of the keys
// of each object directly under the root (queries, corpus, relevant_docs),
// and the first key repeated within any one object.
//
// NOLINT: the implicit default constructor is noexcept, and clang-tidy finds a
// throw beneath it, in nlohmann::json's default constructor, on a path that
// never runs for a null value (nlohmann::json puts the same NOLINT on that
// constructor).
struct ParsedJson {  // NOLINT(bugprone-exception-escape)
  Json root;
  std::map<std::string, std::vector<std::string>> key_order;  // root member -> its keys in file order
  std::string duplicate_key;
  std::string duplicate_in;  // the root member holding it ("" for the root itself)
};

bool parse_tracking_keys(std::string_view text, ParsedJson* out, std::string* error) {
  std::vector<std::unordered_set<std::string>> keys_seen;  // one per open object
  std::string member;                                      // the root member being parsed
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      keys_seen.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      keys_seen.pop_back();
    } else if (event == Json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (depth == 1) member = key;
      if (depth == 2) out->key_order[member].push_back(key);
      if (!keys_seen.back().insert(key).second && out->duplicate_key.empty()) {
        out->duplicate_key = key;
        out->duplicate_in = depth == 1 ? "" : member;
      }
    }
    return true;
  };
  try {
    out->root = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    *error = e.what();
    return false;
  }
  return true;
}

// The root member `key`, which must be an object.
Status member_object(const ParsedJson& parsed, const char* key, const std::string& source, const Json** out) {
  auto it = parsed.root.find(key);
  if (it == parsed.root.end()) return Status::InvalidArgument(source + ": missing key \"" + key + "\"");
  if (!it->is_object()) {
    return Status::InvalidArgument(source + ": \"" + key + "\" must be an object, not " + it->type_name());
  }
  *out = &*it;
  return Status::OK();
}

// Where an entry of the root member `member` is: `source: member "id"`.
std::string entry_where(const std::string& source, const char* member, const std::string& id) {
  return source + ": " + member + " \"" + id + "\"";
}

// Reads one `id -> text` object (queries or corpus) in file order.
Status read_texts(const ParsedJson& parsed, const char* key, const std::string& source,
                  std::vector<TextEntry>* out) {
  const Json* object = nullptr;
  EMBEDAPT_RETURN_IF_ERROR(member_object(parsed, key, source, &object));
  auto order = parsed.key_order.find(key);
  if (order == parsed.key_order.end()) return Status::OK();  // an empty object
  for (const std::string& id : order->second) {
    const Json& text = object->at(id);
    if (!text.is_string()) {
      return Status::InvalidArgument(entry_where(source, key, id) + ": text must be a string, not " +
                                     text.type_name());
    }
    out->push_back({id, text.get<std::string>(), {}});
  }
  return Status::OK();
}

Status read_relevance(const ParsedJson& parsed, const std::string& source, std::vector<Relevance>* out) {
  const Json* object = nullptr;
  EMBEDAPT_RETURN_IF_ERROR(member_object(parsed, "relevant_docs", source, &object));
  auto order = parsed.key_order.find("relevant_docs");
  if (order == parsed.key_order.end()) return Status::OK();
  for (const std::string& query_id : order->second) {
    const Json& docs = object->at(query_id);
    const std::string where = entry_where(source, "relevant_docs", query_id);
    if (!docs.is_array()) return Status::InvalidArgument(where + ": must be a list, not " + docs.type_name());
    Relevance r{query_id, {}};
    for (const Json& doc : docs) {
      if (!doc.is_string()) {
        return Status::InvalidArgument(where + ": document ids must be strings, not " + doc.type_name());
      }
      r.doc_ids.push_back(doc.get<std::string>());
    }
    out->push_back(std::move(r));
  }
  return Status::OK();
}

// A JSON string literal as Python's json module writes it with ensure_ascii:
// every non-ASCII character as a lowercase \uXXXX escape (surrogate pairs
// above U+FFFF), which is also what nlohmann::json does with ensure_ascii.
// Invalid UTF-8 (only in a dataset that never passed validation) becomes
// U+FFFD rather than an exception.
std::string literal(const std::string& s) {
  return Json(s).dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
}

// `"key": {` + one `"id": value` line per entry + `}` at Python's indent=4.
template <typename Entries, typename Fn>
void write_member(const char* key, const Entries& entries, Fn value_of, std::string* out) {
  *out += "    " + literal(key) + ": ";
  if (entries.empty()) {
    *out += "{}";
    return;
  }
  *out += "{\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    *out += "        " + value_of(entries[i]) + (i + 1 < entries.size() ? ",\n" : "\n");
  }
  *out += "    }";
}

}  // namespace

Status parse_llamaindex_json(std::string_view json, const std::string& source, QaDataset* out) {
  size_t bad = 0;
  if (!is_valid_utf8(json, &bad)) {
    return Status::InvalidArgument(source + ": invalid UTF-8 at byte " + std::to_string(bad));
  }
  ParsedJson parsed;
  std::string error;
  if (!parse_tracking_keys(json, &parsed, &error))
    return Status::InvalidArgument(source + ": not JSON: " + error);
  if (!parsed.duplicate_key.empty()) {
    return Status::InvalidArgument(
        source + ": duplicate key \"" + parsed.duplicate_key + "\"" +
        (parsed.duplicate_in.empty() ? "" : " in \"" + parsed.duplicate_in + "\""));
  }
  if (!parsed.root.is_object()) {
    return Status::InvalidArgument(source +
                                   ": expected a JSON object with queries, corpus and relevant_docs, not " +
                                   std::string(parsed.root.type_name()));
  }
  QaDataset dataset;
  EMBEDAPT_RETURN_IF_ERROR(read_texts(parsed, "queries", source, &dataset.queries));
  EMBEDAPT_RETURN_IF_ERROR(read_texts(parsed, "corpus", source, &dataset.corpus));
  EMBEDAPT_RETURN_IF_ERROR(read_relevance(parsed, source, &dataset.relevant_docs));
  if (auto mode = parsed.root.find("mode"); mode != parsed.root.end()) {
    if (!mode->is_string()) {
      return Status::InvalidArgument(source + ": \"mode\" must be a string, not " +
                                     std::string(mode->type_name()));
    }
    dataset.mode = mode->get<std::string>();
  }
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, source));
  *out = std::move(dataset);
  return Status::OK();
}

Status read_llamaindex_json(const std::string& path, QaDataset* out) {
  std::string text;
  EMBEDAPT_RETURN_IF_ERROR(read_utf8_file(path, &text));
  return parse_llamaindex_json(text, path, out);
}

// Python's json.dump(dataset.dict(), f, indent=4), which is how LlamaIndex
// saves the dataset: members in order, four spaces per level, "," ending
// lines, ": " after keys, lists one item per line, no final newline.
std::string to_llamaindex_json(const QaDataset& dataset) {
  auto text_entry = [](const TextEntry& e) { return literal(e.id) + ": " + literal(e.text); };
  auto relevance = [](const Relevance& r) {
    std::string line = literal(r.query_id) + ": ";
    if (r.doc_ids.empty()) return line + "[]";
    line += "[\n";
    for (size_t i = 0; i < r.doc_ids.size(); ++i) {
      line += "            " + literal(r.doc_ids[i]) + (i + 1 < r.doc_ids.size() ? ",\n" : "\n");
    }
    return line + "        ]";
  };
  std::string out = "{\n";
  write_member("queries", dataset.queries, text_entry, &out);
  out += ",\n";
  write_member("corpus", dataset.corpus, text_entry, &out);
  out += ",\n";
  write_member("relevant_docs", dataset.relevant_docs, relevance, &out);
  out += ",\n    \"mode\": " + literal(dataset.mode) + "\n}";
  return out;
}

Status write_llamaindex_json(const std::string& path, const QaDataset& dataset) {
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, path));
  return write_file_atomic(path, to_llamaindex_json(dataset));
}

}  // namespace embedapt
