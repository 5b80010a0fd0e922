// The built-in evaluator: scores retrieval through a store's real index, for
// the base embedder and any number of adapters, with confidence intervals and
// a paired test of each adapter against the base.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/common/metrics.h"
#include "core/eval/dataset.h"
#include "core/eval/stats.h"
#include "embedapt/adapter.h"
#include "embedapt/embedder.h"
#include "embedapt/store.h"

namespace embedapt {

// A system to score: the base (adapter == nullptr) or an adapter.
struct EvalSystem {
  std::string name;    // shown in tables and reports ("base", "v3", ...)
  std::string source;  // where the adapter came from (version, directory); "" for the base
  std::shared_ptr<const Adapter> adapter;
};

struct EvalOptions {
  int top_k = 5;
  uint64_t seed = 0;           // for the bootstrap and the permutation test
  int resamples = 10000;       // bootstrap resamples and permutations
  size_t batch_size = 128;     // queries embedded and searched at a time
  bool show_progress = false;  // progress bar on stderr
  // Where each system's searches go: a view for its adapter (nullptr: none).
  // Unset: the store's own index (Store::view); e.g. milvus_view() scores a
  // Milvus collection synced from the store with the same numbers.
  std::function<Status(std::shared_ptr<const Adapter>, std::unique_ptr<SearchView>*)> views;
  // Every search sees only the records whose metadata matches (relevant
  // documents it excludes count as misses).
  Filter filter;
  // The index knobs of every search (SearchOptions::ef_search, ::nprobe).
  int ef_search = 0;
  int nprobe = 0;
};

// Every query is searched at least this deep, so hit@k and MRR@k can be drawn
// for k = 1..kCurveDepth (and nDCG@10, recall@10 computed) from one search.
constexpr int kCurveDepth = 20;

struct QueryScore {
  std::string query_id;
  RankMetrics metrics;
  std::vector<std::string> retrieved;  // ids, best first (max(top_k, kCurveDepth) of them)
  int first_relevant = 0;              // rank (from 1) of the first relevant id in `retrieved`; 0: none
};

struct SystemResult {
  std::string name;
  std::string source;
  int top_k = 0;
  double hit_rate = 0;  // means over queries of RankMetrics
  double mrr = 0;
  double ndcg_at_10 = 0;
  double recall_at_k = 0;
  double recall_at_10 = 0;
  Interval hit_rate_ci95;
  Interval mrr_ci95;
  std::vector<QueryScore> queries;  // in dataset order
};

// One system against the base on one metric: delta = mean(a) - mean(b), and
// the two-sided p-value of the paired sign-flip permutation test.
struct Comparison {
  std::string a;
  std::string b;
  std::string metric;  // "hit_rate" or "mrr"
  double delta = 0;
  double p_value = 1;
};

struct EvalReport {
  std::vector<SystemResult> results;    // results[0] is the base, then `systems` in order
  std::vector<Comparison> comparisons;  // each adapter vs the base: hit_rate, then mrr
  // Queries none of whose relevant documents are stored: scored as misses
  // (they stay in every mean) and listed here so the caller can warn.
  std::vector<std::string> unanswerable_queries;
};

// Embeds every query of `dataset` once (the embedder's query side), then
// searches the store through Store::view() (or options.views) for the base and for each of
// `adapters` (in order; a nullptr adapter is refused: the base is always
// results[0]). Fails with Code::kFailedPrecondition if the store's vectors
// came from another embedder, or the dimensions differ.
Status evaluate(const Store& store, Embedder& embedder, const QaDataset& dataset,
                const std::vector<EvalSystem>& adapters, const EvalOptions& options, EvalReport* report);

// Resolves an adapter to score, named as `embedapt eval --adapter` names it:
// "active" (the store's active version), a stored version number, or an
// exported adapter directory (write "./3" for a directory named like a
// number). Refuses what check_adapter_fits refuses: an adapter that does not
// map the store's dimension to itself, or one trained for another embedder
// than `embedder_identity` (Code::kFailedPrecondition), whose output on these
// vectors is noise.
// The name is the kind then the version or directory ("linear v3 (active)").
Status load_eval_system(const Store& store, const std::string& spec, const std::string& embedder_identity,
                        bool trust_code, EvalSystem* out);

}  // namespace embedapt
