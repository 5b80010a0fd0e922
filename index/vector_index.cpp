#include "index/vector_index.h"

#include <faiss/IVFlib.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cstring>

#include "index/codec.h"

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

std::unique_ptr<faiss::IndexIDMap> own_id_map(faiss::Index* inner) {
  auto map = std::make_unique<faiss::IndexIDMap>(inner);
  map->own_fields = true;
  return map;
}

}  // namespace

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
    return Status::InvalidArgument("index spec '" + spec + "' is not a FAISS factory string: " + e.what());
  }
  std::unique_ptr<VectorIndex> index(new VectorIndex(dim, metric, spec));
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

Status VectorIndex::serialize(std::string* out) const {
  out->clear();
  codec::put_u64(out, staging_ ? 1 : 0);
  codec::put_u64(out, tombstones_.size());
  for (int64_t id : tombstones_) codec::put_u64(out, static_cast<uint64_t>(id));
  faiss::VectorIOWriter writer;
  try {
    faiss::write_index(index_.get(), &writer);
  } catch (const faiss::FaissException& e) {
    return Status::Internal(std::string("serializing the index: ") + e.what());
  }
  out->append(reinterpret_cast<const char*>(writer.data.data()), writer.data.size());
  return Status::OK();
}

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
  faiss::VectorIOReader reader;
  reader.data.assign(bytes.begin(), bytes.end());
  std::unique_ptr<faiss::Index> loaded;
  try {
    loaded.reset(faiss::read_index(&reader));
  } catch (const faiss::FaissException& e) {
    return Status::Corruption(std::string("index snapshot: FAISS cannot read it: ") + e.what());
  }
  auto* map = dynamic_cast<faiss::IndexIDMap*>(loaded.get());
  // A staged snapshot of a spec that needs no training cannot be ours.
  if (map == nullptr || map->d != dim || map->metric_type != faiss_metric(metric) ||
      (staging == 1 && !index->staging_)) {
    return Status::Corruption("index snapshot: holds a different kind of index than '" + spec + "'");
  }
  loaded.release();
  index->index_.reset(map);
  index->staging_ = staging == 1;
  *out = std::move(index);
  return Status::OK();
}

Status VectorIndex::add(size_t n, const float* vectors, const int64_t* ids) {
  if (n == 0) return Status::OK();
  try {
    if (staging_ && live_count() + n >= train_threshold_) return train_from_staging(n, vectors, ids);
    index_->add_with_ids(static_cast<idx_t>(n), vectors, ids);
  } catch (const faiss::FaissException& e) {
    return Status::Internal(std::string("adding to the index: ") + e.what());
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
  } catch (const faiss::FaissException& e) {
    return Status::Internal("removing from index '" + spec_ + "': " + e.what());
  }
  tombstones_.clear();
  return Status::OK();
}

Status VectorIndex::search(const float* queries, size_t n, int k,
                           std::vector<std::vector<Neighbor>>* out) const {
  out->assign(n, {});
  const size_t total = static_cast<size_t>(index_->ntotal);
  if (n == 0 || k <= 0 || total == 0) return Status::OK();
  const size_t want = std::min<size_t>(k, live_count());
  // Over-fetch past tombstones; widen only when a query came up short.
  size_t fetch = std::min(total, static_cast<size_t>(k) + std::min(tombstones_.size(), size_t{4} * k + 16));
  std::vector<float> scores;
  std::vector<idx_t> labels;
  for (;;) {
    scores.resize(n * fetch);
    labels.resize(n * fetch);
    try {
      index_->search(static_cast<idx_t>(n), queries, static_cast<idx_t>(fetch), scores.data(), labels.data());
    } catch (const faiss::FaissException& e) {
      return Status::Internal(std::string("searching the index: ") + e.what());
    }
    // Widen only when tombstones crowded out live results: approximate
    // indexes (IVF with few probes) may return fewer than asked anyway.
    bool crowded_out = false;
    for (size_t q = 0; q < n; ++q) {
      std::vector<Neighbor>& hits = (*out)[q];
      hits.clear();
      bool skipped = false;
      for (size_t j = 0; j < fetch && hits.size() < want; ++j) {
        idx_t label = labels[q * fetch + j];
        if (label < 0) break;
        if (tombstones_.count(label)) {
          skipped = true;
          continue;
        }
        hits.push_back({label, scores[q * fetch + j]});
      }
      crowded_out |= skipped && hits.size() < want;
    }
    if (!crowded_out || fetch == total) return Status::OK();
    fetch = std::min(total, fetch * 4);
  }
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
