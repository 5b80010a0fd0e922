// Retrieval metrics for one query, computed the way the seed computes them,
// shared by the evaluator and the trainer's model selection.
#pragma once

#include <cstddef>
#include <vector>

namespace embedapt {

struct RankMetrics {
  double hit = 0;           // 1 if any relevant document is in the top k
  double mrr = 0;           // 1 / rank of the first relevant document in the top k, else 0
  double ndcg_at_10 = 0;    // binary-relevance nDCG over the top 10
  double recall_at_k = 0;   // relevant documents in the top k / all relevant
  double recall_at_10 = 0;  // relevant documents in the top 10 / all relevant
};

// `relevant[i]` says whether the i-th result (best first) is relevant;
// `num_relevant` counts all relevant documents of the query (found or not).
RankMetrics score_ranking(const std::vector<bool>& relevant, size_t num_relevant, int k);

}  // namespace embedapt
