// peers_bench: embedapt's side of the peers table (tools/bench/peers.sh), on
// the vectors the peers (tools/bench/peers.py: Chroma, LanceDB) get too.
//
//   peers_bench --make random|real --out DIR [--n 100000] [--queries 200]
//               [--base DOCS.npy --base-queries QUERIES.npy] [--noise 0.75]
//   peers_bench --vectors DIR --spec HNSW16 --dir STORE [--ef "16,32,64,128,256"] [--repeats 1]
//
// --make writes DIR/docs.npy and DIR/queries.npy (float32 unit vectors) and
// DIR/truth.json (each query's exact top 10 rows): "random" are seeded random
// unit vectors (unit_vectors, the other benchmarks' rows), "real" noisy copies
// (noisy_copies) of a corpus' embeddings (--base) and its questions'
// embeddings (--base-queries, noise / 4: queries close to what users ask).
//
// Otherwise one JSON line for a store at STORE (deleted first) with index
// --spec: durable ingest of DIR's rows (batches of 1000 records, each
// upsert_batch followed by sync(), which fsyncs; then flush(), which writes
// the index snapshot), its wall seconds and the CPU seconds of the process
// (every thread), the open time of the closed store (open plus the
// first search), the bytes it takes on disk, and per efSearch value (HNSW;
// Flat has none) recall@10 and QPS one query at a time, the median over
// repeats; "faiss" names the linked FAISS's compile options ("AVX2" or not).
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/common/npy.h"
#include "embedapt/store.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

constexpr int kK = 10;
constexpr size_t kBatch = 1000;

constexpr const char* kUsage =
    "usage: peers_bench --make random|real --out DIR [--n 100000] [--queries 200]\n"
    "                   [--base DOCS.npy --base-queries QUERIES.npy] [--noise 0.75]\n"
    "       peers_bench --vectors DIR --spec HNSW16 --dir STORE [--ef \"16,32,64,128,256\"] [--repeats 1]\n"
    "The first form writes the vectors the peers table uses (DIR/docs.npy, queries.npy, truth.json):\n"
    "seeded random unit vectors, or noisy copies of a corpus' embeddings (--base) and of its\n"
    "questions' (--base-queries). The second ingests DIR's vectors durably into a new store with\n"
    "index --spec at STORE and prints one JSON line: build wall and CPU seconds, open time, disk\n"
    "bytes, recall@10 and single-query QPS per efSearch value.\n";

void die(const Status& s, const char* what) { bench::die("peers_bench", s, what); }

[[noreturn]] void usage_error(const std::string& problem) {
  std::fprintf(stderr, "peers_bench: %s\n%s", problem.c_str(), kUsage);
  std::exit(2);
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

uint64_t disk_bytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) total += entry.file_size();
  return total;
}

Matrix read_matrix(const std::string& path) {
  Matrix m;
  die(read_npy(path, &m), "read vectors");
  return m;
}

void write_matrix(const std::string& path, const std::vector<float>& rows, int dim) {
  Matrix m;
  m.cols = static_cast<size_t>(dim);
  m.rows = rows.size() / m.cols;
  m.data = rows;
  die(write_npy(path, m), "write vectors");
}

void make_vectors(const Flags& flags) {
  const std::string kind = flags.text("--make", ""), out = flags.text("--out", "");
  if (out.empty()) usage_error("--make needs --out");
  const auto n = static_cast<size_t>(flags.number("--n", 100000));
  const auto nq = static_cast<size_t>(flags.number("--queries", 200));
  if (n < kK || nq == 0) usage_error("--n must be at least 10 and --queries positive");
  int dim = 384;
  std::vector<float> docs, queries;
  if (kind == "random") {
    docs = unit_vectors(n, dim, 1);
    queries = unit_vectors(nq, dim, 2);
  } else if (kind == "real") {
    const std::string base = flags.text("--base", ""), base_queries = flags.text("--base-queries", "");
    if (base.empty() || base_queries.empty()) usage_error("--make real needs --base and --base-queries");
    const auto noise = static_cast<float>(flags.number("--noise", 0.75));
    const Matrix d = read_matrix(base), q = read_matrix(base_queries);
    if (d.cols != q.cols) usage_error("--base and --base-queries differ in dimension");
    dim = static_cast<int>(d.cols);
    docs = noisy_copies(d.data, dim, n, noise, 1);
    queries = noisy_copies(q.data, dim, std::min(nq, q.rows), noise / 4, 2);
  } else {
    usage_error("--make is random or real, got '" + kind + "'");
  }
  std::filesystem::create_directories(out);
  write_matrix(out + "/docs.npy", docs, dim);
  write_matrix(out + "/queries.npy", queries, dim);
  std::ofstream(out + "/truth.json") << nlohmann::json(exact_top_k(docs, queries, dim, kK)).dump() << "\n";
}

void measure_store(const Flags& flags) {
  const std::string vectors = flags.text("--vectors", ""), spec = flags.text("--spec", "");
  const std::string path = flags.text("--dir", "");
  if (spec.empty() || path.empty()) usage_error("--vectors needs --spec and --dir");
  const std::vector<double> efs = flags.numbers("--ef", {16, 32, 64, 128, 256}, ',');
  const int repeats = std::max(1, static_cast<int>(flags.number("--repeats", 1)));
  const Matrix docs = read_matrix(vectors + "/docs.npy"), queries = read_matrix(vectors + "/queries.npy");
  const auto truth = nlohmann::json::parse(std::ifstream(vectors + "/truth.json"));
  const int dim = static_cast<int>(docs.cols);
  nlohmann::json row = {{"peer", "embedapt"},
                        {"index", spec},
                        {"n", docs.rows},
                        {"queries", queries.rows},
                        {"repeats", repeats},
                        {"load_before", load_average()},
                        {"faiss", faiss::get_compile_options()}};  // which FAISS build: its SIMD level

  std::filesystem::remove_all(path);
  Options options;
  options.dim = dim;
  options.index_spec = spec;
  options.snapshot_every = 0;  // the one snapshot is flush()'s, at the end
  std::unique_ptr<Store> store;
  die(Store::open(path, options, &store), "open");
  const double cpu = process_cpu_seconds();
  const auto t = Clock::now();
  row["ingest_s"] = fill("peers_bench", store.get(), docs.data, dim, 0, docs.rows, kBatch, true);
  const auto flushed = Clock::now();
  die(store->flush(), "flush");
  row["snapshot_s"] = seconds_since(flushed);
  row["build_s"] = seconds_since(t);
  row["build_cpu_s"] = process_cpu_seconds() - cpu;
  store.reset();
  row["disk_bytes"] = disk_bytes(path);

  // Open as an app does after a restart: open, then its first search.
  const auto opened = Clock::now();
  die(Store::open(path, Options(), &store), "reopen");
  std::vector<Hit> hits;
  die(store->search(queries.row(0), queries.cols, SearchOptions(kK), &hits), "search");
  row["open_s"] = seconds_since(opened);

  const bool hnsw = spec.rfind("HNSW", 0) == 0;
  nlohmann::json search = nlohmann::json::array();
  for (double ef : hnsw ? efs : std::vector<double>{0}) {
    SearchOptions search_options(kK);
    search_options.ef_search = static_cast<int>(ef);
    std::vector<double> qps;
    double recall = 0;
    for (int r = 0; r < repeats; ++r) {
      const auto start = Clock::now();
      for (size_t q = 0; q < queries.rows; ++q) {
        die(store->search(queries.row(q), queries.cols, search_options, &hits), "search");
        if (r > 0) continue;
        size_t found = 0;
        for (const Hit& hit : hits) {
          const auto id = std::stol(hit.id);
          found += std::count(truth[q].begin(), truth[q].end(), id);
        }
        recall += double(found) / kK / queries.rows;
      }
      qps.push_back(queries.rows / seconds_since(start));
    }
    search.push_back({{"ef_search", ef}, {"recall_at_10", recall}, {"qps", median(qps)}});
  }
  row["search"] = search;
  row["load_after"] = load_average();
  std::printf("%s\n", row.dump().c_str());
  store.reset();
  std::filesystem::remove_all(path);
}

int run(int argc, char** argv) {
  const Flags flags(argc, argv, "peers_bench", kUsage,
                    {"--make", "--out", "--n", "--queries", "--base", "--base-queries", "--noise",
                     "--vectors", "--spec", "--dir", "--ef", "--repeats"});
  if (!flags.text("--make", "").empty()) {
    make_vectors(flags);
  } else if (!flags.text("--vectors", "").empty()) {
    measure_store(flags);
  } else {
    usage_error("give --make or --vectors");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("peers_bench", run, argc, argv); }
