#include "core/eval/split.h"

#include <cmath>
#include <numeric>
#include <unordered_map>

#include "core/eval/random.h"

namespace embedapt {

namespace {

// Union-find over query indices.
class Groups {
 public:
  explicit Groups(size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
  size_t root(size_t i) {
    while (parent_[i] != i) i = parent_[i] = parent_[parent_[i]];
    return i;
  }
  void join(size_t a, size_t b) { parent_[root(a)] = root(b); }

 private:
  std::vector<size_t> parent_;
};

// Queries as groups of indices into dataset.queries: singletons by query;
// connected components of "shares a relevant document" by document. Groups
// are listed in the order of their first query.
std::vector<std::vector<size_t>> group_queries(const QaDataset& dataset, SplitBy by) {
  const size_t n = dataset.queries.size();
  Groups groups(n);
  if (by == SplitBy::kDocument) {
    std::unordered_map<std::string, size_t> index_of;
    for (size_t i = 0; i < n; ++i) index_of[dataset.queries[i].id] = i;
    std::unordered_map<std::string, size_t> first_query_of_doc;
    for (const Relevance& r : dataset.relevant_docs) {
      const size_t query = index_of.at(r.query_id);
      for (const std::string& doc : r.doc_ids) {
        auto [it, inserted] = first_query_of_doc.emplace(doc, query);
        if (!inserted) groups.join(query, it->second);
      }
    }
  }
  std::vector<std::vector<size_t>> out;
  std::unordered_map<size_t, size_t> group_of_root;
  for (size_t i = 0; i < n; ++i) {
    auto [it, inserted] = group_of_root.emplace(groups.root(i), out.size());
    if (inserted) out.emplace_back();
    out[it->second].push_back(i);
  }
  return out;
}

// The dataset restricted to the queries marked in `keep`, with the whole corpus.
QaDataset subset(const QaDataset& dataset, const std::vector<bool>& keep) {
  QaDataset out;
  out.corpus = dataset.corpus;
  out.mode = dataset.mode;
  std::unordered_map<std::string, bool> kept;
  for (size_t i = 0; i < dataset.queries.size(); ++i) {
    kept[dataset.queries[i].id] = keep[i];
    if (keep[i]) out.queries.push_back(dataset.queries[i]);
  }
  for (const Relevance& r : dataset.relevant_docs) {
    if (kept.at(r.query_id)) out.relevant_docs.push_back(r);
  }
  return out;
}

}  // namespace

Status split_dataset(const QaDataset& dataset, const SplitOptions& options, QaDataset* first,
                     QaDataset* second) {
  if (!(options.fraction > 0 && options.fraction < 1)) {
    return Status::InvalidArgument("fraction: must be in (0, 1), both halves non-empty, got " +
                                   std::to_string(options.fraction));
  }
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, "split"));
  std::vector<std::vector<size_t>> groups = group_queries(dataset, options.by);
  SplitMix64 rng(options.seed);
  rng.shuffle(&groups);

  const size_t n = dataset.queries.size();
  const auto target = static_cast<size_t>(std::llround(options.fraction * static_cast<double>(n)));
  std::vector<bool> in_first(n, false);
  size_t taken = 0;
  for (const std::vector<size_t>& group : groups) {
    if (taken >= target) break;
    for (size_t i : group) in_first[i] = true;
    taken += group.size();
  }
  if (taken == 0 || taken == n) {
    return Status::InvalidArgument(
        "split: " + std::to_string(n) + " queries in " + std::to_string(groups.size()) +
        " groups leave one half empty at fraction " + std::to_string(options.fraction));
  }
  *first = subset(dataset, in_first);
  in_first.flip();
  *second = subset(dataset, in_first);
  return Status::OK();
}

}  // namespace embedapt
