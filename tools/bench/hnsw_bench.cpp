// hnsw_bench: the store's HNSW search (HnswSearch, index/hnsw_search.h)
// against FAISS's own (IndexHNSW::search) on the same graph, vectors and
// queries, across efSearch.
//
//   hnsw_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3] [--spec HNSW32]
//              [--ef "16,32,64,128,256,384,512,768"] [--cache DIR]
//
// The vectors are seeded random unit vectors (unit_vectors(n, dim, 1), the
// rows of store_bench and filter_bench, whose graph --cache shares; the peers
// table, peers.sh, has real-like ones, searched through the store). One
// JSON line per efSearch value: recall@10 of each search against the exact
// top 10 (inner product), and each one's QPS and CPU time per query, one
// query at a time on one thread, each on a copy of the index of its own
// (faiss::clone_index), the two interleaved query by query and alternating
// which goes first (load from elsewhere hits both alike), the median over
// repeats; "speedup_wall" and
// "speedup_cpu" are FAISS's time over ours (CPU time is not stretched by other
// processes); the 1-minute load average before and after each value's
// searches. FAISS's search is given efSearch through
// SearchParametersHNSW and asked for max(efSearch, 10) results, as FAISS 1.7.3
// sizes its list by the index's efSearch or k (recall counts its best 10).
#include <faiss/IndexHNSW.h>
#include <faiss/clone_index.h>
#include <faiss/index_factory.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "index/hnsw_search.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

using idx_t = faiss::Index::idx_t;

constexpr int kK = 10;

constexpr const char* kUsage =
    "usage: hnsw_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3] [--spec HNSW32]\n"
    "                  [--ef \"16,32,64,128,256,384,512,768\"] [--cache DIR]\n"
    "The store's HNSW search against FAISS's own on the same graph and queries: recall@10,\n"
    "single-query QPS and CPU ms per query of each, one thread, one JSON line per efSearch value,\n"
    "on seeded random unit vectors. --cache DIR keeps the graph there for later runs (shared with\n"
    "store_bench and filter_bench; never a directory in the repository).\n";

struct Args {
  size_t n = 100000;
  int dim = 384;
  size_t queries = 200;
  int repeats = 3;
  std::string spec = "HNSW32";
  std::vector<double> ef = {16, 32, 64, 128, 256, 384, 512, 768};
  std::string cache;
};

Args parse_args(int argc, char** argv) {
  const Flags flags(argc, argv, "hnsw_bench", kUsage,
                    {"--n", "--dim", "--queries", "--repeats", "--spec", "--ef", "--cache"});
  Args args;
  args.n = static_cast<size_t>(flags.number("--n", static_cast<double>(args.n)));
  args.dim = static_cast<int>(flags.number("--dim", args.dim));
  args.queries = static_cast<size_t>(flags.number("--queries", static_cast<double>(args.queries)));
  args.repeats = std::max(1, static_cast<int>(flags.number("--repeats", args.repeats)));
  args.spec = flags.text("--spec", args.spec);
  args.ef = flags.numbers("--ef", args.ef, ',');
  args.cache = flags.text("--cache", args.cache);
  return args;
}

double cpu_seconds_since(double start) { return thread_cpu_seconds() - start; }

int run(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  const std::vector<float> docs = unit_vectors(args.n, args.dim, 1);
  const std::vector<float> queries = unit_vectors(args.queries, args.dim, 2);
  std::unique_ptr<faiss::Index> made;
  const nlohmann::json built =
      cached_index(args.cache, cache_key(args.spec, args.n, args.dim), args.spec, args.dim, docs, &made);
  const auto* index = dynamic_cast<const faiss::IndexHNSW*>(made.get());
  if (index == nullptr) {
    std::fprintf(stderr, "hnsw_bench: --spec %s is not an HNSW index\n", args.spec.c_str());
    return 2;
  }
  const size_t nq = queries.size() / args.dim;
  const auto truth = exact_top_k(docs, queries, args.dim, kK);
  auto recall_of = [&](size_t q, const std::vector<idx_t>& found) {
    const std::set<idx_t> exact(truth[q].begin(), truth[q].end());
    return double(std::count_if(found.begin(), found.end(), [&](idx_t p) { return exact.count(p); })) / kK;
  };

  // Each search walks a copy of its own: on one copy, whichever went second
  // found in the cache the vectors the first had just fetched for the same
  // query (FAISS always went first before 2026-12-01, which flattered the
  // walk). The copies' difference is store_bench's "raw vs its copy".
  const std::unique_ptr<faiss::Index> copy(faiss::clone_index(index));
  omp_set_num_threads(1);
  HnswSearch ours(*dynamic_cast<const faiss::IndexHNSW*>(copy.get()));
  std::vector<Neighbor> hits;
  std::vector<float> scores;
  std::vector<idx_t> labels, found;
  for (double ef_value : args.ef) {
    const int ef = static_cast<int>(ef_value);
    faiss::SearchParametersHNSW params;
    params.efSearch = ef;
    const size_t fetch = static_cast<size_t>(std::max(ef, kK));
    scores.resize(fetch);
    labels.resize(fetch);
    const double load_before = load_1min();
    std::vector<double> faiss_s, ours_s, faiss_cpu, ours_cpu;
    double faiss_recall = 0, ours_recall = 0;
    for (int r = 0; r < args.repeats; ++r) {
      double faiss_total = 0, ours_total = 0, faiss_cpu_total = 0, ours_cpu_total = 0;
      for (size_t q = 0; q < nq; ++q) {
        const float* query = &queries[q * args.dim];
        // Alternating which goes first.
        for (size_t turn = 0; turn < 2; ++turn) {
          const auto t = Clock::now();
          const double c = thread_cpu_seconds();
          if ((turn + q) % 2 == 0) {
            index->search(1, query, static_cast<idx_t>(fetch), scores.data(), labels.data(), &params);
            faiss_cpu_total += cpu_seconds_since(c);
            faiss_total += seconds_since(t);
          } else {
            ours.search(query, kK, static_cast<size_t>(ef), nullptr, &hits);
            ours_cpu_total += cpu_seconds_since(c);
            ours_total += seconds_since(t);
          }
        }
        if (r == 0) {
          faiss_recall += recall_of(q, std::vector<idx_t>(labels.begin(), labels.begin() + kK)) / nq;
          found.clear();
          for (const Neighbor& hit : hits) found.push_back(hit.id);
          ours_recall += recall_of(q, found) / nq;
        }
      }
      faiss_s.push_back(faiss_total / nq);
      ours_s.push_back(ours_total / nq);
      faiss_cpu.push_back(faiss_cpu_total / nq);
      ours_cpu.push_back(ours_cpu_total / nq);
    }
    const nlohmann::json row = {{"hnsw",
                                 {{"spec", args.spec},
                                  {"n", args.n},
                                  {"dim", args.dim},
                                  {"queries", nq},
                                  {"repeats", args.repeats},
                                  {"faiss", faiss_kernels()},
                                  {"build", built},
                                  {"ef_search", ef},
                                  {"load_before", load_before},
                                  {"load_after", load_1min()},
                                  {"faiss_recall_at_10", faiss_recall},
                                  {"ours_recall_at_10", ours_recall},
                                  {"faiss_qps", 1 / median(faiss_s)},
                                  {"ours_qps", 1 / median(ours_s)},
                                  {"faiss_cpu_ms", median(faiss_cpu) * 1e3},
                                  {"ours_cpu_ms", median(ours_cpu) * 1e3},
                                  {"speedup_wall", median(faiss_s) / median(ours_s)},
                                  {"speedup_cpu", median(faiss_cpu) / median(ours_cpu)}}}};
    std::printf("%s\n", row.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("hnsw_bench", run, argc, argv); }
