// The generated questions as LlamaIndex-style datasets: every chunk is a
// corpus entry, every question a query whose one relevant document is the
// chunk it was asked about.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/eval/dataset.h"
#include "core/generate/chunker.h"
#include "embedapt/status.h"

namespace embedapt {

// Query ids are "<chunk id>-q<k>" (k from 1), stable like the chunk ids.
// With val_fraction 0 everything goes to *train and *val is left empty.
// Otherwise whole documents are split: round(val_fraction x documents),
// at least one and at most all but one, chosen by a shuffle seeded with
// `seed`, go to *val with their chunks and questions. InvalidArgument when
// val_fraction is outside [0, 1) or a split is asked of a single document.
Status build_datasets(const std::vector<Chunk>& chunks,
                      const std::map<std::string, std::vector<std::string>>& questions, double val_fraction,
                      uint64_t seed, QaDataset* train, QaDataset* val);

}  // namespace embedapt
