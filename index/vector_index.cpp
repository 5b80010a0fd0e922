#include "index/vector_index.h"

#include <faiss/IVFlib.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexNSG.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/distances.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "core/adapt/compute_threads.h"
#include "index/codec.h"
#include "index/hnsw_search.h"

namespace embedapt {
namespace {

using idx_t = faiss::Index::idx_t;  // faiss::idx_t from 1.7.4 on

faiss::MetricType faiss_metric(Metric metric) {
  return metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

// FAISS's k-means wants ~39 points per centroid and warns below that; PQ
// codebooks have 256 centroids per sub-quantizer.
constexpr size_t kPointsPerCentroid = 39;
constexpr size_t kPqCentroids = 256;

// A filtered HNSW search scores the allowed vectors exactly, without the
// graph, when they are at most this fraction of the live ones: below it the
// graph walk wades through many rejected neighbours per accepted one, and the
// exact pass is cheaper and exact. Measured by filter_bench ("hnsw_exact",
// 100k x 384 random unit vectors, HNSW32, efSearch 16, one query at a time on
// one thread, each way on its own copy of the index, AVX2 FAISS, huge pages;
// docs/benchmarks.md, "Filtered search"): the exact scan took 0.05 ms at
// 0.1%, 0.61 ms at 2% and 1.7 ms at 5% against 32, 8.0 and 4.1 ms for
// HnswSearch's walk, whose recall@10 fell from 1.0 to 0.62 and 0.40; the two
// met between 5% and 10% (3.7 against 2.4 ms). Random vectors make the walk
// longest (no neighbourhoods to follow), so the threshold sits at 5%, where
// the exact scan was 2.4 times faster, rather than at the crossing. (An
// earlier run that timed the walk right after the scan, on the same copy,
// put the crossing between 10% and 20%.)
constexpr double kHnswExactFraction = 0.05;

// A filtered IVF search probes nprobe / (the matching fraction) lists, and
// while a query comes up short of k hits searches again with this many times
// the lists. Measured by filter_bench ("ivf_probe", 100k x 384, IVF256,Flat,
// nprobe 1; docs/benchmarks.md, "Filtered search"): starting at nprobe, the
// filtered recall@10 fell with the matching fraction (0.30 at 0.1%, 0.04 at
// 1%, 0.009 at 10%) while the scaled start kept it (1.0, 0.56, 0.11) at 1.2x
// to 3.6x the time, about 1 ms a query (the unfiltered search's recall@10
// was 0.022 there: random vectors); from nprobe, growing 4x took 0.47x and
// 0.78x the time of growing 2x at 0.1% and 1%. With the scaled start no
// query came up short (one search each at every selectivity).
constexpr size_t kFilteredProbeGrowth = 4;

// Positions scored per pass of an exact subset search.
constexpr size_t kExactChunk = 4096;

// FAISS parallelises a search over its queries with OpenMP. For one query
// the other threads have nothing to do but meet at the region's barrier,
// which on a busy machine waits for them to be scheduled: store_bench saw
// HNSW single-query p99s of ~100 ms against 0.2 ms medians. One query runs
// on the calling thread alone (the setting is the calling thread's own).
// So does an exact search of a batch that FAISS hands to BLAS: per block of
// 1024 vectors it alternates an sgemm on OpenBLAS's own threads with an
// OpenMP region keeping each query's best, and the idle threads of each pool
// spin while the other pool works, about 100 times per search of 100k
// vectors. A batch of 64 over 100k x 384 (AVX2 FAISS, OpenBLAS's pthreads
// build, 2 cores at load 6 to 10) took 1.15 CPU-s with both pools at two
// threads, 0.09 to 0.17 CPU-s with one OpenMP thread (the product keeps
// OpenBLAS's threads) or with OMP_WAIT_POLICY=passive.
class OneThreadFor {
 public:
  explicit OneThreadFor(bool active) {
    if (!active) return;
    kept_.emplace();
    omp_set_num_threads(1);
  }

 private:
  std::optional<KeepOpenMpThreads> kept_;  // puts the caller's count back
};

// Whether `a` ranks before `b` under `metric`.
bool better(faiss::MetricType metric, float a, float b) { return metric == faiss::METRIC_L2 ? a < b : a > b; }

std::unique_ptr<faiss::IndexIDMap> own_id_map(faiss::Index* inner) {
  auto map = std::make_unique<faiss::IndexIDMap>(inner);
  map->own_fields = true;
  return map;
}

// FAISS trusts the files it reads and indexes by what they say. A snapshot
// passed its checksum, but one that disagrees with itself (a bug, or a
// matching checksum over bad bytes) must be refused before a search reads
// out of bounds. These check the structures of the kinds the store uses;
// storage of other kinds (e.g. PQ codes) is left to FAISS.
bool codes_consistent(const faiss::Index* index, int dim) {
  if (index == nullptr || index->d != dim || index->ntotal < 0) return false;
  const auto* flat = dynamic_cast<const faiss::IndexFlatCodes*>(index);
  if (flat == nullptr) return true;
  if (dynamic_cast<const faiss::IndexFlat*>(index) != nullptr && flat->code_size != dim * sizeof(float)) {
    return false;
  }
  return flat->codes.size() == size_t(flat->ntotal) * flat->code_size;
}

bool hnsw_consistent(const faiss::IndexHNSW& index, int dim) {
  const faiss::HNSW& g = index.hnsw;
  const size_t n = static_cast<size_t>(index.ntotal);
  if (!codes_consistent(index.storage, dim) || size_t(index.storage->ntotal) != n || g.levels.size() != n ||
      g.offsets.size() != n + 1 || g.offsets[0] != 0 || g.offsets.back() != g.neighbors.size() ||
      g.cum_nneighbor_per_level.size() < 2 || g.cum_nneighbor_per_level[0] != 0) {
    return false;
  }
  const int top = static_cast<int>(g.cum_nneighbor_per_level.size()) - 1;
  for (int l = 0; l < top; ++l) {
    if (g.cum_nneighbor_per_level[l + 1] < g.cum_nneighbor_per_level[l]) return false;
  }
  for (size_t i = 0; i < n; ++i) {
    if (g.levels[i] < 1 || g.levels[i] > top ||
        g.offsets[i + 1] - g.offsets[i] != size_t(g.cum_nneighbor_per_level[g.levels[i]])) {
      return false;
    }
  }
  for (auto neighbor : g.neighbors) {
    if (neighbor < -1 || neighbor >= static_cast<int64_t>(n)) return false;
  }
  if (n == 0) return g.entry_point == -1;
  return g.entry_point >= 0 && size_t(g.entry_point) < n && g.max_level == g.levels[g.entry_point] - 1;
}

bool ivf_consistent(const faiss::IndexIVF& index, int dim) {
  const auto* lists = dynamic_cast<const faiss::ArrayInvertedLists*>(index.invlists);
  if (!codes_consistent(index.quantizer, dim) || size_t(index.quantizer->ntotal) != index.nlist ||
      lists == nullptr || lists->nlist != index.nlist || lists->code_size != index.code_size ||
      lists->codes.size() != index.nlist || lists->ids.size() != index.nlist) {
    return false;
  }
  if (dynamic_cast<const faiss::IndexIVFFlat*>(&index) != nullptr && index.code_size != dim * sizeof(float)) {
    return false;
  }
  size_t total = 0;
  for (size_t l = 0; l < index.nlist; ++l) {
    if (lists->codes[l].size() != lists->ids[l].size() * index.code_size) return false;
    for (auto id : lists->ids[l]) {  // a search returns them, and the id map is indexed by them
      if (id < 0 || id >= index.ntotal) return false;
    }
    total += lists->ids[l].size();
  }
  return total == size_t(index.ntotal);
}

enum class Kind { kFlat, kHnsw, kIvf, kOther };

Kind kind_of(const faiss::Index* index) {
  if (dynamic_cast<const faiss::IndexFlat*>(index) != nullptr) return Kind::kFlat;
  if (dynamic_cast<const faiss::IndexHNSW*>(index) != nullptr) return Kind::kHnsw;
  if (dynamic_cast<const faiss::IndexIVF*>(index) != nullptr) return Kind::kIvf;
  return Kind::kOther;
}

// Whether `map` holds an index of the kind `fresh` is, consistent with itself.
bool loaded_consistent(const faiss::IndexIDMap& map, const faiss::Index& fresh, int dim) {
  const faiss::Index* inner = map.index;
  if (inner == nullptr || kind_of(inner) != kind_of(&fresh) || map.ntotal < 0 ||
      inner->ntotal != map.ntotal || map.id_map.size() != size_t(map.ntotal) ||
      !codes_consistent(inner, dim)) {
    return false;
  }
  // Ids ascend (add() keeps them so): a filtered search binary-searches them.
  if (std::adjacent_find(map.id_map.begin(), map.id_map.end(), std::greater_equal<int64_t>()) !=
      map.id_map.end()) {
    return false;
  }
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(inner)) return hnsw_consistent(*hnsw, dim);
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(inner)) return ivf_consistent(*ivf, dim);
  return true;
}

}  // namespace

std::string faiss_message(const std::exception& e) {
  std::string what = e.what();
  if (what.rfind("Error in ", 0) != 0) return what;
  const size_t at = what.find(" at ");
  const size_t reason = at == std::string::npos ? std::string::npos : what.find(": ", at);
  return reason == std::string::npos ? what : what.substr(reason + 2);
}

VectorIndex::VectorIndex(int dim, Metric metric, std::string spec)
    : dim_(dim), metric_(metric), spec_(std::move(spec)) {}

VectorIndex::~VectorIndex() = default;

Status VectorIndex::create(int dim, Metric metric, const std::string& spec,
                           std::unique_ptr<VectorIndex>* out) {
  if (spec.find("IDMap") != std::string::npos) {
    return Status::InvalidArgument("index spec '" + spec + "': the store maps ids itself; drop IDMap");
  }
  std::unique_ptr<faiss::Index> probe;
  try {
    probe.reset(faiss::index_factory(dim, spec.c_str(), faiss_metric(metric)));
  } catch (const faiss::FaissException& e) {
    return Status::InvalidArgument("index spec '" + spec +
                                   "' is not a FAISS factory string: " + faiss_message(e));
  }
  // Specs FAISS builds but cannot serve a store with: found crashing (or
  // hanging) at the first add, and then at every open of the store made.
  if (dynamic_cast<const faiss::IndexNSG*>(probe.get()) != nullptr) {
    return Status::InvalidArgument("index spec '" + spec +
                                   "': NSG builds its graph once and cannot add vectors later; use HNSW");
  }
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(probe.get());
      hnsw != nullptr && hnsw->hnsw.nb_neighbors(1) < 2) {
    return Status::InvalidArgument("index spec '" + spec +
                                   "': HNSW needs at least 2 neighbours a node (HNSW2)");
  }
  if (const faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(probe.get());
      ivf && ivf->nlist == 0) {
    return Status::InvalidArgument("index spec '" + spec + "': an IVF index needs at least one list (IVF1)");
  }
  std::unique_ptr<VectorIndex> index(new VectorIndex(dim, metric, spec));
  index->hnsw_ = dynamic_cast<const faiss::IndexHNSW*>(probe.get()) != nullptr;
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(probe.get())) index->nlist_ = ivf->nlist;
  // The flat index a spec that needs training stages in scales too.
  index->scores_scale_with_query_ = metric == Metric::kCosine && kind_of(probe.get()) != Kind::kOther;
  if (probe->is_trained) {
    index->index_ = own_id_map(probe.release());
  } else {
    const faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(probe.get());
    index->train_threshold_ = kPointsPerCentroid * (ivf ? ivf->nlist : kPqCentroids);
    index->staging_ = true;
    index->index_ = own_id_map(new faiss::IndexFlat(dim, faiss_metric(metric)));
  }
  *out = std::move(index);
  return Status::OK();
}

namespace {

// FAISS writes straight into the snapshot's string (its VectorIOWriter would
// hold a second copy of an index that can be gigabytes).
struct StringIOWriter : faiss::IOWriter {
  explicit StringIOWriter(std::string* out) : out(out) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    out->append(static_cast<const char*>(ptr), size * nitems);
    return nitems;
  }
  std::string* out;
};

}  // namespace

Status VectorIndex::serialize(std::string* out) const {
  out->clear();
  codec::put_u64(out, staging_ ? 1 : 0);
  codec::put_u64(out, tombstones_.size());
  for (int64_t id : tombstones_) codec::put_u64(out, static_cast<uint64_t>(id));
  StringIOWriter writer(out);
  try {
    faiss::write_index(index_.get(), &writer);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("serializing the index: ") + faiss_message(e));
  }
  return Status::OK();
}

namespace {

// Hands a snapshot to faiss::read_index, refusing a count that the bytes left
// cannot hold. FAISS reads a vector's length (one 8-byte read) and resizes the
// vector before reading its elements, trusting lengths up to 2^40: a corrupt
// length would allocate terabytes before the short read is noticed. Every
// length FAISS writes is followed by at least that many bytes (elements are a
// byte or more); the one larger 8-byte value it writes is the header's 2^20
// placeholder, hence the floor. A refusal makes the store rebuild the index
// from RocksDB, so a value refused wrongly costs time, never data.
struct BoundedSnapshotReader : faiss::IOReader {
  explicit BoundedSnapshotReader(std::string_view bytes) : bytes(bytes) {}

  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0) return nitems;
    const size_t n = std::min(nitems, (bytes.size() - pos) / size);
    if (n == 0) return 0;  // FAISS may pass a null pointer for an empty read
    std::memcpy(ptr, bytes.data() + pos, n * size);
    pos += n * size;
    if (size == sizeof(uint64_t) && n == 1) {
      uint64_t value = 0;
      std::memcpy(&value, ptr, sizeof value);
      if (value > std::max<uint64_t>(bytes.size() - pos, uint64_t{1} << 20)) {
        throw std::length_error("a count of " + std::to_string(value) + " with " +
                                std::to_string(bytes.size() - pos) + " bytes left");
      }
    }
    return n;
  }

  std::string_view bytes;
  size_t pos = 0;
};

}  // namespace

Status VectorIndex::deserialize(std::string_view bytes, int dim, Metric metric, const std::string& spec,
                                std::unique_ptr<VectorIndex>* out) {
  std::unique_ptr<VectorIndex> index;
  EMBEDAPT_RETURN_IF_ERROR(create(dim, metric, spec, &index));
  uint64_t staging = 0, tombstones = 0;
  if (!codec::get_u64(&bytes, &staging) || !codec::get_u64(&bytes, &tombstones) ||
      bytes.size() / 8 < tombstones) {
    return Status::Corruption("index snapshot: truncated header");
  }
  for (uint64_t i = 0; i < tombstones; ++i) {
    uint64_t id = 0;
    codec::get_u64(&bytes, &id);
    index->tombstones_.insert(static_cast<int64_t>(id));
  }
  BoundedSnapshotReader reader(bytes);
  std::unique_ptr<faiss::Index> loaded;
  try {
    loaded.reset(faiss::read_index(&reader));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("index snapshot: FAISS cannot read it: ") + faiss_message(e));
  }
  auto* map = dynamic_cast<faiss::IndexIDMap*>(loaded.get());
  // FAISS fills the metric enum with whatever bytes were stored: compared as
  // the integer it holds, since reading an out-of-range enum is undefined.
  static_assert(sizeof(faiss::MetricType) == sizeof(int), "the metric enum is read as an int");
  int stored_metric = -1;
  if (map != nullptr) std::memcpy(&stored_metric, &map->metric_type, sizeof stored_metric);
  // A staged snapshot of a spec that needs no training cannot be ours.
  if (map == nullptr || map->d != dim || stored_metric != static_cast<int>(faiss_metric(metric)) ||
      staging > 1 || (staging == 1 && !index->staging_)) {
    return Status::Corruption("index snapshot: holds a different kind of index than '" + spec + "'");
  }
  // Staged: the flat index create() made; else what the factory makes.
  std::unique_ptr<faiss::Index> fresh;
  try {
    fresh.reset(staging == 1 ? new faiss::IndexFlat(dim, faiss_metric(metric))
                             : faiss::index_factory(dim, spec.c_str(), faiss_metric(metric)));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("index snapshot: ") + faiss_message(e));
  }
  if (!loaded_consistent(*map, *fresh, dim)) {
    return Status::Corruption("index snapshot: the index it holds is inconsistent with itself");
  }
  index->index_.reset(static_cast<faiss::IndexIDMap*>(loaded.release()));  // `map`, checked above
  index->staging_ = staging == 1;
  *out = std::move(index);
  return Status::OK();
}

std::atomic<int> VectorIndex::failing_adds_for_testing{0};

Status VectorIndex::add(size_t n, const float* vectors, const int64_t* ids) {
  if (n == 0) return Status::OK();
  int64_t last = index_->id_map.empty() ? -1 : index_->id_map.back();
  for (size_t i = 0; i < n; last = ids[i++]) {
    if (ids[i] <= last) {
      return Status::InvalidArgument("adding to the index: id " + std::to_string(ids[i]) + " after " +
                                     std::to_string(last) + " (ids must ascend)");
    }
  }
  {
    std::lock_guard<std::mutex> lock(idle_searchers_mu_);
    idle_searchers_.clear();
  }
  try {
    if (failing_adds_for_testing.load() > 0 && failing_adds_for_testing.fetch_sub(1) > 0) {
      throw std::bad_alloc();
    }
    if (staging_ && live_count() + n >= train_threshold_) return train_from_staging(n, vectors, ids);
    index_->add_with_ids(static_cast<idx_t>(n), vectors, ids);
  } catch (const std::exception& e) {  // FaissException, std::bad_alloc, ...
    return Status::Internal(std::string("adding to the index: ") + faiss_message(e));
  }
  return Status::OK();
}

// Trains the real index on the staged live vectors plus the new ones and
// moves them all into it.
Status VectorIndex::train_from_staging(size_t n, const float* vectors, const int64_t* ids) {
  const auto* flat = static_cast<const faiss::IndexFlat*>(index_->index);
  std::vector<float> all;
  std::vector<idx_t> all_ids;
  all.reserve((live_count() + n) * dim_);
  for (idx_t i = 0; i < index_->ntotal; ++i) {
    if (tombstones_.count(index_->id_map[i])) continue;
    const float* row = flat->get_xb() + i * dim_;
    all.insert(all.end(), row, row + dim_);
    all_ids.push_back(index_->id_map[i]);
  }
  all.insert(all.end(), vectors, vectors + n * dim_);
  all_ids.insert(all_ids.end(), ids, ids + n);

  auto trained = own_id_map(faiss::index_factory(dim_, spec_.c_str(), faiss_metric(metric_)));
  trained->train(static_cast<idx_t>(all_ids.size()), all.data());
  trained->add_with_ids(static_cast<idx_t>(all_ids.size()), all.data(), all_ids.data());
  index_ = std::move(trained);
  tombstones_.clear();
  staging_ = false;
  return Status::OK();
}

void VectorIndex::remove(int64_t id) { tombstones_.insert(id); }

Status VectorIndex::purge() {
  if (tombstones_.empty()) return Status::OK();
  // IndexIDMap::remove_ids assumes the inner index renumbers what is left
  // the way flat storage does; IVF does not, and HNSW cannot remove at all.
  if (dynamic_cast<const faiss::IndexFlatCodes*>(index_->index) == nullptr) {
    return Status::NotSupported("index '" + spec_ + "' cannot remove vectors in place");
  }
  std::vector<idx_t> dead(tombstones_.begin(), tombstones_.end());
  faiss::IDSelectorBatch selector(dead.size(), dead.data());
  try {
    index_->remove_ids(selector);
  } catch (const std::exception& e) {
    return Status::Internal("removing from index '" + spec_ + "': " + faiss_message(e));
  }
  tombstones_.clear();
  return Status::OK();
}

double sum_of_squares(const float* v, size_t dim) {
  // Four running sums: one is a chain of dim dependent adds, which was the
  // largest of the store's own costs in a profile of batched IVF searches at
  // nprobe 1 (each query was then summed twice: checked, then normalised).
  double sums[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    for (size_t j = 0; j < 4; ++j) sums[j] += double(v[i + j]) * v[i + j];
  }
  for (; i < dim; ++i) sums[0] += double(v[i]) * v[i];
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

void normalise_vector(float* v, size_t dim) { normalise_vector(v, dim, sum_of_squares(v, dim), v); }

void normalise_vector(const float* v, size_t dim, double squares, float* out) {
  const auto scale = static_cast<float>(1.0 / std::sqrt(squares));
  // GCC's -O2 left this loop scalar (out may be v, and its cheap cost model
  // will not check at run time): a fifth of the store's own time around a
  // batched IVF search at nprobe 1. No iteration reads what another writes.
#pragma omp simd
  for (size_t i = 0; i < dim; ++i) out[i] = v[i] * scale;
}

Status VectorIndex::search(const float* queries, size_t n, const SearchOptions& options, const IdSet* allowed,
                           std::vector<std::vector<Neighbor>>* out) const {
  EMBEDAPT_RETURN_IF_ERROR(check_knobs(options));
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_->index)) {
    return search_hnsw(*hnsw, queries, n, options, allowed, out);
  }
  const bool parallel = searches_in_parallel(n, allowed != nullptr);
  const OneThreadFor one_thread(!parallel);
  // The other batches run on FAISS's OpenMP threads, each searching its share
  // of the queries, and an IVF index's coarse quantizer scores a share of 20
  // or more with an sgemm: on OpenBLAS's threads too, the two pools
  // oversubscribe the cores and spin while each other works. store_bench on 2
  // cores (IVF1024,Flat over 100k x 384, batches of 64): the store capping
  // BLAS at one thread ran 71,544 QPS at 0.025 CPU ms a query against raw
  // FAISS's 43,822 at 0.047 on its default threads at nprobe 1; 10,428 against
  // 6,553 QPS at nprobe 16, 3,509 against 2,908 at nprobe 64.
  std::optional<BlasThreads> one_blas_thread;
  if (parallel) one_blas_thread.emplace(1);
  return allowed ? search_subset(queries, n, options, *allowed, out) : search_all(queries, n, options, out);
}

bool VectorIndex::searches_in_parallel(size_t n, bool filtered) const {
  if (n <= 1) return false;
  if (filtered || n < static_cast<size_t>(faiss::distance_compute_blas_threshold)) return true;
  // kind_of last: its dynamic casts would be spent on every one-query search.
  return kind_of(index_->index) != Kind::kFlat;
}

Status VectorIndex::check_knobs(const SearchOptions& options) const {
  if (options.ef_search != 0) {
    if (!hnsw_) {
      return Status::InvalidArgument("ef_search: applies to HNSW indexes; this store's index is '" + spec_ +
                                     "'");
    }
    if (options.ef_search < 0 || options.ef_search > kMaxEfSearch) {
      return Status::InvalidArgument("ef_search: must be in 1.." + std::to_string(kMaxEfSearch) + ", got " +
                                     std::to_string(options.ef_search));
    }
  }
  if (options.nprobe != 0) {
    if (nlist_ == 0) {
      return Status::InvalidArgument("nprobe: applies to IVF indexes; this store's index is '" + spec_ + "'");
    }
    if (options.nprobe < 0 || static_cast<size_t>(options.nprobe) > nlist_) {
      return Status::InvalidArgument("nprobe: must be in 1.." + std::to_string(nlist_) +
                                     " (the index's lists), got " + std::to_string(options.nprobe));
    }
  }
  return Status::OK();
}

std::unique_ptr<faiss::SearchParameters> VectorIndex::search_parameters(const SearchOptions& options) const {
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_->index)) {
    auto params = std::make_unique<faiss::SearchParametersIVF>();
    params->nprobe = options.nprobe ? static_cast<size_t>(options.nprobe) : ivf->nprobe;
    return params;
  }
  return nullptr;  // Flat (also an IVF index still staging) and the rest: no knobs
}

// The inner index is searched and its positions mapped to ids here: FAISS
// 1.7.3's IndexIDMap refuses search parameters.
Status VectorIndex::search_all(const float* queries, size_t n, const SearchOptions& options,
                               std::vector<std::vector<Neighbor>>* out) const {
  out->assign(n, {});
  const size_t total = static_cast<size_t>(index_->ntotal);
  const size_t k = static_cast<size_t>(options.k);
  if (n == 0 || k == 0 || total == 0) return Status::OK();
  const size_t want = std::min(k, live_count());
  // Over-fetch past tombstones; widen only when a query came up short.
  size_t fetch = std::min(total, k + std::min(tombstones_.size(), size_t{4} * k + 16));
  std::vector<float> scores;
  std::vector<idx_t> labels;
  for (;;) {
    scores.resize(n * fetch);
    labels.resize(n * fetch);
    try {
      const auto params = search_parameters(options);
      index_->index->search(static_cast<idx_t>(n), queries, static_cast<idx_t>(fetch), scores.data(),
                            labels.data(), params.get());
    } catch (const std::exception& e) {
      return Status::Internal(std::string("searching the index: ") + faiss_message(e));
    }
    // Widen only when tombstones crowded out live results: approximate
    // indexes (IVF with few probes) may return fewer than asked anyway.
    bool crowded_out = false;
    // A hit's id is id_map's entry at its position, a cache miss each (a
    // tenth of the store's own CPU around a batched IVF1024 search at nprobe
    // 1, in perf). Ids ascend, so when they run without a gap, as in a store
    // that has only appended, the id is the position plus the first one.
    const std::vector<idx_t>& id_map = index_->id_map;
    const bool one_run = id_map.back() - id_map.front() == static_cast<idx_t>(id_map.size()) - 1;
    const idx_t first_id = id_map.front();
    // Otherwise the next query's misses are started while this one's are read.
    auto prefetch_ids = [&](size_t q) {
      for (size_t j = 0; j < fetch && labels[q * fetch + j] >= 0; ++j) {
        __builtin_prefetch(&id_map[labels[q * fetch + j]]);
      }
    };
    if (!one_run) prefetch_ids(0);
    for (size_t q = 0; q < n; ++q) {
      if (!one_run && q + 1 < n) prefetch_ids(q + 1);
      std::vector<Neighbor>& hits = (*out)[q];
      hits.clear();
      hits.reserve(want);
      bool skipped = false;
      for (size_t j = 0; j < fetch && hits.size() < want; ++j) {
        const idx_t label = labels[q * fetch + j];
        if (label < 0) break;
        const int64_t id = one_run ? first_id + label : id_map[label];
        if (!tombstones_.empty() && tombstones_.count(id)) {  // count() is a call, even on an empty set
          skipped = true;
          continue;
        }
        hits.push_back({id, scores[q * fetch + j]});
      }
      crowded_out |= skipped && hits.size() < want;
    }
    if (!crowded_out || fetch == total) return Status::OK();
    fetch = std::min(total, fetch * 4);
  }
}

int64_t VectorIndex::position(int64_t id) const {
  const std::vector<idx_t>& ids = index_->id_map;
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  return it != ids.end() && *it == id ? it - ids.begin() : -1;
}

// The inner index numbers its vectors 0..ntotal-1 (FAISS 1.7.3's IndexIDMap
// refuses search parameters, so the inner index is searched and positions
// mapped to ids here).
std::vector<uint8_t> VectorIndex::allowed_bitmap(const IdSet& allowed, size_t* matches) const {
  const size_t total = static_cast<size_t>(index_->ntotal);
  std::vector<uint8_t> bitmap((total + 7) / 8, allowed.complement ? 0xff : 0);
  if (total % 8) bitmap.back() &= static_cast<uint8_t>((1u << (total % 8)) - 1);
  auto clear = [&](int64_t pos) { bitmap[pos >> 3] &= static_cast<uint8_t>(~(1u << (pos & 7))); };
  for (int64_t id : allowed.ids) {
    const int64_t pos = position(id);
    if (pos < 0) continue;  // not (or no longer) indexed
    if (allowed.complement) {
      clear(pos);
    } else if (!tombstones_.count(id)) {
      bitmap[pos >> 3] |= static_cast<uint8_t>(1u << (pos & 7));
    }
  }
  if (allowed.complement) {
    for (int64_t id : tombstones_) {
      const int64_t pos = position(id);
      if (pos >= 0) clear(pos);
    }
  }
  *matches = 0;
  for (uint8_t byte : bitmap) *matches += static_cast<size_t>(__builtin_popcount(byte));
  return bitmap;
}

Status VectorIndex::search_subset(const float* queries, size_t n, const SearchOptions& options,
                                  const IdSet& allowed, std::vector<std::vector<Neighbor>>* out) const {
  out->assign(n, {});
  if (n == 0 || options.k <= 0 || index_->ntotal == 0) return Status::OK();
  size_t matches = 0;
  const std::vector<uint8_t> bitmap = allowed_bitmap(allowed, &matches);
  const size_t want = std::min<size_t>(options.k, matches);
  if (want == 0) return Status::OK();

  std::vector<size_t> all(n);
  std::iota(all.begin(), all.end(), size_t{0});
  const faiss::Index* inner = index_->index;
  faiss::IDSelectorBitmap selector(bitmap.size(), bitmap.data());
  std::vector<float> scores, subset;
  std::vector<idx_t> labels;
  // Searches the queries `which` with `params`; the ones that came up short
  // go to *short_queries.
  auto run = [&](const std::vector<size_t>& which, const faiss::SearchParameters& params,
                 std::vector<size_t>* short_queries) {
    const float* x = queries;
    if (which.size() != n) {
      subset.resize(which.size() * dim_);
      for (size_t i = 0; i < which.size(); ++i) {
        std::copy_n(queries + which[i] * dim_, dim_, subset.begin() + i * dim_);
      }
      x = subset.data();
    }
    scores.resize(which.size() * want);
    labels.resize(which.size() * want);
    inner->search(static_cast<idx_t>(which.size()), x, static_cast<idx_t>(want), scores.data(), labels.data(),
                  &params);
    short_queries->clear();
    for (size_t i = 0; i < which.size(); ++i) {
      std::vector<Neighbor>& hits = (*out)[which[i]];
      hits.clear();
      for (size_t j = 0; j < want && labels[i * want + j] >= 0; ++j) {
        hits.push_back({index_->id_map[labels[i * want + j]], scores[i * want + j]});
      }
      if (hits.size() < want) short_queries->push_back(which[i]);
    }
  };
  std::vector<size_t> short_queries;
  try {
    std::unique_ptr<faiss::SearchParameters> params = search_parameters(options);
    if (!params) params = std::make_unique<faiss::SearchParameters>();
    params->sel = &selector;
    if (auto* ivf = dynamic_cast<faiss::SearchParametersIVF*>(params.get())) {
      // Probing nprobe / (the matching fraction) lists scores about as many
      // matching vectors as an unfiltered search scores vectors; with every
      // list probed, every allowed vector is scored.
      const size_t nlist = static_cast<const faiss::IndexIVF*>(inner)->nlist;
      ivf->nprobe = std::min(nlist, (ivf->nprobe * live_count() + matches - 1) / matches);
      std::vector<size_t> pending = all;
      for (;;) {
        run(pending, *params, &short_queries);
        if (short_queries.empty() || ivf->nprobe >= nlist) break;
        ivf->nprobe = std::min(nlist, ivf->nprobe * kFilteredProbeGrowth);
        pending.swap(short_queries);
      }
    } else {
      run(all, *params, &short_queries);
    }
  } catch (const faiss::FaissException& e) {
    return Status::NotSupported("index '" + spec_ + "' cannot search a filtered subset: " + faiss_message(e));
  }
  if (short_queries.empty()) return Status::OK();
  return search_exact(queries, short_queries, want, bitmap, out);
}

// Every HNSW search walks the graph with HnswSearch: unfiltered, filtered
// (an allow-bitmap) and past tombstones (the bitmap of everything live) alike.
// Building the bitmap costs a pass over ntotal / 8 bytes and a binary search
// per listed id or tombstone, once per call.
Status VectorIndex::search_hnsw(const faiss::IndexHNSW& hnsw, const float* queries, size_t n,
                                const SearchOptions& options, const IdSet* allowed,
                                std::vector<std::vector<Neighbor>>* out) const {
  out->assign(n, {});
  if (n == 0 || options.k <= 0 || index_->ntotal == 0) return Status::OK();
  std::vector<uint8_t> bitmap;
  size_t matches = live_count();
  if (allowed != nullptr || !tombstones_.empty())
    bitmap = allowed_bitmap(allowed ? *allowed : IdSet{{}, true}, &matches);
  const size_t want = std::min<size_t>(options.k, matches);
  if (want == 0) return Status::OK();
  if (!bitmap.empty() && matches <= kHnswExactFraction * live_count()) {
    std::vector<size_t> all(n);
    std::iota(all.begin(), all.end(), size_t{0});
    return search_exact(queries, all, want, bitmap, out);
  }

  const size_t ef = static_cast<size_t>(options.ef_search ? options.ef_search : hnsw.hnsw.efSearch);
  const uint8_t* admit = bitmap.empty() ? nullptr : bitmap.data();
  std::string error;
  // Parallel over the queries as FAISS runs its own searches; one query stays
  // on the calling thread (see OneThreadFor).
#pragma omp parallel if (n > 1)
  {
    std::unique_ptr<HnswSearch> searcher;
    try {
      searcher = take_searcher(hnsw);
    } catch (const std::exception& e) {
#pragma omp critical(embedapt_hnsw_error)
      error = faiss_message(e);
    }
#pragma omp for schedule(dynamic)
    for (size_t q = 0; q < n; ++q) {
      if (!searcher) continue;
      std::vector<Neighbor>& hits = (*out)[q];
      searcher->search(queries + q * dim_, want, ef, admit, &hits);
      for (Neighbor& hit : hits) hit.id = index_->id_map[hit.id];
    }
    if (searcher) keep_searcher(std::move(searcher));
  }
  if (!error.empty()) return Status::Internal("searching the index: " + error);
  // A walk comes up short only where the graph it reaches holds fewer
  // allowed vectors than asked; a filtered search promises min(k, matches).
  std::vector<size_t> short_queries;
  for (size_t q = 0; q < n; ++q) {
    if (admit != nullptr && (*out)[q].size() < want) short_queries.push_back(q);
  }
  if (short_queries.empty()) return Status::OK();
  return search_exact(queries, short_queries, want, bitmap, out);
}

std::unique_ptr<HnswSearch> VectorIndex::take_searcher(const faiss::IndexHNSW& hnsw) const {
  {
    std::lock_guard<std::mutex> lock(idle_searchers_mu_);
    if (!idle_searchers_.empty()) {
      std::unique_ptr<HnswSearch> searcher = std::move(idle_searchers_.back());
      idle_searchers_.pop_back();
      return searcher;
    }
  }
  return std::make_unique<HnswSearch>(hnsw);
}

void VectorIndex::keep_searcher(std::unique_ptr<HnswSearch> searcher) const {
  std::lock_guard<std::mutex> lock(idle_searchers_mu_);
  idle_searchers_.push_back(std::move(searcher));
}

Status VectorIndex::search_exact(const float* queries, const std::vector<size_t>& which, size_t want,
                                 const std::vector<uint8_t>& bitmap,
                                 std::vector<std::vector<Neighbor>>* out) const {
  const faiss::MetricType metric = faiss_metric(metric_);
  auto worse = [metric](const Neighbor& a, const Neighbor& b) { return better(metric, a.score, b.score); };
  // Per query a heap whose top is the worst of the best `want` so far.
  std::vector<std::vector<Neighbor>> heaps(which.size());
  std::vector<float> vectors;
  std::vector<idx_t> positions;
  const idx_t total = index_->ntotal;
  auto score_chunk = [&]() {
    vectors.resize(positions.size() * dim_);
    for (size_t i = 0; i < positions.size(); ++i)
      index_->index->reconstruct(positions[i], &vectors[i * dim_]);
    for (size_t q = 0; q < which.size(); ++q) {
      const float* query = queries + which[q] * dim_;
      std::vector<Neighbor>& heap = heaps[q];
      for (size_t i = 0; i < positions.size(); ++i) {
        const float* v = &vectors[i * dim_];
        const float score = metric == faiss::METRIC_L2 ? faiss::fvec_L2sqr(query, v, dim_)
                                                       : faiss::fvec_inner_product(query, v, dim_);
        if (heap.size() < want) {
          heap.push_back({index_->id_map[positions[i]], score});
          std::push_heap(heap.begin(), heap.end(), worse);
        } else if (better(metric, score, heap.front().score)) {
          std::pop_heap(heap.begin(), heap.end(), worse);
          heap.back() = {index_->id_map[positions[i]], score};
          std::push_heap(heap.begin(), heap.end(), worse);
        }
      }
    }
    positions.clear();
  };
  try {
    for (idx_t pos = 0; pos < total; ++pos) {
      if (!((bitmap[pos >> 3] >> (pos & 7)) & 1)) continue;
      positions.push_back(pos);
      if (positions.size() == kExactChunk) score_chunk();
    }
    if (!positions.empty()) score_chunk();
  } catch (const faiss::FaissException& e) {
    return Status::NotSupported("index '" + spec_ +
                                "' cannot score a filtered subset exactly: " + faiss_message(e));
  }
  for (size_t q = 0; q < which.size(); ++q) {
    std::sort_heap(heaps[q].begin(), heaps[q].end(), worse);
    (*out)[which[q]] = std::move(heaps[q]);
  }
  return Status::OK();
}

size_t VectorIndex::live_count() const { return static_cast<size_t>(index_->ntotal) - tombstones_.size(); }

std::vector<int64_t> VectorIndex::live_ids() const {
  std::vector<int64_t> ids;
  ids.reserve(live_count());
  for (idx_t id : index_->id_map) {
    if (!tombstones_.count(id)) ids.push_back(id);
  }
  return ids;
}

}  // namespace embedapt
