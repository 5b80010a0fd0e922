// `embedapt search`: nearest neighbours of query vectors from a .npy file.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/npy.h"
#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {
namespace {

struct SearchArgs {
  std::string db;
  std::string npy;
  int k = 10;
  std::string json_out;
  std::string filter;
  int ef_search = 0;
  int nprobe = 0;
  bool trust_code = false;
};

// {"results": [{"query": row, "ids": [...], "scores": [...]}]}, best first.
// Ids are bytes to the store; one that is not UTF-8 is written with U+FFFD
// in place of its bad bytes (JSON cannot carry them).
std::string results_json(const std::vector<std::vector<Hit>>& results) {
  nlohmann::json out = {{"results", nlohmann::json::array()}};
  for (size_t q = 0; q < results.size(); ++q) {
    nlohmann::json ids = nlohmann::json::array(), scores = nlohmann::json::array(),
                   metadata = nlohmann::json::array();
    for (const Hit& hit : results[q]) {
      ids.push_back(hit.id);
      scores.push_back(hit.score);
      metadata.push_back(hit.metadata.empty() ? nlohmann::json::object()
                                              : nlohmann::json::parse(hit.metadata));
    }
    out["results"].push_back({{"query", q}, {"ids", ids}, {"scores", scores}, {"metadata", metadata}});
  }
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void print_table(const std::vector<std::vector<Hit>>& results) {
  std::printf("%-8s %-5s %-12s %s\n", "query", "rank", "score", "id");
  for (size_t q = 0; q < results.size(); ++q) {
    for (size_t r = 0; r < results[q].size(); ++r) {
      std::printf("%-8zu %-5zu %-12.6f %s\n", q, r + 1, results[q][r].score, results[q][r].id.c_str());
    }
  }
}

void run_search(const SearchArgs& args) {
  if (args.k < 1) throw Failure{"-k must be at least 1"};
  SearchOptions options(args.k);
  options.ef_search = args.ef_search;
  options.nprobe = args.nprobe;
  options.ids_only = args.json_out.empty();  // the table shows ids and scores only
  if (!args.filter.empty()) {
    Status s = Filter::parse(args.filter, &options.filter);
    if (!s.ok()) throw Failure{"--" + s.message()};  // "--filter: <the problem>"
  }
  Matrix queries;
  check(read_npy(args.npy, &queries));
  std::unique_ptr<Store> store = open_store_read_only(args.db, args.trust_code);
  StoreStats stats;
  check(store->stats(&stats));
  if (queries.cols != size_t(stats.dim)) {
    throw Failure{args.npy + ": queries have " + std::to_string(queries.cols) + " dims, the store " +
                  std::to_string(stats.dim)};
  }
  std::vector<std::vector<Hit>> results;
  check_search(store->search_batch(queries.data.data(), queries.rows, options, &results));
  if (args.json_out.empty()) {
    print_table(results);
  } else {
    check(write_file_atomic(args.json_out, results_json(results)));
  }
}

}  // namespace

void add_search_command(CLI::App& app) {
  auto args = std::make_shared<SearchArgs>();
  CLI::App* cmd = app.add_subcommand("search", "Search a store with query vectors");
  cmd->add_option("db", args->db, "Store directory")->required();
  cmd->add_option("--npy", args->npy, "Queries, a float32 (rows x dim) .npy file")->required();
  cmd->add_option("-k", args->k, "Neighbours per query")->capture_default_str();
  cmd->add_option("--json", args->json_out,
                  "Write the results (with each hit's metadata) as JSON to this file");
  cmd->add_option(
      "--filter", args->filter,
      "Only records whose metadata matches this JSON filter, e.g. '{\"lang\": {\"$in\": [\"da\", \"sv\"]}}'");
  add_index_knobs(cmd, &args->ef_search, &args->nprobe);
  cmd->add_flag("--trust-code", args->trust_code, "Allow a TorchScript active adapter (it is code)");
  cmd->callback([args] { run_search(*args); });
}

}  // namespace embedapt::cli
