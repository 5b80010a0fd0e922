// HnswSearch: the store's search of a FAISS HNSW graph.
//
// FAISS builds and stores the graph; the store walks it itself. FAISS 1.7.3's
// own search keeps its candidates in a bounded list whose pop and count are
// linear scans of efSearch entries (O(ef^2) a walk, though at 100k x 384 the
// vectors it waits for still outweigh the scans up to ef 768: hnsw_bench,
// docs/benchmarks.md); its binary-heap branch is an index-wide flag (unsafe
// while other threads search), reads the index's efSearch, not the call's,
// and ignores ID selectors. This walk is the binary-heap one, with
// a per-call ef and an allow-list: descend greedily through the upper levels,
// then go best-first through level 0 with a min-heap of candidates and a
// max-heap of the best ef results, stopping once the nearest candidate is
// farther than the worst result and the results are full. It prefetches the
// vectors it is about to score (flat storage): at 100k x 384 most of a walk's
// time is waiting for them.
//
// A vector the allow-list rejects is still walked through (its neighbours may
// be allowed) but never becomes a result, and the results, hence the stop
// bound, hold allowed vectors only: a filter does not shrink the walk's view
// of the answer, it lengthens the walk.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "index/vector_index.h"

namespace faiss {
struct IndexHNSW;
struct DistanceComputer;
struct VisitedTable;
}  // namespace faiss

namespace embedapt {

// One thread's searcher over one index (it holds the query's distance state
// and a visited table as large as the index): make one per thread. The index
// must outlive it and stay unchanged while it searches.
class HnswSearch {
 public:
  // Throws faiss::FaissException if the index's storage cannot compute
  // distances to a query.
  explicit HnswSearch(const faiss::IndexHNSW& index);
  ~HnswSearch();
  HnswSearch(const HnswSearch&) = delete;
  HnswSearch& operator=(const HnswSearch&) = delete;

  // The up to k vectors nearest to `query` (dim floats) that `allowed`
  // admits, best first, into *out as {position in the index, score}: the
  // score in the index's metric (L2 distance, or inner product), ties broken
  // by position. `allowed` is a bitmap over positions (bit p % 8 of byte
  // p / 8), or nullptr to admit every vector. The walk keeps the best
  // max(ef, k) admitted vectors; it may return fewer than k when the part of
  // the graph it reaches holds fewer admitted ones.
  void search(const float* query, size_t k, size_t ef, const uint8_t* allowed, std::vector<Neighbor>* out);

 private:
  // (distance, position), smaller distances nearer: inner products negated.
  using Entry = std::pair<float, int32_t>;

  const faiss::IndexHNSW& index_;
  const float sign_;  // -1 for inner products, so that smaller is nearer
  std::unique_ptr<faiss::DistanceComputer> distance_;
  std::unique_ptr<faiss::VisitedTable> visited_;
  // Heaps (std::push_heap), kept across calls so a batch allocates them
  // once: the candidates nearest first, the results farthest first.
  std::vector<Entry> candidates_;
  std::vector<Entry> results_;
  std::vector<int32_t> fresh_;  // the unvisited neighbours of the node being expanded
  // The storage's vectors when they are stored flat (HNSW32, HNSW32_SQ8, ...),
  // to prefetch them; nullptr for other storage.
  const uint8_t* codes_ = nullptr;
  size_t code_size_ = 0;
};

}  // namespace embedapt
