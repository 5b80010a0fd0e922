// Store behaviour on real RocksDB + FAISS in temporary directories: search
// exactness, persistence, recovery, index types, bad input, the query log and
// adapter versions.
#include <rocksdb/db.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/common/files.h"
#include "core/common/safetensors.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/store.h"

namespace fs = std::filesystem;
extern char** environ;

using namespace embedapt;
using embedapt::testing::open_store;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  TempDir() {
    path = (fs::temp_directory_path() /
            ("embedapt-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
               .string();
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
  static inline int counter = 0;
};

std::vector<float> random_vectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (float& x : v) x = normal(rng);
  return v;
}

Options options_for(int dim, Metric metric = Metric::kCosine, std::string spec = "Flat") {
  Options options;
  options.dim = dim;
  options.metric = metric;
  options.index_spec = std::move(spec);
  return options;
}

void insert(Store* store, const std::vector<float>& vectors, int dim, size_t first = 0) {
  std::vector<Record> batch;
  for (size_t i = 0; i < vectors.size() / dim; ++i) {
    Record r;
    r.id = "doc" + std::to_string(first + i);
    r.vector.assign(vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim);
    r.payload = "payload of " + r.id;
    batch.push_back(std::move(r));
  }
  Status s = store->upsert_batch(batch);
  INFO(s.ToString());
  REQUIRE(s.ok());
}

// Exact top-k by the metric's score; with `scores`, the top k's scores as the
// store reports them (cosine, inner product, squared L2 distance).
std::vector<size_t> brute_force(const std::vector<float>& docs, const float* q, int dim, Metric metric, int k,
                                std::vector<double>* scores = nullptr) {
  size_t n = docs.size() / dim;
  std::vector<std::pair<float, size_t>> scored;
  double qn = 0;
  for (int j = 0; j < dim; ++j) qn += q[j] * q[j];
  for (size_t i = 0; i < n; ++i) {
    double dot = 0, l2 = 0, dn = 0;
    for (int j = 0; j < dim; ++j) {
      float d = docs[i * dim + j];
      dot += d * q[j];
      l2 += (d - q[j]) * (d - q[j]);
      dn += d * d;
    }
    double score = metric == Metric::kL2 ? -l2 : metric == Metric::kCosine ? dot / std::sqrt(dn * qn) : dot;
    scored.push_back({static_cast<float>(-score), i});
  }
  std::sort(scored.begin(), scored.end());
  std::vector<size_t> top;
  top.reserve(k);
  for (int i = 0; i < k; ++i) top.push_back(scored[i].second);
  if (scores != nullptr) {
    scores->clear();
    for (int i = 0; i < k; ++i) scores->push_back(metric == Metric::kL2 ? scored[i].first : -scored[i].first);
  }
  return top;
}

std::string adapter_config(int dim, const char* side, const char* embedder = "test-embedder") {
  return std::string("{\"kind\":\"linear\",\"in_dim\":") + std::to_string(dim) +
         ",\"out_dim\":" + std::to_string(dim) + ",\"side\":\"" + side + "\",\"embedder\":\"" + embedder +
         "\"}";
}

// A linear adapter y = diag(scale) x, as safetensors bytes.
std::string diagonal_weights(const std::vector<float>& scale) {
  int dim = static_cast<int>(scale.size());
  std::vector<float> w(size_t(dim) * dim, 0.0f);
  for (int i = 0; i < dim; ++i) w[i * dim + i] = scale[i];
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(w, {dim, dim});
  return serialize_safetensors(tensors);
}

std::vector<std::string> ids_of(const std::vector<Hit>& hits) {
  std::vector<std::string> ids;
  ids.reserve(hits.size());
  for (const Hit& h : hits) ids.push_back(h.id);
  return ids;
}

}  // namespace

TEST_CASE("Flat search equals brute force under every metric", "[store]") {
  const int dim = 24, n = 600, k = 10;
  for (Metric metric : {Metric::kCosine, Metric::kInnerProduct, Metric::kL2}) {
    SECTION(MetricName(metric)) {
      TempDir dir;
      auto store = open_store(dir.path, options_for(dim, metric));
      std::vector<float> docs = random_vectors(n, dim, 1);
      insert(store.get(), docs, dim);
      std::vector<float> queries = random_vectors(20, dim, 2);
      std::vector<std::vector<Hit>> results;
      REQUIRE(store->search_batch(queries.data(), 20, {k}, &results).ok());
      for (size_t q = 0; q < 20; ++q) {
        std::vector<double> scores;
        std::vector<size_t> expected = brute_force(docs, queries.data() + q * dim, dim, metric, k, &scores);
        REQUIRE(results[q].size() == size_t(k));
        for (int r = 0; r < k; ++r) {
          CHECK(results[q][r].id == "doc" + std::to_string(expected[r]));
          CHECK(results[q][r].payload == "payload of doc" + std::to_string(expected[r]));
          // Cosine: the store normalised the query and the documents (neither is unit length here).
          CHECK(results[q][r].score == Approx(scores[r]).epsilon(1e-5).margin(1e-5));
        }
        // Scores follow the metric's direction.
        bool lower_is_better = metric == Metric::kL2;
        CHECK((lower_is_better ? results[q][0].score <= results[q][k - 1].score
                               : results[q][0].score >= results[q][k - 1].score));
      }
      std::vector<Hit> single;
      REQUIRE(store->search(queries.data(), dim, {k}, &single).ok());
      CHECK(ids_of(single) == ids_of(results[0]));
      // A batch past what a thread's query buffer keeps (256 x 1024 floats),
      // then one query again: the buffer let go after the batch is searched.
      const size_t many = 256 * 1024 / dim + 1;
      std::vector<float> big = random_vectors(many, dim, 3);
      std::copy(queries.begin(), queries.begin() + dim, big.end() - dim);
      std::vector<std::vector<Hit>> big_results;
      REQUIRE(store->search_batch(big.data(), many, {k}, &big_results).ok());
      CHECK(ids_of(big_results.back()) == ids_of(results[0]));
      REQUIRE(store->search(queries.data(), dim, {k}, &single).ok());
      CHECK(ids_of(single) == ids_of(results[0]));
      REQUIRE(store->verify().ok());
    }
  }
}

TEST_CASE("Upsert replaces, remove deletes, get and scan read back", "[store]") {
  const int dim = 8;
  TempDir dir;
  auto store = open_store(dir.path, options_for(dim, Metric::kL2));
  std::vector<float> a = random_vectors(1, dim, 3), b = random_vectors(1, dim, 4);
  REQUIRE(store->upsert("x", a.data(), dim, "first").ok());
  REQUIRE(store->upsert("y", b.data(), dim, std::string("bin\0ary", 7)).ok());
  REQUIRE(store->upsert("x", b.data(), dim, "second").ok());
  Record r;
  REQUIRE(store->get("x", &r).ok());
  CHECK(r.vector == b);
  CHECK(r.payload == "second");
  REQUIRE(store->get("y", &r).ok());
  CHECK(r.payload == std::string("bin\0ary", 7));

  std::vector<Hit> hits;
  REQUIRE(store->search(a.data(), dim, {5}, &hits).ok());
  CHECK(hits.size() == 2);  // the old vector of x is gone
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 2);

  REQUIRE(store->remove("x").ok());
  CHECK(store->get("x", &r).code() == Code::kNotFound);
  CHECK(store->remove("x").code() == Code::kNotFound);
  REQUIRE(store->search(b.data(), dim, {5}, &hits).ok());
  CHECK(ids_of(hits) == std::vector<std::string>{"y"});

  std::vector<std::string> scanned;
  REQUIRE(store
              ->scan([&](const Record& rec) {
                scanned.push_back(rec.id);
                return true;
              })
              .ok());
  CHECK(scanned == std::vector<std::string>{"y"});
  REQUIRE(store->verify().ok());
}

TEST_CASE("A batch is all or nothing", "[store]") {
  const int dim = 4;
  TempDir dir;
  auto store = open_store(dir.path, options_for(dim));
  std::vector<Record> batch(3);
  for (int i = 0; i < 3; ++i) {
    batch[i].id = "r" + std::to_string(i);
    batch[i].vector = {1, 2, 3, float(i)};
  }
  batch[2].vector[1] = std::numeric_limits<float>::quiet_NaN();
  Status s = store->upsert_batch(batch);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("record 2") != std::string::npos);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 0);
  // The same id twice in one batch: the last one wins.
  batch[2].vector[1] = 0;
  batch[2].id = "r0";
  REQUIRE(store->upsert_batch(batch).ok());
  Record r;
  REQUIRE(store->get("r0", &r).ok());
  CHECK(r.vector == batch[2].vector);
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 2);
  REQUIRE(store->verify().ok());
}

// The writer the next test lets die: a fresh process of this binary writing
// to the store in $EMBEDAPT_LATE_WRITER_DIR, then exiting without closing it.
// Not a fork of the test, whose RocksDB and OpenMP threads make anything but
// exec unsafe in a forked child (and which ThreadSanitizer refuses to run).
TEST_CASE("late writer (a helper process)", "[.late_writer]") {
  const int dim = 16;
  const char* dir = std::getenv("EMBEDAPT_LATE_WRITER_DIR");
  if (dir == nullptr) _exit(5);
  std::unique_ptr<Store> store;
  Options options;
  options.snapshot_every = 0;
  if (!Store::open(dir, options, &store).ok()) _exit(2);
  std::vector<float> more = random_vectors(50, dim, 7);
  for (int i = 0; i < 50; ++i) {
    if (!store->upsert("late" + std::to_string(i), more.data() + size_t(i) * dim, dim, "late").ok()) _exit(3);
  }
  if (!store->remove("doc8").ok()) _exit(4);
  _exit(0);  // no destructor: no snapshot
}

TEST_CASE("A store persists: snapshot on close, journal replay after a crash", "[store]") {
  const int dim = 16;
  TempDir dir;
  std::vector<float> docs = random_vectors(300, dim, 5);
  std::vector<float> query = random_vectors(1, dim, 6);
  std::vector<std::string> before;
  {
    auto store = open_store(dir.path, options_for(dim, Metric::kInnerProduct));
    insert(store.get(), docs, dim);
    REQUIRE(store->remove("doc7").ok());
    std::vector<Hit> hits;
    REQUIRE(store->search(query.data(), dim, {10}, &hits).ok());
    before = ids_of(hits);
  }
  StoreStats stats;
  {
    Options options;  // everything "as stored"
    auto store = open_store(dir.path, options);
    REQUIRE(store->stats(&stats).ok());
    CHECK(stats.count == 299);
    CHECK(stats.dim == dim);
    CHECK(stats.metric == Metric::kInnerProduct);
    CHECK(stats.snapshot_seq == stats.journal_seq);
    CHECK(stats.recovery.find("snapshot at seq") != std::string::npos);
    std::vector<Hit> hits;
    REQUIRE(store->search(query.data(), dim, {10}, &hits).ok());
    CHECK(ids_of(hits) == before);
  }
  // A child writes after the snapshot and dies without closing: the reopened
  // store replays the journal.
  std::vector<std::string> env_strings = {"EMBEDAPT_LATE_WRITER_DIR=" + dir.path};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {"test_store", "[.late_writer]", nullptr};
  pid_t child = 0;
  REQUIRE(posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, const_cast<char**>(argv), envp.data()) ==
          0);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  auto store = open_store(dir.path, Options());
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 299 + 50 - 1);
  CHECK(stats.recovery.find("51 journal entries replayed") != std::string::npos);
  Record r;
  CHECK(store->get("doc8", &r).code() == Code::kNotFound);
  REQUIRE(store->get("late3", &r).ok());
  std::vector<Hit> hits;
  REQUIRE(store->search(r.vector.data(), dim, {1}, &hits).ok());
  CHECK(hits.at(0).id == "late3");
  REQUIRE(store->verify().ok());
}

TEST_CASE("flush() leaves nothing in RocksDB's log for the next open to replay", "[store]") {
  const int dim = 64;
  TempDir dir;
  constexpr uintmax_t kKiB = 1024;
  auto log_bytes = [&] {
    uintmax_t total = 0;
    for (const auto& f : fs::directory_iterator(dir.path + "/db")) {
      if (f.path().extension() == ".log") total += f.file_size();
    }
    return total;
  };
  auto store = open_store(dir.path, options_for(dim, Metric::kCosine));
  insert(store.get(), random_vectors(2000, dim, 9), dim);  // 512 KB of vectors alone
  REQUIRE(log_bytes() > 512 * kKiB);
  REQUIRE(store->flush().ok());
  CHECK(log_bytes() < 16 * kKiB);
  // Again with the snapshot already current: a logged query still reaches a table file.
  std::vector<float> query = random_vectors(1, dim, 10);
  uint64_t id = 0;
  REQUIRE(store->log_query(query.data(), dim, {"doc1"}, &id).ok());
  REQUIRE(store->log_hit(id, "doc1").ok());
  REQUIRE(store->flush().ok());
  CHECK(log_bytes() < 16 * kKiB);
  store.reset();
  store = open_store(dir.path, Options());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 2000);
  CHECK(stats.logged_hits == 1);
}

// RocksDB 7.8 starts a log at every open and kept each empty one until a
// flush: an app opening its store at every launch gathered them.
TEST_CASE("A writable open that writes nothing leaves no empty log behind", "[store]") {
  const int dim = 8;
  TempDir dir;
  auto logs = [&] {
    int count = 0;
    for (const auto& f : fs::directory_iterator(dir.path + "/db")) count += f.path().extension() == ".log";
    return count;
  };
  auto store = open_store(dir.path, options_for(dim, Metric::kL2));
  insert(store.get(), random_vectors(100, dim, 3), dim);
  store.reset();
  for (int launch = 0; launch < 5; ++launch) {
    store = open_store(dir.path, Options());
    store.reset();
  }
  CHECK(logs() == 1);
  store = open_store(dir.path, Options());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 100);
}

TEST_CASE("A corrupt snapshot is detected and the index rebuilt from RocksDB", "[store]") {
  const int dim = 8;
  TempDir dir;
  std::vector<float> docs = random_vectors(200, dim, 8);
  { insert(open_store(dir.path, options_for(dim)).get(), docs, dim); }
  std::string snap = dir.path + "/index.snap";
  std::string bytes;
  REQUIRE(read_file(snap, &bytes).ok());
  bytes[bytes.size() / 2] ^= 0x5a;
  REQUIRE(write_file_atomic(snap, bytes).ok());
  {
    auto store = open_store(dir.path, Options());
    StoreStats stats;
    REQUIRE(store->stats(&stats).ok());
    CHECK(stats.recovery.find("rebuilt") != std::string::npos);
    CHECK(stats.recovery.find("checksum mismatch") != std::string::npos);
    CHECK(stats.count == 200);
    std::vector<Hit> hits;
    REQUIRE(store->search(docs.data() + 5 * size_t(dim), dim, {1}, &hits).ok());
    CHECK(hits.at(0).id == "doc5");
    REQUIRE(store->verify().ok());
  }
  // The rebuild wrote a good snapshot; a truncated one is caught too.
  REQUIRE(read_file(snap, &bytes).ok());
  REQUIRE(write_file_atomic(snap, bytes.substr(0, bytes.size() - 10)).ok());
  auto store = open_store(dir.path, Options());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.recovery.find("rebuilt") != std::string::npos);
  CHECK(stats.count == 200);
}

TEST_CASE("HNSW deletes by tombstone and rebuilds when they pile up", "[store]") {
  const int dim = 16, n = 400;
  TempDir dir;
  std::vector<float> docs = random_vectors(n, dim, 9);
  auto store = open_store(dir.path, options_for(dim, Metric::kL2, "HNSW32"));
  insert(store.get(), docs, dim);
  for (int i = 0; i < 40; ++i) REQUIRE(store->remove("doc" + std::to_string(i)).ok());
  std::vector<Hit> hits;
  for (int i = 0; i < 40; ++i) {
    REQUIRE(store->search(docs.data() + size_t(i) * dim, dim, {5}, &hits).ok());
    CHECK(hits.size() == 5);
    for (const Hit& h : hits) CHECK(h.id != "doc" + std::to_string(i));
  }
  REQUIRE(store->verify().ok());
  // Past a quarter of the index (+256), tombstones are cleared by a rebuild.
  for (int i = 40; i < 300; ++i) REQUIRE(store->remove("doc" + std::to_string(i)).ok());
  REQUIRE(store->verify().ok());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == size_t(n - 300));
  REQUIRE(store->search(docs.data() + 350 * size_t(dim), dim, {3}, &hits).ok());
  CHECK(hits.at(0).id == "doc350");
  store.reset();
  store = open_store(dir.path, Options());
  REQUIRE(store->verify().ok());
  REQUIRE(store->search(docs.data() + 10 * size_t(dim), dim, {100}, &hits).ok());
  for (const Hit& h : hits) CHECK(h.id != "doc10");
}

TEST_CASE("IVF indexes stage vectors until there are enough to train", "[store]") {
  const int dim = 8;  // IVF4 trains at 4 * 39 = 156 vectors
  TempDir dir;
  std::vector<float> docs = random_vectors(400, dim, 10);
  {
    auto store = open_store(dir.path, options_for(dim, Metric::kL2, "IVF4,Flat"));
    std::vector<float> first(docs.begin(), docs.begin() + 100 * size_t(dim));
    insert(store.get(), first, dim);
    std::vector<Hit> hits;
    REQUIRE(store->search(docs.data() + 42 * size_t(dim), dim, {1}, &hits).ok());  // exact while staging
    CHECK(hits.at(0).id == "doc42");
    std::vector<float> rest(docs.begin() + 100 * size_t(dim), docs.end());
    insert(store.get(), rest, dim, 100);
    REQUIRE(store->verify().ok());
  }
  auto store = open_store(dir.path, Options());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 400);
  CHECK(stats.index_spec == "IVF4,Flat");
  std::vector<Hit> hits;
  for (int i : {0, 150, 399}) {  // a vector's own cell is always probed
    REQUIRE(store->search(docs.data() + size_t(i) * dim, dim, {1}, &hits).ok());
    CHECK(hits.at(0).id == "doc" + std::to_string(i));
  }
  REQUIRE(store->remove("doc150").ok());
  REQUIRE(store->search(docs.data() + 150 * size_t(dim), dim, {1}, &hits).ok());
  CHECK(hits.at(0).id != "doc150");
  REQUIRE(store->verify().ok());
}

TEST_CASE("ef_search and nprobe reach the index and are checked against it", "[store]") {
  const int dim = 16, k = 10;
  const std::vector<float> docs = random_vectors(4000, dim, 30), queries = random_vectors(20, dim, 31);
  // The fraction of the exact top k found, over the queries.
  auto recall = [&](const Store& store, SearchOptions options) {
    options.k = k;
    std::vector<std::vector<Hit>> results;
    Status s = store.search_batch(queries.data(), 20, options, &results);
    INFO(s.ToString());
    REQUIRE(s.ok());
    double found = 0;
    for (size_t q = 0; q < 20; ++q) {
      for (size_t i : brute_force(docs, &queries[q * dim], dim, Metric::kCosine, k)) {
        for (const Hit& hit : results[q]) found += hit.id == "doc" + std::to_string(i);
      }
    }
    return found / (20.0 * k);
  };
  auto refused = [](const Store& store, const SearchOptions& options, const std::string& says) {
    std::vector<Hit> hits;
    std::vector<float> query(dim, 1.0f);
    Status s = store.search(query.data(), dim, options, &hits);
    INFO(s.ToString());
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message().find(says) != std::string::npos);
  };
  SearchOptions ef, probes;

  TempDir flat_dir, hnsw_dir, ivf_dir;
  auto flat = open_store(flat_dir.path, options_for(dim));
  insert(flat.get(), docs, dim);
  ef.ef_search = 64;
  probes.nprobe = 4;
  refused(*flat, ef, "ef_search: applies to HNSW indexes; this store's index is 'Flat'");
  refused(*flat, probes, "nprobe: applies to IVF indexes");

  auto hnsw = open_store(hnsw_dir.path, options_for(dim, Metric::kCosine, "HNSW32"));
  insert(hnsw.get(), docs, dim);
  refused(*hnsw, probes, "nprobe: applies to IVF indexes; this store's index is 'HNSW32'");
  ef.ef_search = -1;
  refused(*hnsw, ef, "ef_search: must be in 1..65536, got -1");
  ef.ef_search = kMaxEfSearch + 1;
  refused(*hnsw, ef, "ef_search: must be in 1..65536");
  // A list of 1000 candidates over 4000 vectors finds nearly all true neighbours.
  ef.ef_search = 1000;
  CHECK(recall(*hnsw, ef) >= 0.98);
  CHECK(recall(*hnsw, ef) >= recall(*hnsw, {}));

  // IVF64 trains at 64 * 39 = 2496 vectors; before that it is staging, and
  // the knob is accepted all the same.
  auto ivf = open_store(ivf_dir.path, options_for(dim, Metric::kCosine, "IVF64,Flat"));
  insert(ivf.get(), std::vector<float>(docs.begin(), docs.begin() + 100 * size_t(dim)), dim);
  probes.nprobe = 8;
  probes.k = k;
  std::vector<Hit> staged;
  REQUIRE(ivf->search(queries.data(), dim, probes, &staged).ok());
  CHECK(staged.size() == size_t(k));
  insert(ivf.get(), std::vector<float>(docs.begin() + 100 * size_t(dim), docs.end()), dim, 100);
  refused(*ivf, ef, "ef_search: applies to HNSW indexes; this store's index is 'IVF64,Flat'");
  probes.nprobe = 65;
  refused(*ivf, probes, "nprobe: must be in 1..64 (the index's lists), got 65");
  probes.nprobe = -2;
  refused(*ivf, probes, "nprobe: must be in 1..64");
  // Every list probed: every vector scored, the exact answer. One list (the
  // default) misses some.
  probes.nprobe = 64;
  CHECK(recall(*ivf, probes) == 1.0);
  CHECK(recall(*ivf, {}) < 1.0);
}

TEST_CASE("A cosine search ranks and scores a query of any length as its unit vector", "[store]") {
  // Flat, IVF and HNSW search the query as given and divide the scores by its
  // norm; other indexes get it normalised: PCA subtracts the documents' mean
  // first, so a longer query would point elsewhere. The documents share a
  // large offset so that their mean is far from zero. 10,500 of them train
  // PCA's matrix (the store trains at 39 x 256 staged vectors).
  const int dim = 16, n = 10500, k = 8, nq = 6;
  std::vector<float> docs = random_vectors(n, dim, 50);
  for (size_t i = 0; i < docs.size(); ++i) docs[i] += i % dim < 4 ? 6.0f : 0.0f;
  std::vector<float> unit = random_vectors(nq, dim, 51);
  for (int q = 0; q < nq; ++q) {
    double squares = 0;
    for (int j = 0; j < dim; ++j) squares += double(unit[q * dim + j]) * unit[q * dim + j];
    for (int j = 0; j < dim; ++j) unit[q * dim + j] = float(unit[q * dim + j] / std::sqrt(squares));
  }
  for (const char* spec : {"Flat", "IVF8,Flat", "HNSW16", "PCA8,Flat"}) {
    INFO(spec);
    TempDir dir;
    auto store = open_store(dir.path, options_for(dim, Metric::kCosine, spec));
    insert(store.get(), docs, dim);
    for (const float length : {7.5f, 0.02f}) {
      INFO("query length " << length);
      std::vector<float> scaled = unit;
      for (float& x : scaled) x *= length;
      for (const bool ids_only : {false, true}) {
        SearchOptions options(k);
        options.ids_only = ids_only;
        std::vector<std::vector<Hit>> want, got;
        REQUIRE(store->search_batch(unit.data(), nq, options, &want).ok());
        REQUIRE(store->search_batch(scaled.data(), nq, options, &got).ok());
        std::vector<Hit> one;
        REQUIRE(store->search(scaled.data(), dim, options, &one).ok());
        got.push_back(one);
        want.push_back(want[0]);
        for (size_t q = 0; q < want.size(); ++q) {
          REQUIRE(got[q].size() == size_t(k));
          for (int i = 0; i < k; ++i) {
            CHECK(got[q][i].id == want[q][i].id);
            CHECK(std::abs(got[q][i].score - want[q][i].score) <= 1e-5f);
          }
        }
      }
    }
  }
}

TEST_CASE("An ids-only search gives the full search's hits without their records", "[store]") {
  const int dim = 16, n = 3000, k = 10;
  const std::vector<float> docs = random_vectors(n, dim, 40), queries = random_vectors(12, dim, 41);
  // The same ids and scores, in the same order, with nothing else.
  auto same_hits = [&](const std::vector<std::vector<Hit>>& full, const std::vector<std::vector<Hit>>& ids) {
    REQUIRE(ids.size() == full.size());
    for (size_t q = 0; q < full.size(); ++q) {
      REQUIRE(ids[q].size() == full[q].size());
      for (size_t i = 0; i < full[q].size(); ++i) {
        CHECK(ids[q][i].id == full[q][i].id);
        CHECK(ids[q][i].score == full[q][i].score);
        CHECK(ids[q][i].payload.empty());
        CHECK(ids[q][i].metadata.empty());
        CHECK(full[q][i].payload == "payload of " + full[q][i].id);
      }
    }
  };
  auto both_ways = [&](const Store& store, SearchOptions options) {
    std::vector<std::vector<Hit>> full, ids;
    options.k = k;
    options.ids_only = false;
    Status s = store.search_batch(queries.data(), 12, options, &full);
    INFO(s.ToString());
    REQUIRE(s.ok());
    CHECK(full[0].size() == size_t(k));
    CHECK(!full[0][0].metadata.empty());
    options.ids_only = true;
    REQUIRE(store.search_batch(queries.data(), 12, options, &ids).ok());
    same_hits(full, ids);
    // Results passed in again are overwritten, not added to: the records
    // search's, with more vectors than queries, reused for the ids-only one.
    std::vector<std::vector<Hit>> reused = full;
    reused.resize(20);
    REQUIRE(store.search_batch(queries.data(), 12, options, &reused).ok());
    same_hits(full, reused);
    // search() as search_batch() of one, also overwriting what it is given.
    std::vector<Hit> one = full[1];
    one.resize(k + 3);
    REQUIRE(store.search(queries.data(), dim, options, &one).ok());
    same_hits({full[0]}, {one});
  };
  std::vector<Record> records(n);
  for (int i = 0; i < n; ++i) {
    records[i].id = "doc" + std::to_string(i);
    records[i].vector.assign(docs.begin() + size_t(i) * dim, docs.begin() + size_t(i + 1) * dim);
    records[i].payload = "payload of " + records[i].id;
    records[i].metadata = std::string("{\"tenant\":\"") + (i % 3 ? "a" : "b") + "\"}";
  }
  Filter tenant_b;
  REQUIRE(Filter::parse("{\"tenant\":\"b\"}", &tenant_b).ok());
  for (const char* spec : {"Flat", "HNSW16", "IVF32,Flat"}) {
    INFO(spec);
    TempDir dir;
    auto store = open_store(dir.path, options_for(dim, Metric::kCosine, spec));
    REQUIRE(store->upsert_batch(records).ok());
    SearchOptions options;
    both_ways(*store, options);
    options.filter = tenant_b;
    both_ways(*store, options);
    options = SearchOptions();
    (std::string(spec) == "HNSW16" ? options.ef_search : options.nprobe) = 8;
    if (std::string(spec) != "Flat") both_ways(*store, options);

    // Replaced and removed records: the in-memory ids follow every write,
    // and a reopen reads them back from RocksDB.
    std::vector<float> moved = random_vectors(1, dim, 42);
    REQUIRE(store->upsert("doc7", moved.data(), dim, "payload of doc7").ok());
    REQUIRE(store->remove("doc8").ok());
    uint64_t removed = 0;
    REQUIRE(store->remove_matching(tenant_b, &removed).ok());
    CHECK(removed == n / 3);
    SearchOptions ids_only(k);
    ids_only.ids_only = true;
    std::vector<Hit> hits;
    REQUIRE(store->search(moved.data(), dim, ids_only, &hits).ok());
    CHECK(hits.at(0).id == "doc7");
    REQUIRE(store->search(&docs[8 * size_t(dim)], dim, ids_only, &hits).ok());
    for (const Hit& hit : hits) CHECK((hit.id != "doc8" && hit.id != "doc0"));
    REQUIRE(store->verify().ok());
    store.reset();
    store = open_store(dir.path, Options());
    REQUIRE(store->verify().ok());
    both_ways(*store, SearchOptions());

    // Under an active query-side adapter, and through a view under another.
    AdapterVersion negate;
    negate.config_json = adapter_config(dim, "query");
    negate.weights = diagonal_weights(std::vector<float>(dim, -1.0f));
    REQUIRE(store->put_adapter(&negate).ok());
    REQUIRE(store->activate_adapter(negate.version).ok());
    both_ways(*store, SearchOptions());
    std::unique_ptr<Adapter> scale;
    std::vector<float> weights(dim, 1.0f);
    weights[0] = 8.0f;
    REQUIRE(load_adapter(adapter_config(dim, "both"), diagonal_weights(weights), {}, &scale).ok());
    std::unique_ptr<SearchView> view;
    REQUIRE(store->view(std::shared_ptr<const Adapter>(std::move(scale)), &view).ok());
    std::vector<std::vector<Hit>> full, ids;
    REQUIRE(view->search(queries.data(), 12, {k}, &full).ok());
    REQUIRE(view->search(queries.data(), 12, ids_only, &ids).ok());
    same_hits(full, ids);

    // The knobs are checked as in a full search.
    const bool hnsw = std::string(spec) == "HNSW16";
    ids_only.nprobe = hnsw ? 0 : std::string(spec) == "Flat" ? 4 : 33;
    ids_only.ef_search = hnsw ? -1 : 0;
    Status bad = store->search(queries.data(), dim, ids_only, &hits);
    CHECK(bad.code() == Code::kInvalidArgument);
  }
}

TEST_CASE("An IVF batch finds what each of its queries finds alone, past tombstones", "[store]") {
  // A batch runs on OpenMP's threads (shares of 20 queries or more go through
  // the coarse quantizer's sgemm), one query on one thread; a batch widens its
  // fetch for every query once tombstones crowd one out, and the store names
  // its hits after the search.
  const int dim = 32, n = 4000, k = 10;
  const std::vector<float> docs = random_vectors(n, dim, 50), queries = random_vectors(45, dim, 51);
  std::vector<Record> records(n);
  for (int i = 0; i < n; ++i) {
    records[i].id = "doc" + std::to_string(i);
    records[i].vector.assign(docs.begin() + size_t(i) * dim, docs.begin() + size_t(i + 1) * dim);
    records[i].metadata = i % 3 ? "{}" : "{\"third\":true}";
  }
  Filter third;
  REQUIRE(Filter::parse("{\"third\":true}", &third).ok());
  for (const char* spec : {"IVF16,Flat", "IVF16,SQ8", "IVF16,PQ8x4"}) {
    for (Metric metric : {Metric::kCosine, Metric::kL2}) {
      INFO(spec << (metric == Metric::kL2 ? " L2" : " cosine"));
      TempDir dir;
      auto store = open_store(dir.path, options_for(dim, metric, spec));
      REQUIRE(store->upsert_batch(records).ok());
      SearchOptions options(k);
      options.nprobe = 3;
      // Batches of 45 (shares of 20 or more: the coarse quantizer's sgemm),
      // 7 and 2, ids only and with records, into results holding stale hits.
      auto batch_equals_alone = [&] {
        for (size_t nq : {45, 7, 2}) {
          for (bool ids_only : {true, false}) {
            INFO(nq << " queries, ids_only " << ids_only);
            options.ids_only = ids_only;
            std::vector<std::vector<Hit>> batch(nq + 3, std::vector<Hit>(k + 2, Hit{"stale", 9.0f, "", ""}));
            REQUIRE(store->search_batch(queries.data(), nq, options, &batch).ok());
            REQUIRE(batch.size() == nq);
            for (size_t q = 0; q < nq; ++q) {
              std::vector<Hit> alone;
              REQUIRE(store->search(&queries[q * dim], dim, options, &alone).ok());
              REQUIRE(alone.size() == size_t(k));
              CHECK(ids_of(batch[q]) == ids_of(alone));
              for (size_t i = 0; i < alone.size() && i < batch[q].size(); ++i) {
                CHECK(batch[q][i].score == Approx(alone[i].score).margin(1e-4));
              }
            }
          }
        }
      };
      batch_equals_alone();
      // A third removed: the index is rebuilt without them, so its ids have gaps.
      uint64_t removed = 0;
      REQUIRE(store->remove_matching(third, &removed).ok());
      REQUIRE(removed == (n + 2) / 3);
      batch_equals_alone();
      // The 300 documents nearest to query 0 removed: tombstones (fewer than a
      // quarter of the index, so none is purged) fill query 0's first fetch,
      // which comes up short and is widened.
      const std::vector<size_t> nearest = brute_force(docs, queries.data(), dim, metric, 400);
      removed = 0;
      for (size_t i = 0; i < nearest.size() && removed < 300; ++i) {
        if (nearest[i] % 3 == 0) continue;
        REQUIRE(store->remove("doc" + std::to_string(nearest[i])).ok());
        ++removed;
      }
      batch_equals_alone();
      REQUIRE(store->verify().ok());
    }
  }
}

TEST_CASE("Bad input gets a typed error, never a crash", "[store]") {
  const int dim = 4;
  TempDir dir;
  auto store = open_store(dir.path, options_for(dim));
  std::vector<float> v = {1, 2, 3, 4};
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> with_inf = {1, inf, 3, 4}, with_nan = {std::nanf(""), 0, 0, 1}, zero = {0, 0, 0, 0};
  CHECK(store->upsert("a", v.data(), 3, "").code() == Code::kInvalidArgument);
  CHECK(store->upsert("a", with_inf.data(), dim, "").code() == Code::kInvalidArgument);
  CHECK(store->upsert("a", with_nan.data(), dim, "").code() == Code::kInvalidArgument);
  CHECK(store->upsert("a", zero.data(), dim, "").code() == Code::kInvalidArgument);  // cosine
  CHECK(store->upsert("", v.data(), dim, "").code() == Code::kInvalidArgument);
  CHECK(store->upsert(std::string(kMaxIdBytes + 1, 'x'), v.data(), dim, "").code() == Code::kInvalidArgument);
  CHECK(store->upsert(std::string(kMaxIdBytes, 'x'), v.data(), dim, "").ok());
  CHECK(store->upsert("a", v.data(), dim, std::string(kMaxPayloadBytes + 1, 'p')).code() ==
        Code::kInvalidArgument);
  CHECK(store->upsert("a", nullptr, dim, "").code() == Code::kInvalidArgument);
  CHECK(store->remove("nope").code() == Code::kNotFound);
  Record r;
  CHECK(store->get("nope", &r).code() == Code::kNotFound);
  std::vector<Hit> hits;
  CHECK(store->search(v.data(), 5, {3}, &hits).code() == Code::kInvalidArgument);
  CHECK(store->search(with_nan.data(), dim, {3}, &hits).code() == Code::kInvalidArgument);
  CHECK(store->search(v.data(), dim, {0}, &hits).code() == Code::kInvalidArgument);
  REQUIRE(store->search(v.data(), dim, {1000}, &hits).ok());  // k beyond the count
  CHECK(hits.size() == 1);
  // Finite, yet beyond float arithmetic: a norm of 1e-45 has no float scale
  // to unit length (it vanished from every search, or stopped an IVF's
  // training for good), and 3e38 makes inf of an L2 distance.
  const std::vector<float> tiny = {1e-45f, 0, 0, 0}, huge = {3e38f, 3e38f, 0, 0};
  CHECK(store->upsert("tiny", tiny.data(), dim, "").code() == Code::kInvalidArgument);
  CHECK(store->search(tiny.data(), dim, {3}, &hits).code() == Code::kInvalidArgument);
  CHECK(store->upsert("huge", huge.data(), dim, "").code() == Code::kInvalidArgument);
  const std::vector<float> small = {1e-18f, 0, 0, 0};  // tiny, yet a direction
  CHECK(store->upsert("small", small.data(), dim, "").ok());
  store.reset();
  {
    TempDir l2_dir;
    auto l2 = open_store(l2_dir.path, options_for(dim, Metric::kL2, "IVF2,Flat"));
    CHECK(l2->upsert("huge", huge.data(), dim, "").code() == Code::kInvalidArgument);
    CHECK(l2->upsert("tiny", tiny.data(), dim, "").ok());  // no scaling under L2
  }

  // Reopening with options that contradict the stored ones.
  std::unique_ptr<Store> other;
  CHECK(Store::open(dir.path, options_for(5), &other).code() == Code::kInvalidArgument);
  CHECK(Store::open(dir.path, options_for(dim, Metric::kL2), &other).code() == Code::kInvalidArgument);
  Status s = Store::open(dir.path, options_for(dim, Metric::kCosine, "HNSW32"), &other);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("Flat") != std::string::npos);

  // Paths that are not stores.
  TempDir scratch;
  fs::create_directories(scratch.path);
  std::string file = scratch.path + "/file";
  std::ofstream(file) << "not a store";
  CHECK(Store::open(file, options_for(dim), &other).code() == Code::kInvalidArgument);
  CHECK(Store::open(scratch.path, options_for(dim), &other).code() == Code::kInvalidArgument);
  Options no_create = options_for(dim);
  no_create.create_if_missing = false;
  CHECK(Store::open(scratch.path + "/missing", no_create, &other).code() == Code::kNotFound);
  CHECK(Store::open(scratch.path + "/nodim", Options(), &other).code() == Code::kInvalidArgument);
  s = Store::open(scratch.path + "/spec", options_for(dim, Metric::kL2, "NoSuchIndex"), &other);
  CHECK(s.code() == Code::kInvalidArgument);
  // FAISS's reason, not the C++ signature and source line it starts with.
  CHECK(s.message().find("NoSuchIndex") != std::string::npos);
  CHECK(s.message().find("Error in") == std::string::npos);
  CHECK(s.message().find(".cpp:") == std::string::npos);
  // FAISS builds these, then crashed or hung at the first add and at every
  // later open of the store made.
  for (const char* spec : {"HNSW0", "HNSW1", "IVF0,Flat", "NSG32"}) {
    CAPTURE(spec);
    CHECK(Store::open(scratch.path + "/spec", options_for(dim, Metric::kL2, spec), &other).code() ==
          Code::kInvalidArgument);
    CHECK_FALSE(fs::exists(scratch.path + "/spec"));
  }
  {  // A RocksDB that is not ours.
    rocksdb::Options rocks;
    rocks.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    fs::create_directories(scratch.path + "/foreign");
    REQUIRE(rocksdb::DB::Open(rocks, scratch.path + "/foreign/db", &db).ok());
    delete db;
  }
  s = Store::open(scratch.path + "/foreign", options_for(dim), &other);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("not an embedapt store") != std::string::npos);
}

TEST_CASE("A second open gets kBusy, in this process and in another", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path, options_for(4));
  std::unique_ptr<Store> second;
  Status s = Store::open(dir.path, Options(), &second);
  CHECK(s.code() == Code::kBusy);
  CHECK(s.message().find(dir.path) != std::string::npos);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::unique_ptr<Store> other;
    _exit(Store::open(dir.path, Options(), &other).code() == Code::kBusy ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("The same store under another spelling of its path is kBusy too", "[store]") {
  // Two writers on one database destroyed it: after both wrote and closed,
  // RocksDB's MANIFEST named table files that no longer existed.
  TempDir dir;
  fs::create_directories(dir.path);
  const std::string path = dir.path + "/db-store";
  auto store = open_store(path, options_for(4));
  fs::create_directory_symlink(path, dir.path + "/link");
  for (const std::string& alias : {path + "/", dir.path + "/./db-store", dir.path + "/link"}) {
    std::unique_ptr<Store> second;
    CHECK(Store::open(alias, Options(), &second).code() == Code::kBusy);
  }
  std::unique_ptr<Store> other;
  const std::string with_nul = dir.path + "/cut" + std::string(1, '\0') + "rest";
  CHECK(Store::open(with_nul, options_for(4), &other).code() == Code::kInvalidArgument);
  CHECK_FALSE(fs::exists(dir.path + "/cut"));  // nothing made at the path the NUL would cut
  CHECK(Store::open("", options_for(4), &other).code() == Code::kInvalidArgument);
}

namespace {

std::vector<LoggedQuery> read_log(const Store& store) {
  std::vector<LoggedQuery> out;
  REQUIRE(store
              .scan_log([&](const LoggedQuery& q) {
                out.push_back(q);
                return true;
              })
              .ok());
  return out;
}

}  // namespace

TEST_CASE("The query log deduplicates queries and hits and keeps the newest hits", "[store]") {
  const int dim = 4;
  TempDir dir;
  Options options = options_for(dim);
  options.query_log_max_hits = 3;
  std::vector<float> q1 = {1, 0, 0, 0}, q2 = {0, 1, 0, 0};
  {
    auto store = open_store(dir.path, options);
    uint64_t a = 0, b = 0, a_again = 0;
    REQUIRE(store->log_query(q1.data(), dim, {"d1", "d2"}, &a).ok());
    REQUIRE(store->log_query(q2.data(), dim, {}, &b).ok());
    REQUIRE(store->log_query(q1.data(), dim, {"d3"}, &a_again).ok());
    CHECK(a != b);
    CHECK(a == a_again);
    CHECK(store->log_hit(a + b + 7, "d1").code() == Code::kNotFound);
    CHECK(store->log_hit(a, "").code() == Code::kInvalidArgument);
    // A result no hit could name (log_hit refuses its id) is not logged.
    uint64_t never = 0;
    const std::vector<float> q3 = {0, 0, 1, 0};
    CHECK(store->log_query(q3.data(), dim, {"d1", ""}, &never).code() == Code::kInvalidArgument);
    CHECK(store->log_query(q3.data(), dim, {std::string(kMaxIdBytes + 1, 'x')}, &never).code() ==
          Code::kInvalidArgument);
    REQUIRE(store->log_hit(a, "d1").ok());
    REQUIRE(store->log_hit(a, "d1").ok());  // duplicate: no-op
    REQUIRE(store->log_hit(a, "d2").ok());
    REQUIRE(store->log_hit(b, "d3").ok());
    std::vector<LoggedQuery> logged = read_log(*store);
    REQUIRE(logged.size() == 2);  // grouped by query, each vector once
    CHECK(logged[0].id == a);
    CHECK(logged[0].vector == q1);
    CHECK(logged[0].hit_ids == std::vector<std::string>{"d1", "d2"});
    CHECK(logged[1].vector == q2);
    CHECK(logged[1].hit_ids == std::vector<std::string>{"d3"});
    REQUIRE(store->log_hit(b, "d4").ok());  // evicts (a, d1), the oldest
  }
  auto store = open_store(dir.path, options);
  std::vector<LoggedQuery> logged = read_log(*store);
  REQUIRE(logged.size() == 2);
  CHECK(logged[0].hit_ids == std::vector<std::string>{"d2"});
  CHECK(logged[1].hit_ids == std::vector<std::string>{"d3", "d4"});
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.logged_queries == 2);
  CHECK(stats.logged_hits == 3);
  uint64_t a = 0;
  REQUIRE(store->log_query(q1.data(), dim, {}, &a).ok());
  REQUIRE(store->log_hit(a, "d1").ok());  // evicted, so logged anew (evicting (a, d2), now the oldest)
  logged = read_log(*store);
  REQUIRE(logged.size() == 2);
  CHECK(logged[0].hit_ids == std::vector<std::string>{"d1"});
  CHECK(logged[1].hit_ids == std::vector<std::string>{"d3", "d4"});
  // The scan stops when asked to.
  size_t calls = 0;
  REQUIRE(store->scan_log([&](const LoggedQuery&) { return ++calls < 1; }).ok());
  CHECK(calls == 1);
}

TEST_CASE("Adapter versions: activation, document-side rebuild, views and rollback", "[store][adapter]") {
  const int dim = 8, n = 300;
  TempDir dir;
  std::vector<float> docs = random_vectors(n, dim, 11);
  std::vector<float> queries = random_vectors(10, dim, 12);
  auto store = open_store(dir.path, options_for(dim));
  insert(store.get(), docs, dim);
  REQUIRE(store->set_embedder("test-embedder").ok());
  CHECK(store->set_embedder("other").code() == Code::kFailedPrecondition);

  std::vector<float> scale(dim, 1.0f);
  scale[0] = 8.0f;  // a document-and-query transform that changes cosine rankings
  AdapterVersion both;
  both.config_json = adapter_config(dim, "both");
  both.weights = diagonal_weights(scale);
  both.metrics_json = "{\"mrr\":0.5}";
  REQUIRE(store->put_adapter(&both).ok());
  CHECK(both.version == 1);
  AdapterVersion negate;  // query side, y = -x: reverses the cosine ranking
  negate.config_json = adapter_config(dim, "query");
  negate.weights = diagonal_weights(std::vector<float>(dim, -1.0f));
  negate.parent = 1;
  REQUIRE(store->put_adapter(&negate).ok());
  CHECK(negate.version == 2);
  std::vector<AdapterVersion> listed;
  REQUIRE(store->list_adapters(&listed).ok());
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].weights.empty());
  CHECK(listed[1].parent == 1);
  CHECK(listed[0].metrics_json == "{\"mrr\":0.5}");
  AdapterVersion fetched;
  REQUIRE(store->get_adapter(1, &fetched).ok());
  CHECK(fetched.weights == both.weights);
  CHECK(store->get_adapter(9, &fetched).code() == Code::kNotFound);

  std::vector<std::vector<Hit>> raw, adapted, viewed;
  REQUIRE(store->search_batch(queries.data(), 10, {5}, &raw).ok());

  // A view under the document-side adapter needs its own index.
  AdapterVersion stored;
  REQUIRE(store->get_adapter(1, &stored).ok());
  std::unique_ptr<Adapter> loaded;
  REQUIRE(load_adapter(stored.config_json, stored.weights, AdapterLoadOptions(), &loaded).ok());
  std::unique_ptr<SearchView> view;
  REQUIRE(store->view(std::shared_ptr<const Adapter>(std::move(loaded)), &view).ok());
  REQUIRE(view->search(queries.data(), 10, {5}, &viewed).ok());

  REQUIRE(store->activate_adapter(1).ok());
  REQUIRE(store->search_batch(queries.data(), 10, {5}, &adapted).ok());
  bool changed = false;
  for (int q = 0; q < 10; ++q) {
    CHECK(ids_of(adapted[q]) == ids_of(viewed[q]));
    changed |= ids_of(adapted[q]) != ids_of(raw[q]);
  }
  CHECK(changed);
  REQUIRE(store->verify().ok());

  // New documents go through the active document-side adapter too.
  std::vector<float> extra = random_vectors(1, dim, 13);
  REQUIRE(store->upsert("extra", extra.data(), dim, "").ok());
  std::vector<Hit> hits;
  REQUIRE(store->search(extra.data(), dim, {1}, &hits).ok());
  CHECK(hits.at(0).id == "extra");
  REQUIRE(store->remove("extra").ok());

  // Query side: the ranking reverses.
  REQUIRE(store->activate_adapter(2).ok());
  REQUIRE(store->search(docs.data(), dim, {1}, &hits).ok());
  CHECK(hits.at(0).id != "doc0");
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == 2);
  CHECK(stats.adapter_versions == 2);

  // Rollback walks back through the activations, and survives a reopen.
  REQUIRE(store->rollback_adapter().ok());
  store.reset();
  store = open_store(dir.path, Options());
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == 1);
  CHECK(stats.recovery.find("snapshot") != std::string::npos);
  REQUIRE(store->search_batch(queries.data(), 10, {5}, &viewed).ok());
  for (int q = 0; q < 10; ++q) CHECK(ids_of(viewed[q]) == ids_of(adapted[q]));
  REQUIRE(store->rollback_adapter().ok());
  REQUIRE(store->search_batch(queries.data(), 10, {5}, &viewed).ok());
  for (int q = 0; q < 10; ++q) CHECK(ids_of(viewed[q]) == ids_of(raw[q]));
  CHECK(store->rollback_adapter().code() == Code::kFailedPrecondition);
  REQUIRE(store->verify().ok());
}

TEST_CASE("A view on the live index fails once an activation rebuilds it for another document side",
          "[store][adapter]") {
  const int dim = 8, n = 100;
  TempDir dir;
  std::vector<float> docs = random_vectors(n, dim, 21);
  auto store = open_store(dir.path, options_for(dim));
  insert(store.get(), docs, dim);
  std::vector<float> scale(dim, 1.0f);
  scale[0] = 8.0f;
  AdapterVersion both;
  both.config_json = adapter_config(dim, "both");
  both.weights = diagonal_weights(scale);
  REQUIRE(store->put_adapter(&both).ok());
  AdapterVersion query_only;
  query_only.config_json = adapter_config(dim, "query");
  query_only.weights = diagonal_weights(scale);
  REQUIRE(store->put_adapter(&query_only).ok());

  // No adapter: the view searches the raw live index, and still may after a
  // query-side activation, which leaves the documents as they are.
  std::unique_ptr<SearchView> plain;
  REQUIRE(store->view(nullptr, &plain).ok());
  std::vector<std::vector<Hit>> results;
  REQUIRE(plain->search(docs.data(), 1, {3}, &results).ok());
  REQUIRE(store->activate_adapter(query_only.version).ok());
  REQUIRE(plain->search(docs.data(), 1, {3}, &results).ok());
  CHECK(results.at(0).at(0).id == "doc0");

  // Activating the document-side adapter rebuilds the live index under it:
  // the raw view would now send raw queries into transformed documents.
  REQUIRE(store->activate_adapter(both.version).ok());
  Status stale = plain->search(docs.data(), 1, {3}, &results);
  CHECK(stale.code() == Code::kFailedPrecondition);
  CHECK(stale.message().find("make a new view") != std::string::npos);

  // Back to raw documents: the live index is again the one the view chose.
  REQUIRE(store->activate_adapter(0).ok());
  REQUIRE(plain->search(docs.data(), 1, {3}, &results).ok());
  CHECK(results.at(0).at(0).id == "doc0");
}

TEST_CASE("Adapters that do not fit the store are refused", "[store][adapter]") {
  const int dim = 8;
  TempDir dir;
  auto store = open_store(dir.path, options_for(dim));
  REQUIRE(store->set_embedder("test-embedder").ok());
  AdapterVersion wrong_dim, wrong_embedder, truncated;
  wrong_dim.config_json = adapter_config(4, "query");
  wrong_dim.weights = diagonal_weights(std::vector<float>(4, 1.0f));
  wrong_embedder.config_json = adapter_config(dim, "query", "another-model");
  wrong_embedder.weights = diagonal_weights(std::vector<float>(dim, 1.0f));
  truncated.config_json = adapter_config(dim, "query");
  truncated.weights = wrong_embedder.weights.substr(0, wrong_embedder.weights.size() - 7);
  for (AdapterVersion* v : {&wrong_dim, &wrong_embedder, &truncated}) REQUIRE(store->put_adapter(v).ok());
  CHECK(store->activate_adapter(wrong_dim.version).code() == Code::kInvalidArgument);
  CHECK(store->activate_adapter(wrong_embedder.version).code() == Code::kFailedPrecondition);
  CHECK(store->activate_adapter(truncated.version).code() == Code::kCorruption);
  CHECK(store->activate_adapter(42).code() == Code::kNotFound);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == 0);

  // An adapter that maps a valid query to zero: its search is an error, not
  // NaN scores or no hits.
  std::vector<float> diagonal(dim, 1.0f);
  diagonal.back() = 0;
  AdapterVersion flattening;
  flattening.config_json = adapter_config(dim, "query", "test-embedder");
  flattening.weights = diagonal_weights(diagonal);
  REQUIRE(store->put_adapter(&flattening).ok());
  REQUIRE(store->activate_adapter(flattening.version).ok());
  std::vector<float> doc(dim, 1.0f), last_axis(dim, 0.0f);
  last_axis.back() = 1;
  REQUIRE(store->upsert("d", doc.data(), dim, "").ok());
  std::vector<Hit> hits;
  const Status s = store->search(last_axis.data(), dim, {3}, &hits);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("applying adapter: row 0") != std::string::npos);
  REQUIRE(store->search(doc.data(), dim, {3}, &hits).ok());
  CHECK(hits.size() == 1);
}
