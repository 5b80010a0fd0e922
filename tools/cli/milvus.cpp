// `embedapt milvus sync|search`: serve a store from a Milvus collection
// (see embedapt/milvus.h): mirror its records, and search through its
// active adapter, logging the queries and the chosen hits into the store.
#include "embedapt/milvus.h"

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/http.h"
#include "core/common/npy.h"
#include "core/common/progress.h"
#include "core/common/utf8.h"
#include "embedapt/embedder.h"
#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {
namespace {

struct MilvusArgs {
  std::string db;
  std::string uri;
  std::string collection;
  bool trust_code = false;
  std::optional<double> timeout_seconds;  // Milvus's default when left out; the embedder's too
  // sync
  std::string index = "FLAT";
  int shards = 1;
  int replicas = 1;
  // search
  std::string npy;
  std::vector<std::string> texts;
  std::string embedder;
  std::string cache_dir;
  int k = 10;
  std::string json_out;
  bool log = false;
  std::string hit;
  bool hit_given = false;  // --hit "" is given, and refused
};

// The collection the arguments name, its settings checked before the store is opened.
MilvusCollection target(const MilvusArgs& args) {
  const double seconds = args.timeout_seconds.value_or(MilvusCollection().timeout_seconds);
  const std::string timeout = timeout_problem(seconds);
  if (!timeout.empty()) throw Failure{"--timeout: " + timeout};
  return {args.uri, args.collection, seconds};
}

void run_sync(const MilvusArgs& args) {
  const MilvusCollection collection = target(args);
  MilvusSyncOptions options;
  Status parsed = ParseMilvusIndex(args.index, &options.index);
  if (!parsed.ok()) throw Failure{"--index: " + parsed.message()};
  options.shards = args.shards;
  options.replicas = args.replicas;
  options.trust_code = args.trust_code;
  options.show_progress = Progress::stderr_is_terminal();
  std::unique_ptr<Store> store = open_existing_store(args.db, args.trust_code);
  MilvusSyncReport report;
  check(milvus_sync(*store, collection, options, &report));
  const std::string docs = report.doc_adapter
                               ? "documents mapped by adapter v" + std::to_string(report.doc_adapter)
                               : "raw documents";
  if (report.full) {
    std::printf("full push to %s (%s): %llu records, %s, index %s\n", args.collection.c_str(),
                report.reason.c_str(), static_cast<unsigned long long>(report.upserted), docs.c_str(),
                MilvusIndexName(options.index));
  } else {
    std::printf("incremental sync to %s: %llu records upserted, %llu versions deleted, %s\n",
                args.collection.c_str(), static_cast<unsigned long long>(report.upserted),
                static_cast<unsigned long long>(report.deleted), docs.c_str());
  }
  std::printf("collection at journal seq %llu\n", static_cast<unsigned long long>(report.seq));
}

void run_search(const MilvusArgs& args) {
  const MilvusCollection collection = target(args);
  if (args.k < 1) throw Failure{"-k must be at least 1"};
  if (args.npy.empty() == args.texts.empty()) throw Failure{"give either --npy or --text"};
  if (args.hit_given && !args.log) throw Failure{"--hit needs --log"};
  if (args.hit_given && args.hit.empty()) throw Failure{"--hit: an empty id names no document"};
  // A search that logs nothing must not lock the store's writers out while Milvus answers.
  std::unique_ptr<Store> store = args.log ? open_existing_store(args.db, args.trust_code)
                                          : open_store_read_only(args.db, args.trust_code);
  StoreStats stats;
  check(store->stats(&stats));
  Matrix queries;
  if (!args.npy.empty()) {
    check(read_npy(args.npy, &queries));
  } else {
    if (args.embedder.empty()) throw Failure{"--text needs --embedder (the one the store was built with)"};
    EmbedderOptions options;
    options.cache_dir = args.cache_dir;
    set_embedder_timeout(args.timeout_seconds, &options);
    std::unique_ptr<Embedder> embedder;
    Status made = make_embedder(args.embedder, options, &embedder);
    if (!made.ok()) throw Failure{"--embedder " + args.embedder + ": " + made.message()};
    if (!stats.embedder.empty() && embedder->identity() != stats.embedder) {
      throw Failure{"--embedder " + args.embedder + ": the store holds vectors of " + stats.embedder};
    }
    check(embedder->embed(args.texts, EmbedSide::kQuery, &queries.data));
    queries.rows = args.texts.size();
    queries.cols = size_t(embedder->dim());
  }
  if (queries.cols != size_t(stats.dim)) {
    throw Failure{"queries have " + std::to_string(queries.cols) + " dims, the store " +
                  std::to_string(stats.dim)};
  }
  if (args.hit_given && queries.rows != 1) throw Failure{"--hit names the choice for a single query"};
  // Before anything is logged: a query logged with its hit refused was a
  // half-done write, and a hit that is no document would be trained on. A
  // stored document the results missed is what the user chose: logged.
  if (args.hit_given) {
    Record record;
    const Status found = store->get(args.hit, &record);
    if (found.code() == Code::kNotFound) {
      throw Failure{"--hit '" + quotable(args.hit, 80) + "': no document with this id in " + args.db};
    }
    check(found);
  }
  std::vector<std::vector<Hit>> results;
  check(milvus_search(*store, collection, queries.data.data(), queries.rows, args.k, args.trust_code,
                      &results));
  std::vector<uint64_t> query_ids(queries.rows, 0);
  if (args.log) {
    for (size_t q = 0; q < queries.rows; ++q) {
      std::vector<std::string> ids;
      for (const Hit& hit : results[q]) ids.push_back(hit.id);
      check(store->log_query(queries.data.data() + q * queries.cols, queries.cols, ids, &query_ids[q]));
    }
    if (args.hit_given) check(store->log_hit(query_ids[0], args.hit));
  }
  nlohmann::json out = {{"results", nlohmann::json::array()}};
  for (size_t q = 0; q < results.size(); ++q) {
    nlohmann::json ids = nlohmann::json::array(), scores = nlohmann::json::array();
    for (const Hit& hit : results[q]) {
      ids.push_back(hit.id);
      scores.push_back(hit.score);
    }
    nlohmann::json row = {{"query", q}, {"ids", ids}, {"scores", scores}};
    if (args.log) row["query_id"] = query_ids[q];
    out["results"].push_back(row);
  }
  if (!args.json_out.empty()) {
    check(write_file_atomic(args.json_out, out.dump() + "\n"));
    return;
  }
  std::printf("%-8s %-5s %-12s %s\n", "query", "rank", "score", "id");
  for (size_t q = 0; q < results.size(); ++q) {
    for (size_t r = 0; r < results[q].size(); ++r) {
      std::printf("%-8zu %-5zu %-12.6f %s\n", q, r + 1, results[q][r].score, results[q][r].id.c_str());
    }
  }
}

void add_target_options(CLI::App* cmd, MilvusArgs* args) {
  cmd->add_option("db", args->db, "The store")->required();
  cmd->add_option("--uri", args->uri, "The Milvus proxy, http://HOST:PORT")->required();
  cmd->add_option("--collection", args->collection, "The collection")->required();
  cmd->add_flag("--trust-code", args->trust_code, "Allow a TorchScript active adapter (it is code)");
  cmd->add_option("--timeout", args->timeout_seconds,
                  "Seconds per attempt of each request to Milvus (4 attempts; default 60) and, for --text, "
                  "of each embedding request; 0.001 to 86400");
}

}  // namespace

void add_milvus_command(CLI::App& app) {
  CLI::App* milvus = app.add_subcommand("milvus", "Serve the store from a Milvus collection");
  milvus->require_subcommand(1);
  auto args = std::make_shared<MilvusArgs>();

  CLI::App* sync = milvus->add_subcommand(
      "sync", "Push the store's records to the collection: everything the first time, then only changes");
  add_target_options(sync, args.get());
  sync->add_option("--index", args->index, "Index type when the collection is created: FLAT, HNSW or IVF")
      ->capture_default_str();
  sync->add_option("--shards", args->shards, "Shards when the collection is created")->capture_default_str();
  sync->add_option("--replicas", args->replicas, "In-memory replicas the collection is loaded with")
      ->capture_default_str();
  sync->callback([args] { run_sync(*args); });

  CLI::App* search = milvus->add_subcommand(
      "search",
      "Search the collection through the store's active adapter; --log records the traffic for retrain");
  add_target_options(search, args.get());
  search->add_option("--npy", args->npy, "Query vectors, a float32 (rows x dim) .npy file");
  search->add_option("--text", args->texts, "Query texts, embedded with --embedder (repeatable)");
  search->add_option("--embedder", args->embedder, "The embedder the store was built with (for --text)");
  search->add_option("--cache-dir", args->cache_dir,
                     "The embedding cache ($EMBEDAPT_CACHE_DIR, ~/.cache/embedapt)");
  search->add_option("-k", args->k, "Neighbours per query")->capture_default_str();
  search->add_option("--json", args->json_out, "Write the results as JSON to this file");
  search->add_flag("--log", args->log, "Log each query and its results in the store's query log");
  CLI::Option* hit =
      search->add_option("--hit", args->hit, "The document the user chose (one query): logged as its hit");
  search->callback([args, hit] {
    args->hit_given = hit->count() > 0;
    run_search(*args);
  });
}

}  // namespace embedapt::cli
