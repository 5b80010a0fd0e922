// retrain_bench: search latency while the store retrains in the background.
//
//   retrain_bench [--n 20000] [--dim 384] [--log 2000] [--searches 2000] [--repeats 3]
//                 [--dir /tmp/retrain_bench]
//
// A store of `n` random unit vectors opened with background retraining
// (Options::background_retrain, one training thread, activate if better).
// Each repeat: `searches` k=10 searches one query at a time with no retrain
// running (idle), then `log` new logged queries with a hit each, the last of
// which starts a background retrain, and searches one at a time until that
// retrain has trained, stored and activated its adapter (during). Latency
// percentiles per phase over all repeats' searches; the ratio of during to
// idle p99 per repeat, median over repeats. Prints one JSON object.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "embedapt/learn.h"
#include "embedapt/store.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

struct Args {
  size_t n = 20000;
  int dim = 384;
  size_t log = 2000;
  size_t searches = 2000;
  int repeats = 3;
  std::string dir = "/tmp/retrain_bench";
};

void die(const Status& s, const char* what) { bench::die("retrain_bench", s, what); }

constexpr const char* kUsage =
    "usage: retrain_bench [--n 20000] [--dim 384] [--log 2000] [--searches 2000] [--repeats 3]\n"
    "                     [--dir /tmp/retrain_bench]\n"
    "Search latency while the store retrains in the background, against idle. Prints one JSON object.\n";

// The background thread's report, for the bench thread to poll between searches.
struct Outcome {
  std::mutex mu;
  bool done = false;
  Status status;
  RetrainReport report;
};

}  // namespace

int main(int argc, char** argv) {
  const Flags flags(argc, argv, "retrain_bench", kUsage,
                    {"--n", "--dim", "--log", "--searches", "--repeats", "--dir"});
  Args args;
  args.n = static_cast<size_t>(flags.number("--n", args.n));
  args.dim = static_cast<int>(flags.number("--dim", args.dim));
  args.log = static_cast<size_t>(flags.number("--log", args.log));
  args.searches = static_cast<size_t>(flags.number("--searches", args.searches));
  args.repeats = static_cast<int>(flags.number("--repeats", args.repeats));
  args.dir = flags.text("--dir", args.dir);
  std::filesystem::remove_all(args.dir);
  const size_t dim = static_cast<size_t>(args.dim);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  auto unit = [&](std::vector<float>* v) {
    double norm = 0;
    for (float& x : *v) norm += double(x = normal(rng)) * x;
    for (float& x : *v) x = static_cast<float>(x / std::sqrt(norm));
  };

  Outcome outcome;
  Options options;
  options.dim = args.dim;
  options.background_retrain.after_hits = args.log;
  options.background_retrain.min_interval_seconds = 0;
  options.background_retrain.on_retrain = [&outcome](const Status& s, const RetrainReport& r) {
    std::lock_guard<std::mutex> lock(outcome.mu);
    outcome.done = true;
    outcome.status = s;
    outcome.report = r;
  };
  std::unique_ptr<Store> store;
  die(Store::open(args.dir, options, &store), "open");
  const std::vector<float> docs = unit_vectors(args.n, args.dim, 2);
  fill("retrain_bench", store.get(), docs, args.dim, 0, args.n, 1000, false);
  std::vector<float> v(dim);

  // The machine may be shared: the load before the timed phases says how quiet it was.
  double load_1min = -1;
  getloadavg(&load_1min, 1);
  std::vector<double> idle, during, ratios, train_seconds;
  std::vector<std::string> decisions;
  std::uniform_int_distribution<size_t> any_doc(0, args.n - 1);
  auto timed_search = [&](std::vector<double>* into) {
    unit(&v);
    std::vector<Hit> hits;
    const auto start = Clock::now();
    die(store->search(v.data(), dim, 10, &hits), "search");
    into->push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  };
  for (int r = 0; r < args.repeats; ++r) {
    std::vector<double> idle_r, during_r;
    for (size_t i = 0; i < args.searches; ++i) timed_search(&idle_r);
    // A log of noisy copies of documents; the last hit starts the retrain.
    for (size_t q = 0; q < args.log; ++q) {
      const size_t d = any_doc(rng);
      for (size_t c = 0; c < dim; ++c) v[c] = docs[d * dim + c] + 0.05f * normal(rng);
      uint64_t id = 0;
      die(store->log_query(v.data(), dim, {}, &id), "log_query");
      die(store->log_hit(id, std::to_string(d)), "log_hit");
    }
    for (bool done = false; !done;) {
      timed_search(&during_r);
      std::lock_guard<std::mutex> lock(outcome.mu);
      done = outcome.done;
    }
    die(outcome.status, "background retrain");
    outcome.done = false;
    ratios.push_back(percentile(during_r, 0.99) / percentile(idle_r, 0.99));
    train_seconds.push_back(outcome.report.train_seconds);
    decisions.push_back(DecisionName(outcome.report.decision));
    idle.insert(idle.end(), idle_r.begin(), idle_r.end());
    during.insert(during.end(), during_r.begin(), during_r.end());
  }
  nlohmann::json out = {{"n", args.n},
                        {"dim", args.dim},
                        {"log_per_repeat", args.log},
                        {"repeats", args.repeats},
                        {"load_1min", load_1min},
                        {"idle_searches", idle.size()},
                        {"idle_p50_ms", percentile(idle, 0.5)},
                        {"idle_p99_ms", percentile(idle, 0.99)},
                        {"during_searches", during.size()},
                        {"during_p50_ms", percentile(during, 0.5)},
                        {"during_p99_ms", percentile(during, 0.99)},
                        {"p99_ratio_median", percentile(ratios, 0.5)},
                        {"p99_ratios", ratios},
                        {"train_seconds", train_seconds},
                        {"decisions", decisions}};
  std::printf("%s\n", out.dump().c_str());
  store.reset();
  std::filesystem::remove_all(args.dir);
  return 0;
}
