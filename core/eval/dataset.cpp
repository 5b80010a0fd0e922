#include "core/eval/dataset.h"

#include <filesystem>
#include <unordered_set>

#include "core/common/utf8.h"

namespace embedapt {

namespace {

bool is_blank(const std::string& text) { return text.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

std::string quoted(const std::string& id) { return "\"" + id + "\""; }

// Checks one list of (id, text) entries; `what` is "query" or "document".
Status validate_entries(const std::vector<TextEntry>& entries, const char* what, bool allow_blank,
                        const std::string& source, std::unordered_set<std::string>* ids) {
  for (const TextEntry& e : entries) {
    size_t bad = 0;
    if (e.id.empty()) return Status::InvalidArgument(source + ": a " + what + " has an empty id");
    if (!is_valid_utf8(e.id, &bad)) {
      return Status::InvalidArgument(source + ": a " + what + " id is not valid UTF-8");
    }
    if (!ids->insert(e.id).second) {
      return Status::InvalidArgument(source + ": duplicate " + what + " id " + quoted(e.id));
    }
    if (!is_valid_utf8(e.text, &bad)) {
      return Status::InvalidArgument(source + ": " + what + " " + quoted(e.id) +
                                     ": text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
    }
    if (!allow_blank && is_blank(e.text)) {
      return Status::InvalidArgument(source + ": " + what + " " + quoted(e.id) + ": empty text");
    }
  }
  return Status::OK();
}

}  // namespace

Status validate_dataset(const QaDataset& dataset, const std::string& source) {
  if (dataset.queries.empty()) return Status::InvalidArgument(source + ": no queries");
  std::unordered_set<std::string> query_ids, doc_ids;
  EMBEDAPT_RETURN_IF_ERROR(validate_entries(dataset.queries, "query", false, source, &query_ids));
  EMBEDAPT_RETURN_IF_ERROR(validate_entries(dataset.corpus, "document", true, source, &doc_ids));

  std::unordered_set<std::string> judged;
  for (const Relevance& r : dataset.relevant_docs) {
    const std::string where = source + ": relevant_docs " + quoted(r.query_id);
    if (query_ids.count(r.query_id) == 0) return Status::InvalidArgument(where + ": no such query");
    if (!judged.insert(r.query_id).second) return Status::InvalidArgument(where + ": listed twice");
    if (r.doc_ids.empty()) return Status::InvalidArgument(where + ": no relevant documents");
    std::unordered_set<std::string> seen;
    for (const std::string& doc : r.doc_ids) {
      if (doc_ids.count(doc) == 0)
        return Status::InvalidArgument(where + ": no such document " + quoted(doc));
      if (!seen.insert(doc).second)
        return Status::InvalidArgument(where + ": document " + quoted(doc) + " listed twice");
    }
  }
  for (const TextEntry& q : dataset.queries) {
    if (judged.count(q.id) == 0) {
      return Status::InvalidArgument(source + ": query " + quoted(q.id) + " has no relevant_docs entry");
    }
  }
  return Status::OK();
}

std::vector<std::string> dataset_warnings(const QaDataset& dataset) {
  std::vector<std::string> warnings;
  for (const TextEntry& doc : dataset.corpus) {
    if (is_blank(doc.text)) warnings.push_back("document " + quoted(doc.id) + " has an empty text");
  }
  return warnings;
}

Status read_dataset(const std::string& path, QaDataset* out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return read_beir(path, "test", out);
  const std::string suffix = ".jsonl";
  if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return read_jsonl_pairs(path, out);
  }
  return read_llamaindex_json(path, out);
}

}  // namespace embedapt
