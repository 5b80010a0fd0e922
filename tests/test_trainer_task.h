// A synthetic retrieval task with a known answer, shared by the trainer and
// adapter tests.
#pragma once

#include <cmath>
#include <random>
#include <string>

#include "core/adapt/trainer.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"

namespace embedapt::test {

constexpr int kDim = 16;

inline void normalize(float* v, int dim) {
  double s = 0;
  for (int i = 0; i < dim; ++i) s += double(v[i]) * v[i];
  for (int i = 0; i < dim; ++i) v[i] = static_cast<float>(v[i] / std::sqrt(s));
}

// 120 documents, 3 queries each: a query is its document plus noise, seen
// through a fixed distortion A (what a mismatched query encoder does). The
// inverse of A is the answer; the base (identity) ranks poorly.
inline TrainingSet distorted_task(bool random_labels) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  TrainingSet data;
  const size_t docs = 120;
  data.docs = {docs, kDim, std::vector<float>(docs * kDim)};
  for (size_t i = 0; i < docs; ++i) {
    for (int c = 0; c < kDim; ++c) data.docs.data[i * kDim + c] = normal(rng);
    normalize(&data.docs.data[i * kDim], kDim);
  }
  std::vector<float> a(kDim * kDim);
  for (int r = 0; r < kDim; ++r) {
    for (int c = 0; c < kDim; ++c) a[r * kDim + c] = (r == c ? 1.0f : 0.0f) + 0.45f * normal(rng);
  }
  std::uniform_int_distribution<size_t> any_doc(0, docs - 1);
  for (size_t d = 0; d < docs; ++d) {
    for (int k = 0; k < 3; ++k) {
      float clean[kDim], seen[kDim] = {};
      for (int c = 0; c < kDim; ++c) clean[c] = data.docs.data[d * kDim + c] + 0.35f * normal(rng);
      for (int r = 0; r < kDim; ++r) {
        for (int c = 0; c < kDim; ++c) seen[r] += a[r * kDim + c] * clean[c];
      }
      data.queries.data.insert(data.queries.data.end(), seen, seen + kDim);
      data.relevant.push_back({random_labels ? any_doc(rng) : d});
    }
  }
  data.queries.rows = data.relevant.size();
  data.queries.cols = kDim;
  return data;
}

// Stores the task's documents (as "doc<row>") and logs its query/hit pairs.
inline void fill_store(Store* store, const TrainingSet& task, const std::string& embedder) {
  REQUIRE(store->set_embedder(embedder).ok());
  for (size_t i = 0; i < task.docs.rows; ++i) {
    REQUIRE(store->upsert("doc" + std::to_string(i), task.docs.row(i), task.docs.cols, "").ok());
  }
  for (size_t q = 0; q < task.queries.rows; ++q) {
    uint64_t id = 0;
    REQUIRE(store->log_query(task.queries.row(q), task.queries.cols, {}, &id).ok());
    for (size_t d : task.relevant[q]) REQUIRE(store->log_hit(id, "doc" + std::to_string(d)).ok());
  }
  REQUIRE(store->flush().ok());
}

}  // namespace embedapt::test
