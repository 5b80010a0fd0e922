// `embedapt split`: a dataset's queries in two halves over the same corpus,
// e.g. one whose pairs train an adapter and one that evaluates it.
#include "core/eval/split.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/eval/dataset.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {

namespace {

struct SplitArgs {
  std::string dataset;
  double fraction = 0.5;
  uint64_t seed = 0;
  std::string by = "query";
  std::string out_a;
  std::string out_b;
};

void run_split(const SplitArgs& args) {
  if (same_file(args.out_a, args.out_b)) {
    throw Failure{"--out-a and --out-b name the same file " + args.out_a};
  }
  QaDataset dataset, a, b;
  check(read_dataset(args.dataset, &dataset));
  SplitOptions options;
  options.fraction = args.fraction;
  options.seed = args.seed;
  options.by = args.by == "document" ? SplitBy::kDocument : SplitBy::kQuery;
  Status split = split_dataset(dataset, options, &a, &b);
  if (!split.ok() && split.message().rfind("fraction: ", 0) == 0) throw Failure{"--" + split.message()};
  if (!split.ok()) throw Failure{args.dataset + ": " + split.message()};
  check(write_llamaindex_json(args.out_a, a));
  Status written = write_llamaindex_json(args.out_b, b);
  if (!written.ok()) {
    std::error_code ignored;
    std::filesystem::remove(args.out_a, ignored);  // both halves or neither
    throw Failure{written.message()};
  }
  std::fprintf(stderr, "%s: %zu queries\n%s: %zu queries\n(both over the whole corpus of %zu documents)\n",
               args.out_a.c_str(), a.queries.size(), args.out_b.c_str(), b.queries.size(),
               dataset.corpus.size());
}

}  // namespace

void add_split_command(CLI::App& app) {
  auto args = std::make_shared<SplitArgs>();
  CLI::App* cmd = app.add_subcommand(
      "split", "Split a dataset's queries in two seeded halves that share the whole corpus (train / test)");
  cmd->add_option("dataset", args->dataset, "LlamaIndex JSON, a BEIR folder or JSONL pairs")->required();
  // Checked by split_dataset: CLI11's range takes 0 and 1, which leave a half empty.
  cmd->add_option("--fraction", args->fraction,
                  "Share of the queries in --out-a, between 0 and 1 (exclusive)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the shuffle (same seed, same halves, on any machine)")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_option("--by", args->by,
                  "query: queries one by one; document: queries sharing a document together")
      ->capture_default_str()
      ->check(CLI::IsMember({"query", "document"}));
  cmd->add_option("--out-a", args->out_a, "The first half (LlamaIndex JSON)")->required();
  cmd->add_option("--out-b", args->out_b, "The second half (LlamaIndex JSON)")->required();
  cmd->callback([args] { run_split(*args); });
}

}  // namespace embedapt::cli
