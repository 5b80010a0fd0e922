// smalllogs_bench: what retrain's default procedure gains from small logs,
// how close that is to the best plain adapter, and how rarely it ships on
// logs without signal.
//
//   smalllogs_bench --dataset NAME=PATH [--dataset ...] --store-dir DIR [--sizes 40,100,150,300]
//                   [--seeds 3] [--null-seeds 20] [--ceiling-epochs 5,10,20,40] [--folds 10]
//                   [--time-sizes 100,1000] [--time-dataset NAME] [--repeats 3]
//                   [--kind linear] [--epochs N] [--lr X]
//
// Per dataset (any format `embedapt ingest --dataset` reads): the texts are
// embedded once by the default embedder through the embedding cache. For each
// seed the queries are split in halves; logs of each size are the first
// queries of half A, half B is held out. Every log goes through the library
// as an app's would: a fresh Flat store under --store-dir, the corpus and the
// log written by ingest_dataset (what `embedapt ingest --dataset` does),
// retrain() with its defaults (`embedapt retrain`), and the held-out half
// scored by evaluate() through the store's index (`embedapt eval`), the
// active version against the base. On each log:
//  - "log": whether retrain activated an adapter and its held-out hit@5 gain
//    (0 when it shipped nothing);
//  - "ceiling": plain linear adapters (train_adapter without selection,
//    trained on the whole log for each fixed epoch count), scored by the same
//    evaluate() call: the best count, chosen by looking at the held-out half,
//    is what the data allows; the one at retrain's epoch count is trained as
//    retrain's final net is ("final net": what a refusal gave up); and each
//    one's effect size on the held-out half ("ceiling_effect": the mean
//    per-query gain over the base in standard deviations, in log rank,
//    reciprocal rank and hit@5, from an exact search): how far a paired test
//    of the best adapter on as many fresh queries as the log holds could see
//    its gain;
//  - "null": for --null-seeds seeds, the log with no signal, two ways: each
//    query paired with a random document, and the real pairs with the queries
//    shuffled among them; whether retrain ships, and what a shipped adapter
//    does to the held-out half (real labels). A log that passes the gain test
//    but not the signal check gets a plain adapter scored the same way.
// Then "time": retrain()'s wall and CPU seconds on logs of --time-sizes
// queries drawn from one dataset (all its queries, with repetition past its
// size), the medians of --repeats, and the load before each.
// --kind, --epochs and --lr change the options of every run (the plain
// adapters too): how the per-kind schedule was chosen, on the training files.
// One JSON object per line on stdout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
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
#include "core/eval/evaluator.h"
#include "core/eval/ingest.h"
#include "embedapt/embedder.h"
#include "embedapt/learn.h"
#include "embedapt/store.h"
#include "tools/bench/bench_common.h"

using namespace embedapt;
using namespace embedapt::bench;

namespace {

struct Args {
  std::vector<std::pair<std::string, std::string>> datasets;  // name, path
  std::string store_dir;
  std::vector<size_t> sizes = {40, 100, 150, 300};
  int seeds = 3;
  int null_seeds = 20;
  std::vector<int> ceiling_epochs = {5, 10, 20, 40};
  int folds = 0;  // 0: the trainer's default
  std::vector<size_t> time_sizes = {100, 1000};
  std::string time_dataset;
  int repeats = 3;
  std::string kind = "linear";
  int epochs = 0;  // 0: the trainer's default for the kind
  double lr = 0;   // 0: the trainer's default
};

void fail(const std::string& message) {
  std::fprintf(stderr, "smalllogs_bench: %s\n", message.c_str());
  std::exit(1);
}

void check(const Status& s) {
  if (!s.ok()) fail(s.message());
}

// The default embedder's vectors of one dataset's texts, computed once
// through the embedding cache and replayed to ingest_dataset() and
// evaluate(): the cache is one process's at a time, and this bench would
// hold it for an hour.
class Replay : public Embedder {
 public:
  Replay(int dim, std::string identity) : dim_(dim), identity_(std::move(identity)) {}
  int dim() const override { return dim_; }
  const std::string& identity() const override { return identity_; }
  Status embed(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) override {
    const auto& known = vectors_[side == EmbedSide::kQuery];
    for (const std::string& text : texts) {
      auto it = known.find(text);
      if (it == known.end()) return Status::Internal("smalllogs_bench: a text was not embedded up front");
      out->insert(out->end(), it->second.begin(), it->second.end());
    }
    return Status::OK();
  }
  Status learn(Embedder* real, const std::vector<std::string>& texts, EmbedSide side) {
    std::vector<float> v;
    EMBEDAPT_RETURN_IF_ERROR(real->embed(texts, side, &v));
    for (size_t i = 0; i < texts.size(); ++i) {
      vectors_[side == EmbedSide::kQuery][texts[i]].assign(v.begin() + i * dim_, v.begin() + (i + 1) * dim_);
    }
    return Status::OK();
  }

 private:
  int dim_;
  std::string identity_;
  std::map<std::string, std::vector<float>> vectors_[2];  // [document, query]
};

struct Data {
  QaDataset dataset;
  std::unique_ptr<Replay> embedder;
  std::map<std::string, std::vector<std::string>> relevant;  // query id -> doc ids
};

Data load(const std::string& path, Embedder* real) {
  Data out;
  check(read_dataset(path, &out.dataset));
  out.embedder = std::make_unique<Replay>(real->dim(), real->identity());
  std::vector<std::string> texts;
  for (const auto& d : out.dataset.corpus) texts.push_back(d.text);
  check(out.embedder->learn(real, texts, EmbedSide::kDocument));
  texts.clear();
  for (const auto& q : out.dataset.queries) texts.push_back(q.text);
  check(out.embedder->learn(real, texts, EmbedSide::kQuery));
  for (const auto& r : out.dataset.relevant_docs) out.relevant[r.query_id] = r.doc_ids;
  return out;
}

// The dataset with only the queries at `rows` (in that order), each with the
// relevant documents `relevant` gives it.
QaDataset take(const Data& data, const std::vector<size_t>& rows,
               const std::function<std::vector<std::string>(size_t)>& relevant) {
  QaDataset out;
  out.corpus = data.dataset.corpus;
  for (size_t i = 0; i < rows.size(); ++i) {
    out.queries.push_back(data.dataset.queries[rows[i]]);
    out.relevant_docs.push_back({out.queries.back().id, relevant(i)});
  }
  return out;
}

QaDataset take(const Data& data, const std::vector<size_t>& rows) {
  return take(data, rows, [&](size_t i) { return data.relevant.at(data.dataset.queries[rows[i]].id); });
}

// A fresh Flat store holding the corpus, with `log`'s pairs in its query log.
std::unique_ptr<Store> store_of(const Args& args, const Data& data, const QaDataset& log) {
  std::filesystem::remove_all(args.store_dir);
  Options options;
  options.dim = data.embedder->dim();
  std::unique_ptr<Store> store;
  check(Store::open(args.store_dir, options, &store));
  check(ingest_dataset(*store, *data.embedder, log, {}, nullptr));
  return store;
}

// The held-out hit@5 of the base and of each adapter through the store's
// index, as `embedapt eval` scores them. The intervals are not used here:
// few resamples.
std::vector<double> held_out_hit(const Store& store, Data& data, const QaDataset& held,
                                 const std::vector<EvalSystem>& adapters) {
  EvalOptions options;
  options.resamples = 100;
  EvalReport report;
  check(evaluate(store, *data.embedder, held, adapters, options, &report));
  std::vector<double> hit;
  for (const SystemResult& r : report.results) hit.push_back(r.hit_rate);
  return hit;
}

// The corpus and a held-out half as the embedder gives them, embedded once
// for all the systems a log's held-out half is ranked by.
struct HeldOutVectors {
  int dim = 0;
  std::vector<float> docs;     // the corpus' rows, in its order
  std::vector<float> queries;  // the held-out queries' rows
  std::map<std::string, size_t> doc_row;
};

HeldOutVectors embed_held_out(Data& data, const QaDataset& held) {
  HeldOutVectors v;
  v.dim = data.embedder->dim();
  std::vector<std::string> texts;
  for (const auto& d : data.dataset.corpus) {
    v.doc_row[d.id] = texts.size();
    texts.push_back(d.text);
  }
  check(data.embedder->embed(texts, EmbedSide::kDocument, &v.docs));
  texts.clear();
  for (const auto& q : held.queries) texts.push_back(q.text);
  check(data.embedder->embed(texts, EmbedSide::kQuery, &v.queries));
  return v;
}

// Per held-out query, the rank (1-based) of its best-ranked relevant
// document in an exact cosine search of the corpus through `adapter`
// (nullptr: the base): one plus the other documents scoring above it, as the
// trainer ranks. Exact rather than through the store, whose search keeps only
// the top few: the effect size needs every query's rank.
std::vector<int64_t> held_out_ranks(const HeldOutVectors& v, const QaDataset& held, const Adapter* adapter) {
  const int dim = v.dim;
  std::vector<float> docs = v.docs, queries = v.queries;
  auto map = [&](std::vector<float>* rows) {
    std::vector<float> mapped(rows->size());
    check(adapter->apply(rows->data(), rows->size() / dim, mapped.data()));
    *rows = std::move(mapped);
  };
  if (adapter != nullptr) {
    map(&queries);
    if (adapter->side() == AdapterSide::kBoth) map(&docs);
  }
  bench::normalise_rows(&docs, dim);
  bench::normalise_rows(&queries, dim);
  const size_t n_docs = docs.size() / dim;
  std::vector<int64_t> ranks;
  for (size_t q = 0; q < held.queries.size(); ++q) {
    std::vector<double> score(n_docs);
    for (size_t d = 0; d < n_docs; ++d) {
      score[d] = std::inner_product(&queries[q * dim], &queries[q * dim] + dim, &docs[d * dim], 0.0);
    }
    std::vector<bool> relevant(n_docs, false);
    double best = -std::numeric_limits<double>::infinity();
    for (const std::string& id : held.relevant_docs[q].doc_ids) {
      relevant[v.doc_row.at(id)] = true;
      best = std::max(best, score[v.doc_row.at(id)]);
    }
    int64_t above = 0;
    for (size_t d = 0; d < n_docs; ++d) above += !relevant[d] && score[d] > best;
    ranks.push_back(above + 1);
  }
  return ranks;
}

// The share of `ranks` within the top 5: evaluate()'s hit@5, computed from
// the exact ranks, so the two searches can be checked against each other.
double hit_at_5(const std::vector<int64_t>& ranks) {
  return static_cast<double>(std::count_if(ranks.begin(), ranks.end(), [](int64_t r) { return r <= 5; })) /
         static_cast<double>(ranks.size());
}

// The mean per-query gain of `adapted` ranks over `base` ranks in standard
// deviations (an effect size d): a paired test on n fresh queries reaches
// z = d * sqrt(n) on average. For log rank, reciprocal rank and hit@5.
nlohmann::json effect_sizes(const std::vector<int64_t>& base, const std::vector<int64_t>& adapted) {
  nlohmann::json out;
  const std::pair<const char*, std::function<double(int64_t)>> stats[] = {
      {"log_rank", [](int64_t r) { return -std::log(static_cast<double>(r)); }},
      {"rr", [](int64_t r) { return 1.0 / static_cast<double>(r); }},
      {"hit", [](int64_t r) { return r <= 5 ? 1.0 : 0.0; }}};
  for (const auto& [name, value] : stats) {
    const double n = static_cast<double>(base.size());
    double mean = 0, var = 0;
    for (size_t q = 0; q < base.size(); ++q) mean += (value(adapted[q]) - value(base[q])) / n;
    for (size_t q = 0; q < base.size(); ++q) {
      const double diff = value(adapted[q]) - value(base[q]) - mean;
      var += diff * diff / (n - 1);
    }
    out[name] = var > 0 ? mean / std::sqrt(var) : 0.0;
  }
  return out;
}

// What `retrain` runs, with the bench's overrides.
RetrainOptions retrain_options(const Args& args) {
  RetrainOptions o;
  o.kind = args.kind;
  o.epochs = args.epochs;
  o.lr = args.lr;
  o.folds = args.folds;
  return o;
}

// A plain adapter: the log's vectors as the store holds them, trained on
// every pair for `epochs` epochs with no selection.
EvalSystem plain_adapter(const Store& store, const Args& args, int epochs, const std::string& name) {
  TrainingSet data;
  std::map<std::string, size_t> doc_row;
  check(store.scan([&](const Record& r) {
    doc_row[r.id] = data.docs.rows++;
    data.docs.data.insert(data.docs.data.end(), r.vector.begin(), r.vector.end());
    return true;
  }));
  check(store.scan_log([&](const LoggedQuery& q) {
    data.queries.data.insert(data.queries.data.end(), q.vector.begin(), q.vector.end());
    ++data.queries.rows;
    data.relevant.emplace_back();
    for (const std::string& id : q.hit_ids) data.relevant.back().push_back(doc_row.at(id));
    return true;
  }));
  data.docs.cols = data.queries.cols = data.docs.data.size() / data.docs.rows;
  TrainOptions o;
  o.kind = args.kind;
  if (args.lr > 0) o.lr = args.lr;
  o.epochs = epochs;
  o.folds = 0;
  TrainResult result;
  check(train_adapter(data, o, &result));
  std::unique_ptr<Adapter> adapter;
  check(load_adapter(result.config_json, result.weights, {}, &adapter));
  return {name, "", std::move(adapter)};
}

struct Run {
  RetrainReport report;
  double seconds = 0;
  double cpu_seconds = 0;  // every thread of the process: not stretched by other jobs
  bool shipped = false;
};

Run run_retrain(Store* store, const Args& args) {
  Run run;
  const auto start = Clock::now();
  const double cpu = process_cpu_seconds();
  check(retrain(store, retrain_options(args), &run.report));
  run.seconds = seconds_since(start);
  run.cpu_seconds = process_cpu_seconds() - cpu;
  run.shipped = run.report.decision == RetrainReport::Decision::kActivated;
  return run;
}

EvalSystem active(const Store& store) {
  EvalSystem system;
  StoreStats stats;
  check(store.stats(&stats));
  check(load_eval_system(store, "active", stats.embedder, false, &system));
  return system;
}

double z_of(const RetrainReport& r) { return std::isfinite(r.gain_z) ? r.gain_z : 99.0; }

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

void bench_dataset(const std::string& name, Data& data, const Args& args) {
  const size_t n_queries = data.dataset.queries.size();
  const int default_epochs = args.epochs > 0 ? args.epochs : TrainOptions().epochs;
  for (int seed = 1; seed <= args.seeds; ++seed) {
    std::vector<size_t> order = shuffled(n_queries, static_cast<uint64_t>(seed));
    const size_t half = order.size() / 2;
    const QaDataset held = take(data, {order.begin() + half, order.end()});
    for (size_t size : args.sizes) {
      const size_t n = std::min(size, half);
      std::unique_ptr<Store> store = store_of(args, data, take(data, {order.begin(), order.begin() + n}));
      Run run = run_retrain(store.get(), args);
      std::vector<EvalSystem> systems;
      for (int epochs : args.ceiling_epochs)
        systems.push_back(plain_adapter(*store, args, epochs, std::to_string(epochs)));
      if (run.shipped) systems.push_back(active(*store));
      const std::vector<double> hit = held_out_hit(*store, data, held, systems);
      nlohmann::json ceiling, effect;
      double final_gain = NAN;
      const HeldOutVectors vectors = embed_held_out(data, held);
      const std::vector<int64_t> base_ranks = held_out_ranks(vectors, held, nullptr);
      // The store's Flat index is exact too: its hit@5 and the exact ranks'
      // may differ only by a tie at rank 5 (a query or so), not more.
      auto agree = [&](double exact, double store, const std::string& system) {
        if (std::abs(exact - store) * static_cast<double>(held.queries.size()) > 1.5) {
          std::fprintf(stderr, "smalllogs_bench: %s seed %d log %zu, %s: exact hit@5 %.4f, store's %.4f\n",
                       name.c_str(), seed, size, system.c_str(), exact, store);
        }
      };
      agree(hit_at_5(base_ranks), hit[0], "base");
      for (size_t i = 0; i < args.ceiling_epochs.size(); ++i) {
        ceiling[std::to_string(args.ceiling_epochs[i])] = hit[1 + i] - hit[0];
        const std::vector<int64_t> ranks = held_out_ranks(vectors, held, systems[i].adapter.get());
        agree(hit_at_5(ranks), hit[1 + i], systems[i].name + " epochs");
        effect[std::to_string(args.ceiling_epochs[i])] = effect_sizes(base_ranks, ranks);
        if (args.ceiling_epochs[i] == default_epochs) final_gain = hit[1 + i] - hit[0];
      }
      const double gain = run.shipped ? hit.back() - hit[0] : 0;
      print({{"section", "log"},
             {"dataset", name},
             {"kind", args.kind},
             {"seed", seed},
             {"size", size},
             {"queries", n},
             {"held_out", held.queries.size()},
             {"base_hit", hit[0]},
             {"shipped", run.shipped},
             {"gain", gain},
             {"final_gain", run.shipped ? gain : final_gain},
             {"estimate", run.report.hit_gain.mean},
             {"z", z_of(run.report)},
             {"signal_z", run.report.signal_z},
             {"epochs", run.report.epochs_run},
             {"seconds", run.seconds},
             {"summary", run.report.summary},
             {"ceiling", ceiling},
             {"ceiling_effect", effect}});
      if (n < size) break;  // the half holds no more
    }
  }
  // Null logs: half A's queries (as many as the size asks) without their signal.
  const double gain_test_z = TrainOptions().min_gain_z;
  for (int seed = 1; seed <= args.null_seeds; ++seed) {
    std::vector<size_t> order = shuffled(n_queries, 1000 + static_cast<uint64_t>(seed));
    const size_t half = order.size() / 2;
    const QaDataset held = take(data, {order.begin() + half, order.end()});
    std::mt19937_64 rng(2000 + static_cast<uint64_t>(seed));
    for (size_t size : args.sizes) {
      const size_t n = std::min(size, half);
      const std::vector<size_t> rows(order.begin(), order.begin() + n);
      for (const char* kind : {"random-documents", "shuffled-queries"}) {
        QaDataset log;
        if (std::string(kind) == "random-documents") {
          std::uniform_int_distribution<size_t> any(0, data.dataset.corpus.size() - 1);
          log = take(data, rows,
                     [&](size_t) { return std::vector<std::string>{data.dataset.corpus[any(rng)].id}; });
        } else {
          const std::vector<size_t> perm = shuffled(n, rng());
          log = take(data, rows,
                     [&](size_t i) { return data.relevant.at(data.dataset.queries[rows[perm[i]]].id); });
        }
        std::unique_ptr<Store> store = store_of(args, data, log);
        Run run = run_retrain(store.get(), args);
        // The gain test alone (its z bar at 1%, the guard), the signal check aside.
        const bool gain_test =
            run.report.gain_z >= gain_test_z && run.report.hit_gain.mean >= 0 && run.report.rr_gain.mean >= 0;
        nlohmann::json gain = 0, final_gain = nullptr;
        if (run.shipped || gain_test) {
          const std::vector<double> hit = held_out_hit(
              *store, data, held,
              {run.shipped ? active(*store) : plain_adapter(*store, args, default_epochs, "plain")});
          final_gain = hit[1] - hit[0];
          if (run.shipped) gain = final_gain;
        }
        print({{"section", "null"},
               {"dataset", name},
               {"kind", kind},
               {"adapter", args.kind},
               {"seed", seed},
               {"size", size},
               {"queries", n},
               {"gain_test", gain_test},
               {"shipped", run.shipped},
               {"gain", gain},
               {"final_gain", final_gain},
               {"z", z_of(run.report)},
               {"signal_z", run.report.signal_z},
               {"seconds", run.seconds}});
      }
      if (n < size) break;
    }
  }
}

void bench_time(const std::string& name, Data& data, const Args& args) {
  const size_t n_queries = data.dataset.queries.size();
  for (size_t size : args.time_sizes) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < size; ++i) rows.push_back(i % n_queries);
    QaDataset log = take(data, rows);
    // Past the dataset's size a query comes again under an id of its own
    // (ingest refuses a repeated id); "logged" is what the store kept.
    for (size_t i = n_queries; i < size; ++i) {
      const std::string id = log.queries[i].id + "#" + std::to_string(i / n_queries);
      log.queries[i].id = id;
      log.relevant_docs[i].query_id = id;
    }
    std::vector<double> seconds, cpu_seconds, loads;
    Run run;
    for (int r = 0; r < args.repeats; ++r) {
      std::unique_ptr<Store> store = store_of(args, data, log);
      loads.push_back(load_1min());
      run = run_retrain(store.get(), args);
      seconds.push_back(run.seconds);
      cpu_seconds.push_back(run.cpu_seconds);
    }
    print({{"section", "time"},
           {"dataset", name},
           {"queries", size},
           {"logged", run.report.queries},
           {"median_seconds", median(seconds)},
           {"seconds", seconds},
           {"median_cpu_seconds", median(cpu_seconds)},
           {"cpu_seconds", cpu_seconds},
           {"load_1min", loads},
           {"epochs_run", run.report.epochs_run}});
  }
}

constexpr char kUsage[] =
    "usage: smalllogs_bench --dataset NAME=PATH [--dataset ...] --store-dir DIR [--sizes 40,100,150,300]\n"
    "                       [--seeds 3] [--null-seeds 20] [--ceiling-epochs 5,10,20,40] [--folds 10]\n"
    "                       [--time-sizes 100,1000] [--time-dataset NAME] [--repeats 3]\n"
    "                       [--kind linear] [--epochs N] [--lr X]\n"
    "What retrain's default procedure gains from logs of a few dozen to a few hundred queries, how close\n"
    "that is to the best plain adapter, and how rarely it ships on logs without signal, each log in a\n"
    "Flat store under DIR (replaced each time) and scored by the evaluator; one JSON object per line on\n"
    "stdout (tools/bench/smalllogs.sh runs it, report.py renders it).\n";

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
      {"--dataset", "--store-dir", "--sizes", "--seeds", "--null-seeds", "--ceiling-epochs", "--folds",
       "--time-sizes", "--time-dataset", "--repeats", "--kind", "--epochs", "--lr"});
  Args args;
  for (const std::string& value : flags.all("--dataset")) {
    auto eq = value.find('=');
    if (eq == std::string::npos) fail("--dataset " + value + ": expected NAME=PATH");
    args.datasets.emplace_back(value.substr(0, eq), value.substr(eq + 1));
  }
  if (args.datasets.empty()) fail("no --dataset NAME=PATH");
  args.store_dir = flags.text("--store-dir", "");
  if (args.store_dir.empty()) fail("no --store-dir DIR");
  args.sizes = whole_numbers(flags, "--sizes", args.sizes);
  args.seeds = static_cast<int>(flags.number("--seeds", args.seeds));
  args.null_seeds = static_cast<int>(flags.number("--null-seeds", args.null_seeds));
  args.ceiling_epochs = whole_numbers(flags, "--ceiling-epochs", args.ceiling_epochs);
  args.folds = static_cast<int>(flags.number("--folds", args.folds));
  args.time_sizes = whole_numbers(flags, "--time-sizes", args.time_sizes);
  args.time_dataset = flags.text("--time-dataset", args.time_dataset);
  args.repeats = static_cast<int>(flags.number("--repeats", args.repeats));
  args.kind = flags.text("--kind", args.kind);
  args.epochs = static_cast<int>(flags.number("--epochs", args.epochs));
  args.lr = flags.number("--lr", args.lr);
  return args;
}

int run(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  // Every text embedded first, then the embedder (and its cache, which one
  // process at a time may hold) released for the long part.
  std::vector<Data> data;
  std::unique_ptr<Embedder> embedder;
  check(make_embedder("default", {}, &embedder));
  for (const auto& [name, path] : args.datasets) {
    data.push_back(load(path, embedder.get()));
    std::fprintf(stderr, "smalllogs_bench: %s: %zu documents, %zu queries\n", name.c_str(),
                 data.back().dataset.corpus.size(), data.back().dataset.queries.size());
  }
  embedder.reset();
  for (size_t i = 0; i < data.size(); ++i) {
    bench_dataset(args.datasets[i].first, data[i], args);
    if (args.datasets[i].first == args.time_dataset) bench_time(args.datasets[i].first, data[i], args);
  }
  std::filesystem::remove_all(args.store_dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("smalllogs_bench", run, argc, argv); }
