// faiss_bench: the FAISS kernels the store runs, timed in CPU seconds of one
// thread, so that two builds of FAISS (Debian's SSE-only libfaiss and
// tools/build-faiss.sh's AVX2/FMA one) can be compared side by side:
// tools/bench/faiss.sh runs the two programs in turn (faiss_bench and
// faiss_bench_stock, the same source linked against each) and report.py
// takes medians and ratios.
//
//   faiss_bench [--n 100000] [--queries 200] [--hnsw-n 20000] [--ivf-train 39936] [--dim 384]
//
// One JSON line: the kernels this program links ("avx2" or "generic"), then
// - Flat: one query at a time over n vectors (what a single search of a Flat
//   store costs), CPU ms per query (the median of the queries);
// - HNSW32: building the graph of hnsw-n vectors (add), CPU seconds;
// - IVF1024,Flat: training (k-means) on ivf-train vectors, as many as the
//   store trains on, CPU seconds.
// Everything runs on the calling thread (OpenMP limited to one; run it with
// OPENBLAS_NUM_THREADS=1, as faiss.sh does, so BLAS stays on it too): CPU
// time is then the work of one build, not stretched by other processes.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <omp.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "tools/bench/bench_common.h"

using namespace embedapt::bench;

namespace {

using idx_t = faiss::Index::idx_t;

constexpr int kK = 10;

double flat_query_cpu_ms(const std::vector<float>& docs, const std::vector<float>& queries, int dim) {
  faiss::IndexFlatIP index(dim);
  index.add(static_cast<idx_t>(docs.size() / dim), docs.data());
  std::vector<float> distances(kK);
  std::vector<idx_t> labels(kK);
  std::vector<double> ms;
  for (size_t q = 0; q < queries.size() / dim; ++q) {
    const double t = thread_cpu_seconds();
    index.search(1, queries.data() + q * dim, kK, distances.data(), labels.data());
    ms.push_back((thread_cpu_seconds() - t) * 1e3);
  }
  return median(ms);
}

double hnsw_build_cpu_s(const std::vector<float>& docs, int dim) {
  std::unique_ptr<faiss::Index> index(faiss::index_factory(dim, "HNSW32", faiss::METRIC_INNER_PRODUCT));
  const double t = thread_cpu_seconds();
  index->add(static_cast<idx_t>(docs.size() / dim), docs.data());
  return thread_cpu_seconds() - t;
}

double ivf_train_cpu_s(const std::vector<float>& docs, int dim) {
  std::unique_ptr<faiss::Index> index(faiss::index_factory(dim, "IVF1024,Flat", faiss::METRIC_INNER_PRODUCT));
  const double t = thread_cpu_seconds();
  index->train(static_cast<idx_t>(docs.size() / dim), docs.data());
  return thread_cpu_seconds() - t;
}

constexpr const char* kUsage =
    "usage: faiss_bench [--n 100000] [--queries 200] [--hnsw-n 20000] [--ivf-train 39936] [--dim 384]\n"
    "FAISS's own kernels on one thread, in CPU time: a one-query Flat search over n vectors (ms,\n"
    "median of the queries), an HNSW32 build of hnsw-n vectors and an IVF1024,Flat training on\n"
    "ivf-train vectors (s); seeded random unit vectors. Prints one JSON line with the linked FAISS's\n"
    "kernels (\"avx2\" or \"generic\"). Set OPENBLAS_NUM_THREADS=1 (tools/bench/faiss.sh does).\n";

int run(int argc, char** argv) {
  const Flags flags(argc, argv, "faiss_bench", kUsage,
                    {"--n", "--queries", "--hnsw-n", "--ivf-train", "--dim"});
  const auto n = static_cast<size_t>(flags.number("--n", 100000));
  const auto nq = static_cast<size_t>(flags.number("--queries", 200));
  const auto hnsw_n = static_cast<size_t>(flags.number("--hnsw-n", 20000));
  const auto ivf_train = static_cast<size_t>(flags.number("--ivf-train", 39 * 1024));
  const int dim = static_cast<int>(flags.number("--dim", 384));
  omp_set_num_threads(1);

  const std::vector<float> docs = unit_vectors(std::max({n, hnsw_n, ivf_train}), dim, 1);
  const std::vector<float> queries = unit_vectors(nq, dim, 2);
  const auto first = [&](size_t rows) { return std::vector<float>(docs.begin(), docs.begin() + rows * dim); };
  const nlohmann::json row = {{"faiss", faiss_kernels()},
                              {"dim", dim},
                              {"flat_n", n},
                              {"queries", nq},
                              {"flat_query_cpu_ms", flat_query_cpu_ms(first(n), queries, dim)},
                              {"hnsw_n", hnsw_n},
                              {"hnsw_build_cpu_s", hnsw_build_cpu_s(first(hnsw_n), dim)},
                              {"ivf_train_n", ivf_train},
                              {"ivf_train_cpu_s", ivf_train_cpu_s(first(ivf_train), dim)}};
  std::printf("%s\n", row.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("faiss_bench", run, argc, argv); }
