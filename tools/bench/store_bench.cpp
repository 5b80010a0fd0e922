// store_bench: the Store against raw FAISS with the same index and queries.
//
//   store_bench [--n 100000] [--dim 384] [--queries 500] [--repeats 3] [--specs Flat,HNSW32]
//               [--dir /tmp/store_bench]
//
// For each index spec: ingest rate (batches of 1000, durable), then k=10
// searches one query at a time, store and raw FAISS interleaved query by query
// so load from elsewhere hits both alike; QPS is the median over repeats,
// latency percentiles are over every timed query. Then the same with an active
// linear adapter (query side), and open time: clean (snapshot) and after a
// kill -9 that left journal entries to replay. Prints one JSON object per line.
#include <faiss/IndexIDMap.h>
#include <faiss/index_factory.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/safetensors.h"
#include "embedapt/store.h"

using namespace embedapt;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  size_t n = 100000;
  int dim = 384;
  size_t queries = 500;
  int repeats = 3;
  std::vector<std::string> specs = {"Flat", "HNSW32"};
  std::string dir = "/tmp/store_bench";
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "store_bench: %s: %s\n", what, s.ToString().c_str());
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

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

// Store and raw FAISS, query by query, alternating which goes first.
nlohmann::json compare_search(const Store& store, const faiss::Index& raw, const std::vector<float>& queries,
                              int dim, int repeats) {
  const int k = 10;
  const size_t nq = queries.size() / dim;
  std::vector<double> store_lat, raw_lat, store_qps, raw_qps;
  std::vector<Hit> hits;
  std::vector<float> distances(k);
  std::vector<faiss::Index::idx_t> labels(k);
  for (int r = 0; r < repeats; ++r) {
    double store_total = 0, raw_total = 0;
    for (size_t q = 0; q < nq; ++q) {
      const float* query = queries.data() + q * dim;
      for (int turn = 0; turn < 2; ++turn) {
        bool store_turn = (turn == 0) == (q % 2 == 0);
        auto t = Clock::now();
        if (store_turn) {
          die(store.search(query, dim, {k}, &hits), "search");
        } else {
          raw.search(1, query, k, distances.data(), labels.data());
        }
        double s = seconds_since(t);
        (store_turn ? store_lat : raw_lat).push_back(s);
        (store_turn ? store_total : raw_total) += s;
      }
    }
    store_qps.push_back(nq / store_total);
    raw_qps.push_back(nq / raw_total);
  }
  double sq = median(store_qps), rq = median(raw_qps);
  return {{"store_qps", sq},
          {"raw_qps", rq},
          {"overhead", rq / sq - 1.0},
          {"store_p50_ms", percentile(store_lat, 0.5) * 1e3},
          {"store_p99_ms", percentile(store_lat, 0.99) * 1e3},
          {"raw_p50_ms", percentile(raw_lat, 0.5) * 1e3},
          {"raw_p99_ms", percentile(raw_lat, 0.99) * 1e3}};
}

// A child process appends `extra` records without a snapshot and dies by
// SIGKILL; returns the seconds the parent then needs to open the store, and
// how it recovered.
double open_after_kill(const std::string& path, const std::vector<float>& vectors, int dim, size_t extra,
                       std::string* recovery) {
  pid_t child = fork();
  if (child == 0) {
    std::unique_ptr<Store> store;
    Options options;
    options.snapshot_every = 0;
    if (!Store::open(path, options, &store).ok()) _exit(2);
    std::vector<Record> batch(extra);
    for (size_t i = 0; i < extra; ++i) {
      batch[i].id = "late" + std::to_string(i);
      batch[i].vector.assign(vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim);
    }
    if (!store->upsert_batch(batch).ok()) _exit(3);
    raise(SIGKILL);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFSIGNALED(status)) die(Status::Internal("the writer did not die by SIGKILL"), "kill -9");
  auto t = Clock::now();
  std::unique_ptr<Store> store;
  die(Store::open(path, Options(), &store), "reopen after kill -9");
  double s = seconds_since(t);
  StoreStats stats;
  die(store->stats(&stats), "stats");
  *recovery = stats.recovery;
  return s;
}

void bench_spec(const Args& args, const std::string& spec, const std::vector<float>& docs,
                const std::vector<float>& queries) {
  const int dim = args.dim;
  const std::string path = args.dir + "/" + spec;
  std::filesystem::remove_all(path);
  nlohmann::json row = {
      {"spec", spec},           {"n", args.n}, {"dim", dim}, {"k", 10}, {"queries", args.queries},
      {"repeats", args.repeats}};

  Options options;
  options.dim = dim;
  options.index_spec = spec;
  options.snapshot_every = 0;  // no automatic snapshot inside the timed ingest: flush() below takes it
  std::unique_ptr<Store> store;
  die(Store::open(path, options, &store), "open");
  auto t = Clock::now();
  std::vector<Record> batch;
  for (size_t begin = 0; begin < args.n; begin += 1000) {
    size_t end = std::min(args.n, begin + 1000);
    batch.resize(end - begin);
    for (size_t i = begin; i < end; ++i) {
      batch[i - begin].id = std::to_string(i);
      batch[i - begin].vector.assign(docs.begin() + i * dim, docs.begin() + (i + 1) * dim);
    }
    die(store->upsert_batch(batch), "upsert_batch");
    die(store->sync(), "sync");
  }
  double ingest = seconds_since(t);
  t = Clock::now();
  die(store->flush(), "flush");
  row["ingest_rows_per_s"] = args.n / ingest;
  row["snapshot_s"] = seconds_since(t);

  std::unique_ptr<faiss::Index> raw(faiss::index_factory(dim, spec.c_str(), faiss::METRIC_INNER_PRODUCT));
  t = Clock::now();
  raw->add(static_cast<faiss::Index::idx_t>(args.n), docs.data());
  row["raw_add_rows_per_s"] = args.n / seconds_since(t);

  row["search"] = compare_search(*store, *raw, queries, dim, args.repeats);

  // A query-side linear adapter (identity weights): the cost of applying it.
  std::vector<float> eye(size_t(dim) * dim, 0.0f);
  for (int i = 0; i < dim; ++i) eye[size_t(i) * dim + i] = 1.0f;
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(eye, {dim, dim});
  AdapterVersion adapter;
  adapter.config_json = "{\"kind\":\"linear\",\"in_dim\":" + std::to_string(dim) +
                        ",\"out_dim\":" + std::to_string(dim) + ",\"side\":\"query\",\"embedder\":\"\"}";
  adapter.weights = serialize_safetensors(tensors);
  die(store->put_adapter(&adapter), "put_adapter");
  die(store->activate_adapter(adapter.version), "activate_adapter");
  row["search_linear_adapter"] = compare_search(*store, *raw, queries, dim, args.repeats);
  die(store->activate_adapter(0), "deactivate");
  raw.reset();

  store.reset();
  t = Clock::now();
  die(Store::open(path, Options(), &store), "reopen");
  row["open_clean_s"] = seconds_since(t);
  store.reset();
  std::string recovery;
  row["open_after_kill_s"] = open_after_kill(path, docs, dim, 1000, &recovery);
  row["recovery_after_kill"] = recovery;
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  row["peak_rss_mb"] = usage.ru_maxrss / 1024.0;
  std::printf("%s\n", row.dump().c_str());
  std::fflush(stdout);
  std::filesystem::remove_all(path);
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
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
      std::stringstream list(value);
      for (std::string spec; std::getline(list, spec, ',');) args.specs.push_back(spec);
    } else {
      std::fprintf(stderr, "store_bench: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  std::filesystem::create_directories(args.dir);
  std::vector<float> docs = unit_vectors(args.n, args.dim, 1);
  std::vector<float> queries = unit_vectors(args.queries, args.dim, 2);
  for (const std::string& spec : args.specs) bench_spec(args, spec, docs, queries);
  return 0;
}
