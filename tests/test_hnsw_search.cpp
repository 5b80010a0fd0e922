// The store's HNSW search (index/hnsw_search.h) on real FAISS graphs written
// to disk and read back: its recall@10 against exact search is at least FAISS's
// own search's on the same index and queries, for L2 and inner products, and
// it returns the true scores, k results when ef is below k, and the same
// results every time. Through VectorIndex: filtered and tombstoned searches
// return only allowed live ids, min(k, allowed) of them, best first, whether
// the graph is walked or the subset scored exactly, alone or in a batch.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "index/hnsw_search.h"
#include "index/vector_index.h"
#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"

using namespace embedapt;
using embedapt::testing::TempDir;

namespace {

// Seeded unit vectors (for inner products they are what a cosine store holds).
std::vector<float> unit_vectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    float norm = 0;
    for (int j = 0; j < dim; ++j) norm += (v[i * dim + j] = normal(rng)) * v[i * dim + j];
    for (int j = 0; j < dim; ++j) v[i * dim + j] /= std::sqrt(norm);
  }
  return v;
}

// The fraction of each query's exact top k that `found` holds, averaged.
double recall(const std::vector<std::vector<int64_t>>& found, const std::vector<int64_t>& exact, size_t k) {
  double sum = 0;
  for (size_t q = 0; q < found.size(); ++q) {
    const std::set<int64_t> truth(exact.begin() + q * k, exact.begin() + (q + 1) * k);
    sum +=
        double(std::count_if(found[q].begin(), found[q].end(), [&](int64_t p) { return truth.count(p); })) /
        k;
  }
  return sum / found.size();
}

}  // namespace

TEST_CASE("HNSW search: recall@10 at ef 64 is at least FAISS's own search's on the same index on disk") {
  const int dim = 32;
  const size_t n = 20000, queries = 200, k = 10;
  const int ef = 64;
  const std::vector<float> base = unit_vectors(n, dim, 21);
  const std::vector<float> query = unit_vectors(queries, dim, 22);
  for (const faiss::MetricType metric : {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
    INFO((metric == faiss::METRIC_L2 ? "L2" : "inner product"));
    TempDir dir("hnsw-search");
    {
      faiss::IndexHNSWFlat built(dim, 32, metric);
      built.add(n, base.data());
      faiss::write_index(&built, (dir / "index").c_str());
    }
    std::unique_ptr<faiss::Index> loaded(faiss::read_index((dir / "index").c_str()));
    auto* index = dynamic_cast<faiss::IndexHNSW*>(loaded.get());
    REQUIRE(index != nullptr);

    faiss::IndexFlat flat(dim, metric);
    flat.add(n, base.data());
    std::vector<float> exact_scores(queries * k);
    std::vector<faiss::Index::idx_t> exact(queries * k);
    flat.search(queries, query.data(), k, exact_scores.data(), exact.data());

    index->hnsw.efSearch = ef;
    std::vector<float> faiss_scores(queries * k);
    std::vector<faiss::Index::idx_t> faiss_labels(queries * k);
    index->search(queries, query.data(), k, faiss_scores.data(), faiss_labels.data());
    std::vector<std::vector<int64_t>> theirs(queries), ours(queries);
    for (size_t q = 0; q < queries; ++q) theirs[q].assign(&faiss_labels[q * k], &faiss_labels[(q + 1) * k]);

    HnswSearch search(*index);
    std::vector<Neighbor> hits;
    for (size_t q = 0; q < queries; ++q) {
      const float* x = &query[q * dim];
      search.search(x, k, ef, nullptr, &hits);
      REQUIRE(hits.size() == k);
      for (size_t i = 0; i < hits.size(); ++i) {
        const float* v = &base[hits[i].id * dim];
        const float score =
            metric == faiss::METRIC_L2 ? faiss::fvec_L2sqr(x, v, dim) : faiss::fvec_inner_product(x, v, dim);
        CHECK(hits[i].score == Approx(score).margin(1e-5));
        if (i > 0)
          CHECK((metric == faiss::METRIC_L2 ? hits[i - 1].score <= hits[i].score
                                            : hits[i - 1].score >= hits[i].score));
        ours[q].push_back(hits[i].id);
      }
    }
    const double faiss_recall = recall(theirs, exact, k), our_recall = recall(ours, exact, k);
    INFO("recall@10 FAISS " << faiss_recall << ", ours " << our_recall);
    CHECK(our_recall >= faiss_recall);
    CHECK(our_recall > 0.5);  // the walk works at all on these vectors

    // The same query gives the same answer, whatever ran before it.
    std::vector<Neighbor> again;
    search.search(&query[0], k, ef, nullptr, &again);
    search.search(&query[0], k, 256, nullptr, &hits);
    search.search(&query[0], k, ef, nullptr, &hits);
    REQUIRE(hits.size() == again.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      CHECK(hits[i].id == again[i].id);
      CHECK(hits[i].score == again[i].score);
    }
    // ef below k: the walk keeps k.
    search.search(&query[0], 50, 8, nullptr, &hits);
    CHECK(hits.size() == 50);
  }
}

namespace {

// One search through VectorIndex, and what it must satisfy.
struct Case {
  std::string name;
  int k;
  int ef_search;
  // Ids the search may return (among live ones); empty function: no filter.
  std::function<bool(int64_t)> allowed;
  bool complement;  // pass the complement of the disallowed ids instead
};

std::vector<Case> cases() {
  return {
      {"no filter, past tombstones", 10, 0, nullptr, false},
      {"no filter, ef below k", 100, 8, nullptr, false},
      {"half allowed", 10, 0, [](int64_t id) { return id % 2 == 0; }, false},
      {"half allowed as a complement", 10, 32, [](int64_t id) { return id % 2 == 0; }, true},
      {"10% allowed, k above the allowed count", 2000, 16, [](int64_t id) { return id % 30 == 3; }, false},
      {"1% allowed (scored exactly)", 10, 0, [](int64_t id) { return id % 300 == 6; }, false},
      {"nothing allowed", 10, 0, [](int64_t) { return false; }, false},
  };
}

// A VectorIndex through serialize() to a file and deserialize() from it.
std::unique_ptr<VectorIndex> through_disk(const VectorIndex& index, int dim, Metric metric,
                                          const std::string& path) {
  std::string bytes;
  REQUIRE(index.serialize(&bytes).ok());
  std::ofstream(path, std::ios::binary) << bytes;
  std::ifstream in(path, std::ios::binary);
  std::stringstream read;
  read << in.rdbuf();
  std::unique_ptr<VectorIndex> loaded;
  REQUIRE(VectorIndex::deserialize(read.str(), dim, metric, "HNSW32", &loaded).ok());
  return loaded;
}

}  // namespace

TEST_CASE(
    "HNSW search through VectorIndex: only allowed live ids, min(k, allowed) of them, the same alone or "
    "batched") {
  const int dim = 16;
  const size_t n = 6000, queries = 12;
  const std::vector<float> base = unit_vectors(n, dim, 31);
  const std::vector<float> query = unit_vectors(queries, dim, 32);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int64_t>(3 * i);  // ids are not positions
  auto dead = [](int64_t id) { return id % 7 == 0; };
  for (const Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
    INFO(MetricName(metric));
    TempDir dir("hnsw-index");
    std::unique_ptr<VectorIndex> built;
    REQUIRE(VectorIndex::create(dim, metric, "HNSW32", &built).ok());
    REQUIRE(built->add(n, base.data(), ids.data()).ok());
    for (int64_t id : ids) {
      if (dead(id)) built->remove(id);
    }
    const auto index = through_disk(*built, dim, metric, dir / "index");
    REQUIRE(index->tombstone_count() == built->tombstone_count());

    for (const Case& c : cases()) {
      INFO(c.name);
      IdSet set;
      set.complement = c.allowed && c.complement;
      size_t live_allowed = 0;
      for (int64_t id : ids) {
        const bool ok = !c.allowed || c.allowed(id);
        if (c.allowed && ok != set.complement) set.ids.push_back(id);
        live_allowed += ok && !dead(id);
      }
      SearchOptions options(c.k);
      options.ef_search = c.ef_search;
      std::vector<std::vector<Neighbor>> batch;
      REQUIRE(index->search(query.data(), queries, options, c.allowed ? &set : nullptr, &batch).ok());
      REQUIRE(batch.size() == queries);
      for (size_t q = 0; q < queries; ++q) {
        const std::vector<Neighbor>& hits = batch[q];
        REQUIRE(hits.size() == std::min<size_t>(c.k, live_allowed));
        std::set<int64_t> seen;
        for (size_t i = 0; i < hits.size(); ++i) {
          INFO("hit " << i << " id " << hits[i].id);
          CHECK(hits[i].id % 3 == 0);
          CHECK(!dead(hits[i].id));
          CHECK((!c.allowed || c.allowed(hits[i].id)));
          CHECK(seen.insert(hits[i].id).second);
          if (i > 0) {
            CHECK((metric == Metric::kL2 ? hits[i - 1].score <= hits[i].score
                                         : hits[i - 1].score >= hits[i].score));
          }
        }
        // Alone (on the calling thread) as in the batch (on OpenMP's threads).
        std::vector<std::vector<Neighbor>> alone;
        REQUIRE(index->search(&query[q * dim], 1, options, c.allowed ? &set : nullptr, &alone).ok());
        REQUIRE(alone[0].size() == hits.size());
        for (size_t i = 0; i < hits.size(); ++i) {
          CHECK(alone[0][i].id == hits[i].id);
          CHECK(alone[0][i].score == hits[i].score);
        }
      }
    }
  }
}

TEST_CASE("HNSW search: an empty index, and one whose vectors are all removed, return no hits") {
  const int dim = 8;
  const std::vector<float> query = unit_vectors(3, dim, 41);
  std::unique_ptr<VectorIndex> index;
  REQUIRE(VectorIndex::create(dim, Metric::kL2, "HNSW16", &index).ok());
  std::vector<std::vector<Neighbor>> results;
  REQUIRE(index->search(query.data(), 3, SearchOptions(5), nullptr, &results).ok());
  REQUIRE(results.size() == 3);
  for (const auto& hits : results) CHECK(hits.empty());

  const std::vector<float> base = unit_vectors(100, dim, 42);
  std::vector<int64_t> ids(100);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
  REQUIRE(index->add(ids.size(), base.data(), ids.data()).ok());
  for (int64_t id : ids) index->remove(id);
  REQUIRE(index->search(query.data(), 3, SearchOptions(5), nullptr, &results).ok());
  for (const auto& hits : results) CHECK(hits.empty());
}

// Searches keep their searchers (and visited tables) between calls; an add
// grows the graph and moves its storage, so a search after it must not walk
// with one made before it.
TEST_CASE("HNSW search through VectorIndex: each search finds every vector added before it") {
  const int dim = 16;
  const size_t rounds = 4, per_round = 1500;
  const std::vector<float> base = unit_vectors(rounds * per_round, dim, 51);
  std::unique_ptr<VectorIndex> index;
  REQUIRE(VectorIndex::create(dim, Metric::kL2, "HNSW16", &index).ok());
  SearchOptions options(1);
  options.ef_search = 64;
  for (size_t round = 0; round < rounds; ++round) {
    INFO("round " << round);
    std::vector<int64_t> ids(per_round);
    std::iota(ids.begin(), ids.end(), static_cast<int64_t>(round * per_round));
    const float* added = &base[round * per_round * dim];
    REQUIRE(index->add(per_round, added, ids.data()).ok());
    // Each added vector finds itself, in a batch (a searcher per OpenMP
    // thread) and alone (the calling thread's).
    std::vector<std::vector<Neighbor>> found;
    REQUIRE(index->search(added, per_round, options, nullptr, &found).ok());
    size_t themselves = 0;
    for (size_t i = 0; i < per_round; ++i) {
      themselves += found[i].size() == 1 && found[i][0].id == ids[i] && found[i][0].score == 0;
    }
    CHECK(themselves >= per_round * 99 / 100);
    for (size_t i = 0; i < per_round; i += 97) {
      REQUIRE(index->search(&added[i * dim], 1, options, nullptr, &found).ok());
      REQUIRE(found[0].size() == 1);
      CHECK(found[0][0].id == ids[i]);
    }
  }
}

// A hit's id comes from its position: read from the id map, or, while the ids
// run without a gap (a store that has only appended), computed from the
// first id. Both must name the vector found, in every kind of index.
TEST_CASE("VectorIndex names each hit by its id, whether the ids run without a gap or not") {
  const int dim = 8;
  const std::vector<float> base = unit_vectors(6, dim, 61);
  for (const std::string spec : {"Flat", "IVF2,Flat", "HNSW16"}) {
    for (const std::vector<int64_t>& ids :
         {std::vector<int64_t>{7, 8, 9, 10, 11, 12}, std::vector<int64_t>{3, 4, 9, 10, 20, 21}}) {
      CAPTURE(spec, ids);
      std::unique_ptr<VectorIndex> index;
      REQUIRE(VectorIndex::create(dim, Metric::kL2, spec, &index).ok());
      REQUIRE(index->add(ids.size(), base.data(), ids.data()).ok());
      index->remove(ids[1]);  // a tombstone keeps its place in the map
      std::vector<std::vector<Neighbor>> found;
      REQUIRE(index->search(base.data(), ids.size(), SearchOptions(1), nullptr, &found).ok());
      for (size_t i = 0; i < ids.size(); ++i) {
        REQUIRE(found[i].size() == 1);
        if (i != 1) CHECK(found[i][0].id == ids[i]);
        CHECK(found[i][0].id != ids[1]);
      }
    }
  }
}
