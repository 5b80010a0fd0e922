// LlamaIndex's EmbeddingQAFinetuneDataset JSON, read and written.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/common/files.h"
#include "core/eval/dataset.h"
#include "core/eval/utf8.h"

namespace embedapt {

namespace {

// ordered_json keeps object members in file order, which is the dataset's order.
using Json = nlohmann::ordered_json;

// Parses `text`, reporting the first key that repeats within one object
// (a plain JSON parser keeps one of them silently). `dup_path` gets the keys
// leading to the object, e.g. "queries".
bool parse_rejecting_duplicates(std::string_view text, Json* out, std::string* dup_key, std::string* dup_path,
                                std::string* error) {
  std::vector<std::vector<std::string>> keys_seen;  // per open object
  std::vector<std::string> path;                    // key of each open container's members
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        keys_seen.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        keys_seen.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        path.resize(static_cast<size_t>(depth));
        path[depth - 1] = key;
        auto& seen = keys_seen.back();
        if (dup_key->empty() && std::find(seen.begin(), seen.end(), key) != seen.end()) {
          *dup_key = key;
          for (int i = 0; i + 1 < depth; ++i) *dup_path += (i ? "." : "") + path[i];
        }
        seen.push_back(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    *out = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    *error = e.what();
    return false;
  }
  return true;
}

// Reads one `id -> text` object (queries or corpus).
Status read_texts(const Json& root, const char* key, const std::string& source, std::vector<TextEntry>* out) {
  auto it = root.find(key);
  if (it == root.end()) return Status::InvalidArgument(source + ": missing key \"" + key + "\"");
  if (!it->is_object()) {
    return Status::InvalidArgument(source + ": \"" + key + "\" must be an object, not " + it->type_name());
  }
  for (const auto& [id, text] : it->items()) {
    if (!text.is_string()) {
      return Status::InvalidArgument(source + ": " + key + " \"" + id + "\": text must be a string, not " +
                                     text.type_name());
    }
    out->push_back({id, text.get<std::string>()});
  }
  return Status::OK();
}

Status read_relevance(const Json& root, const std::string& source, std::vector<Relevance>* out) {
  auto it = root.find("relevant_docs");
  if (it == root.end()) return Status::InvalidArgument(source + ": missing key \"relevant_docs\"");
  if (!it->is_object()) {
    return Status::InvalidArgument(source + ": \"relevant_docs\" must be an object, not " +
                                   std::string(it->type_name()));
  }
  for (const auto& [query_id, docs] : it->items()) {
    const std::string where = source + ": relevant_docs \"" + query_id + "\"";
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

}  // namespace

Status parse_llamaindex_json(std::string_view json, const std::string& source, QaDataset* out) {
  size_t bad = 0;
  if (!is_valid_utf8(json, &bad)) {
    return Status::InvalidArgument(source + ": invalid UTF-8 at byte " + std::to_string(bad));
  }
  Json root;
  std::string dup_key, dup_path, error;
  if (!parse_rejecting_duplicates(json, &root, &dup_key, &dup_path, &error)) {
    return Status::InvalidArgument(source + ": not JSON: " + error);
  }
  if (!dup_key.empty()) {
    return Status::InvalidArgument(source + ": duplicate key \"" + dup_key + "\"" +
                                   (dup_path.empty() ? "" : " in \"" + dup_path + "\""));
  }
  if (!root.is_object()) {
    return Status::InvalidArgument(source +
                                   ": expected a JSON object with queries, corpus and relevant_docs, not " +
                                   std::string(root.type_name()));
  }
  QaDataset dataset;
  EMBEDAPT_RETURN_IF_ERROR(read_texts(root, "queries", source, &dataset.queries));
  EMBEDAPT_RETURN_IF_ERROR(read_texts(root, "corpus", source, &dataset.corpus));
  EMBEDAPT_RETURN_IF_ERROR(read_relevance(root, source, &dataset.relevant_docs));
  if (auto mode = root.find("mode"); mode != root.end()) {
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

// Python's json.dump(obj, f, indent=4) with its defaults: members in order,
// four-space indent, ", " never used between items (",\n" instead), ": "
// after keys, and ensure_ascii (every non-ASCII character as a lowercase
// \uXXXX escape, surrogate pairs above U+FFFF), which is also how
// nlohmann::json dumps with ensure_ascii.
std::string to_llamaindex_json(const QaDataset& dataset) {
  Json root = Json::object();
  Json& queries = root["queries"] = Json::object();
  for (const TextEntry& q : dataset.queries) queries[q.id] = q.text;
  Json& corpus = root["corpus"] = Json::object();
  for (const TextEntry& d : dataset.corpus) corpus[d.id] = d.text;
  Json& relevant = root["relevant_docs"] = Json::object();
  for (const Relevance& r : dataset.relevant_docs) relevant[r.query_id] = r.doc_ids;
  root["mode"] = dataset.mode;
  // Invalid UTF-8 (only in a dataset that never passed validation) becomes U+FFFD rather than an exception.
  return root.dump(4, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
}

Status write_llamaindex_json(const std::string& path, const QaDataset& dataset) {
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, path));
  return write_file_atomic(path, to_llamaindex_json(dataset));
}

}  // namespace embedapt
