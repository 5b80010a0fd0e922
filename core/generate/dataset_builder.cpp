#include "core/generate/dataset_builder.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/eval/random.h"

namespace embedapt {

namespace {

void add_chunk(const Chunk& chunk, const std::map<std::string, std::vector<std::string>>& questions,
               QaDataset* dataset) {
  dataset->corpus.push_back({chunk.id, chunk.text, {}});
  auto it = questions.find(chunk.id);
  if (it == questions.end()) return;
  for (size_t k = 0; k < it->second.size(); ++k) {
    std::string query_id = chunk.id + "-q" + std::to_string(k + 1);
    dataset->queries.push_back({query_id, it->second[k], {}});
    dataset->relevant_docs.push_back({query_id, {chunk.id}});
  }
}

}  // namespace

Status build_datasets(const std::vector<Chunk>& chunks,
                      const std::map<std::string, std::vector<std::string>>& questions, double val_fraction,
                      uint64_t seed, QaDataset* train, QaDataset* val) {
  if (!(val_fraction >= 0 && val_fraction < 1)) {
    return Status::InvalidArgument("the validation fraction must be in [0, 1), got " +
                                   std::to_string(val_fraction));
  }
  *train = QaDataset{};
  *val = QaDataset{};
  std::set<std::string> val_documents;
  if (val_fraction > 0) {
    std::vector<std::string> documents;
    for (const Chunk& chunk : chunks) {
      if (std::find(documents.begin(), documents.end(), chunk.document) == documents.end()) {
        documents.push_back(chunk.document);
      }
    }
    if (documents.size() < 2) {
      return Status::InvalidArgument(
          "a validation split is by document and needs at least two documents, got " +
          std::to_string(documents.size()));
    }
    auto count = static_cast<size_t>(std::lround(val_fraction * static_cast<double>(documents.size())));
    count = std::clamp<size_t>(count, 1, documents.size() - 1);
    SplitMix64 random(seed);
    random.shuffle(&documents);
    val_documents.insert(documents.begin(), documents.begin() + static_cast<std::ptrdiff_t>(count));
  }
  for (const Chunk& chunk : chunks)
    add_chunk(chunk, questions, val_documents.count(chunk.document) ? val : train);
  return Status::OK();
}

}  // namespace embedapt
