// scale_store: a synthetic store for measuring retrain at scale.
//
//   scale_store --dir DIR [--n 1000000] [--dim 384] [--log 100000] [--seed 1]
//
// Creates (or reopens) a Flat store of `n` seeded random unit vectors with ids
// "<row>", then logs queries until the store holds `log` logged queries, each
// a noisy copy of a random document with one hit on it. Reopening with a
// larger --log adds only the missing queries, so one 1M-document store serves
// every log size. Prints one JSON object: what it built and how long it took.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "embedapt/store.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

constexpr const char* kUsage =
    "usage: scale_store --dir DIR [--n 1000000] [--dim 384] [--log 100000] [--seed 1]\n"
    "Builds (or tops up) a Flat store of n random unit vectors whose query log holds `log` logged\n"
    "queries, each with one hit. Prints one JSON object.\n";

void die(const Status& s, const char* what) { bench::die("scale_store", s, what); }

int run(int argc, char** argv) {
  const Flags flags(argc, argv, "scale_store", kUsage, {"--dir", "--n", "--dim", "--log", "--seed"});
  const std::string dir = flags.text("--dir", "");
  if (dir.empty()) {
    std::fprintf(stderr, "scale_store: --dir is required\n%s", kUsage);
    return 2;
  }
  const auto n = static_cast<size_t>(flags.number("--n", 1000000));
  const int dim = static_cast<int>(flags.number("--dim", 384));
  const auto log = static_cast<uint64_t>(flags.number("--log", 100000));
  const auto seed = static_cast<uint32_t>(flags.number("--seed", 1));
  if (n == 0 || dim == 0) {
    std::fprintf(stderr, "scale_store: --n and --dim must be positive\n");
    return 2;
  }

  Options options;
  options.dim = dim;
  std::unique_ptr<Store> store;
  die(Store::open(dir, options, &store), "open");
  die(store->set_embedder("synthetic"), "set_embedder");
  StoreStats stats;
  die(store->stats(&stats), "stats");

  // Documents in slices of 100k, so the vectors in memory stay small.
  double fill_seconds = 0;
  constexpr size_t kSlice = 100000;
  for (size_t begin = stats.count; begin < n; begin += kSlice) {
    const size_t end = std::min(n, begin + kSlice);
    const std::vector<float> slice = unit_vectors(end - begin, dim, size_t{seed} * 7919 + begin / kSlice);
    std::vector<Record> records;
    for (size_t first = 0; first < end - begin; first += 1000) {
      records.clear();
      for (size_t i = first; i < std::min(end - begin, first + 1000); ++i) {
        Record r;
        r.id = std::to_string(begin + i);
        r.vector.assign(slice.begin() + i * dim, slice.begin() + (i + 1) * dim);
        records.push_back(std::move(r));
      }
      const auto t = Clock::now();
      die(store->upsert_batch(records), "upsert_batch");
      fill_seconds += seconds_since(t);
    }
  }

  // The log: a query is its document (read back from the store) plus noise.
  std::mt19937 rng(seed + stats.logged_queries);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<size_t> any_doc(0, n - 1);
  const auto log_start = Clock::now();
  Record doc;
  std::vector<float> v(dim);
  for (uint64_t q = stats.logged_queries; q < log; ++q) {
    const std::string id = std::to_string(any_doc(rng));
    die(store->get(id, &doc), "get");
    double norm = 0;
    for (int c = 0; c < dim; ++c) norm += std::pow(v[c] = doc.vector[c] + 0.05f * normal(rng), 2);
    for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
    uint64_t query_id = 0;
    die(store->log_query(v.data(), dim, {}, &query_id), "log_query");
    die(store->log_hit(query_id, id), "log_hit");
  }
  const double log_seconds = seconds_since(log_start);
  die(store->flush(), "flush");
  die(store->stats(&stats), "stats");
  nlohmann::json out = {{"dir", dir},
                        {"documents", stats.count},
                        {"dim", stats.dim},
                        {"logged_queries", stats.logged_queries},
                        {"logged_hits", stats.logged_hits},
                        {"fill_seconds", fill_seconds},
                        {"log_seconds", log_seconds}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("scale_store", run, argc, argv); }
