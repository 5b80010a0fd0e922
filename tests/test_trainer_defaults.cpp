// Not a regression test: the experiment that chose the trainer's defaults,
// kept runnable so the choice can be checked. Hidden from ctest; run it with
//   python tools/experiments/embed_10k.py ../shared/data/10k models/all-MiniLM-L6-v2 DIR
//   EMBEDAPT_EXPERIMENT_DIR=DIR build/bin/test_trainer_defaults "[.experiment]"
// Candidates are compared on in-corpus halves of Lyft (the training data):
// the trainer cross-validates on one half, the other half is the test. Uber
// (an in-corpus half, and transfer from Lyft) is printed for the report,
// never used to choose.
#include <faiss/IndexFlat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

#include "core/adapt/trainer.h"
#include "core/common/files.h"
#include "core/common/metrics.h"
#include "core/common/npy.h"
#include "core/common/safetensors.h"
#include "tests/support/catch.h"

using namespace embedapt;

namespace {

struct Labeled {
  Matrix docs, queries;
  std::vector<size_t> positive;
};

Labeled load(const std::string& dir, const std::string& name) {
  Labeled out;
  REQUIRE(read_npy(dir + "/" + name + "_docs.npy", &out.docs).ok());
  REQUIRE(read_npy(dir + "/" + name + "_queries.npy", &out.queries).ok());
  std::string labels;
  REQUIRE(read_file(dir + "/" + name + "_labels.json", &labels).ok());
  out.positive = nlohmann::json::parse(labels)["positive"].get<std::vector<size_t>>();
  return out;
}

Matrix rows_of(const Matrix& m, const std::vector<size_t>& rows) {
  Matrix out{rows.size(), m.cols, {}};
  for (size_t r : rows) out.data.insert(out.data.end(), m.row(r), m.row(r) + m.cols);
  return out;
}

Matrix adapt(const Adapter* adapter, const Matrix& m) {
  if (adapter == nullptr) return m;
  Matrix out{m.rows, static_cast<size_t>(adapter->out_dim()), {}};
  out.data.resize(out.rows * out.cols);
  REQUIRE(adapter->apply(m.data.data(), m.rows, out.data.data()).ok());
  return out;
}

// Per-query (hit@5, MRR@5) of exact cosine search.
std::vector<RankMetrics> search(const Adapter* adapter, const Matrix& docs, const Matrix& queries,
                                const std::vector<size_t>& positive) {
  Matrix q = adapt(adapter, queries);
  Matrix d = adapter && adapter->side() == AdapterSide::kBoth ? adapt(adapter, docs) : docs;
  auto norm = [](const float* v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += double(v[i]) * v[i];
    return std::sqrt(s) + 1e-12;
  };
  std::vector<RankMetrics> out;
  for (size_t i = 0; i < q.rows; ++i) {
    std::vector<std::pair<double, size_t>> scored;
    for (size_t j = 0; j < d.rows; ++j) {
      double dot = 0;
      for (size_t c = 0; c < d.cols; ++c) dot += double(q.row(i)[c]) * d.row(j)[c];
      scored.emplace_back(-dot / norm(d.row(j), d.cols), j);
    }
    std::partial_sort(scored.begin(), scored.begin() + 5, scored.end());
    std::vector<bool> hits;
    hits.reserve(5);
    for (int k = 0; k < 5; ++k) hits.push_back(scored[k].second == positive[i]);
    out.push_back(score_ranking(hits, 1, 5));
  }
  return out;
}

// Two-sided sign-flip permutation p-value of the mean paired difference.
double paired_p(const std::vector<double>& diff) {
  double observed = std::abs(std::accumulate(diff.begin(), diff.end(), 0.0));
  std::mt19937_64 rng(1);
  int extreme = 0;
  const int rounds = 10000;
  for (int r = 0; r < rounds; ++r) {
    double s = 0;
    for (double d : diff) s += (rng() & 1) ? d : -d;
    if (std::abs(s) >= observed - 1e-12) ++extreme;
  }
  return (extreme + 1.0) / (rounds + 1.0);
}

struct Outcome {
  double val_gain = 0;  // the trainer's validation score gain (selection criterion)
  double hit_gain = 0, mrr_gain = 0, base_hit = 0, p_hit = 1, seconds = 0;
  bool shipped = false;
};

Outcome run(const TrainingSet& train, const Matrix& eval_docs, const Matrix& eval_queries,
            const std::vector<size_t>& eval_positive, const TrainOptions& options) {
  Outcome o;
  TrainResult result;
  auto start = std::chrono::steady_clock::now();
  REQUIRE(train_adapter(train, options, &result).ok());
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  o.val_gain = result.cross_validated.rr - result.base.rr;
  o.shipped = result.improved;
  std::unique_ptr<Adapter> adapter;
  if (result.improved) REQUIRE(load_adapter(result.config_json, result.weights, {}, &adapter).ok());
  auto base = search(nullptr, eval_docs, eval_queries, eval_positive);
  auto tuned = search(adapter.get(), eval_docs, eval_queries, eval_positive);
  std::vector<double> diff;
  for (size_t i = 0; i < base.size(); ++i) {
    o.base_hit += base[i].hit / base.size();
    o.hit_gain += (tuned[i].hit - base[i].hit) / base.size();
    o.mrr_gain += (tuned[i].mrr - base[i].mrr) / base.size();
    diff.push_back(tuned[i].hit - base[i].hit);
  }
  o.p_hit = paired_p(diff);
  std::printf(
      "  %-9s %-9s %-5s lr %-7g pull %-6g | val gain %+.4f epochs %2zu z %5.2f %s | eval hit@5 %.4f %+.4f "
      "(p %.4f) mrr %+.4f | %.1fs\n",
      options.kind.c_str(), LossName(options.loss), AdapterSideName(options.side), options.lr,
      options.identity_pull, o.val_gain, result.epochs.size(), result.gain_z, o.shipped ? "ship" : "none",
      o.base_hit, o.hit_gain, o.p_hit, o.mrr_gain, o.seconds);
  std::fflush(stdout);
  return o;
}

}  // namespace

// One protocol: train on `log`, test on `held` queries of the same documents.
struct Protocol {
  std::string name;
  TrainingSet log;
  Matrix held_queries;
  std::vector<size_t> held_positive;
  const Matrix* docs;
};

// A seeded half of `set`'s queries is the log, the other half is held out.
Protocol halves(const std::string& name, const Labeled& set, uint64_t seed) {
  std::vector<size_t> order(set.queries.rows);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<size_t> log_rows(order.begin(), order.begin() + order.size() / 2);
  std::vector<size_t> held_rows(order.begin() + order.size() / 2, order.end());
  Protocol p{
      name, {set.docs, rows_of(set.queries, log_rows), {}}, rows_of(set.queries, held_rows), {}, &set.docs};
  for (size_t r : log_rows) p.log.relevant.push_back({set.positive[r]});
  for (size_t r : held_rows) p.held_positive.push_back(set.positive[r]);
  return p;
}

TEST_CASE("choose the trainer's defaults on the 10-K data", "[.experiment]") {
  const char* dir = std::getenv("EMBEDAPT_EXPERIMENT_DIR");
  if (dir == nullptr) {
    WARN("EMBEDAPT_EXPERIMENT_DIR is not set: nothing to run");
    return;
  }
  Labeled lyft = load(dir, "train"), uber = load(dir, "val");

  // Chosen on: in-corpus halves of Lyft (the training data). Reported only:
  // an in-corpus half of Uber, and transfer (all of Lyft is the log, all of
  // Uber is held out).
  std::vector<Protocol> protocols;
  for (uint64_t seed : {1, 2, 3}) protocols.push_back(halves("lyft-" + std::to_string(seed), lyft, seed));
  protocols.push_back(halves("uber-7", uber, 7));
  Protocol transfer{"transfer", {lyft.docs, lyft.queries, {}}, uber.queries, uber.positive, &uber.docs};
  for (size_t p : lyft.positive) transfer.log.relevant.push_back({p});
  protocols.push_back(transfer);

  // EMBEDAPT_EXPERIMENT_GRID="kind,loss,lr,pull,side;...": candidates to compare
  // (empty: the defaults of both built-in kinds).
  TrainOptions defaults;
  defaults.threads = 1;
  std::vector<TrainOptions> candidates;
  std::string grid = std::getenv("EMBEDAPT_EXPERIMENT_GRID") ? std::getenv("EMBEDAPT_EXPERIMENT_GRID") : "";
  std::stringstream items(grid);
  std::string item;
  while (std::getline(items, item, ';')) {
    std::stringstream fields(item);
    std::string kind, loss, lr, pull, side;
    std::getline(fields, kind, ',');
    std::getline(fields, loss, ',');
    std::getline(fields, lr, ',');
    std::getline(fields, pull, ',');
    std::getline(fields, side, ',');
    TrainOptions o = defaults;
    o.kind = kind;
    REQUIRE(ParseLoss(loss, &o.loss).ok());
    o.lr = std::stod(lr);
    o.identity_pull = std::stod(pull);
    o.side = side == "both" ? AdapterSide::kBoth : AdapterSide::kQuery;
    candidates.push_back(o);
  }
  if (grid.empty()) {
    for (const char* kind : {"linear", "two-layer"}) {
      candidates.push_back(defaults);
      candidates.back().kind = kind;
    }
  }
  for (const TrainOptions& o : candidates) {
    for (const Protocol& p : protocols) {
      std::printf("%-9s", p.name.c_str());
      run(p.log, *p.docs, p.held_queries, p.held_positive, o);
    }
  }
}

TEST_CASE("the cost of applying a linear adapter next to a 100k x 384 Flat search", "[.experiment]") {
  const int dim = 384;
  const size_t n = 100000, queries = 200;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> docs(n * dim), q(queries * dim), out(dim);
  for (float& x : docs) x = normal(rng);
  for (float& x : q) x = normal(rng);
  faiss::IndexFlatIP index(dim);
  index.add(n, docs.data());

  // A trained-looking linear adapter (the identity plus noise), through the real weights path.
  std::vector<float> weight(size_t(dim) * dim);
  for (int i = 0; i < dim * dim; ++i) weight[i] = (i % (dim + 1) == 0 ? 1.0f : 0.0f) + 0.01f * normal(rng);
  std::string weights = serialize_safetensors({{"linear.weight", floats_to_tensor(weight, {dim, dim})}});
  std::string config =
      R"({"kind": "linear", "in_dim": 384, "out_dim": 384, "side": "query", "embedder": ""})";
  std::unique_ptr<Adapter> adapter;
  REQUIRE(load_adapter(config, weights, {}, &adapter).ok());

  std::vector<float> distances(5);
  std::vector<faiss::Index::idx_t> labels(5);
  auto time = [&](auto&& fn) {
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < queries; ++i) fn(q.data() + i * dim);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
           queries;
  };
  double search_us = time([&](const float* v) { index.search(1, v, 5, distances.data(), labels.data()); });
  double apply_us = time([&](const float* v) { REQUIRE(adapter->apply(v, 1, out.data()).ok()); });
  std::printf("per query: Flat search %.1f us, linear apply %.1f us (%.2f%%)\n", search_us, apply_us,
              100 * apply_us / search_us);
}
