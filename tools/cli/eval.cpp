// `embedapt eval`: hit rate, MRR, nDCG@10 and recall@10 of a store's real
// index on a dataset, for the base embedder and each --adapter, with 95%
// bootstrap intervals and a paired permutation test of each adapter against
// the base.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/common/files.h"
#include "core/eval/dataset.h"
#include "core/eval/evaluator.h"
#include "core/eval/report.h"
#include "embedapt/embedder.h"
#include "embedapt/milvus.h"
#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {

namespace {

struct EvalArgs {
  std::string db;
  std::string dataset;
  std::string embedder;
  std::optional<double> timeout_seconds;
  std::vector<std::string> adapters;
  int top_k = 5;
  std::string json_out;
  std::string html_out;
  std::string per_query_out;
  std::string cache_dir;
  bool trust_code = false;
  uint64_t seed = 0;
  std::string milvus_uri;
  std::string milvus_collection;
  std::string filter;
  int ef_search = 0;
  int nprobe = 0;
};

// One line per (system, query): what was retrieved and how it scored.
std::string per_query_jsonl(const EvalReport& report) {
  std::string out;
  for (const SystemResult& r : report.results) {
    for (const QueryScore& q : r.queries) {
      nlohmann::json line = {
          {"name", r.name},          {"query_id", q.query_id},          {"hit", q.metrics.hit},
          {"mrr", q.metrics.mrr},    {"ndcg@10", q.metrics.ndcg_at_10}, {"recall@10", q.metrics.recall_at_10},
          {"retrieved", q.retrieved}};
      out += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  }
  return out;
}

void print_table(const EvalReport& report) {
  size_t width = 4;
  for (const SystemResult& r : report.results) width = std::max(width, r.name.size());
  const int w = static_cast<int>(width);
  std::printf("top-%d over %zu queries\n", report.results[0].top_k, report.results[0].queries.size());
  std::printf("%-*s  %-8s  %-16s  %-8s  %-16s  %-8s  %-9s\n", w, "name", "hit_rate", "95% CI", "mrr",
              "95% CI", "ndcg@10", "recall@10");
  for (const SystemResult& r : report.results) {
    std::printf("%-*s  %-8.4f  [%.4f, %.4f]  %-8.4f  [%.4f, %.4f]  %-8.4f  %-9.4f\n", w, r.name.c_str(),
                r.hit_rate, r.hit_rate_ci95.lo, r.hit_rate_ci95.hi, r.mrr, r.mrr_ci95.lo, r.mrr_ci95.hi,
                r.ndcg_at_10, r.recall_at_10);
  }
  for (const Comparison& c : report.comparisons) {
    std::printf("%s vs %s: %s %+.4f (p = %.4f, paired permutation)\n", c.a.c_str(), c.b.c_str(),
                c.metric.c_str(), c.delta, c.p_value);
  }
}

// The report files asked for (flag, path), checked before anything is
// computed: one file each, in a directory that exists. A --html in a missing
// directory failed after --json was written, and --json and --html naming
// one file left the HTML in it.
std::vector<std::pair<std::string, std::string>> checked_outputs(const EvalArgs& args) {
  std::vector<std::pair<std::string, std::string>> outputs;
  for (const auto& [flag, path] : {std::pair{"--json", &args.json_out}, std::pair{"--html", &args.html_out},
                                   std::pair{"--per-query", &args.per_query_out}}) {
    if (path->empty()) continue;
    for (const auto& [other_flag, other] : outputs) {
      if (same_file(other, *path)) {
        throw Failure{std::string(flag) + " and " + other_flag + " name the same file " + *path};
      }
    }
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(*path).lexically_normal().parent_path();
    const std::filesystem::path dir = parent.empty() ? "." : parent;
    if (!std::filesystem::is_directory(dir, ec)) {
      throw Failure{std::string(flag) + " " + *path + ": no directory " + dir.string()};
    }
    outputs.emplace_back(flag, *path);
  }
  return outputs;
}

void run_eval(const EvalArgs& args) {
  const std::vector<std::pair<std::string, std::string>> outputs = checked_outputs(args);
  EmbedderOptions embedder_options;
  embedder_options.cache_dir = args.cache_dir;
  embedder_options.show_progress = false;  // the evaluator draws its own bars
  set_embedder_timeout(args.timeout_seconds, &embedder_options);
  QaDataset dataset;
  check(read_dataset(args.dataset, &dataset));
  for (const std::string& warning : dataset_warnings(dataset)) {
    std::fprintf(stderr, "embedapt: warning: %s: %s\n", args.dataset.c_str(), warning.c_str());
  }

  std::unique_ptr<Store> store = open_store_read_only(args.db, args.trust_code);

  std::unique_ptr<Embedder> embedder;
  Status made = make_embedder(args.embedder, embedder_options, &embedder);
  if (!made.ok()) throw Failure{"--embedder " + args.embedder + ": " + made.message()};

  std::vector<EvalSystem> systems;
  for (const std::string& spec : args.adapters) {
    EvalSystem system;
    Status s = load_eval_system(*store, spec, embedder->identity(), args.trust_code, &system);
    if (!s.ok()) throw Failure{"--adapter " + spec + ": " + s.message()};
    systems.push_back(std::move(system));
  }

  EvalOptions options;
  options.top_k = args.top_k;
  options.seed = args.seed;
  if (!args.filter.empty()) {
    Status s = Filter::parse(args.filter, &options.filter);
    if (!s.ok()) throw Failure{"--" + s.message()};  // "--filter: <the problem>"
  }
  options.ef_search = args.ef_search;
  options.nprobe = args.nprobe;
  options.show_progress = isatty(STDERR_FILENO);  // no carriage-return noise in logs
  if (args.milvus_uri.empty() != args.milvus_collection.empty()) {
    throw Failure{"--milvus and --collection go together"};
  }
  MilvusCollection collection{args.milvus_uri, args.milvus_collection};
  if (args.timeout_seconds) collection.timeout_seconds = *args.timeout_seconds;  // checked above
  if (!args.milvus_uri.empty()) {
    options.views = [&](std::shared_ptr<const Adapter> adapter, std::unique_ptr<SearchView>* out) {
      return milvus_view(*store, collection, std::move(adapter), out);
    };
  }
  EvalReport report;
  check_search(evaluate(*store, *embedder, dataset, systems, options, &report));

  if (!report.unanswerable_queries.empty()) {
    std::fprintf(stderr,
                 "embedapt: warning: %zu of %zu queries have no relevant document in %s (first: \"%s\"); "
                 "they count as misses\n",
                 report.unanswerable_queries.size(), dataset.queries.size(), args.db.c_str(),
                 report.unanswerable_queries[0].c_str());
  }
  print_table(report);
  // Every report file or none: one that fails takes back those written.
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [flag, path] = outputs[i];
    const std::string text = flag == "--json" ? report_json(report)
                             : flag == "--html"
                                 ? report_html(report, "embedapt eval: " + args.db + " on " + args.dataset)
                                 : per_query_jsonl(report);
    const Status written = write_file_atomic(path, text);
    if (!written.ok()) {
      std::error_code ignored;
      for (size_t j = 0; j < i; ++j) std::filesystem::remove(outputs[j].second, ignored);
      throw Failure{flag + " " + written.message()};
    }
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Score retrieval through the store's index on a dataset: the base model and each --adapter");
  cmd->add_option("db", args->db, "The store")->required();
  cmd->add_option("--dataset", args->dataset, "LlamaIndex JSON, a BEIR folder or JSONL pairs")->required();
  cmd->add_option("--embedder", args->embedder,
                  "The embedder the store was built with (default, bert:DIR, ...)")
      ->required();
  add_embedder_timeout(cmd, &args->timeout_seconds)
      ->description(
          "Seconds an embedding request may take (command: the child's answer, openai: each HTTP attempt; "
          "default 300 and 120) and, with --milvus, each attempt of a request to Milvus (default 60)");
  cmd->add_option("--adapter", args->adapters,
                  "An adapter to score against the base: a stored VERSION, an exported DIR, or 'active' "
                  "(repeatable)");
  cmd->add_option("--top-k", args->top_k, "Hit rate and MRR count the first K results")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--json", args->json_out, "Write the results and comparisons as JSON");
  cmd->add_option("--html", args->html_out,
                  "Write a self-contained HTML page: the table, hit@k and MRR@k charts, the comparisons");
  cmd->add_option("--per-query", args->per_query_out, "Write each query's scores and results as JSON lines");
  cmd->add_option("--cache-dir", args->cache_dir,
                  "The embedding cache ($EMBEDAPT_CACHE_DIR, ~/.cache/embedapt)");
  cmd->add_option("--seed", args->seed, "Seed of the bootstrap and the permutation test")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_flag("--trust-code", args->trust_code, "Allow TorchScript adapters (they run code from the file)");
  cmd->add_option("--milvus", args->milvus_uri,
                  "Search this Milvus server (http://HOST:PORT) instead of the store's index");
  cmd->add_option("--collection", args->milvus_collection, "The Milvus collection synced from the store");
  cmd->add_option("--filter", args->filter, "Search only records whose metadata matches this JSON filter");
  add_index_knobs(cmd, &args->ef_search, &args->nprobe);
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace embedapt::cli
