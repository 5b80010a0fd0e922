// What the benchmark programs share: flags with --help, seeded unit vectors,
// real-like vectors and metadata, the exact answer, filling a store, building
// (and caching) a store or a FAISS index, timing and order statistics. Header only: every .cpp in tools/bench
// is a program of its own.
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/utils.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "embedapt/store.h"
#include "index/vector_index.h"

namespace embedapt::bench {

using Clock = std::chrono::steady_clock;

// The rows per upsert_batch of a cached store's durable ingest (cached_store).
constexpr size_t kIngestBatch = 1000;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds of the calling thread: unlike wall time, not stretched by
// other processes sharing the cores.
inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// CPU seconds of every thread of this process so far.
inline double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// The machine's 1-minute load average: how many jobs shared the cores.
inline double load_1min() {
  double load = 0;
  getloadavg(&load, 1);
  return load;
}

// Read bandwidth of one core: glibc's memchr scans a buffer that does not
// hold the byte it looks for at the speed memory delivers it. The best of 5
// passes over 1 GiB (far beyond the caches), in GB per CPU second: the bound
// a one-query exact search cannot beat (it reads every vector once).
inline double read_bandwidth_gb_per_s() {
  const size_t bytes = size_t{1} << 30;
  std::vector<char> buffer(bytes, 0);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const double t = thread_cpu_seconds();
    const void* found = std::memchr(buffer.data(), 1, bytes);
    const double s = thread_cpu_seconds() - t;
    if (found != nullptr) std::abort();
    best = std::max(best, bytes / s / 1e9);
  }
  return best;
}

// Which distance kernels the linked FAISS was compiled with: "avx2" (a
// tools/build-faiss.sh build) or "generic" (Debian's, baseline x86-64).
inline std::string faiss_kernels() {
  return faiss::get_compile_options().find("AVX2") != std::string::npos ? "avx2" : "generic";
}

// Ends the program with `program: what: <the error>` unless `s` is ok.
inline void die(const char* program, const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s: %s\n", program, what, s.ToString().c_str());
  std::exit(1);
}

// A benchmark's main(): runs `run`, and an exception it throws ends the
// program with `program: <what>` and exit status 1 instead of an abort.
inline int main_of(const char* program, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

// "--flag value" pairs, each flag one of `known` (a flag given twice keeps
// both values: all(); the others read the last). --help or -h prints
// `usage` and exits 0 (a benchmark never starts a run when asked for help);
// an unknown flag, a missing value or a value that is not a number where a
// number is wanted prints the problem and `usage` and exits 2.
class Flags {
 public:
  Flags(int argc, char** argv, const char* program, const char* usage, const std::set<std::string>& known)
      : program_(program), usage_(usage) {
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        std::fputs(usage, stdout);
        std::exit(0);
      }
      if (!known.count(flag)) fail("unknown flag " + flag);
      if (i + 1 == argc) fail(flag + " needs a value");
      values_[flag].push_back(argv[++i]);
    }
  }

  std::string text(const std::string& flag, const std::string& fallback) const {
    auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second.back();
  }
  // Every value given for `flag`, in order.
  std::vector<std::string> all(const std::string& flag) const {
    auto it = values_.find(flag);
    return it == values_.end() ? std::vector<std::string>() : it->second;
  }
  double number(const std::string& flag, double fallback) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return fallback;
    return non_negative(flag, it->second.back());
  }
  // `list` read as non-negative numbers.
  std::vector<double> numbers(const std::string& flag, const std::vector<double>& fallback,
                              char separator) const {
    if (!values_.count(flag)) return fallback;
    std::vector<double> out;
    for (const std::string& item : list(flag, {}, separator)) out.push_back(non_negative(flag, item));
    return out;
  }
  // `text` split at `separator`; empty text: no items.
  std::vector<std::string> list(const std::string& flag, const std::vector<std::string>& fallback,
                                char separator) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return fallback;
    const std::string& text = it->second.back();
    std::vector<std::string> items;
    for (size_t start = 0; start < text.size();) {
      size_t end = text.find(separator, start);
      if (end == std::string::npos) end = text.size();
      items.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    return items;
  }

 private:
  double non_negative(const std::string& flag, const std::string& text) const {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(value >= 0))
      fail(flag + " needs a non-negative number, got '" + text + "'");
    return value;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    std::fprintf(stderr, "%s: %s\n%s", program_, problem.c_str(), usage_);
    std::exit(2);
  }

  const char* program_;
  const char* usage_;
  std::map<std::string, std::vector<std::string>> values_;
};

// Scales each row of `v` (rows of `dim` floats, one after another) to unit
// length.
inline void normalise_rows(std::vector<float>* v, int dim) {
  for (size_t i = 0; i < v->size() / dim; ++i) {
    float* row = v->data() + i * dim;
    double norm = 0;
    for (int j = 0; j < dim; ++j) norm += double(row[j]) * row[j];
    for (int j = 0; j < dim; ++j) row[j] = static_cast<float>(row[j] / std::sqrt(norm));
  }
}

// `vectors` as a cosine store indexes them (normalise_vector, row by row).
// Rows already of unit length still move by an ulp here and there, and k-means
// fed one bit-different row can end elsewhere: a raw FAISS IVF index compared
// with a store's is built from these.
inline std::vector<float> as_store_indexes(std::vector<float> vectors, int dim) {
  for (size_t i = 0; i < vectors.size() / dim; ++i) normalise_vector(vectors.data() + i * dim, dim);
  return vectors;
}

// `n` seeded random unit vectors of `dim` floats, one after another.
inline std::vector<float> unit_vectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (float& x : v) x = normal(rng);
  normalise_rows(&v, dim);
  return v;
}

// Real-like vectors: `n` unit vectors, row i the unit vector of
// base[i % rows] plus Gaussian noise of expected norm `noise` (seeded). With
// `base` the embeddings of a real corpus the rows keep its uneven, clustered
// directions (which random unit vectors lack) while the noise keeps them apart.
inline std::vector<float> noisy_copies(const std::vector<float>& base, int dim, size_t n, float noise,
                                       uint32_t seed) {
  const size_t rows = base.size() / dim;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, noise / std::sqrt(static_cast<float>(dim)));
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const float* from = base.data() + (i % rows) * dim;
    for (int j = 0; j < dim; ++j) v[i * dim + j] = from[j] + normal(rng);
  }
  normalise_rows(&v, dim);
  return v;
}

// The exact top `k` rows of `docs` (inner product) for every query.
inline std::vector<std::vector<faiss::Index::idx_t>> exact_top_k(const std::vector<float>& docs,
                                                                 const std::vector<float>& queries, int dim,
                                                                 int k) {
  using idx_t = faiss::Index::idx_t;
  const size_t n = docs.size() / dim, nq = queries.size() / dim;
  faiss::IndexFlatIP exact(dim);
  exact.add(static_cast<idx_t>(n), docs.data());
  std::vector<float> distances(nq * k);
  std::vector<idx_t> labels(nq * k);
  exact.search(static_cast<idx_t>(nq), queries.data(), k, distances.data(), labels.data());
  std::vector<std::vector<idx_t>> truth(nq);
  for (size_t q = 0; q < nq; ++q) truth[q].assign(labels.begin() + q * k, labels.begin() + (q + 1) * k);
  return truth;
}

// The benchmarks' record metadata: row i has {"bucket": b, "tenant": "t<b % 20>"}
// with b = buckets(n)[i], uniform in [0, 1000) from a fixed seed, so a filter
// on the bucket selects a known fraction of the rows (filter_bench).
inline std::vector<int> buckets(size_t n) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> bucket(0, 999);
  std::vector<int> out(n);
  for (int& b : out) b = bucket(rng);
  return out;
}

inline std::string bucket_metadata(int bucket) {
  return nlohmann::json{{"bucket", bucket}, {"tenant", "t" + std::to_string(bucket % 20)}}.dump();
}

// Upserts rows [begin, end) of `vectors` as records with ids "<row>", in
// batches of `batch`, each followed by sync() when `durable`; `metadata(row)`
// (if given) is each record's metadata. Returns the seconds the writes took
// (not the building of the records); exits on error.
inline double fill(const char* program, Store* store, const std::vector<float>& vectors, int dim,
                   size_t begin, size_t end, size_t batch, bool durable,
                   const std::function<std::string(size_t)>& metadata = nullptr) {
  double seconds = 0;
  std::vector<Record> records;
  for (size_t first = begin; first < end; first += batch) {
    records.clear();
    for (size_t i = first; i < std::min(end, first + batch); ++i) {
      Record r;
      r.id = std::to_string(i);
      r.vector.assign(vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim);
      if (metadata) r.metadata = metadata(i);
      records.push_back(std::move(r));
    }
    const auto t = Clock::now();
    die(program, store->upsert_batch(records), "upsert_batch");
    if (durable) die(program, store->sync(), "sync");
    seconds += seconds_since(t);
  }
  return seconds;
}

inline double resident_mb() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// A 100k HNSW32 store or index takes minutes of CPU to build. With a cache
// directory (a benchmark's --cache flag; never inside the repository) the
// first build is kept there under `key`, which must name everything the
// content depends on, with the measurements taken while building it, and a
// later run (of the same or another benchmark) reuses both: it reports the
// build figures of the run that built it, marked "cached".

// The cache key of index `spec` over unit_vectors(n, dim, 1), the rows every
// benchmark that caches indexes (store_bench, filter_bench) uses. The FAISS
// kernels are part of it: an index built by one FAISS is never reported as
// the build of another.
inline std::string cache_key(const std::string& spec, size_t n, int dim) {
  return spec + "-" + std::to_string(n) + "x" + std::to_string(dim) + "-seed1-faiss_" + faiss_kernels();
}

// The store of `vectors` (rows "<i>", each with bucket_metadata) made by
// durable ingest in batches of kIngestBatch and a flush, opened at `path` with
// `options`; returns {"store_build_s", "snapshot_s", "store_rss_mb"}. Cached
// under `key` when `cache` is not empty: `path` is then a copy of the cached
// store (the benchmark may change it).
inline nlohmann::json cached_store(const char* program, const std::string& cache, const std::string& key,
                                   const std::string& path, const Options& options,
                                   const std::vector<float>& vectors, std::unique_ptr<Store>* out) {
  namespace fs = std::filesystem;
  const std::string entry = cache + "/store-" + key, info = entry + ".json";
  fs::remove_all(path);
  nlohmann::json built;
  if (!cache.empty() && fs::exists(info)) {
    built = nlohmann::json::parse(std::ifstream(info));
    fs::copy(entry, path, fs::copy_options::recursive);
    built["cached"] = true;
  } else {
    const size_t n = vectors.size() / options.dim;
    const std::vector<int> bucket = buckets(n);
    const double rss = resident_mb();
    die(program, Store::open(path, options, out), "open");
    built["store_build_s"] = fill(program, out->get(), vectors, options.dim, 0, n, kIngestBatch, true,
                                  [&](size_t i) { return bucket_metadata(bucket[i]); });
    const auto t = Clock::now();
    die(program, (*out)->flush(), "flush");
    built["snapshot_s"] = seconds_since(t);
    built["store_rss_mb"] = resident_mb() - rss;
    if (!cache.empty()) {
      out->reset();
      fs::create_directories(cache);
      fs::remove_all(entry);
      fs::copy(path, entry, fs::copy_options::recursive);
      std::ofstream(info) << built.dump() << "\n";
    }
    built["cached"] = false;
  }
  if (!*out) die(program, Store::open(path, options, out), "open");
  return built;
}

// The FAISS index `spec` (inner product) of `vectors`, trained on the rows a
// store filled by cached_store trains on: the store stages rows until a batch
// brings them to 39 per list (256 centroids for PQ), then trains on all it
// holds, so on the first rows up to that batch's end (40,000 for IVF1024 in
// batches of 1000; trained on 39,936, a raw IVF1024 of random vectors differs
// from the store's enough to move an nprobe 1 search's CPU time by 2-8%).
// Returns {"raw_build_s", "raw_rss_mb"}. Cached as a FAISS file under `key`
// when `cache` is not empty.
inline nlohmann::json cached_index(const std::string& cache, const std::string& key, const std::string& spec,
                                   int dim, const std::vector<float>& vectors,
                                   std::unique_ptr<faiss::Index>* out) {
  const std::string file = cache + "/faiss-" + key, info = file + ".json";
  nlohmann::json built;
  if (!cache.empty() && std::filesystem::exists(info)) {
    out->reset(faiss::read_index(file.c_str()));
    built = nlohmann::json::parse(std::ifstream(info));
    built["cached"] = true;
    return built;
  }
  const auto n = static_cast<faiss::Index::idx_t>(vectors.size() / dim);
  const double rss = resident_mb();
  const auto t = Clock::now();
  out->reset(faiss::index_factory(dim, spec.c_str(), faiss::METRIC_INNER_PRODUCT));
  if (!(*out)->is_trained) {
    const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(out->get());
    const size_t threshold = 39 * (ivf ? ivf->nlist : 256);
    const size_t staged = (threshold + kIngestBatch - 1) / kIngestBatch * kIngestBatch;
    (*out)->train(std::min<faiss::Index::idx_t>(n, static_cast<faiss::Index::idx_t>(staged)), vectors.data());
  }
  (*out)->add(n, vectors.data());
  built["raw_build_s"] = seconds_since(t);
  built["raw_rss_mb"] = resident_mb() - rss;
  // Searched as read back, as the store's index is from its snapshot and a
  // cached one from its file: a raw IVF1024 of 1M vectors searched as built
  // (its lists grown by add()) took 10-23% more CPU than the store's copy of
  // the same index read from its snapshot, at nprobe 1, 16 and 64.
  faiss::VectorIOWriter writer;
  faiss::write_index(out->get(), &writer);
  if (!cache.empty()) {  // the same bytes
    std::filesystem::create_directories(cache);
    std::ofstream bytes(file, std::ios::binary);
    bytes.write(reinterpret_cast<const char*>(writer.data.data()),
                static_cast<std::streamsize>(writer.data.size()));
    if (!bytes.flush()) throw std::runtime_error("cached_index: writing " + file + " failed");
    std::ofstream(info) << built.dump() << "\n";
  }
  faiss::VectorIOReader reader;
  reader.data = std::move(writer.data);
  out->reset(faiss::read_index(&reader));
  built["cached"] = false;
  return built;
}

// The p-quantile (0..1) of `v`, the element at that rank.
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

}  // namespace embedapt::bench
