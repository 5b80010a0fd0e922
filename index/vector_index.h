// VectorIndex: the FAISS index a store searches, keyed by internal ids.
//
// It holds vectors already in index space (transformed by a document-side
// adapter and normalised for cosine: the store does that). Removal leaves a
// tombstone that searches filter out (HNSW cannot remove in FAISS 1.7.3, and
// compacting a Flat index per removal costs O(n)); purge() or a rebuild from
// RocksDB clears them in one pass.
//
// Index types that need training (IVF, PQ) start as a "staging" flat index and
// are trained on the staged vectors once there are enough of them, so a new
// store is searchable, exactly, from its first vector.
//
// Thread safety: const methods may run concurrently; mutations need exclusion.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "embedapt/status.h"
#include "embedapt/store.h"

namespace faiss {
struct Index;
struct SearchParameters;
struct IndexHNSW;
template <typename IndexT>
struct IndexIDMapTemplate;
using IndexIDMap = IndexIDMapTemplate<Index>;
}  // namespace faiss

namespace embedapt {

// The sum of the squares of the `dim` floats at `v`, in double: finite
// exactly when every component is, as no float's square overflows a double.
double sum_of_squares(const float* v, size_t dim);

// Scales the `dim` floats at `v` (not all zero) to unit length: how the store
// puts every vector it indexes or searches under the cosine metric into index
// space (sum_of_squares, then one float scale).
void normalise_vector(float* v, size_t dim);
// The same into `out` (may be `v`), given `squares`, v's sum_of_squares: a
// query checked by its sum is normalised without a second one.
void normalise_vector(const float* v, size_t dim, double squares, float* out);

// What an exception from FAISS says, without the C++ function and source
// line FAISS starts its messages with ("Error in <signature> at
// faiss/index_factory.cpp:879: "), which mean nothing to a user; any other
// exception's what() as it is.
std::string faiss_message(const std::exception& e);

class HnswSearch;

struct Neighbor {
  int64_t id;
  float score;
};

// The ids a filtered search may return: those listed, or with `complement`
// every id except those listed. `ids` is sorted and holds no duplicates.
struct IdSet {
  std::vector<int64_t> ids;
  bool complement = false;
};

class VectorIndex {
 public:
  // An empty index of the type `spec` names; kInvalidArgument if FAISS
  // rejects the spec.
  static Status create(int dim, Metric metric, const std::string& spec, std::unique_ptr<VectorIndex>* out);
  // Reads back what serialize() wrote; kCorruption if it does not parse or
  // does not match dim/metric.
  static Status deserialize(std::string_view bytes, int dim, Metric metric, const std::string& spec,
                            std::unique_ptr<VectorIndex>* out);

  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  Status serialize(std::string* out) const;

  // Adds `n` vectors (n * dim floats) under `ids`, which must ascend and be
  // greater than every id added before: a filtered search finds a vector by
  // binary search on its id. kInvalidArgument otherwise. Any other failure
  // (FAISS, std::bad_alloc, ...) comes back as kInternal, after which the
  // index may hold part of the batch: the owner must rebuild it.
  Status add(size_t n, const float* vectors, const int64_t* ids);
  // Fault injection for tests: while positive, each add() fails with
  // std::bad_alloc (thrown inside it, as FAISS would) and decrements it.
  static std::atomic<int> failing_adds_for_testing;
  // Tombstones `id`, which must be live in the index.
  void remove(int64_t id);
  // Removes tombstoned vectors for good; kNotSupported unless the storage is
  // flat (HNSW cannot remove, IVF under an id map renumbers wrongly), in which
  // case the owner rebuilds.
  Status purge();

  // The k nearest live vectors of each of the n queries, best first; with
  // `allowed`, only among those ids, and then never fewer than min(k, allowed
  // live vectors): IVF is searched with a FAISS IDSelector (probing more
  // lists while a query comes up short); HNSW is walked by HnswSearch
  // (index/hnsw_search.h), which passes through rejected vectors, and a
  // small subset or a query the walk left short is scored exactly.
  // options.ef_search and options.nprobe apply as SearchOptions documents;
  // kInvalidArgument if the index has no such knob or the value is out of
  // range. options.filter is not looked at: `allowed` is its answer.
  Status search(const float* queries, size_t n, const SearchOptions& options, const IdSet* allowed,
                std::vector<std::vector<Neighbor>>* out) const;

  int dim() const { return dim_; }
  size_t live_count() const;
  size_t tombstone_count() const { return tombstones_.size(); }
  bool staging() const { return staging_; }
  // Under the cosine metric (inner products of unit vectors): whether a query
  // scaled by c > 0 gets every score times c from this index, and so the same
  // hits in the same order. True of Flat, IVF and HNSW indexes, whose scores
  // are inner products with the query or sums of them; false of the rest
  // (a PCA transform first subtracts a mean), and under L2.
  bool scores_scale_with_query() const { return scores_scale_with_query_; }
  // Whether a search of n queries (filtered or not) runs on the calling
  // thread's OpenMP threads: a batch does, except an unfiltered exact one of
  // 20 or more, which FAISS hands to BLAS (OneThreadFor in vector_index.cpp).
  // Work around such a search may share them: they are awake and spinning.
  bool searches_in_parallel(size_t n, bool filtered) const;
  // The ids of the live vectors, unordered.
  std::vector<int64_t> live_ids() const;

 private:
  VectorIndex(int dim, Metric metric, std::string spec);
  Status train_from_staging(size_t n, const float* vectors, const int64_t* ids);
  Status check_knobs(const SearchOptions& options) const;
  // FAISS search parameters for an IVF inner index carrying nprobe; nullptr
  // for index types that take none.
  std::unique_ptr<faiss::SearchParameters> search_parameters(const SearchOptions& options) const;
  // The allowed live vectors as a bitmap over positions (bit p % 8 of byte
  // p / 8), and in *matches how many there are.
  std::vector<uint8_t> allowed_bitmap(const IdSet& allowed, size_t* matches) const;
  Status search_hnsw(const faiss::IndexHNSW& hnsw, const float* queries, size_t n,
                     const SearchOptions& options, const IdSet* allowed,
                     std::vector<std::vector<Neighbor>>* out) const;
  Status search_all(const float* queries, size_t n, const SearchOptions& options,
                    std::vector<std::vector<Neighbor>>* out) const;
  Status search_subset(const float* queries, size_t n, const SearchOptions& options, const IdSet& allowed,
                       std::vector<std::vector<Neighbor>>* out) const;
  // Scores every position set in `bitmap` against each query (the queries
  // listed in `which`) and keeps the best `want`.
  Status search_exact(const float* queries, const std::vector<size_t>& which, size_t want,
                      const std::vector<uint8_t>& bitmap, std::vector<std::vector<Neighbor>>* out) const;
  // An idle searcher of `hnsw` (the inner index), or a new one, which throws
  // as HnswSearch's constructor does; keep_searcher() hands it back.
  std::unique_ptr<HnswSearch> take_searcher(const faiss::IndexHNSW& hnsw) const;
  void keep_searcher(std::unique_ptr<HnswSearch> searcher) const;
  // The position of `id` in the FAISS index, -1 if absent.
  int64_t position(int64_t id) const;

  const int dim_;
  const Metric metric_;
  const std::string spec_;
  // What the spec builds, known before training: an HNSW graph, or an IVF
  // index with this many lists (0: not IVF).
  bool hnsw_ = false;
  size_t nlist_ = 0;
  bool scores_scale_with_query_ = false;
  size_t train_threshold_ = 0;  // staged vectors needed to train; 0 if no training
  bool staging_ = false;
  std::unique_ptr<faiss::IndexIDMap> index_;
  std::unordered_set<int64_t> tombstones_;
  // Searchers of an HNSW index between searches: each holds a visited table
  // of ntotal bytes, which a searcher made per call would allocate and zero
  // every time (a megabyte per query at a million vectors). add() empties
  // it: the searchers point into the storage it grows.
  mutable std::mutex idle_searchers_mu_;
  mutable std::vector<std::unique_ptr<HnswSearch>> idle_searchers_;
};

}  // namespace embedapt
