// `embedapt retrain`: embedapt::retrain() (embedapt/learn.h) with the options
// from the command line, its report printed, the new version optionally exported.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "core/common/files.h"
#include "embedapt/learn.h"
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
  int folds = 0;
  uint64_t seed = 42;
  int threads = 1;
  std::string checkpoint_dir;
  int checkpoint_every = 50;
  bool resume = false;
  bool activate = false;
  bool activate_if_better = false;
  std::string out;
};

void run_retrain(const RetrainArgs& args) {
  if (args.activate && args.activate_if_better)
    throw Failure{"--activate and --activate-if-better exclude each other"};
  RetrainOptions options;
  const std::string torchscript_prefix = "torchscript:";
  if (args.adapter.rfind(torchscript_prefix, 0) == 0) {
    if (!args.trust_code)
      throw Failure{"--adapter " + args.adapter + ": TorchScript is code; pass --trust-code"};
    options.kind = "torchscript";
    check(read_file(args.adapter.substr(torchscript_prefix.size()), &options.torchscript_archive));
  } else {
    options.kind = args.adapter;
  }
  options.trust_code = args.trust_code;
  options.side = args.side == "both" ? AdapterSide::kBoth : AdapterSide::kQuery;
  options.hidden = args.hidden;
  options.epochs = args.epochs;
  options.lr = args.lr;
  options.loss = args.loss;
  options.folds = args.folds;
  options.seed = args.seed;
  options.threads = args.threads;
  options.checkpoint_dir = args.checkpoint_dir;
  options.checkpoint_every = args.checkpoint_every;
  options.resume = args.resume;
  options.activate = args.activate             ? ActivationPolicy::kAlways
                     : args.activate_if_better ? ActivationPolicy::kIfBetter
                                               : ActivationPolicy::kNever;

  std::unique_ptr<Store> store = open_existing_store(args.db, args.trust_code);
  // --out is made before training: a path that cannot be a directory failed
  // only after the new version was stored (and activated). Made here, it is
  // removed again if nothing is exported into it.
  std::error_code ec;
  const bool out_was_there = !args.out.empty() && std::filesystem::exists(args.out, ec);
  if (!args.out.empty() && !out_was_there) {
    std::filesystem::create_directories(args.out, ec);
    if (ec) throw Failure{"--out " + args.out + ": cannot create the directory: " + ec.message()};
  }
  if (out_was_there && !std::filesystem::is_directory(args.out, ec)) {
    throw Failure{"--out " + args.out + ": not a directory"};
  }
  auto drop_new_out = [&] {
    if (!args.out.empty() && !out_was_there) std::filesystem::remove(args.out, ec);
  };
  RetrainReport report;
  Status trained = retrain(store.get(), options, &report);
  if (!trained.ok()) {
    drop_new_out();
    throw Failure{args.db + ": " + trained.message()};
  }

  if (report.dropped_hits > 0)
    std::fprintf(stderr, "retrain: %zu logged hits skipped (document no longer stored)\n",
                 report.dropped_hits);
  std::printf("validation: %d-fold cross-validation over %zu logged queries, hit@%d / MRR@%d\n", report.folds,
              report.queries, report.top_k, report.top_k);
  std::printf("  base     %.4f / %.4f\n", report.base.hit, report.base.mrr);
  std::printf("  adapter  %.4f / %.4f  (%d epochs, each query scored by the fold net that never saw it)\n",
              report.adapter.hit, report.adapter.mrr, report.epochs_run);
  std::printf("%s\n", report.summary.c_str());
  std::printf("time: %.2f s reading, %.2f s training, %.2f s storing\n", report.read_seconds,
              report.train_seconds, report.store_seconds);
  if (report.decision == RetrainReport::Decision::kNoGain) {
    std::printf("no adapter: the store is unchanged\n");
    drop_new_out();
    return;
  }
  std::printf("adapter version %llu (%s, %s side)\n", static_cast<unsigned long long>(report.version),
              options.kind.c_str(), AdapterSideName(options.side));
  if (report.decision == RetrainReport::Decision::kNotBetter) {
    std::printf("not activated: the active version %llu scores %.4f / %.4f on the logged queries\n",
                static_cast<unsigned long long>(report.previous_active), report.incumbent.hit,
                report.incumbent.mrr);
  }
  if (report.decision == RetrainReport::Decision::kActivated)
    std::printf("activated version %llu\n", static_cast<unsigned long long>(report.version));
  if (!args.out.empty()) {
    AdapterVersion version;
    check(store->get_adapter(report.version, &version));
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
  // Left out, these keep their sentinel 0 ("the trainer's default"); given,
  // they must be positive, so 0 or -1 is refused rather than read as that.
  const CLI::Validator positive(
      [](std::string& value) {
        char* end = nullptr;
        const double v = std::strtod(value.c_str(), &end);
        return end != value.c_str() && *end == '\0' && v > 0 ? std::string()
                                                             : "must be positive, got " + value;
      },
      "POSITIVE");
  cmd->add_option("--epochs", args->epochs, "Epochs (default: the trainer's)")->check(positive);
  cmd->add_option("--lr", args->lr, "Learning rate (default: the trainer's)")->check(positive);
  cmd->add_option("--loss", args->loss, "corpus, in-batch or hard (default: the trainer's)")
      ->check(CLI::IsMember({"corpus", "in-batch", "hard"}));
  cmd->add_option("--folds", args->folds, "Cross-validation folds (default: the trainer's)")
      ->check(CLI::Range(2, 1000));
  cmd->add_option("--seed", args->seed, "Seed of the split, shuffling and initial weights")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "LibTorch threads while training")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--checkpoint-dir", args->checkpoint_dir, "Write checkpoints here");
  cmd->add_option("--checkpoint-every", args->checkpoint_every, "Steps between checkpoints")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_flag(
         "--resume", args->resume,
         "Continue from the checkpoint in --checkpoint-dir (none there yet: start from the first step)")
      ->needs(cmd->get_option("--checkpoint-dir"));
  cmd->add_flag("--activate", args->activate, "Activate the new version");
  cmd->add_flag("--activate-if-better", args->activate_if_better,
                "Activate only if it beats the active version on validation");
  cmd->add_option("--out", args->out, "Also export the new version to this directory");
  cmd->callback([args] { run_retrain(*args); });
}

}  // namespace embedapt::cli
