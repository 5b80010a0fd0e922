// The JSON-lines dataset formats: a BEIR folder and query/document pairs.

#include <algorithm>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/common/json.h"
#include "core/common/sha256.h"
#include "core/common/utf8.h"
#include "core/eval/dataset.h"

namespace embedapt {

namespace {

using Json = nlohmann::json;

// Calls `fn(line_number, line)` for each non-blank line of `text` (numbers
// from 1, a trailing '\r' removed) until it returns an error.
Status for_each_line(const std::string& text, const std::function<Status(size_t, std::string_view)>& fn) {
  size_t number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++number;
    if (line.find_first_not_of(" \t") != std::string_view::npos) EMBEDAPT_RETURN_IF_ERROR(fn(number, line));
    start = end + 1;
  }
  return Status::OK();
}

Status parse_object_line(std::string_view line, const std::string& where, Json* out) {
  EMBEDAPT_RETURN_IF_ERROR(parse_json(line, where, out));
  if (!out->is_object())
    return Status::InvalidArgument(where + ": expected a JSON object, not " + out->type_name());
  return Status::OK();
}

// The string member `key`; BEIR ids are sometimes written as integers, so
// those are accepted too when `allow_integer`.
Status string_member(const Json& object, const char* key, bool allow_integer, const std::string& where,
                     std::string* out) {
  auto it = object.find(key);
  if (it == object.end()) return Status::InvalidArgument(where + ": missing key \"" + key + "\"");
  if (it->is_string()) {
    *out = it->get<std::string>();
  } else if (allow_integer && it->is_number_integer()) {
    *out = it->dump();
  } else {
    return Status::InvalidArgument(where + ": \"" + key + "\" must be a string, not " + it->type_name());
  }
  return Status::OK();
}

std::string where(const std::string& path, size_t line) { return path + ":" + std::to_string(line); }

// Reads `{"_id", "text"[, "title"]}` lines into entries, refusing repeated ids here
// (where the line number is known).
Status read_beir_texts(const std::string& path, bool with_title, std::vector<TextEntry>* out) {
  std::string text;
  EMBEDAPT_RETURN_IF_ERROR(read_utf8_file(path, &text));
  std::unordered_set<std::string> ids;
  return for_each_line(text, [&](size_t number, std::string_view line) {
    const std::string at = where(path, number);
    Json object;
    TextEntry entry;
    EMBEDAPT_RETURN_IF_ERROR(parse_object_line(line, at, &object));
    EMBEDAPT_RETURN_IF_ERROR(string_member(object, "_id", true, at, &entry.id));
    EMBEDAPT_RETURN_IF_ERROR(string_member(object, "text", false, at, &entry.text));
    if (with_title && object.contains("title")) {
      std::string title;
      EMBEDAPT_RETURN_IF_ERROR(string_member(object, "title", false, at, &title));
      if (!title.empty()) entry.text = title + " " + entry.text;
    }
    // BEIR corpora may carry a "metadata" object per document; the store
    // checks it when the document is ingested.
    if (auto metadata = object.find("metadata");
        metadata != object.end() && metadata->is_object() && !metadata->empty()) {
      entry.metadata = metadata->dump();
    }
    if (!ids.insert(entry.id).second)
      return Status::InvalidArgument(at + ": duplicate _id \"" + entry.id + "\"");
    out->push_back(std::move(entry));
    return Status::OK();
  });
}

// qrels: "query-id<TAB>corpus-id<TAB>score" after a header line; positive
// scores are relevant. Appends doc ids per query in file order.
Status read_qrels(const std::string& path, std::vector<std::string>* query_order,
                  std::unordered_map<std::string, std::vector<std::string>>* relevant) {
  std::string text;
  EMBEDAPT_RETURN_IF_ERROR(read_utf8_file(path, &text));
  return for_each_line(text, [&](size_t number, std::string_view line) {
    const std::string at = where(path, number);
    std::vector<std::string> fields;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string_view::npos; start = tab + 1) {
      fields.emplace_back(line.substr(start, tab - start));
    }
    fields.emplace_back(line.substr(start));
    if (fields.size() != 3) {
      return Status::InvalidArgument(at + ": expected 3 tab-separated fields, got " +
                                     std::to_string(fields.size()));
    }
    if (number == 1) {
      if (fields[0] != "query-id")
        return Status::InvalidArgument(at + ": missing header query-id, corpus-id, score");
      return Status::OK();
    }
    int score = 0;
    char rest = 0;
    if (std::sscanf(fields[2].c_str(), "%d%c", &score, &rest) != 1) {
      return Status::InvalidArgument(at + ": score \"" + fields[2] + "\" is not an integer");
    }
    if (score <= 0) return Status::OK();
    auto [it, inserted] = relevant->try_emplace(fields[0]);
    if (inserted) query_order->push_back(fields[0]);
    it->second.push_back(fields[1]);
    return Status::OK();
  });
}

// "q" or "d" and the first 16 hex digits of the text's SHA-256.
std::string text_id(char prefix, const std::string& text) { return prefix + hex(sha256(text).substr(0, 8)); }

}  // namespace

Status read_beir(const std::string& dir, const std::string& split, QaDataset* out) {
  QaDataset dataset;
  std::vector<TextEntry> all_queries;
  EMBEDAPT_RETURN_IF_ERROR(read_beir_texts(dir + "/corpus.jsonl", true, &dataset.corpus));
  EMBEDAPT_RETURN_IF_ERROR(read_beir_texts(dir + "/queries.jsonl", false, &all_queries));
  const std::string qrels = dir + "/qrels/" + split + ".tsv";
  std::vector<std::string> judged_order;
  std::unordered_map<std::string, std::vector<std::string>> relevant;
  EMBEDAPT_RETURN_IF_ERROR(read_qrels(qrels, &judged_order, &relevant));

  std::unordered_set<std::string> known;
  for (TextEntry& q : all_queries) {
    known.insert(q.id);
    auto it = relevant.find(q.id);
    if (it == relevant.end()) continue;
    dataset.relevant_docs.push_back({q.id, std::move(it->second)});
    dataset.queries.push_back(std::move(q));
  }
  for (const std::string& id : judged_order) {
    if (known.count(id) == 0)
      return Status::InvalidArgument("query \"" + id + "\" is not in queries.jsonl").WithContext(qrels);
  }
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, dir));
  *out = std::move(dataset);
  return Status::OK();
}

Status read_jsonl_pairs(const std::string& path, QaDataset* out) {
  std::string text;
  EMBEDAPT_RETURN_IF_ERROR(read_utf8_file(path, &text));
  QaDataset dataset;
  std::unordered_map<std::string, size_t> relevance_of;  // query id -> index in relevant_docs
  std::unordered_set<std::string> doc_ids;
  EMBEDAPT_RETURN_IF_ERROR(for_each_line(text, [&](size_t number, std::string_view line) {
    const std::string at = where(path, number);
    Json object;
    std::string query, doc;
    EMBEDAPT_RETURN_IF_ERROR(parse_object_line(line, at, &object));
    EMBEDAPT_RETURN_IF_ERROR(string_member(object, "query", false, at, &query));
    const char* doc_key = object.contains("doc") ? "doc" : "positive";
    if (object.contains("doc") && object.contains("positive")) {
      return Status::InvalidArgument(at + ": both \"doc\" and \"positive\"; give one");
    }
    EMBEDAPT_RETURN_IF_ERROR(string_member(object, doc_key, false, at, &doc));
    // Blank texts would all collapse into one id; say where the first one is.
    if (query.find_first_not_of(" \t\r\n") == std::string::npos)
      return Status::InvalidArgument(at + ": empty query");
    if (doc.find_first_not_of(" \t\r\n") == std::string::npos)
      return Status::InvalidArgument(at + ": empty doc");

    const std::string query_id = text_id('q', query), doc_id = text_id('d', doc);
    if (doc_ids.insert(doc_id).second) dataset.corpus.push_back({doc_id, doc, {}});
    auto [it, inserted] = relevance_of.try_emplace(query_id, dataset.relevant_docs.size());
    if (inserted) {
      dataset.queries.push_back({query_id, query, {}});
      dataset.relevant_docs.push_back({query_id, {}});
    }
    std::vector<std::string>& docs = dataset.relevant_docs[it->second].doc_ids;
    if (std::find(docs.begin(), docs.end(), doc_id) == docs.end()) docs.push_back(doc_id);
    return Status::OK();
  }));
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, path));
  *out = std::move(dataset);
  return Status::OK();
}

}  // namespace embedapt
