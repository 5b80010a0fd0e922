// Readers and one writer at once (build with -DEMBEDAPT_SANITIZE=thread to
// have TSan watch it). The writer churns records, snapshots, and swaps a
// document-side adapter in and out; an orthogonal adapter (a permutation)
// keeps cosine neighbours unchanged, so a reader seeing a query transformed
// for one index and searched in the other would miss its target.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <thread>

#include "core/common/safetensors.h"
#include "embedapt/store.h"

namespace fs = std::filesystem;
using namespace embedapt;

TEST_CASE("Searches run while one thread writes and swaps adapters", "[store][concurrency]") {
  const int dim = 16, stable = 200;
  std::string dir =
      (fs::temp_directory_path() / ("embedapt-concurrency-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  Options options;
  options.dim = dim;
  options.snapshot_every = 64;
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(dir, options, &store).ok());

  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> docs(size_t(stable) * dim);
  for (float& x : docs) x = normal(rng);
  std::vector<Record> batch(stable);
  for (int i = 0; i < stable; ++i) {
    batch[i].id = "stable" + std::to_string(i);
    batch[i].vector.assign(docs.begin() + size_t(i) * dim, docs.begin() + size_t(i + 1) * dim);
  }
  REQUIRE(store->upsert_batch(batch).ok());

  std::vector<float> permutation(size_t(dim) * dim, 0.0f);  // row i picks coordinate (i + 5) % dim
  for (int i = 0; i < dim; ++i) permutation[i * dim + (i + 5) % dim] = 1.0f;
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(permutation, {dim, dim});
  AdapterVersion adapter;
  adapter.config_json =
      "{\"kind\":\"linear\",\"in_dim\":16,\"out_dim\":16,\"side\":\"both\",\"embedder\":\"\"}";
  adapter.weights = serialize_safetensors(tensors);
  REQUIRE(store->put_adapter(&adapter).ok());

  std::atomic<bool> done{false};
  std::atomic<int> searches{0}, misses{0}, errors{0};
  const int reader_threads = 3;
  std::vector<std::thread> readers;
  readers.reserve(reader_threads);
  for (int t = 0; t < reader_threads; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 pick(100 + t);
      while (!done) {
        int i = pick() % stable;
        std::vector<Hit> hits;
        SearchOptions options(3);
        options.ids_only = t == 1;  // ids from memory, updated with the index
        if (!store->search(docs.data() + size_t(i) * dim, dim, options, &hits).ok()) {
          ++errors;
        } else if (hits.empty() || hits[0].id != "stable" + std::to_string(i)) {
          ++misses;
        }
        StoreStats stats;
        if (!store->stats(&stats).ok()) ++errors;
        ++searches;
      }
    });
  }

  // At least 12 rounds, and more until the readers have searched enough to
  // have really overlapped the writes, however the scheduler shares the cores.
  const int min_searches = 300;
  std::mt19937 wrng(9);
  for (int round = 0; round < 12 || (searches < min_searches && round < 2000); ++round) {
    for (int j = 0; j < 40; ++j) {
      std::vector<float> v(dim);
      for (float& x : v) x = normal(wrng);
      std::string id = "churn" + std::to_string(wrng() % 50);
      REQUIRE(store->upsert(id, v.data(), dim, "p").ok());
      if (wrng() % 3 == 0) {
        Status s = store->remove("churn" + std::to_string(wrng() % 50));
        REQUIRE((s.ok() || s.code() == Code::kNotFound));
      }
    }
    REQUIRE(store->activate_adapter(round % 2 == 0 ? adapter.version : 0).ok());
  }
  REQUIRE(store->flush().ok());
  done = true;
  for (auto& t : readers) t.join();
  CHECK(errors == 0);
  CHECK(misses == 0);
  CHECK(searches >= min_searches);
  REQUIRE(store->verify().ok());
  store.reset();
  fs::remove_all(dir);
}
