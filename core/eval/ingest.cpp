#include "core/eval/ingest.h"

#include <algorithm>
#include <unordered_map>

#include "core/common/progress.h"

namespace embedapt {

namespace {

// Embeds entries[start, start + count) into *vectors (replacing its content).
Status embed_range(Embedder& embedder, const std::vector<TextEntry>& entries, size_t start, size_t count,
                   EmbedSide side, std::vector<float>* vectors) {
  std::vector<std::string> texts;
  texts.reserve(count);
  for (size_t i = start; i < start + count; ++i) texts.push_back(entries[i].text);
  vectors->clear();
  EMBEDAPT_RETURN_IF_ERROR(embedder.embed(texts, side, vectors));
  if (vectors->size() != count * static_cast<size_t>(embedder.dim())) {
    return Status::Internal("the embedder returned " + std::to_string(vectors->size()) + " floats for " +
                            std::to_string(count) + " texts");
  }
  return Status::OK();
}

}  // namespace

Status ingest_dataset(Store& store, Embedder& embedder, const QaDataset& dataset,
                      const IngestOptions& options, IngestCounts* counts) {
  if (options.batch_size < 1) return Status::InvalidArgument("ingest: batch_size must be at least 1");
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, "ingest"));
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store.stats(&stats));
  const size_t dim = static_cast<size_t>(embedder.dim());
  if (stats.dim != embedder.dim()) {
    return Status::FailedPrecondition("the store holds " + std::to_string(stats.dim) +
                                      "-d vectors but the embedder makes " + std::to_string(dim) + "-d ones");
  }
  EMBEDAPT_RETURN_IF_ERROR(store.set_embedder(embedder.identity()));

  const size_t work = dataset.corpus.size() + (options.log_pairs ? dataset.queries.size() : 0);
  Progress progress("ingesting", work, options.show_progress);
  IngestCounts done;
  std::vector<float> vectors;
  std::vector<Record> records;
  for (size_t start = 0; start < dataset.corpus.size(); start += options.batch_size) {
    const size_t count = std::min(options.batch_size, dataset.corpus.size() - start);
    EMBEDAPT_RETURN_IF_ERROR(
        embed_range(embedder, dataset.corpus, start, count, EmbedSide::kDocument, &vectors)
            .WithContext("embedding the corpus"));
    records.clear();
    for (size_t i = 0; i < count; ++i) {
      const TextEntry& doc = dataset.corpus[start + i];
      records.push_back({doc.id, {vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim}, doc.text});
    }
    EMBEDAPT_RETURN_IF_ERROR(store.upsert_batch(records));
    done.documents += count;
    progress.add(count);
  }

  if (options.log_pairs) {
    std::unordered_map<std::string, const Relevance*> relevance;
    for (const Relevance& r : dataset.relevant_docs) relevance[r.query_id] = &r;
    for (size_t start = 0; start < dataset.queries.size(); start += options.batch_size) {
      const size_t count = std::min(options.batch_size, dataset.queries.size() - start);
      EMBEDAPT_RETURN_IF_ERROR(
          embed_range(embedder, dataset.queries, start, count, EmbedSide::kQuery, &vectors)
              .WithContext("embedding the queries"));
      for (size_t i = 0; i < count; ++i) {
        uint64_t query_id = 0;
        EMBEDAPT_RETURN_IF_ERROR(store.log_query(vectors.data() + i * dim, dim, {}, &query_id));
        for (const std::string& doc : relevance.at(dataset.queries[start + i].id)->doc_ids) {
          EMBEDAPT_RETURN_IF_ERROR(store.log_hit(query_id, doc));
          ++done.pairs;
        }
      }
      progress.add(count);
    }
  }
  if (counts != nullptr) *counts = done;
  return Status::OK();
}

}  // namespace embedapt
