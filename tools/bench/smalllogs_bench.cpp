// smalllogs_bench: what retrain's default procedure gains from small logs,
// how close that is to the best plain adapter, and how rarely it ships on
// logs without signal.
//
//   smalllogs_bench --dataset NAME=PATH [--dataset ...] [--sizes 40,100,150,300] [--seeds 3]
//                   [--null-seeds 20] [--ceiling-epochs 5,10,20,40] [--folds 10]
//                   [--time-sizes 100,1000] [--time-dataset NAME] [--repeats 3] [--min-z Z]
//                   [--kind linear] [--epochs N] [--lr X]
//
// Per dataset (any format `embedapt ingest --dataset` reads): the texts are
// embedded once by the default embedder through the embedding cache. For each
// seed the queries are split in halves; logs of each size are the first
// queries of half A, half B is held out. On each log:
//  - "log": the trainer with its defaults (what `retrain` runs) and the
//    held-out hit@5 gain of what it ships (0 when it ships nothing);
//  - "ceiling": plain linear adapters (no selection, trained on the whole log
//    for each fixed epoch count) and their held-out gains: the best count,
//    chosen by looking at the held-out half, is what the data allows;
//  - "null": for --null-seeds seeds, the log with no signal, two ways: each
//    query paired with a random document, and the real pairs with the query
//    vectors shuffled among them; whether the defaults ship, and what a
//    shipped adapter does to the held-out half (real labels).
// Then "time": the defaults' training time on logs of --time-sizes queries
// drawn from one dataset (all its queries, with repetition past its size),
// the median of --repeats.
// --kind, --epochs and --lr change the trainer's options for every run (the
// plain adapters too): how the per-kind schedule was chosen, on the training
// files (tools/bench/smalllogs.sh has the command).
// Held-out scores are exact cosine search against every document: what
// `embedapt eval` computes on a Flat store. One JSON object per line on stdout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/adapt/trainer.h"
#include "core/eval/dataset.h"
#include "embedapt/embedder.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::vector<std::pair<std::string, std::string>> datasets;  // name, path
  std::vector<size_t> sizes = {40, 100, 150, 300};
  int seeds = 3;
  int null_seeds = 20;
  std::vector<int> ceiling_epochs = {5, 10, 20, 40};
  int folds = 0;  // 0: the trainer's default
  // Set: ship whenever an epoch was chosen, with the z of each run printed, to
  // calibrate the bar after the fact (NaN: the trainer's default bar).
  double min_z = NAN;
  std::vector<size_t> time_sizes = {100, 1000};
  std::string time_dataset;
  int repeats = 3;
  std::string kind = "linear";
  int epochs = 0;  // 0: the trainer's default for the kind
  double lr = 0;   // 0: the trainer's default
};

struct Data {
  Matrix docs, queries;
  std::vector<std::vector<size_t>> relevant;
};

void fail(const std::string& message) {
  std::fprintf(stderr, "smalllogs_bench: %s\n", message.c_str());
  std::exit(1);
}

void check(const Status& s) {
  if (!s.ok()) fail(s.message());
}

Data load(const std::string& path, Embedder* embedder) {
  QaDataset ds;
  check(read_dataset(path, &ds));
  Data out;
  std::map<std::string, size_t> doc_row;
  std::vector<std::string> texts;
  for (const auto& d : ds.corpus) {
    doc_row[d.id] = texts.size();
    texts.push_back(d.text);
  }
  const auto dim = static_cast<size_t>(embedder->dim());
  out.docs = {texts.size(), dim, {}};
  check(embedder->embed(texts, EmbedSide::kDocument, &out.docs.data));
  std::map<std::string, const Relevance*> relevance;
  for (const auto& r : ds.relevant_docs) relevance[r.query_id] = &r;
  texts.clear();
  for (const auto& q : ds.queries) {
    texts.push_back(q.text);
    out.relevant.emplace_back();
    for (const auto& id : relevance.at(q.id)->doc_ids) out.relevant.back().push_back(doc_row.at(id));
  }
  out.queries = {texts.size(), dim, {}};
  check(embedder->embed(texts, EmbedSide::kQuery, &out.queries.data));
  return out;
}

TrainingSet take(const Data& data, const std::vector<size_t>& rows) {
  TrainingSet t{data.docs, {rows.size(), data.queries.cols, {}}, {}};
  for (size_t r : rows) {
    t.queries.data.insert(t.queries.data.end(), data.queries.row(r), data.queries.row(r) + data.queries.cols);
    t.relevant.push_back(data.relevant[r]);
  }
  return t;
}

// Mean hit@5 of exact cosine search (documents are unit vectors already).
double hit_at_5(const Adapter* adapter, const TrainingSet& held) {
  Matrix q = held.queries, d = held.docs;
  if (adapter != nullptr) {
    q.data.assign(q.rows * q.cols, 0);
    check(adapter->apply(held.queries.data.data(), q.rows, q.data.data()));
    if (adapter->side() == AdapterSide::kBoth) {
      d.data.assign(d.rows * d.cols, 0);
      check(adapter->apply(held.docs.data.data(), d.rows, d.data.data()));
    }
  }
  std::vector<double> doc_norm(d.rows);
  for (size_t j = 0; j < d.rows; ++j) {
    double s = 0;
    for (size_t c = 0; c < d.cols; ++c) s += double(d.row(j)[c]) * d.row(j)[c];
    doc_norm[j] = std::sqrt(s) + 1e-12;
  }
  double hits = 0;
  for (size_t i = 0; i < q.rows; ++i) {
    std::vector<std::pair<double, size_t>> scored(d.rows);
    for (size_t j = 0; j < d.rows; ++j) {
      double dot = 0;
      for (size_t c = 0; c < d.cols; ++c) dot += double(q.row(i)[c]) * d.row(j)[c];
      scored[j] = {-dot / doc_norm[j], j};
    }
    const size_t k = std::min<size_t>(5, d.rows);
    std::partial_sort(scored.begin(), scored.begin() + k, scored.end());
    const auto& rel = held.relevant[i];
    for (size_t r = 0; r < k; ++r) {
      if (std::find(rel.begin(), rel.end(), scored[r].second) != rel.end()) {
        hits += 1;
        break;
      }
    }
  }
  return hits / static_cast<double>(q.rows);
}

struct Run {
  TrainResult result;
  bool gain_test = false;  // the estimate cleared the 1% gain test (the signal check aside)
  bool shipped = false;    // it cleared the bar the signal check set
  double seconds = 0;
  double final_gain = 0;  // held-out hit@5 gain of the final net, shipped or not
  double held_gain = 0;   // held-out hit@5 gain of what shipped (0: nothing)
};

// The trainer runs with no bars, so the final net is always there to score on
// the held-out half; the decision is the trainer's own rule applied to its z
// and its signal z. That way one run also tells what a net the rule refused
// would have done, and what the gain test alone would have shipped.
Run train_and_score(const TrainingSet& log, const TrainingSet& held, double base_hit, const TrainOptions& o) {
  Run run;
  TrainOptions no_bar = o;
  no_bar.min_gain_z = -std::numeric_limits<double>::infinity();
  no_bar.min_signal_z = -std::numeric_limits<double>::infinity();
  auto start = Clock::now();
  check(train_adapter(log, no_bar, &run.result));
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run.gain_test = o.folds == 0 || run.result.gain_z >= o.min_gain_z;
  run.shipped = o.folds == 0 || run.result.gain_z >= gain_bar(o, run.result.signal_z);
  std::unique_ptr<Adapter> adapter;
  check(load_adapter(run.result.config_json, run.result.weights, {}, &adapter));
  run.final_gain = hit_at_5(adapter.get(), held) - base_hit;
  run.held_gain = run.shipped ? run.final_gain : 0;
  return run;
}

void print(const nlohmann::json& row) {
  std::printf("%s\n", row.dump().c_str());
  std::fflush(stdout);
}

std::vector<size_t> shuffled(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

// What `retrain` runs, with the bench's overrides.
TrainOptions retrain_options(const Args& args) {
  TrainOptions o;
  o.embedder = "default";
  o.kind = args.kind;
  if (args.epochs > 0) o.epochs = args.epochs;
  if (args.lr > 0) o.lr = args.lr;
  if (args.folds > 0) o.folds = args.folds;
  if (!std::isnan(args.min_z)) o.min_gain_z = args.min_z;
  return o;
}

void bench_dataset(const std::string& name, const Data& data, const Args& args) {
  const TrainOptions defaults = retrain_options(args);
  for (int seed = 1; seed <= args.seeds; ++seed) {
    std::vector<size_t> order = shuffled(data.queries.rows, static_cast<uint64_t>(seed));
    const size_t half = order.size() / 2;
    const TrainingSet held = take(data, {order.begin() + half, order.end()});
    const double base_hit = hit_at_5(nullptr, held);
    for (size_t size : args.sizes) {
      const size_t n = std::min(size, half);
      const TrainingSet log = take(data, {order.begin(), order.begin() + n});
      Run run = train_and_score(log, held, base_hit, defaults);
      nlohmann::json ceiling;
      for (int epochs : args.ceiling_epochs) {
        TrainOptions plain = defaults;
        plain.folds = 0;
        plain.epochs = epochs;
        ceiling[std::to_string(epochs)] = train_and_score(log, held, base_hit, plain).held_gain;
      }
      print({{"section", "log"},
             {"dataset", name},
             {"kind", defaults.kind},
             {"seed", seed},
             {"size", size},
             {"queries", n},
             {"held_out", held.queries.rows},
             {"base_hit", base_hit},
             {"shipped", run.shipped},
             {"gain", run.held_gain},
             {"final_gain", run.final_gain},
             {"estimate", run.result.hit_gain.mean},
             {"z", std::isfinite(run.result.gain_z) ? run.result.gain_z : 99.0},
             {"signal_z", run.result.signal_z},
             {"epochs", run.result.epochs.size()},
             {"seconds", run.seconds},
             {"ceiling", ceiling}});
      if (n < size) break;  // the half holds no more
    }
  }
  // Null logs: half A's queries (as many as the size asks) without their signal.
  for (int seed = 1; seed <= args.null_seeds; ++seed) {
    std::vector<size_t> order = shuffled(data.queries.rows, 1000 + static_cast<uint64_t>(seed));
    const size_t half = order.size() / 2;
    const TrainingSet held = take(data, {order.begin() + half, order.end()});
    const double base_hit = hit_at_5(nullptr, held);
    std::mt19937_64 rng(2000 + static_cast<uint64_t>(seed));
    for (size_t size : args.sizes) {
      const size_t n = std::min(size, half);
      for (const char* kind : {"random-documents", "shuffled-queries"}) {
        TrainingSet log = take(data, {order.begin(), order.begin() + n});
        if (std::string(kind) == "random-documents") {
          std::uniform_int_distribution<size_t> any(0, data.docs.rows - 1);
          for (auto& rel : log.relevant) rel = {any(rng)};
        } else {
          std::vector<size_t> perm = shuffled(n, rng());
          TrainingSet real = log;
          for (size_t i = 0; i < n; ++i) {
            std::copy(real.queries.row(perm[i]), real.queries.row(perm[i]) + real.queries.cols,
                      log.queries.data.begin() + static_cast<std::ptrdiff_t>(i * log.queries.cols));
          }
        }
        Run run = train_and_score(log, held, base_hit, defaults);
        print({{"section", "null"},
               {"dataset", name},
               {"kind", kind},
               {"seed", seed},
               {"size", size},
               {"queries", n},
               {"gain_test", run.gain_test},
               {"shipped", run.shipped},
               {"gain", run.held_gain},
               {"final_gain", run.final_gain},
               {"z", std::isfinite(run.result.gain_z) ? run.result.gain_z : 99.0},
               {"signal_z", run.result.signal_z},
               {"seconds", run.seconds}});
      }
      if (n < size) break;
    }
  }
}

void bench_time(const std::string& name, const Data& data, const Args& args) {
  const TrainOptions defaults = retrain_options(args);
  for (size_t size : args.time_sizes) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < size; ++i) rows.push_back(i % data.queries.rows);
    const TrainingSet log = take(data, rows);
    std::vector<double> seconds;
    TrainResult result;
    for (int r = 0; r < args.repeats; ++r) {
      auto start = Clock::now();
      check(train_adapter(log, defaults, &result));
      seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    print({{"section", "time"},
           {"dataset", name},
           {"queries", size},
           {"median_seconds", seconds[seconds.size() / 2]},
           {"seconds", seconds},
           {"epochs_run", result.epochs.size()}});
  }
}

constexpr char kUsage[] =
    "usage: smalllogs_bench --dataset NAME=PATH [--dataset ...] [--sizes 40,100,150,300] [--seeds 3]\n"
    "                       [--null-seeds 20] [--ceiling-epochs 5,10,20,40] [--folds 10]\n"
    "                       [--time-sizes 100,1000] [--time-dataset NAME] [--repeats 3] [--min-z Z]\n"
    "                       [--kind linear] [--epochs N] [--lr X]\n"
    "What retrain's default procedure gains from logs of a few dozen to a few hundred queries, how close\n"
    "that is to the best plain adapter, and how rarely it ships on logs without signal; one JSON object\n"
    "per line on stdout (tools/bench/smalllogs.sh runs it, report.py renders it).\n";

template <typename T>
std::vector<T> whole_numbers(const bench::Flags& flags, const std::string& flag,
                             const std::vector<T>& fallback) {
  std::vector<T> out;
  for (double v : flags.numbers(flag, std::vector<double>(fallback.begin(), fallback.end()), ','))
    out.push_back(static_cast<T>(v));
  return out;
}

Args parse_args(int argc, char** argv) {
  const bench::Flags flags(
      argc, argv, "smalllogs_bench", kUsage,
      {"--dataset", "--sizes", "--seeds", "--null-seeds", "--ceiling-epochs", "--folds", "--min-z",
       "--time-sizes", "--time-dataset", "--repeats", "--kind", "--epochs", "--lr"});
  Args args;
  for (const std::string& value : flags.all("--dataset")) {
    auto eq = value.find('=');
    if (eq == std::string::npos) fail("--dataset " + value + ": expected NAME=PATH");
    args.datasets.emplace_back(value.substr(0, eq), value.substr(eq + 1));
  }
  if (args.datasets.empty()) fail("no --dataset NAME=PATH");
  args.sizes = whole_numbers(flags, "--sizes", args.sizes);
  args.seeds = static_cast<int>(flags.number("--seeds", args.seeds));
  args.null_seeds = static_cast<int>(flags.number("--null-seeds", args.null_seeds));
  args.ceiling_epochs = whole_numbers(flags, "--ceiling-epochs", args.ceiling_epochs);
  args.folds = static_cast<int>(flags.number("--folds", args.folds));
  args.min_z = flags.number("--min-z", args.min_z);
  args.time_sizes = whole_numbers(flags, "--time-sizes", args.time_sizes);
  args.time_dataset = flags.text("--time-dataset", args.time_dataset);
  args.repeats = static_cast<int>(flags.number("--repeats", args.repeats));
  args.kind = flags.text("--kind", args.kind);
  args.epochs = static_cast<int>(flags.number("--epochs", args.epochs));
  args.lr = flags.number("--lr", args.lr);
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  // Every text embedded first, then the embedder (and its cache, which one
  // process at a time may hold) released for the long part.
  std::vector<Data> data;
  std::unique_ptr<Embedder> embedder;
  check(make_embedder("default", {}, &embedder));
  for (const auto& [name, path] : args.datasets) {
    data.push_back(load(path, embedder.get()));
    std::fprintf(stderr, "smalllogs_bench: %s: %zu documents, %zu queries\n", name.c_str(),
                 data.back().docs.rows, data.back().queries.rows);
  }
  embedder.reset();
  for (size_t i = 0; i < data.size(); ++i) {
    bench_dataset(args.datasets[i].first, data[i], args);
    if (args.datasets[i].first == args.time_dataset) bench_time(args.datasets[i].first, data[i], args);
  }
  return 0;
}
