// filter_bench: filtered search against unfiltered search and against
// over-fetching then dropping, and the metadata index's ingest cost.
//
//   filter_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3]
//                [--specs "Flat;HNSW32;IVF256,Flat"] [--dir /tmp/filter_bench]
//                [--thresholds 1] [--cache DIR]
//
// Records are seeded random unit vectors with metadata {"bucket": b, "tenant":
// "t<b % 20>"}, b uniform in [0, 1000) (bench_common.h), so the filters below
// select 0.1%, 1%, 10% and 50% of them. With --cache, the stores of the specs
// other than Flat and the FAISS HNSW32 of "hnsw_exact" are built once and kept
// there (shared with store_bench). Prints one JSON object per line:
// - "ingest": rows/s with and without metadata (Flat, batches of 1000, each
//   durable), the two stores fed batch by batch in turn so load from elsewhere
//   hits both alike;
// - per spec and selectivity: QPS (median over repeats, one query at a time,
//   the three ways interleaved query by query) of the filtered search, of the
//   unfiltered search, and of an unfiltered search of 10x k whose non-matching
//   hits are dropped; recall@10 of both against the exact filtered answer, and
//   the hits each returned per query (at least/mean) and the queries whose
//   filtered search returned fewer than min(k, matches); the unfiltered search's
//   recall@10 against the exact unfiltered answer (what the index's knobs give
//   without a filter);
// - "hnsw_exact": for a FAISS HNSW32 graph of the same vectors, the time per
//   query and recall@10 of the store's filtered graph walk (HnswSearch with
//   an allow-bitmap, at efSearch) and the time of an exact scan of the
//   matching subset, at several selectivities: where the exact scan wins is
//   the threshold the store uses (kHnswExactFraction in
//   index/vector_index.cpp);
// - "ivf_probe": for a FAISS IVF256,Flat of the same vectors with an
//   IDSelector, time per query and recall@10 of the ways to choose how many
//   lists a filtered search probes (kFilteredProbeGrowth and the scaled start
//   in index/vector_index.cpp).
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/clone_index.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/utils/distances.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "embedapt/store.h"
#include "index/hnsw_search.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

struct Args {
  size_t n = 100000;
  int dim = 384;
  size_t queries = 200;
  int repeats = 3;
  std::vector<std::string> specs = {"Flat", "HNSW32", "IVF256,Flat"};
  std::string dir = "/tmp/filter_bench";
  bool thresholds = true;  // measure "ivf_probe" and "hnsw_exact"
  std::string cache;       // where built stores and indexes are kept ("" for nowhere)
};

constexpr int kK = 10;
constexpr int kOverFetch = 10;  // the drop strategy searches kOverFetch * k

void die(const Status& s, const char* what) { bench::die("filter_bench", s, what); }

struct Selectivity {
  const char* name;
  double fraction;
  std::string filter;
  bool (*matches)(int bucket);  // what the filter selects, for the exact answer
};

// Filters of the four selectivities, each through different operators.
std::vector<Selectivity> selectivities() {
  return {{"0.1%", 0.001, R"({"bucket": 7})", [](int b) { return b == 7; }},
          {"1%", 0.01, R"({"bucket": {"$lt": 10}})", [](int b) { return b < 10; }},
          {"10%", 0.1, R"({"tenant": {"$in": ["t0", "t1"]}})", [](int b) { return b % 20 < 2; }},
          {"50%", 0.5, R"({"$not": {"bucket": {"$gte": 500}}})", [](int b) { return b < 500; }}};
}

struct Data {
  int dim;
  std::vector<float> docs, queries;
  std::vector<int> bucket;
  std::vector<std::vector<std::string>> unfiltered_truth;  // each query's exact top k
};

std::string metadata(const Data& data, size_t i) { return bucket_metadata(data.bucket[i]); }

std::unique_ptr<Store> create(const std::string& path, int dim, const std::string& spec) {
  std::filesystem::remove_all(path);
  Options options;
  options.dim = dim;
  options.index_spec = spec;
  options.snapshot_every = 0;
  std::unique_ptr<Store> store;
  die(Store::open(path, options, &store), "open");
  return store;
}

// Feeds the two stores (without and with metadata) batch by batch in turn.
nlohmann::json bench_ingest(const Args& args, const Data& data, std::unique_ptr<Store>* with_metadata) {
  auto plain = create(args.dir + "/plain", args.dim, "Flat");
  *with_metadata = create(args.dir + "/Flat", args.dim, "Flat");
  double plain_s = 0, meta_s = 0;
  for (size_t begin = 0; begin < args.n; begin += 1000) {
    const size_t end = std::min(args.n, begin + 1000);
    for (int pass = 0; pass < 2; ++pass) {
      if ((pass == 0) == (begin / 1000 % 2 == 0)) {
        meta_s += fill("filter_bench", with_metadata->get(), data.docs, args.dim, begin, end, 1000, true,
                       [&](size_t i) { return metadata(data, i); });
      } else {
        plain_s += fill("filter_bench", plain.get(), data.docs, args.dim, begin, end, 1000, true);
      }
    }
  }
  plain.reset();
  std::filesystem::remove_all(args.dir + "/plain");
  return {{"ingest",
           {{"n", args.n},
            {"dim", args.dim},
            {"rows_per_s_without_metadata", args.n / plain_s},
            {"rows_per_s_with_metadata", args.n / meta_s},
            {"overhead", meta_s / plain_s - 1.0}}}};
}

// The exact top-k among the matching records, by brute force.
std::vector<std::string> exact(const Data& data, const float* query, const Selectivity& s) {
  std::vector<std::pair<float, size_t>> scored;
  for (size_t i = 0; i < data.bucket.size(); ++i) {
    if (!s.matches(data.bucket[i])) continue;
    scored.push_back({faiss::fvec_inner_product(query, &data.docs[i * data.dim], data.dim), i});
  }
  const size_t top = std::min<size_t>(kK, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + top, scored.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> ids;
  for (size_t i = 0; i < top; ++i) ids.push_back(std::to_string(scored[i].second));
  return ids;
}

double recall(const std::vector<std::string>& truth, const std::vector<Hit>& hits) {
  if (truth.empty()) return 1.0;
  size_t found = 0;
  for (const Hit& hit : hits) found += std::count(truth.begin(), truth.end(), hit.id);
  return double(found) / truth.size();
}

nlohmann::json bench_selectivity(const Args& args, const Data& data, const Store& store,
                                 const std::string& spec, const Selectivity& s) {
  SearchOptions filtered(kK), plain(kK), over(kK * kOverFetch);
  die(Filter::parse(s.filter, &filtered.filter), "filter");
  const size_t nq = data.queries.size() / args.dim;
  std::vector<std::vector<std::string>> truth(nq);
  for (size_t q = 0; q < nq; ++q) truth[q] = exact(data, &data.queries[q * args.dim], s);
  std::vector<double> qps[3];
  double filtered_recall = 0, unfiltered_recall = 0, dropped_recall = 0, dropped_hits = 0;
  size_t filtered_min = kK, dropped_min = kK, filtered_short = 0;
  std::vector<Hit> hits;
  for (int r = 0; r < args.repeats; ++r) {
    double total[3] = {0, 0, 0};
    for (size_t q = 0; q < nq; ++q) {
      const float* query = &data.queries[q * args.dim];
      for (int turn = 0; turn < 3; ++turn) {
        const int way = (turn + q) % 3;  // 0 filtered, 1 unfiltered, 2 over-fetch and drop
        auto t = Clock::now();
        die(store.search(query, args.dim, way == 0 ? filtered : way == 1 ? plain : over, &hits), "search");
        if (way == 2) {
          hits.erase(std::remove_if(hits.begin(), hits.end(),
                                    [&](const Hit& h) { return !s.matches(data.bucket[std::stoul(h.id)]); }),
                     hits.end());
          if (hits.size() > size_t(kK)) hits.resize(kK);
        }
        total[way] += seconds_since(t);
        if (r > 0) continue;
        if (way == 0) {
          filtered_recall += recall(truth[q], hits) / nq;
          filtered_min = std::min(filtered_min, hits.size());
          filtered_short += hits.size() < truth[q].size();  // truth holds min(k, matches)
        } else if (way == 1) {
          unfiltered_recall += recall(data.unfiltered_truth[q], hits) / nq;
        } else {
          dropped_recall += recall(truth[q], hits) / nq;
          dropped_hits += double(hits.size()) / nq;
          dropped_min = std::min(dropped_min, hits.size());
        }
      }
    }
    for (int way = 0; way < 3; ++way) qps[way].push_back(nq / total[way]);
  }
  return {{"spec", spec},
          {"selectivity", s.name},
          {"fraction", s.fraction},
          {"filter", s.filter},
          {"n", args.n},
          {"dim", args.dim},
          {"queries", nq},
          {"repeats", args.repeats},
          {"filtered_qps", median(qps[0])},
          {"unfiltered_qps", median(qps[1])},
          {"overfetch_qps", median(qps[2])},
          {"filtered_recall_at_10", filtered_recall},
          {"filtered_min_hits", filtered_min},
          {"filtered_short_queries", filtered_short},
          {"unfiltered_recall_at_10", unfiltered_recall},
          {"overfetch_recall_at_10", dropped_recall},
          {"overfetch_mean_hits", dropped_hits},
          {"overfetch_min_hits", dropped_min}};
}

// One OpenMP thread while it lives: a store searches one query on one thread
// (OneThreadFor in index/vector_index.cpp), so these measurements do too.
struct OneThread {
  OneThread() : threads(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(threads); }
  const int threads;
};

// The records whose bucket lies below fraction * 1000, as a bitmap over
// positions and as a list.
void subset_below(const Data& data, double fraction, std::vector<uint8_t>* bitmap,
                  std::vector<size_t>* subset) {
  const int below = static_cast<int>(std::lround(fraction * 1000));
  bitmap->assign((data.bucket.size() + 7) / 8, 0);
  subset->clear();
  for (size_t i = 0; i < data.bucket.size(); ++i) {
    if (data.bucket[i] >= below) continue;
    (*bitmap)[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
    subset->push_back(i);
  }
}

// The fraction of the exact top `top` (best first in `exact`) found in `labels`.
double overlap(const std::vector<std::pair<float, size_t>>& exact, size_t top,
               const std::vector<faiss::Index::idx_t>& labels) {
  size_t found = 0;
  for (size_t i = 0; i < top; ++i) {
    found += std::count(labels.begin(), labels.end(), static_cast<faiss::Index::idx_t>(exact[i].second));
  }
  return double(found) / std::max<size_t>(top, 1);
}

// The exact top k of `subset` for `query`, best first.
std::vector<std::pair<float, size_t>> exact_subset(const Data& data, const float* query,
                                                   const std::vector<size_t>& subset) {
  std::vector<std::pair<float, size_t>> scored;
  scored.reserve(subset.size());
  for (size_t i : subset)
    scored.push_back({faiss::fvec_inner_product(query, &data.docs[i * data.dim], data.dim), i});
  const size_t top = std::min<size_t>(kK, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + top, scored.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  scored.resize(top);
  return scored;
}

// How a filtered IVF search picks its lists: probe `start(matches)` lists,
// and while a query comes up short of k hits search again with `growth`
// times as many. The store trains IVF on its first 39 * nlist vectors; so
// does this index.
nlohmann::json bench_ivf_probe(const Args& args, const Data& data) {
  std::unique_ptr<faiss::Index> made(
      faiss::index_factory(args.dim, "IVF256,Flat", faiss::METRIC_INNER_PRODUCT));
  auto* ivf = dynamic_cast<faiss::IndexIVF*>(made.get());
  const size_t nlist = ivf->nlist, train = std::min(args.n, 39 * nlist);
  ivf->train(static_cast<faiss::Index::idx_t>(train), data.docs.data());
  ivf->add(static_cast<faiss::Index::idx_t>(args.n), data.docs.data());
  struct Policy {
    const char* name;
    bool scaled;  // start at nprobe * n / matches instead of nprobe
    size_t growth;
  };
  const std::vector<Policy> policies = {
      {"nprobe, x2", false, 2}, {"nprobe, x4", false, 4}, {"scaled, x4", true, 4}};
  const size_t nprobe = ivf->nprobe;
  const OneThread one_thread;
  nlohmann::json rows = nlohmann::json::array();
  const size_t nq = data.queries.size() / args.dim;
  std::vector<float> scores(kK);
  std::vector<faiss::Index::idx_t> labels(kK);
  for (double fraction : {0.001, 0.01, 0.1, 0.5}) {
    std::vector<uint8_t> bitmap;
    std::vector<size_t> subset;
    subset_below(data, fraction, &bitmap, &subset);
    faiss::IDSelectorBitmap selector(bitmap.size(), bitmap.data());
    std::vector<std::vector<std::pair<float, size_t>>> truth(nq);
    for (size_t q = 0; q < nq; ++q) truth[q] = exact_subset(data, &data.queries[q * args.dim], subset);
    nlohmann::json row = {{"fraction", fraction}, {"matches", subset.size()}};
    for (const Policy& policy : policies) {
      std::vector<double> per_query;
      double recall_sum = 0, rounds = 0, probes = 0;
      for (int r = 0; r < args.repeats; ++r) {
        double total = 0;
        for (size_t q = 0; q < nq; ++q) {
          const float* query = &data.queries[q * args.dim];
          faiss::SearchParametersIVF params;
          params.sel = &selector;
          params.nprobe =
              policy.scaled ? std::min(nlist, (nprobe * args.n + subset.size() - 1) / subset.size()) : nprobe;
          auto t = Clock::now();
          for (int round = 1;; ++round) {
            ivf->search(1, query, kK, scores.data(), labels.data(), &params);
            const bool is_short = std::count(labels.begin(), labels.end(), -1) > 0;
            if (!is_short || params.nprobe >= nlist) {
              if (r == 0) rounds += double(round) / nq, probes += double(params.nprobe) / nq;
              break;
            }
            params.nprobe = std::min(nlist, params.nprobe * policy.growth);
          }
          total += seconds_since(t);
          if (r == 0) recall_sum += overlap(truth[q], truth[q].size(), labels) / nq;
        }
        per_query.push_back(total / nq);
      }
      row[policy.name] = {{"ms", median(per_query) * 1e3},
                          {"recall_at_10", recall_sum},
                          {"rounds", rounds},
                          {"final_nprobe", probes}};
    }
    rows.push_back(row);
  }
  // The unfiltered search at nprobe, for the recall a filtered one should match.
  double unfiltered_recall = 0;
  std::vector<size_t> everyone(args.n);
  for (size_t i = 0; i < args.n; ++i) everyone[i] = i;
  for (size_t q = 0; q < nq; ++q) {
    const float* query = &data.queries[q * args.dim];
    ivf->search(1, query, kK, scores.data(), labels.data());
    const auto truth = exact_subset(data, query, everyone);
    unfiltered_recall += overlap(truth, truth.size(), labels) / nq;
  }
  return {{"ivf_probe",
           {{"n", args.n},
            {"dim", args.dim},
            {"spec", "IVF256,Flat"},
            {"nprobe", nprobe},
            {"unfiltered_recall_at_10", unfiltered_recall},
            {"rows", rows}}}};
}

// The store's filtered graph walk against the exact scan of the subset, on a
// FAISS HNSW32 graph of the same vectors, per query.
nlohmann::json bench_hnsw_exact(const Args& args, const Data& data) {
  std::unique_ptr<faiss::Index> made;
  const nlohmann::json built =
      cached_index(args.cache, cache_key("HNSW32", args.n, args.dim), "HNSW32", args.dim, data.docs, &made);
  auto& index = dynamic_cast<faiss::IndexHNSW&>(*made);
  const int ef = std::max(index.hnsw.efSearch, kK);
  nlohmann::json rows = nlohmann::json::array();
  const size_t nq = data.queries.size() / args.dim;
  // The walk searches a copy of its own, and the two take turns going first:
  // on one copy, whichever went second found the first's vectors in the cache.
  const std::unique_ptr<faiss::Index> copy(faiss::clone_index(&index));
  HnswSearch walk(dynamic_cast<const faiss::IndexHNSW&>(*copy));
  std::vector<Neighbor> hits;
  std::vector<faiss::Index::idx_t> labels;
  const OneThread one_thread;
  for (double fraction : {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}) {
    std::vector<uint8_t> bitmap;
    std::vector<size_t> subset;
    subset_below(data, fraction, &bitmap, &subset);
    std::vector<double> walk_s, exact_s;
    double walk_recall = 0;
    for (int r = 0; r < args.repeats; ++r) {
      double walk_total = 0, exact_total = 0;
      for (size_t q = 0; q < nq; ++q) {
        const float* query = &data.queries[q * args.dim];
        std::vector<std::pair<float, size_t>> scored;
        size_t top = 0;
        for (size_t turn = 0; turn < 2; ++turn) {
          const auto t = Clock::now();
          if ((turn + q) % 2 == 0) {
            // As the store does: the subset's vectors copied out of the index, then scored.
            scored.reserve(subset.size());
            std::vector<float> row(args.dim);
            for (size_t i : subset) {
              index.reconstruct(static_cast<faiss::Index::idx_t>(i), row.data());
              scored.push_back({faiss::fvec_inner_product(query, row.data(), args.dim), i});
            }
            top = std::min<size_t>(kK, scored.size());
            std::partial_sort(scored.begin(), scored.begin() + top, scored.end(),
                              [](const auto& a, const auto& b) { return a.first > b.first; });
            exact_total += seconds_since(t);
          } else {
            walk.search(query, kK, static_cast<size_t>(ef), bitmap.data(), &hits);
            walk_total += seconds_since(t);
          }
        }
        if (r == 0) {
          labels.clear();
          for (const Neighbor& hit : hits) labels.push_back(hit.id);
          walk_recall += overlap(scored, top, labels) / nq;
        }
      }
      walk_s.push_back(walk_total / nq);
      exact_s.push_back(exact_total / nq);
    }
    rows.push_back({{"fraction", fraction},
                    {"matches", subset.size()},
                    {"graph_ms", median(walk_s) * 1e3},
                    {"graph_recall_at_10", walk_recall},
                    {"exact_ms", median(exact_s) * 1e3}});
  }
  return {{"hnsw_exact",
           {{"n", args.n}, {"dim", args.dim}, {"ef_search", ef}, {"build", built}, {"rows", rows}}}};
}

constexpr const char* kUsage =
    "usage: filter_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3]\n"
    "                    [--specs \"Flat;HNSW32;IVF256,Flat\"] [--dir /tmp/filter_bench] [--thresholds 1]\n"
    "                    [--cache DIR]\n"
    "Filtered search against unfiltered and over-fetch-then-drop search, the metadata index's\n"
    "ingest cost, and the measurements behind the HNSW exact fallback and IVF's probe count.\n"
    "--specs \"\" measures only the ingest cost and those two, --thresholds 0 all but those two\n"
    "(each builds its own index). --cache DIR keeps the stores and the HNSW32 graph built there\n"
    "for later runs (shared with store_bench; never a directory in the repository). Prints JSON lines.\n";

Args parse_args(int argc, char** argv) {
  const Flags flags(
      argc, argv, "filter_bench", kUsage,
      {"--n", "--dim", "--queries", "--repeats", "--specs", "--dir", "--thresholds", "--cache"});
  Args args;
  args.n = static_cast<size_t>(flags.number("--n", args.n));
  args.dim = static_cast<int>(flags.number("--dim", args.dim));
  args.queries = static_cast<size_t>(flags.number("--queries", args.queries));
  args.repeats = static_cast<int>(flags.number("--repeats", args.repeats));
  args.specs = flags.list("--specs", args.specs, ';');
  args.dir = flags.text("--dir", args.dir);
  args.thresholds = flags.number("--thresholds", 1) != 0;
  args.cache = flags.text("--cache", args.cache);
  return args;
}

int run(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  Data data{args.dim,
            unit_vectors(args.n, args.dim, 1),
            unit_vectors(args.queries, args.dim, 2),
            buckets(args.n),
            {}};
  {
    const Selectivity everything{"100%", 1.0, "{}", [](int) { return true; }};
    for (size_t q = 0; q < args.queries; ++q)
      data.unfiltered_truth.push_back(exact(data, &data.queries[q * args.dim], everything));
  }
  std::filesystem::create_directories(args.dir);

  std::unique_ptr<Store> flat;
  std::printf("%s\n", bench_ingest(args, data, &flat).dump().c_str());
  std::fflush(stdout);
  for (const std::string& spec : args.specs) {
    std::unique_ptr<Store> store;
    if (spec == "Flat") {
      store = std::move(flat);
    } else {
      Options options;
      options.dim = args.dim;
      options.index_spec = spec;
      options.snapshot_every = 0;
      cached_store("filter_bench", args.cache, cache_key(spec, args.n, args.dim), args.dir + "/" + spec,
                   options, data.docs, &store);
    }
    for (const Selectivity& s : selectivities()) {
      std::printf("%s\n", bench_selectivity(args, data, *store, spec, s).dump().c_str());
      std::fflush(stdout);
    }
    store.reset();
    std::filesystem::remove_all(args.dir + "/" + spec);
  }
  flat.reset();
  if (args.thresholds) {
    std::printf("%s\n", bench_ivf_probe(args, data).dump().c_str());
    std::fflush(stdout);
    std::printf("%s\n", bench_hnsw_exact(args, data).dump().c_str());
  }
  std::filesystem::remove_all(args.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("filter_bench", run, argc, argv); }
