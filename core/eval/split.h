// Splitting a dataset's queries in two, e.g. a half whose pairs train an
// adapter and a half that evaluates it (the in-corpus protocol). Both halves
// keep the whole corpus, so they search the same store.
#pragma once

#include <cstdint>

#include "core/eval/dataset.h"

namespace embedapt {

enum class SplitBy {
  kQuery,     // queries shuffled one by one
  kDocument,  // queries sharing a relevant document stay on the same side
};

struct SplitOptions {
  double fraction = 0.5;  // share of the queries that go to the first half, in (0, 1)
  uint64_t seed = 0;
  SplitBy by = SplitBy::kQuery;
};

// Shuffles the queries (or the groups of queries connected by a shared
// relevant document) with SplitMix64(seed) and gives the first half
// round(fraction * queries) of them (by document: groups are added until
// that many queries are reached). Each half lists its queries in the
// original order. The result depends only on the dataset, fraction and seed,
// on every platform. Code::kInvalidArgument if either half would be empty.
Status split_dataset(const QaDataset& dataset, const SplitOptions& options, QaDataset* first,
                     QaDataset* second);

}  // namespace embedapt
