// `embedapt retrain`: trains an adapter from the store's query log and raw
// vectors, stores it as a new version, optionally activates and exports it.

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/adapt/trainer.h"
#include "core/common/files.h"
#include "core/common/sha256.h"
#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {

namespace {

struct RetrainArgs {
  std::string db;
  std::string adapter = "linear";
  bool trust_code = false;
  std::string side = "query";
  int hidden = 1024;
  int epochs = 0;  // 0: the trainer's default
  double lr = 0;
  std::string loss;
  double val_fraction = 0;
  uint64_t seed = 42;
  int threads = 1;
  std::string checkpoint_dir;
  int checkpoint_every = 50;
  bool resume = false;
  bool activate = false;
  bool activate_if_better = false;
  std::string out;
};

// sha256 over the pairs in log order (query id, doc id, query vector): two
// versions trained on the same log have the same fingerprint.
std::string fingerprint(const std::vector<LoggedPair>& pairs) {
  Sha256 hash;
  for (const auto& p : pairs) {
    uint64_t size = p.doc_id.size();
    hash.add({reinterpret_cast<const char*>(&p.query_id), sizeof(p.query_id)});
    hash.add({reinterpret_cast<const char*>(&size), sizeof(size)});
    hash.add(p.doc_id);
    hash.add({reinterpret_cast<const char*>(p.query.data()), p.query.size() * sizeof(float)});
  }
  return "sha256:" + hex(hash.digest());
}

// The trainer's input from the store: every document's raw vector, and the
// logged queries with the rows of the documents they hit (pairs whose
// document was removed since are dropped).
TrainingSet read_training_set(const Store& store, int dim, const std::vector<LoggedPair>& pairs,
                              size_t* dropped) {
  TrainingSet data;
  data.docs.cols = data.queries.cols = static_cast<size_t>(dim);
  std::map<std::string, size_t> doc_row;
  check(store.scan([&](const Record& r) {
    doc_row.emplace(r.id, data.docs.rows++);
    data.docs.data.insert(data.docs.data.end(), r.vector.begin(), r.vector.end());
    return true;
  }));
  std::map<uint64_t, size_t> query_row;
  *dropped = 0;
  for (const auto& p : pairs) {
    auto doc = doc_row.find(p.doc_id);
    if (doc == doc_row.end() || p.query.size() != static_cast<size_t>(dim)) {
      ++*dropped;
      continue;
    }
    auto [it, added] = query_row.emplace(p.query_id, data.queries.rows);
    if (added) {
      ++data.queries.rows;
      data.queries.data.insert(data.queries.data.end(), p.query.begin(), p.query.end());
      data.relevant.emplace_back();
    }
    data.relevant[it->second].push_back(doc->second);
  }
  return data;
}

void run_retrain(const RetrainArgs& args) {
  if (args.activate && args.activate_if_better)
    throw Failure{"--activate and --activate-if-better exclude each other"};
  std::unique_ptr<Store> store = open_existing_store(args.db, args.trust_code);
  StoreStats stats;
  check(store->stats(&stats));

  TrainOptions options;
  const std::string torchscript_prefix = "torchscript:";
  if (args.adapter.rfind(torchscript_prefix, 0) == 0) {
    options.kind = "torchscript";
    std::string file = args.adapter.substr(torchscript_prefix.size());
    if (!args.trust_code)
      throw Failure{"--adapter " + args.adapter + ": TorchScript is code; pass --trust-code"};
    check(read_file(file, &options.torchscript_archive));
  } else {
    options.kind = args.adapter;
  }
  options.trust_code = args.trust_code;
  options.side = args.side == "both" ? AdapterSide::kBoth : AdapterSide::kQuery;
  options.hidden = args.hidden;
  options.embedder = stats.embedder;
  if (args.epochs > 0) options.epochs = args.epochs;
  if (args.lr > 0) options.lr = args.lr;
  if (!args.loss.empty()) options.loss = args.loss;
  if (args.val_fraction > 0) options.val_fraction = args.val_fraction;
  options.seed = args.seed;
  options.threads = args.threads;
  options.checkpoint_dir = args.checkpoint_dir;
  options.checkpoint_every = args.checkpoint_dir.empty() ? 0 : args.checkpoint_every;
  options.resume = args.resume;
  if (args.activate_if_better && stats.active_adapter != 0) {
    AdapterVersion active;
    check(store->get_adapter(stats.active_adapter, &active));
    std::unique_ptr<Adapter> incumbent;
    check(load_adapter(active.config_json, active.weights, {args.trust_code}, &incumbent));
    options.incumbent = std::move(incumbent);
  }

  std::vector<LoggedPair> pairs;
  check(store->read_pairs(&pairs));
  size_t dropped = 0;
  TrainingSet data = read_training_set(*store, stats.dim, pairs, &dropped);
  if (dropped > 0)
    std::fprintf(stderr, "retrain: %zu logged pairs skipped (document no longer stored)\n", dropped);

  TrainResult result;
  Status trained = train_adapter(data, options, &result);
  if (!trained.ok()) throw Failure{args.db + ": " + trained.message()};

  std::printf("validation: %d-fold cross-validation over %zu logged queries, hit@%d / MRR@%d\n", result.folds,
              result.queries, options.top_k, options.top_k);
  std::printf("  base     %.4f / %.4f\n", result.base.hit, result.base.mrr);
  if (result.best_epoch > 0) {
    std::printf("  adapter  %.4f / %.4f  (epoch %d of %zu, gain %.1f standard errors)\n", result.best.hit,
                result.best.mrr, result.best_epoch, result.epochs.size(), result.gain_z);
  }
  if (!result.improved) {
    std::printf("no adapter: nothing beat the base on validation clearly enough; the store is unchanged\n");
    return;
  }

  AdapterVersion version;
  version.parent = stats.active_adapter;
  version.config_json = result.config_json;
  version.weights = result.weights;
  version.data_fingerprint = fingerprint(pairs);
  version.metrics_json = result.metrics_json(options);
  check(store->put_adapter(&version));
  std::printf("adapter version %llu (%s, %s side, loss %s)\n",
              static_cast<unsigned long long>(version.version), options.kind.c_str(),
              AdapterSideName(options.side), options.loss.c_str());

  bool activate = args.activate;
  if (args.activate_if_better) {
    activate = !options.incumbent || result.best.score() > result.incumbent.score();
    if (!activate) {
      std::printf("not activated: the active version %llu scores %.4f / %.4f on the logged queries\n",
                  static_cast<unsigned long long>(stats.active_adapter), result.incumbent.hit,
                  result.incumbent.mrr);
    }
  }
  if (activate) {
    check(store->activate_adapter(version.version));
    std::printf("activated version %llu\n", static_cast<unsigned long long>(version.version));
  }
  if (!args.out.empty()) {
    check(write_adapter_dir(args.out, version.config_json, version.weights));
    std::printf("exported to %s\n", args.out.c_str());
  }
}

}  // namespace

void add_retrain_command(CLI::App& app) {
  auto args = std::make_shared<RetrainArgs>();
  CLI::App* cmd =
      app.add_subcommand("retrain", "Train an adapter from the store's query log and store it as a version");
  cmd->add_option("db", args->db, "The store directory")->required();
  cmd->add_option("--adapter", args->adapter, "linear, two-layer, or torchscript:FILE")
      ->capture_default_str();
  cmd->add_flag("--trust-code", args->trust_code, "Allow a TorchScript adapter (it is code)");
  cmd->add_option("--side", args->side, "Transform queries only, or queries and documents")
      ->check(CLI::IsMember({"query", "both"}))
      ->capture_default_str();
  cmd->add_option("--hidden", args->hidden, "Hidden size of the two-layer adapter")->capture_default_str();
  cmd->add_option("--epochs", args->epochs, "Maximum epochs (default: the trainer's)");
  cmd->add_option("--lr", args->lr, "Learning rate (default: the trainer's)");
  cmd->add_option("--loss", args->loss, "corpus, in-batch or hard (default: the trainer's)")
      ->check(CLI::IsMember({"corpus", "in-batch", "hard"}));
  cmd->add_option("--val-fraction", args->val_fraction,
                  "Share of the log each cross-validation fold holds out (round(1/F) folds)")
      ->check(CLI::Range(0.01, 0.5));
  cmd->add_option("--seed", args->seed, "Seed of the split, shuffling and initial weights")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "LibTorch threads while training")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--checkpoint-dir", args->checkpoint_dir, "Write checkpoints here");
  cmd->add_option("--checkpoint-every", args->checkpoint_every, "Steps between checkpoints")
      ->capture_default_str();
  cmd->add_flag("--resume", args->resume, "Continue from the checkpoint in --checkpoint-dir")
      ->needs(cmd->get_option("--checkpoint-dir"));
  cmd->add_flag("--activate", args->activate, "Activate the new version");
  cmd->add_flag("--activate-if-better", args->activate_if_better,
                "Activate only if it beats the active version on validation");
  cmd->add_option("--out", args->out, "Also export the new version to this directory");
  cmd->callback([args] { run_retrain(*args); });
}

}  // namespace embedapt::cli
