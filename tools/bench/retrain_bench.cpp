// retrain_bench: search latency while the store retrains in the background.
//
//   retrain_bench [--n 10000] [--dim 384] [--log 300] [--searches 2000] [--repeats 3]
//                 [--dir /tmp/retrain_bench]
//
// A store of `n` unit vectors opened with background retraining
// (Options::background_retrain: one training thread at its default nice,
// activate if better). The log is learnable (see the documents below): a
// query is a document plus noise seen through a fixed distortion (what a
// mismatched query encoder does), so the first retrain ships an adapter and
// the measurement includes its swap. Each repeat: `searches` k=10 searches of
// random unit vectors one at a time with no retrain running (idle), then `log`
// new logged queries with a hit each, the last of which starts a background
// retrain, and searches one at a time until that retrain has trained, stored
// and activated its adapter (during). Per repeat: p50 and p99 of each phase,
// the retrain's CPU use (the process's CPU time less the search thread's, per
// second of the phase: how many cores it took), its store-and-activate time,
// and the slowest search that overlapped that (the swap as searches see it).
// Ratios of the medians over repeats. Prints one JSON object.
#include <sys/resource.h>

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
  size_t n = 10000;
  int dim = 384;
  size_t log = 300;
  size_t searches = 2000;
  int repeats = 3;
  std::string dir = "/tmp/retrain_bench";
};

void die(const Status& s, const char* what) { bench::die("retrain_bench", s, what); }

constexpr const char* kUsage =
    "usage: retrain_bench [--n 10000] [--dim 384] [--log 300] [--searches 2000] [--repeats 3]\n"
    "                     [--dir /tmp/retrain_bench]\n"
    "Search latency while the store retrains in the background, against idle. Prints one JSON object.\n";

// The background thread's report, for the bench thread to poll between searches.
struct Outcome {
  std::mutex mu;
  bool done = false;
  Clock::time_point at;  // when the retrain returned
  Status status;
  RetrainReport report;
};

// CPU seconds used so far by the process (`who` RUSAGE_SELF) or the calling
// thread (RUSAGE_THREAD).
double cpu_seconds(int who) {
  rusage u{};
  getrusage(who, &u);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

int run(int argc, char** argv) {
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
    outcome.at = Clock::now();
    outcome.status = s;
    outcome.report = r;
  };
  std::unique_ptr<Store> store;
  die(Store::open(args.dir, options, &store), "open");
  // The documents: unit vectors in a random kTaskDim-dimensional subspace
  // (real embeddings have few effective dimensions), so a log of hundreds of
  // queries determines an adapter. A query is its document's coordinates plus
  // noise, seen through a fixed distortion (identity plus 1.8 / sqrt(kTaskDim)
  // times a standard normal matrix: the trainer tests' task at this size),
  // mapped into the same subspace.
  constexpr size_t kTaskDim = 32;
  if (dim < kTaskDim)
    bench::die("retrain_bench", Status::InvalidArgument("--dim must be at least 32"), "flags");
  std::vector<float> basis(dim * kTaskDim);  // orthonormal columns, by Gram-Schmidt
  for (size_t k = 0; k < kTaskDim; ++k) {
    std::vector<double> col(dim);
    for (double& x : col) x = normal(rng);
    for (size_t j = 0; j < k; ++j) {
      double dot = 0;
      for (size_t c = 0; c < dim; ++c) dot += col[c] * basis[c * kTaskDim + j];
      for (size_t c = 0; c < dim; ++c) col[c] -= dot * basis[c * kTaskDim + j];
    }
    double norm = 0;
    for (double x : col) norm += x * x;
    for (size_t c = 0; c < dim; ++c) basis[c * kTaskDim + k] = static_cast<float>(col[c] / std::sqrt(norm));
  }
  auto embed = [&](const float* coords, float* out) {
    for (size_t c = 0; c < dim; ++c) {
      double x = 0;
      for (size_t k = 0; k < kTaskDim; ++k) x += double(basis[c * kTaskDim + k]) * coords[k];
      out[c] = static_cast<float>(x);
    }
  };
  const std::vector<float> coords = unit_vectors(args.n, kTaskDim, 2);
  std::vector<float> docs(args.n * dim);
  for (size_t i = 0; i < args.n; ++i) embed(&coords[i * kTaskDim], &docs[i * dim]);
  fill("retrain_bench", store.get(), docs, args.dim, 0, args.n, 1000, false);
  std::vector<float> distortion(kTaskDim * kTaskDim);
  for (size_t r = 0; r < kTaskDim; ++r) {
    for (size_t c = 0; c < kTaskDim; ++c) {
      distortion[r * kTaskDim + c] =
          (r == c ? 1.0f : 0.0f) + static_cast<float>(1.8 / std::sqrt(double(kTaskDim))) * normal(rng);
    }
  }
  float noisy[kTaskDim], seen[kTaskDim];
  std::vector<float> v(dim);

  // The machine may be shared: the load before the timed phases says how quiet it was.
  const double load = load_1min();
  std::vector<double> idle, during;
  std::vector<double> idle_p50, idle_p99, during_p50, during_p99, retrain_cores, train_seconds, store_seconds,
      swap_search_ms;
  std::vector<std::string> decisions;
  std::uniform_int_distribution<size_t> any_doc(0, args.n - 1);
  struct Timed {
    Clock::time_point start;
    double ms;
  };
  auto timed_search = [&](std::vector<Timed>* into) {
    unit(&v);
    std::vector<Hit> hits;
    const auto start = Clock::now();
    die(store->search(v.data(), dim, 10, &hits), "search");
    into->push_back({start, std::chrono::duration<double, std::milli>(Clock::now() - start).count()});
  };
  auto latencies = [](const std::vector<Timed>& timed) {
    std::vector<double> ms;
    ms.reserve(timed.size());
    for (const Timed& t : timed) ms.push_back(t.ms);
    return ms;
  };
  for (int r = 0; r < args.repeats; ++r) {
    std::vector<Timed> idle_r, during_r;
    for (size_t i = 0; i < args.searches; ++i) timed_search(&idle_r);
    for (size_t q = 0; q < args.log; ++q) {
      const size_t d = any_doc(rng);
      for (size_t k = 0; k < kTaskDim; ++k) noisy[k] = coords[d * kTaskDim + k] + 0.05f * normal(rng);
      for (size_t r = 0; r < kTaskDim; ++r) {
        double x = 0;
        for (size_t k = 0; k < kTaskDim; ++k) x += double(distortion[r * kTaskDim + k]) * noisy[k];
        seen[r] = static_cast<float>(x);
      }
      embed(seen, v.data());
      uint64_t id = 0;
      die(store->log_query(v.data(), dim, {}, &id), "log_query");
      die(store->log_hit(id, std::to_string(d)), "log_hit");  // the last one starts the retrain
    }
    const auto phase_start = Clock::now();
    const double process_cpu = cpu_seconds(RUSAGE_SELF), search_cpu = cpu_seconds(RUSAGE_THREAD);
    for (bool done = false; !done;) {
      timed_search(&during_r);
      std::lock_guard<std::mutex> lock(outcome.mu);
      done = outcome.done;
    }
    retrain_cores.push_back(
        (cpu_seconds(RUSAGE_SELF) - process_cpu - (cpu_seconds(RUSAGE_THREAD) - search_cpu)) /
        seconds_since(phase_start));
    die(outcome.status, "background retrain");
    outcome.done = false;
    // The swap: the searches that ran while the version was stored and activated.
    const auto swap_start = outcome.at - std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(outcome.report.store_seconds));
    double slowest = 0;
    for (const Timed& t : during_r) {
      const auto end = t.start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double, std::milli>(t.ms));
      if (end >= swap_start && t.start <= outcome.at) slowest = std::max(slowest, t.ms);
    }
    const std::vector<double> idle_ms = latencies(idle_r), during_ms = latencies(during_r);
    idle_p50.push_back(percentile(idle_ms, 0.5));
    idle_p99.push_back(percentile(idle_ms, 0.99));
    during_p50.push_back(percentile(during_ms, 0.5));
    during_p99.push_back(percentile(during_ms, 0.99));
    train_seconds.push_back(outcome.report.train_seconds);
    store_seconds.push_back(outcome.report.store_seconds);
    swap_search_ms.push_back(slowest);
    decisions.push_back(DecisionName(outcome.report.decision));
    idle.insert(idle.end(), idle_ms.begin(), idle_ms.end());
    during.insert(during.end(), during_ms.begin(), during_ms.end());
  }
  nlohmann::json out = {{"n", args.n},
                        {"dim", args.dim},
                        {"log_per_repeat", args.log},
                        {"repeats", args.repeats},
                        {"load_1min", load},
                        {"idle_searches", idle.size()},
                        {"during_searches", during.size()},
                        {"idle_p50_ms", idle_p50},
                        {"idle_p99_ms", idle_p99},
                        {"during_p50_ms", during_p50},
                        {"during_p99_ms", during_p99},
                        {"p99_ratio_of_medians", median(during_p99) / median(idle_p99)},
                        {"p50_ratio_of_medians", median(during_p50) / median(idle_p50)},
                        {"retrain_cores", retrain_cores},
                        {"train_seconds", train_seconds},
                        {"store_seconds", store_seconds},
                        {"swap_search_ms", swap_search_ms},
                        {"decisions", decisions}};
  std::printf("%s\n", out.dump().c_str());
  store.reset();
  std::filesystem::remove_all(args.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("retrain_bench", run, argc, argv); }
