// Loading a dataset into a store: its corpus as searchable records and, for
// the trainer, its (query, relevant document) pairs as the query log.
#pragma once

#include <cstddef>

#include "core/eval/dataset.h"
#include "embedapt/embedder.h"
#include "embedapt/store.h"

namespace embedapt {

struct IngestOptions {
  bool log_pairs = true;       // record every (query, relevant document) in the query log
  size_t batch_size = 128;     // texts embedded and records upserted at a time
  bool show_progress = false;  // progress bar on stderr
};

struct IngestCounts {
  size_t documents = 0;  // records upserted
  size_t pairs = 0;      // (query, document) pairs logged
};

// Records the embedder's identity in the store (refused if the store holds
// another embedder's vectors), embeds the corpus on the document side and
// upserts it in batches (id = doc id, payload = the chunk text, metadata =
// the document's); then, with
// log_pairs, embeds the queries on the query side and logs each with
// Store::log_query (no results) and each relevant doc with Store::log_hit.
// Re-ingesting the same dataset is harmless: upserts replace, and the log
// collapses repeated pairs. On error, the batches already written stay.
Status ingest_dataset(Store& store, Embedder& embedder, const QaDataset& dataset,
                      const IngestOptions& options, IngestCounts* counts);

}  // namespace embedapt
