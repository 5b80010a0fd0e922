// filter_bench: filtered search against unfiltered search and against
// over-fetching then dropping, and the metadata index's ingest cost.
//
//   filter_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3]
//                [--specs "Flat;HNSW32;IVF256,Flat"] [--dir /tmp/filter_bench]
//
// Records are seeded random unit vectors with metadata {"bucket": b, "tenant":
// "t<b % 20>"}, b uniform in [0, 1000), so the filters below select 0.1%, 1%,
// 10% and 50% of them. Prints one JSON object per line:
// - "ingest": rows/s with and without metadata (Flat, batches of 1000, each
//   durable), the two stores fed batch by batch in turn so load from elsewhere
//   hits both alike;
// - per spec and selectivity: QPS (median over repeats, one query at a time,
//   the three ways interleaved query by query) of the filtered search, of the
//   unfiltered search, and of an unfiltered search of 10x k whose non-matching
//   hits are dropped; recall@10 of both against the exact filtered answer, and
//   the hits each returned per query (at least/mean);
// - "hnsw_exact": for the HNSW store's own FAISS graph, the time per query of
//   the graph walk with an IDSelector and of an exact scan of the matching
//   subset at several selectivities: where the exact scan wins is the
//   threshold the store uses (kHnswExactFraction in index/vector_index.cpp).
#include <faiss/IndexHNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "embedapt/store.h"

using namespace embedapt;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  size_t n = 100000;
  int dim = 384;
  size_t queries = 200;
  int repeats = 3;
  std::vector<std::string> specs = {"Flat", "HNSW32", "IVF256,Flat"};
  std::string dir = "/tmp/filter_bench";
};

constexpr int kK = 10;
constexpr int kOverFetch = 10;  // the drop strategy searches kOverFetch * k

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "filter_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

std::vector<float> unit_vectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int j = 0; j < dim; ++j) norm += std::pow(v[i * dim + j] = normal(rng), 2);
    for (int j = 0; j < dim; ++j) v[i * dim + j] /= std::sqrt(norm);
  }
  return v;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

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
};

Record record(const Data& data, size_t i, bool with_metadata) {
  Record r;
  r.id = std::to_string(i);
  r.vector.assign(data.docs.begin() + i * data.dim, data.docs.begin() + (i + 1) * data.dim);
  if (with_metadata) {
    r.metadata = nlohmann::json{{"bucket", data.bucket[i]}, {"tenant", "t" + std::to_string(data.bucket[i] % 20)}}
                     .dump();
  }
  return r;
}

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
  std::vector<Record> batch;
  for (size_t begin = 0; begin < args.n; begin += 1000) {
    const size_t end = std::min(args.n, begin + 1000);
    for (int pass = 0; pass < 2; ++pass) {
      const bool meta = (pass == 0) == (begin / 1000 % 2 == 0);
      batch.clear();
      for (size_t i = begin; i < end; ++i) batch.push_back(record(data, i, meta));
      Store* store = meta ? with_metadata->get() : plain.get();
      auto t = Clock::now();
      die(store->upsert_batch(batch), "upsert_batch");
      die(store->sync(), "sync");
      (meta ? meta_s : plain_s) += seconds_since(t);
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

nlohmann::json bench_selectivity(const Args& args, const Data& data, const Store& store, const std::string& spec,
                                 const Selectivity& s) {
  SearchOptions filtered(kK), plain(kK), over(kK * kOverFetch);
  die(Filter::parse(s.filter, &filtered.filter), "filter");
  const size_t nq = data.queries.size() / args.dim;
  std::vector<std::vector<std::string>> truth(nq);
  for (size_t q = 0; q < nq; ++q) truth[q] = exact(data, &data.queries[q * args.dim], s);
  std::vector<double> qps[3];
  double filtered_recall = 0, dropped_recall = 0, dropped_hits = 0;
  size_t filtered_min = kK, dropped_min = kK;
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
        } else if (way == 2) {
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
          {"overfetch_recall_at_10", dropped_recall},
          {"overfetch_mean_hits", dropped_hits},
          {"overfetch_min_hits", dropped_min}};
}

// The graph walk with a selector against the exact scan of the subset, on a
// FAISS HNSW32 graph of the same vectors, per query.
nlohmann::json bench_hnsw_exact(const Args& args, const Data& data) {
  faiss::IndexHNSWFlat index(args.dim, 32, faiss::METRIC_INNER_PRODUCT);
  index.add(static_cast<faiss::Index::idx_t>(args.n), data.docs.data());
  nlohmann::json rows = nlohmann::json::array();
  const size_t nq = data.queries.size() / args.dim;
  std::vector<float> scores(kK);
  std::vector<faiss::Index::idx_t> labels(kK);
  for (double fraction : {0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2}) {
    const int below = static_cast<int>(std::lround(fraction * 1000));
    std::vector<uint8_t> bitmap((args.n + 7) / 8, 0);
    std::vector<size_t> subset;
    for (size_t i = 0; i < args.n; ++i) {
      if (data.bucket[i] >= below) continue;
      bitmap[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
      subset.push_back(i);
    }
    faiss::IDSelectorBitmap selector(bitmap.size(), bitmap.data());
    faiss::SearchParametersHNSW params;
    params.sel = &selector;
    params.efSearch = std::max(index.hnsw.efSearch, kK);
    std::vector<double> graph_s, exact_s;
    double graph_recall = 0;
    for (int r = 0; r < args.repeats; ++r) {
      double graph_total = 0, exact_total = 0;
      for (size_t q = 0; q < nq; ++q) {
        const float* query = &data.queries[q * args.dim];
        auto t = Clock::now();
        index.search(1, query, kK, scores.data(), labels.data(), &params);
        graph_total += seconds_since(t);
        std::vector<faiss::Index::idx_t> graph(labels.begin(), labels.end());
        t = Clock::now();
        std::vector<std::pair<float, size_t>> scored;
        scored.reserve(subset.size());
        for (size_t i : subset) scored.push_back({faiss::fvec_inner_product(query, &data.docs[i * args.dim], args.dim), i});
        const size_t top = std::min<size_t>(kK, scored.size());
        std::partial_sort(scored.begin(), scored.begin() + top, scored.end(),
                          [](const auto& a, const auto& b) { return a.first > b.first; });
        exact_total += seconds_since(t);
        if (r == 0) {
          size_t found = 0;
          for (size_t i = 0; i < top; ++i) found += std::count(graph.begin(), graph.end(), scored[i].second);
          graph_recall += double(found) / std::max<size_t>(top, 1) / nq;
        }
      }
      graph_s.push_back(graph_total / nq);
      exact_s.push_back(exact_total / nq);
    }
    rows.push_back({{"fraction", fraction},
                    {"matches", subset.size()},
                    {"graph_ms", median(graph_s) * 1e3},
                    {"exact_ms", median(exact_s) * 1e3},
                    {"graph_recall_at_10", graph_recall}});
  }
  return {{"hnsw_exact", {{"n", args.n}, {"dim", args.dim}, {"ef_search", index.hnsw.efSearch}, {"rows", rows}}}};
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--n") {
      args.n = std::stoull(value);
    } else if (flag == "--dim") {
      args.dim = std::stoi(value);
    } else if (flag == "--queries") {
      args.queries = std::stoull(value);
    } else if (flag == "--repeats") {
      args.repeats = std::stoi(value);
    } else if (flag == "--dir") {
      args.dir = value;
    } else if (flag == "--specs") {
      args.specs.clear();
      for (size_t start = 0; start <= value.size();) {
        size_t end = value.find(';', start);
        if (end == std::string::npos) end = value.size();
        args.specs.push_back(value.substr(start, end - start));
        start = end + 1;
      }
    } else {
      std::fprintf(stderr, "filter_bench: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  Data data{args.dim, unit_vectors(args.n, args.dim, 1), unit_vectors(args.queries, args.dim, 2), {}};
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> bucket(0, 999);
  for (size_t i = 0; i < args.n; ++i) data.bucket.push_back(bucket(rng));
  std::filesystem::create_directories(args.dir);

  std::unique_ptr<Store> flat;
  std::printf("%s\n", bench_ingest(args, data, &flat).dump().c_str());
  std::fflush(stdout);
  for (const std::string& spec : args.specs) {
    std::unique_ptr<Store> store;
    if (spec == "Flat") {
      store = std::move(flat);
    } else {
      store = create(args.dir + "/" + spec, args.dim, spec);
      std::vector<Record> batch;
      for (size_t begin = 0; begin < args.n; begin += 10000) {
        batch.clear();
        for (size_t i = begin; i < std::min(args.n, begin + 10000); ++i) batch.push_back(record(data, i, true));
        die(store->upsert_batch(batch), "upsert_batch");
      }
    }
    for (const Selectivity& s : selectivities()) {
      std::printf("%s\n", bench_selectivity(args, data, *store, spec, s).dump().c_str());
      std::fflush(stdout);
    }
    store.reset();
    std::filesystem::remove_all(args.dir + "/" + spec);
  }
  flat.reset();
  std::printf("%s\n", bench_hnsw_exact(args, data).dump().c_str());
  std::filesystem::remove_all(args.dir);
  return 0;
}
