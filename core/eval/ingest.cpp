#include "core/eval/ingest.h"

#include <algorithm>
#include <future>
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

// Runs `write` on every batch of `entries`' vectors, embedding the next batch
// on a worker thread meanwhile: the store's writes (RocksDB, the FAISS add)
// hide behind the encoder instead of adding to it. One embed() call at a time,
// as the Embedder contract asks. `write(start, count, vectors)` stores
// entries[start, start + count).
template <typename Write>
Status embed_and_write(Embedder& embedder, const std::vector<TextEntry>& entries, size_t batch_size,
                       EmbedSide side, const char* what, Write write) {
  const size_t n = entries.size();
  auto embed = [&](size_t start, std::vector<float>* out) {
    return embed_range(embedder, entries, start, std::min(batch_size, n - start), side, out)
        .WithContext(what);
  };
  std::vector<float> current, next;
  if (n > 0) EMBEDAPT_RETURN_IF_ERROR(embed(0, &current));
  for (size_t start = 0; start < n; start += batch_size) {
    std::future<Status> embedding;
    if (start + batch_size < n) embedding = std::async(std::launch::async, embed, start + batch_size, &next);
    Status written = write(start, std::min(batch_size, n - start), current);
    Status embedded = embedding.valid() ? embedding.get() : Status::OK();  // joined before returning
    EMBEDAPT_RETURN_IF_ERROR(written);
    EMBEDAPT_RETURN_IF_ERROR(embedded);
    std::swap(current, next);
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
  std::vector<Record> records;
  EMBEDAPT_RETURN_IF_ERROR(embed_and_write(
      embedder, dataset.corpus, options.batch_size, EmbedSide::kDocument, "embedding the corpus",
      [&](size_t start, size_t count, const std::vector<float>& vectors) {
        records.clear();
        for (size_t i = 0; i < count; ++i) {
          const TextEntry& doc = dataset.corpus[start + i];
          records.push_back(
              {doc.id, {vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim}, doc.text, doc.metadata});
        }
        EMBEDAPT_RETURN_IF_ERROR(store.upsert_batch(records));
        done.documents += count;
        progress.add(count);
        return Status::OK();
      }));

  if (options.log_pairs) {
    std::unordered_map<std::string, const Relevance*> relevance;
    for (const Relevance& r : dataset.relevant_docs) relevance[r.query_id] = &r;
    EMBEDAPT_RETURN_IF_ERROR(embed_and_write(
        embedder, dataset.queries, options.batch_size, EmbedSide::kQuery, "embedding the queries",
        [&](size_t start, size_t count, const std::vector<float>& vectors) {
          for (size_t i = 0; i < count; ++i) {
            uint64_t query_id = 0;
            EMBEDAPT_RETURN_IF_ERROR(store.log_query(vectors.data() + i * dim, dim, {}, &query_id));
            for (const std::string& doc : relevance.at(dataset.queries[start + i].id)->doc_ids) {
              EMBEDAPT_RETURN_IF_ERROR(store.log_hit(query_id, doc));
              ++done.pairs;
            }
          }
          progress.add(count);
          return Status::OK();
        }));
  }
  if (counts != nullptr) *counts = done;
  return Status::OK();
}

}  // namespace embedapt
