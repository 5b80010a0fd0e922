#include "index/hnsw_search.h"

#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>

#include <algorithm>
#include <functional>

namespace embedapt {
namespace {

constexpr size_t kCacheLine = 64;

}  // namespace

HnswSearch::HnswSearch(const faiss::IndexHNSW& index)
    : index_(index),
      sign_(index.storage->metric_type == faiss::METRIC_INNER_PRODUCT ? -1.0f : 1.0f),
      distance_(index.storage->get_distance_computer()),
      visited_(std::make_unique<faiss::VisitedTable>(static_cast<int>(index.ntotal))) {
  if (const auto* flat = dynamic_cast<const faiss::IndexFlatCodes*>(index.storage)) {
    codes_ = flat->codes.data();
    code_size_ = flat->code_size;
  }
}

HnswSearch::~HnswSearch() = default;

void HnswSearch::search(const float* query, size_t k, size_t ef, const uint8_t* allowed,
                        std::vector<Neighbor>* out) {
  out->clear();
  const faiss::HNSW& graph = index_.hnsw;
  if (k == 0 || graph.entry_point < 0) return;
  ef = std::max(ef, k);
  faiss::DistanceComputer& distance = *distance_;
  distance.set_query(query);
  auto admitted = [allowed](int32_t v) { return allowed == nullptr || ((allowed[v >> 3] >> (v & 7)) & 1); };

  // Upper levels: move to the nearest neighbour until none is nearer.
  int32_t nearest = graph.entry_point;
  float nearest_distance = sign_ * distance(nearest);
  for (int level = graph.max_level; level >= 1; --level) {
    for (int32_t from = -1; from != nearest;) {
      from = nearest;
      size_t begin = 0, end = 0;
      graph.neighbor_range(from, level, &begin, &end);
      for (size_t i = begin; i < end && graph.neighbors[i] >= 0; ++i) {
        const int32_t v = graph.neighbors[i];
        const float d = sign_ * distance(v);
        if (d < nearest_distance) {
          nearest = v;
          nearest_distance = d;
        }
      }
    }
  }

  // Level 0, best first.
  const std::greater<Entry> nearer_on_top;
  faiss::VisitedTable& visited = *visited_;
  candidates_.clear();
  results_.clear();
  visited.set(nearest);
  candidates_.emplace_back(nearest_distance, nearest);
  if (admitted(nearest)) results_.emplace_back(nearest_distance, nearest);
  while (!candidates_.empty()) {
    const Entry current = candidates_.front();
    if (results_.size() == ef && current.first > results_.front().first) break;
    std::pop_heap(candidates_.begin(), candidates_.end(), nearer_on_top);
    candidates_.pop_back();
    size_t begin = 0, end = 0;
    graph.neighbor_range(current.second, 0, &begin, &end);
    // Each new neighbour's vector lies somewhere in memory no cache holds: ask
    // for the first line of every one before scoring any, and for the rest of
    // the next one's lines while one is scored, so that memory and the
    // arithmetic overlap.
    fresh_.clear();
    for (size_t i = begin; i < end && graph.neighbors[i] >= 0; ++i) {
      const int32_t v = graph.neighbors[i];
      if (visited.get(v)) continue;
      visited.set(v);
      fresh_.push_back(v);
      if (codes_ != nullptr) __builtin_prefetch(codes_ + size_t(v) * code_size_);
    }
    for (size_t j = 0; j < fresh_.size(); ++j) {
      const int32_t v = fresh_[j];
      if (codes_ != nullptr && j + 1 < fresh_.size()) {
        const uint8_t* next = codes_ + size_t(fresh_[j + 1]) * code_size_;
        for (size_t line = kCacheLine; line < code_size_; line += kCacheLine) __builtin_prefetch(next + line);
      }
      const float d = sign_ * distance(v);
      if (results_.size() == ef && d >= results_.front().first) continue;
      candidates_.emplace_back(d, v);
      std::push_heap(candidates_.begin(), candidates_.end(), nearer_on_top);
      if (!admitted(v)) continue;
      results_.emplace_back(d, v);
      std::push_heap(results_.begin(), results_.end());
      if (results_.size() > ef) {
        std::pop_heap(results_.begin(), results_.end());
        results_.pop_back();
      }
    }
  }
  visited.advance();

  std::sort(results_.begin(), results_.end());
  const size_t found = std::min(k, results_.size());
  out->reserve(found);
  for (size_t i = 0; i < found; ++i) out->push_back({results_[i].second, sign_ * results_[i].first});
}

}  // namespace embedapt
