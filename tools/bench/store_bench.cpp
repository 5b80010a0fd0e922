// store_bench: the Store against raw FAISS with the same index, vectors and
// queries: the index table of docs/benchmarks.md.
//
//   store_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3]
//               [--specs "Flat;HNSW32;IVF1024,Flat"] [--dir /tmp/store_bench] [--cache DIR]
//
// Records carry filter_bench's small metadata (bench_common.h), as an app's
// do: a search returns it with every hit. With --cache, each spec's store and
// raw FAISS index are built once and kept there (shared with filter_bench).
//
// First line: the machine's memory read bandwidth on one core (the bound a
// one-query exact search cannot beat: it reads every vector once) and its
// pages (the kernel's transparent huge page mode, GLIBC_TUNABLES: store.sh
// asks glibc's malloc for huge pages). Then per index spec one JSON line
// (with "faiss": the linked FAISS's kernels, "huge_pages_mb": the process's
// memory on huge pages after the searches):
// - "raw" and "store": raw FAISS's train + add of the vectors and the store's
//   durable ingest of them (batches of 1000, each synced, then a snapshot),
//   seconds, and the process's resident memory growth for each (raw first,
//   both kept); "cached" when taken from --cache (figures of the build then).
//   HNSW: raw FAISS searches the store's own graph, read from its snapshot
//   ("store_graph"), and has no build of its own;
// - per search-time knob value (HNSW efSearch, IVF nprobe; Flat has none):
//   recall@10 against the exact answer, QPS one query at a time and in
//   batches of 64, the store's ids-only search (SearchOptions::ids_only: what
//   raw FAISS returns) and raw FAISS interleaved query by query (batch by
//   batch) so load from elsewhere hits both alike, the store's search with
//   records (payload and metadata) in a pass of its own, each pass going
//   over the queries as many times ("rounds") as raw FAISS takes
//   "pass_seconds" for, QPS and CPU time per query the median over repeats, latency
//   percentiles over every timed single query; and one query at a time, raw
//   FAISS against a copy of itself ("raw_twin_cpu_overhead": the same search
//   on other pages, the noise floor of the overhead figures; the copy adds
//   to peak_rss_mb);
//   batches also through raw FAISS on its default threads;
// - the same single-query searches with an active linear adapter (query
//   side), raw FAISS's queries mapped by hand through the same matrix;
// - open time: clean (snapshot) and after a kill -9 that left journal entries
//   to replay.
#include <cblas.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/clone_index.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>
#include <omp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/common/safetensors.h"
#include "embedapt/store.h"
#include "index/codec.h"
#include "index/snapshot.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

using idx_t = faiss::Index::idx_t;

constexpr int kK = 10;
constexpr size_t kBatch = 64;
// The least time raw FAISS spends on each pass of a repeat (compare_search).
constexpr double kMinPassSeconds = 0.5;

struct Args {
  size_t n = 100000;
  int dim = 384;
  size_t queries = 200;
  int repeats = 3;
  std::vector<std::string> specs = {"Flat", "HNSW32", "IVF1024,Flat"};
  std::string dir = "/tmp/store_bench";
  std::string cache;  // where built stores and indexes are kept ("" for nowhere)
};

void die(const Status& s, const char* what) { bench::die("store_bench", s, what); }

// A search-time knob value: HNSW efSearch, IVF nprobe, or none (value 0).
struct Knob {
  std::string name;  // "ef_search", "nprobe" or ""
  int value = 0;     // 0: the index's default
};

std::vector<Knob> knobs_for(const faiss::Index& raw) {
  if (dynamic_cast<const faiss::IndexHNSW*>(&raw))
    return {{"ef_search", 16}, {"ef_search", 64}, {"ef_search", 256}};
  if (dynamic_cast<const faiss::IndexIVF*>(&raw)) return {{"nprobe", 1}, {"nprobe", 16}, {"nprobe", 64}};
  return {{"", 0}};
}

SearchOptions store_options(const Knob& knob) {
  SearchOptions options(kK);
  (knob.name == "ef_search" ? options.ef_search : options.nprobe) = knob.value;
  return options;
}

// The knob for raw FAISS as its users set it. HNSW's is the index's own
// efSearch: FAISS 1.7.3 ignores SearchParametersHNSW::efSearch when it sizes
// the candidate list.
std::unique_ptr<faiss::SearchParameters> raw_params(const Knob& knob, faiss::Index* raw) {
  if (knob.name == "ef_search") {
    dynamic_cast<faiss::IndexHNSW*>(raw)->hnsw.efSearch = knob.value;
    return nullptr;
  }
  if (knob.name == "nprobe") {
    auto p = std::make_unique<faiss::SearchParametersIVF>();
    p->nprobe = static_cast<size_t>(knob.value);
    return p;
  }
  return nullptr;
}

// The store (ids only, and with records) and raw FAISS in blocks of `block`
// queries, raw and ids-only taking turns (the passes below); the store's hits
// of each query go to *store_ids. With `linear` (a dim x dim row-major map,
// the store's active adapter), raw FAISS's queries go through the same map by
// hand first (sgemv or sgemm, then normalised), as an app using FAISS alone
// would apply it.
// Raw FAISS runs on the threads the store gives FAISS (VectorIndex::search
// in index/vector_index.cpp): one query at a time on one OpenMP thread and
// one BLAS thread (the linear adapter's product in core/adapt/adapter.cpp
// too), an exact batch on one OpenMP thread (BLAS keeps its threads), any
// other batch on OpenMP's threads with BLAS on one, so the overhead is the
// store's own work. Batches are also run through raw FAISS
// on its default threads ("raw_default"), as an app calling it directly
// would. CPU time: the thread's for one query (all ran on it), the
// process's, every thread, for a batch; the overhead is the median over
// repeats of each repeat's CPU ratio.
nlohmann::json compare_search(const Store& store, faiss::Index& raw, const std::vector<float>& queries,
                              int dim, int repeats, size_t block, const Knob& knob,
                              const std::vector<float>* linear,
                              std::vector<std::vector<std::string>>* store_ids) {
  enum Who { kRaw, kIdsOnly, kRecords, kRawDefault, kWho };
  const size_t nq = queries.size() / dim;
  const int players = block == 1 ? kRawDefault : kWho;
  SearchOptions ids_only = store_options(knob), records = ids_only;
  ids_only.ids_only = true;
  const auto params = raw_params(knob, &raw);
  std::vector<double> lat[kWho], qps[kWho], cpu_ms[kWho];
  std::vector<std::vector<Hit>> hits;
  std::vector<float> distances(block * kK), mapped(block * dim);
  std::vector<idx_t> labels(block * kK);
  if (store_ids) store_ids->assign(nq, {});
  const int threads = omp_get_max_threads(), blas_threads = openblas_get_num_threads();
  const bool exact_blas = dynamic_cast<const faiss::IndexFlat*>(&raw) != nullptr &&
                          block >= static_cast<size_t>(faiss::distance_compute_blas_threshold);
  const int raw_threads = block == 1 || exact_blas ? 1 : threads;
  const int raw_blas_threads = exact_blas ? blas_threads : 1;
  // One query: the store's and raw's adapter product on this thread alike.
  const int others_blas_threads = block == 1 ? 1 : blas_threads;
  auto cpu_now = block == 1 ? thread_cpu_seconds : process_cpu_seconds;
  // One search of `count` queries from `x` by `who`, timed into the repeat's totals.
  double total[kWho], cpu[kWho];
  auto search = [&](Who who, const float* x, size_t count, bool keep_ids) {
    omp_set_num_threads(who == kRaw ? raw_threads : threads);  // the store picks its own
    openblas_set_num_threads(who == kRaw ? raw_blas_threads : others_blas_threads);
    const auto t = Clock::now();
    const double cpu_start = cpu_now();
    if (who == kRaw || who == kRawDefault) {
      const float* q = x;
      if (linear) {
        if (count == 1) {
          cblas_sgemv(CblasRowMajor, CblasNoTrans, dim, dim, 1.0f, linear->data(), dim, x, 1, 0.0f,
                      mapped.data(), 1);
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(count), dim, dim, 1.0f, x,
                      dim, linear->data(), dim, 0.0f, mapped.data(), dim);
        }
        for (size_t i = 0; i < count; ++i) {
          float* v = mapped.data() + i * dim;
          const float norm = cblas_snrm2(dim, v, 1);
          if (norm > 0) cblas_sscal(dim, 1.0f / norm, v, 1);
        }
        q = mapped.data();
      }
      raw.search(static_cast<idx_t>(count), q, kK, distances.data(), labels.data(), params.get());
    } else {
      die(store.search_batch(x, count, who == kIdsOnly ? ids_only : records, &hits), "search");
    }
    const double s = seconds_since(t);
    cpu[who] += cpu_now() - cpu_start;
    lat[who].push_back(s);
    total[who] += s;
    if (who == kIdsOnly && keep_ids) {
      const size_t begin = static_cast<size_t>(x - queries.data()) / dim;
      for (size_t q = 0; q < count; ++q) {
        for (const Hit& hit : hits[q]) (*store_ids)[begin + q].push_back(hit.id);
      }
    }
  };
  // Raw FAISS and the ids-only search take turns query by query (batch by
  // batch), alternating which goes first; the others run in passes of their
  // own: searching the store's own index, "records" left each query's IVF
  // lists in the cache for the ids-only search beside it (19% less CPU than
  // raw FAISS on the same index at nprobe 16), as raw_default did for raw.
  std::vector<std::vector<Who>> passes = {{kRaw, kIdsOnly}, {kRecords}};
  if (block > 1) passes.push_back({kRawDefault});
  // One pass over the queries by the players of `pass`, in turns.
  auto run_pass = [&](const std::vector<Who>& pass, bool keep_ids) {
    for (size_t begin = 0; begin < nq; begin += block) {
      const size_t count = std::min(block, nq - begin);
      for (size_t turn = 0; turn < pass.size(); ++turn) {
        search(pass[(turn + begin / block) % pass.size()], queries.data() + begin * dim, count, keep_ids);
      }
    }
  };
  // Each pass goes over the queries as many times as raw FAISS needs to
  // search for kMinPassSeconds, measured by a first pass of every player that
  // counts for nothing else and warms each one's caches (it had warmed raw
  // FAISS's alone, and the store's first repeat paid for its own): a batch
  // of 64 at IVF1024 nprobe 1 over 100k vectors takes about a millisecond,
  // and a single pass of 1000 queries (16 batches) put the store's batch
  // overhead anywhere from -15% to +11% in QPS between runs of the same build.
  std::fill(std::begin(total), std::end(total), 0.0);
  std::fill(std::begin(cpu), std::end(cpu), 0.0);
  for (const std::vector<Who>& pass : passes) run_pass(pass, false);
  for (std::vector<double>& latencies : lat) latencies.clear();
  const int rounds = static_cast<int>(std::max(1.0, std::ceil(kMinPassSeconds / total[kRaw])));
  const double searched = static_cast<double>(nq) * rounds;
  for (int r = 0; r < repeats; ++r) {
    std::fill(std::begin(total), std::end(total), 0.0);
    std::fill(std::begin(cpu), std::end(cpu), 0.0);
    for (const std::vector<Who>& pass : passes) {
      for (int round = 0; round < rounds; ++round) run_pass(pass, store_ids && r == 0 && round == 0);
    }
    for (int who = 0; who < players; ++who) {
      qps[who].push_back(searched / total[who]);
      cpu_ms[who].push_back(cpu[who] * 1e3 / searched);
    }
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(blas_threads);
  // Each repeat's CPU ratio of `who` to raw FAISS, minus one: the median.
  auto cpu_overhead = [&](Who who) {
    std::vector<double> ratios;
    ratios.reserve(repeats);
    for (int r = 0; r < repeats; ++r) ratios.push_back(cpu_ms[who][r] / cpu_ms[kRaw][r] - 1.0);
    return median(ratios);
  };
  const double ids_qps = median(qps[kIdsOnly]), raw_qps = median(qps[kRaw]),
               records_qps = median(qps[kRecords]);
  // "store": ids only, the search raw FAISS does; "records": the same search
  // returning every hit's payload and metadata (read from RocksDB). CPU ms
  // are per query, the median over repeats.
  nlohmann::json out = {{"rounds", rounds},
                        {"store_qps", ids_qps},
                        {"raw_qps", raw_qps},
                        {"records_qps", records_qps},
                        {"overhead", raw_qps / ids_qps - 1.0},
                        {"records_overhead", raw_qps / records_qps - 1.0},
                        {"store_cpu_ms", median(cpu_ms[kIdsOnly])},
                        {"raw_cpu_ms", median(cpu_ms[kRaw])},
                        {"records_cpu_ms", median(cpu_ms[kRecords])},
                        {"cpu_overhead", cpu_overhead(kIdsOnly)},
                        {"records_cpu_overhead", cpu_overhead(kRecords)}};
  if (block == 1) {
    out["store_p50_ms"] = percentile(lat[kIdsOnly], 0.5) * 1e3;
    out["store_p99_ms"] = percentile(lat[kIdsOnly], 0.99) * 1e3;
    out["records_p50_ms"] = percentile(lat[kRecords], 0.5) * 1e3;
    out["records_p99_ms"] = percentile(lat[kRecords], 0.99) * 1e3;
    out["raw_p50_ms"] = percentile(lat[kRaw], 0.5) * 1e3;
    out["raw_p99_ms"] = percentile(lat[kRaw], 0.99) * 1e3;
  } else {
    out["raw_default_qps"] = median(qps[kRawDefault]);
    out["raw_default_cpu_ms"] = median(cpu_ms[kRawDefault]);
  }
  return out;
}

// The FAISS index inside the flushed store at `path`, read from its snapshot
// (index/snapshot.h around VectorIndex::serialize's bytes: u64 staging, u64
// tombstone count and the tombstones, then FAISS's file), without the id map:
// positions are the rows in ingest order, as raw FAISS numbers them.
std::unique_ptr<faiss::Index> index_of_store(const std::string& path) {
  SnapshotInfo info;
  std::string file;
  std::string_view payload;
  die(read_snapshot(path + "/index.snap", &info, &file, &payload), "reading the store's snapshot");
  uint64_t staging = 1, tombstones = 1;
  if (!codec::get_u64(&payload, &staging) || !codec::get_u64(&payload, &tombstones) || staging ||
      tombstones) {
    die(Status::Corruption("the snapshot holds a staging index or tombstones"),
        "reading the store's snapshot");
  }
  faiss::VectorIOReader reader;
  reader.data.assign(payload.begin(), payload.end());
  std::unique_ptr<faiss::Index> read(faiss::read_index(&reader));
  auto* map = dynamic_cast<faiss::IndexIDMap*>(read.get());
  if (map == nullptr)
    die(Status::Corruption("the snapshot's index has no id map"), "reading the store's snapshot");
  map->own_fields = false;
  return std::unique_ptr<faiss::Index>(map->index);
}

// The fraction of each query's exact top k that `found` holds, averaged.
double recall(const std::vector<std::vector<idx_t>>& truth,
              const std::vector<std::vector<std::string>>& found) {
  double sum = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    size_t hits = 0;
    for (idx_t id : truth[q]) hits += std::count(found[q].begin(), found[q].end(), std::to_string(id));
    sum += double(hits) / truth[q].size();
  }
  return sum / truth.size();
}

// A child process appends `extra` records without a snapshot and dies by
// SIGKILL; returns the seconds the parent then needs to open the store, and
// how it recovered.
double open_after_kill(const std::string& path, const std::vector<float>& vectors, int dim, size_t extra,
                       std::string* recovery) {
  pid_t child = fork();
  if (child == 0) {
    // libgomp's thread pool does not survive fork(): a parallel region here
    // (an HNSW add) would wait forever for the parent's threads.
    omp_set_num_threads(1);
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
  const auto t = Clock::now();
  std::unique_ptr<Store> store;
  die(Store::open(path, Options(), &store), "reopen after kill -9");
  const double s = seconds_since(t);
  StoreStats stats;
  die(store->stats(&stats), "stats");
  *recovery = stats.recovery;
  return s;
}

// Raw FAISS against `twin`, a copy of itself (faiss::clone_index: the same
// index on other pages), one query at a time at `knob` on one thread, each
// repeat `rounds` passes over the queries, interleaved and timed as
// compare_search times raw FAISS and the store: the median over
// repeats of the copy's CPU ratio, minus one. Two identical searches are this
// far apart, so an overhead figure of the same process resolves no finer.
double twin_overhead(faiss::Index& raw, faiss::Index& twin, const std::vector<float>& queries, int dim,
                     int repeats, int rounds, const Knob& knob) {
  faiss::Index* copies[2] = {&raw, &twin};
  const std::unique_ptr<faiss::SearchParameters> params[2] = {raw_params(knob, &raw),
                                                              raw_params(knob, &twin)};
  const int threads = omp_get_max_threads(), blas_threads = openblas_get_num_threads();
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  const size_t nq = queries.size() / dim;
  std::vector<float> distances(kK);
  std::vector<idx_t> labels(kK);
  std::vector<double> ratios;
  for (int r = -1; r < repeats; ++r) {  // -1: a pass that warms both copies, not counted
    double cpu[2] = {0, 0};
    for (int round = 0; round < (r < 0 ? 1 : rounds); ++round) {
      for (size_t q = 0; q < nq; ++q) {
        for (size_t turn = 0; turn < 2; ++turn) {
          const size_t who = (turn + q) % 2;
          const double start = thread_cpu_seconds();
          copies[who]->search(1, queries.data() + q * dim, kK, distances.data(), labels.data(),
                              params[who].get());
          cpu[who] += thread_cpu_seconds() - start;
        }
      }
    }
    if (r >= 0) ratios.push_back(cpu[1] / cpu[0] - 1.0);
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(blas_threads);
  return median(ratios);
}

// The kernel's transparent huge page mode ("always", "madvise", "never"), or
// "" where it has none. store.sh asks glibc's malloc for huge pages, which
// the "madvise" mode grants and "never" refuses.
std::string transparent_huge_pages() {
  std::ifstream file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(file, modes);
  const size_t open = modes.find('['), close = modes.find(']');
  return open == std::string::npos || close < open ? "" : modes.substr(open + 1, close - open - 1);
}

// The process's anonymous memory on transparent huge pages, MB.
double huge_pages_mb() {
  std::ifstream file("/proc/self/smaps_rollup");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stod(line.substr(14)) / 1024.0;  // kB
  }
  return 0;
}

void bench_spec(const Args& args, const std::string& spec, const std::vector<float>& docs,
                const std::vector<float>& queries, const std::vector<std::vector<idx_t>>& truth) {
  const int dim = args.dim;
  const std::string path = args.dir + "/" + spec;
  std::filesystem::remove_all(path);
  nlohmann::json row = {{"spec", spec},
                        {"n", args.n},
                        {"dim", dim},
                        {"k", kK},
                        {"queries", args.queries},
                        {"repeats", args.repeats},
                        {"pass_seconds", kMinPassSeconds},
                        {"faiss", faiss_kernels()}};

  // Raw FAISS first (trained on as many vectors as the store trains on),
  // then the store; each built or taken from the cache. HNSW: raw FAISS
  // searches the store's own graph instead, so both walk one graph: FAISS
  // building on several threads is not deterministic (a second build is
  // another graph), and it is slow: 336 s at 100k on two cores in the
  // section's run before this change, so an hour or more at a million.
  const std::string key = cache_key(spec, args.n, dim);
  const bool hnsw = spec.rfind("HNSW", 0) == 0;
  std::unique_ptr<faiss::Index> raw;
  if (!hnsw) row["raw"] = cached_index(args.cache, key, spec, dim, as_store_indexes(docs, dim), &raw);
  Options options;
  options.dim = dim;
  options.index_spec = spec;
  options.snapshot_every = 0;  // no automatic snapshot inside the timed ingest: a flush takes it
  std::unique_ptr<Store> store;
  row["store"] = cached_store("store_bench", args.cache, key, path, options, docs, &store);
  if (hnsw) {
    raw = index_of_store(path);
    row["raw"] = {{"store_graph", true}};
  }

  row["load_before_search"] = load_1min();
  const std::unique_ptr<faiss::Index> twin(faiss::clone_index(raw.get()));
  nlohmann::json knobs = nlohmann::json::array();
  for (const Knob& knob : knobs_for(*raw)) {
    std::vector<std::vector<std::string>> found;
    nlohmann::json single =
        compare_search(*store, *raw, queries, dim, args.repeats, 1, knob, nullptr, &found);
    single["raw_twin_cpu_overhead"] =
        twin_overhead(*raw, *twin, queries, dim, args.repeats, single["rounds"].get<int>(), knob);
    nlohmann::json batch =
        compare_search(*store, *raw, queries, dim, args.repeats, kBatch, knob, nullptr, nullptr);
    // How many of raw FAISS's hits the store returns: 1 when both searched
    // the same index, which the overhead figures assume (HNSW: the store walks
    // FAISS's graph its own way, so less there).
    const size_t nq = queries.size() / dim;
    std::vector<float> distances(nq * kK);
    std::vector<idx_t> labels(nq * kK);
    raw->search(static_cast<idx_t>(nq), queries.data(), kK, distances.data(), labels.data(),
                raw_params(knob, raw.get()).get());
    std::vector<std::vector<idx_t>> raw_top(nq);
    for (size_t q = 0; q < nq; ++q) raw_top[q].assign(labels.begin() + q * kK, labels.begin() + (q + 1) * kK);
    knobs.push_back({{"knob", knob.name},
                     {"value", knob.value},
                     {"recall_at_10", recall(truth, found)},
                     {"raw_agreement", recall(raw_top, found)},
                     {"single", single},
                     {"batch", batch}});
  }
  row["search"] = knobs;

  // A query-side linear adapter (seeded random weights, so no shortcut an
  // identity might take): the store applying it against raw FAISS with the
  // same map applied by hand.
  const std::vector<float> weights = unit_vectors(dim, dim, 3);
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(weights, {dim, dim});
  AdapterVersion adapter;
  adapter.config_json = "{\"kind\":\"linear\",\"in_dim\":" + std::to_string(dim) +
                        ",\"out_dim\":" + std::to_string(dim) + ",\"side\":\"query\",\"embedder\":\"\"}";
  adapter.weights = serialize_safetensors(tensors);
  die(store->put_adapter(&adapter), "put_adapter");
  die(store->activate_adapter(adapter.version), "activate_adapter");
  row["search_linear_adapter"] =
      compare_search(*store, *raw, queries, dim, args.repeats, 1, knobs_for(*raw)[0], &weights, nullptr);
  die(store->activate_adapter(0), "deactivate");
  row["load_after_search"] = load_1min();
  row["huge_pages_mb"] = huge_pages_mb();
  raw.reset();

  store.reset();
  const auto t = Clock::now();
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

constexpr const char* kUsage =
    "usage: store_bench [--n 100000] [--dim 384] [--queries 200] [--repeats 3]\n"
    "                   [--specs \"Flat;HNSW32;IVF1024,Flat\"] [--dir /tmp/store_bench] [--cache DIR]\n"
    "The store against raw FAISS with the same index: build time and memory, recall@10, QPS one\n"
    "query at a time and in batches of 64 at several efSearch / nprobe values, the overhead, open\n"
    "times; first the memory read bandwidth. --cache DIR keeps each store and FAISS index built\n"
    "there for later runs (shared with filter_bench; never a directory in the repository), with\n"
    "the build figures of the run that built it. Each of --repeats timed passes goes over the\n"
    "--queries as many times as raw FAISS takes half a second for. Prints JSON lines.\n";

int run(int argc, char** argv) {
  const Flags flags(argc, argv, "store_bench", kUsage,
                    {"--n", "--dim", "--queries", "--repeats", "--specs", "--dir", "--cache"});
  Args args;
  args.n = static_cast<size_t>(flags.number("--n", args.n));
  args.dim = static_cast<int>(flags.number("--dim", args.dim));
  args.queries = static_cast<size_t>(flags.number("--queries", args.queries));
  args.repeats = static_cast<int>(flags.number("--repeats", args.repeats));
  args.specs = flags.list("--specs", args.specs, ';');
  args.dir = flags.text("--dir", args.dir);
  args.cache = flags.text("--cache", args.cache);

  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const nlohmann::json machine = {
      {"bandwidth", {{"read_gb_per_s", read_bandwidth_gb_per_s()}, {"buffer_mb", 1024}}},
      {"pages",
       {{"transparent_huge_pages", transparent_huge_pages()}, {"glibc_tunables", tunables ? tunables : ""}}}};
  std::printf("%s\n", machine.dump().c_str());
  std::fflush(stdout);
  std::filesystem::create_directories(args.dir);
  const std::vector<float> docs = unit_vectors(args.n, args.dim, 1);
  const std::vector<float> queries = unit_vectors(args.queries, args.dim, 2);
  const std::vector<std::vector<idx_t>> truth = exact_top_k(docs, queries, args.dim, kK);
  for (const std::string& spec : args.specs) bench_spec(args, spec, docs, queries, truth);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("store_bench", run, argc, argv); }
