#include "core/common/metrics.h"

#include <algorithm>
#include <cmath>

namespace embedapt {

namespace {

// Binary nDCG: the gain of a relevant result at 0-based rank i is 1 / log2(i + 2).
double discount(size_t rank) { return 1.0 / std::log2(static_cast<double>(rank) + 2.0); }

}  // namespace

RankMetrics score_ranking(const std::vector<bool>& relevant, size_t num_relevant, int k) {
  RankMetrics m;
  const size_t top_k = std::min(relevant.size(), static_cast<size_t>(std::max(k, 0)));
  const size_t top_10 = std::min<size_t>(relevant.size(), 10);

  size_t found_in_k = 0;
  for (size_t i = 0; i < top_k; ++i) {
    if (!relevant[i]) continue;
    if (found_in_k == 0) {
      m.hit = 1;
      m.mrr = 1.0 / static_cast<double>(i + 1);
    }
    ++found_in_k;
  }

  size_t found_in_10 = 0;
  double dcg = 0;
  for (size_t i = 0; i < top_10; ++i) {
    if (!relevant[i]) continue;
    ++found_in_10;
    dcg += discount(i);
  }
  double ideal_dcg = 0;
  for (size_t i = 0; i < std::min<size_t>(num_relevant, 10); ++i) ideal_dcg += discount(i);

  if (num_relevant > 0) {
    m.ndcg_at_10 = dcg / ideal_dcg;
    m.recall_at_k = static_cast<double>(found_in_k) / static_cast<double>(num_relevant);
    m.recall_at_10 = static_cast<double>(found_in_10) / static_cast<double>(num_relevant);
  }
  return m;
}

}  // namespace embedapt
