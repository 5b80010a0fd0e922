// `embedapt ingest`: creates or extends a store, from vectors in a .npy file
// or from a text dataset embedded with any embedder (its queries logged as
// query/hit pairs for the trainer).
#include "core/eval/ingest.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/common/files.h"
#include "core/common/json.h"
#include "core/common/npy.h"
#include "core/common/progress.h"
#include "core/eval/dataset.h"
#include "embedapt/embedder.h"
#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {
namespace {

struct IngestArgs {
  std::string db;
  std::string npy;
  std::string dataset;
  std::string embedder = "default";
  std::string pairs = "log";  // log | none
  std::string cache_dir;
  bool no_cache = false;
  std::optional<double> timeout_seconds;
  std::string ids_file;
  std::string metadata_file;
  std::string index_spec;  // empty: "Flat" for a new store, as stored otherwise
  std::string metric;      // empty: cosine for a new store, as stored otherwise
  size_t batch = 1000;
  bool trust_code = false;  // an existing store's active adapter may be TorchScript
};

// One id per line, each once; as many lines as rows.
std::vector<std::string> read_ids(const std::string& path, size_t rows) {
  std::vector<std::string> ids;
  if (path.empty()) {
    for (size_t i = 0; i < rows; ++i) ids.push_back(std::to_string(i));
    return ids;
  }
  std::string text;
  check(read_file(path, &text));
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ids.push_back(std::move(line));
    start = end + 1;
  }
  if (ids.size() != rows) {
    throw Failure{path + ": " + std::to_string(ids.size()) + " ids for " + std::to_string(rows) + " vectors"};
  }
  // A repeated id was stored once, the later row silently replacing the
  // earlier (three rows, two records).
  std::unordered_map<std::string_view, size_t> line_of;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (auto [at, added] = line_of.emplace(ids[i], i + 1); !added) {
      throw Failure{path + ":" + std::to_string(i + 1) + ": id '" + ids[i] + "' repeats line " +
                    std::to_string(at->second)};
    }
  }
  return ids;
}

// `{"id": ID, "metadata": {...}}` lines: id -> the metadata's JSON text.
std::unordered_map<std::string, std::string> read_metadata_file(const std::string& path) {
  std::unordered_map<std::string, std::string> out;
  if (path.empty()) return out;
  std::string text;
  check(read_file(path, &text));
  size_t start = 0, line_number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    const std::string at = path + ":" + std::to_string(++line_number);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json object;
    check(parse_json(line, at, &object));
    if (!object.is_object() || !object.contains("id") || !object["id"].is_string() ||
        !object.contains("metadata") || !object["metadata"].is_object()) {
      throw Failure{at + ": expected {\"id\": string, \"metadata\": object}"};
    }
    if (!out.emplace(object["id"].get<std::string>(), object["metadata"].dump()).second) {
      throw Failure{at + ": id '" + object["id"].get<std::string>() + "' listed twice"};
    }
  }
  return out;
}

// Gives each record named in `metadata` its metadata; an id the input does
// not hold is an error (a typo would otherwise go unnoticed).
template <typename Entry>
void attach_metadata(const std::string& path, std::unordered_map<std::string, std::string> metadata,
                     std::vector<Entry>* entries) {
  for (Entry& entry : *entries) {
    auto found = metadata.find(entry.id);
    if (found == metadata.end()) continue;
    entry.metadata = std::move(found->second);
    metadata.erase(found);
  }
  if (!metadata.empty()) {
    throw Failure{path + ": metadata for id '" + metadata.begin()->first +
                  "', which the input does not hold"};
  }
}

// Opens the store at args.db, creating it with `dim` if it does not exist.
std::unique_ptr<Store> open_store(const IngestArgs& args, int dim) {
  Options options;
  options.dim = dim;
  if (!args.metric.empty()) check(ParseMetric(args.metric, &options.metric));
  if (!args.index_spec.empty()) options.index_spec = args.index_spec;
  options.trust_code = args.trust_code;
  std::unique_ptr<Store> store;
  check(Store::open(args.db, options, &store));
  return store;
}

// Writes the records in batches; after each durable batch, prints
// "committed N" with N the rows of this input written so far.
void write_batches(Store* store, const std::vector<Record>& records, size_t batch) {
  std::vector<Record> chunk;
  for (size_t begin = 0; begin < records.size(); begin += batch) {
    size_t end = std::min(records.size(), begin + batch);
    chunk.assign(records.begin() + begin, records.begin() + end);
    // The store numbers a bad record within its batch; the context says
    // which rows of the input the batch held (the earlier ones are committed).
    check(store->upsert_batch(chunk).WithContext("rows " + std::to_string(begin + 1) + " to " +
                                                 std::to_string(end) + " of " +
                                                 std::to_string(records.size())));
    check(store->sync());
    std::printf("committed %zu\n", end);
    std::fflush(stdout);
  }
}

// Embeds the dataset's corpus into the store and logs its pairs.
void ingest_text_dataset(const IngestArgs& args) {
  if (args.pairs != "log" && args.pairs != "none") {
    throw Failure{"--pairs must be 'log' or 'none', not '" + args.pairs + "'"};
  }
  EmbedderOptions embedder_options;
  embedder_options.cache_dir = args.cache_dir;
  embedder_options.use_cache = !args.no_cache;
  set_embedder_timeout(args.timeout_seconds, &embedder_options);
  QaDataset dataset;
  check(read_dataset(args.dataset, &dataset));
  attach_metadata(args.metadata_file, read_metadata_file(args.metadata_file), &dataset.corpus);
  std::unique_ptr<Embedder> embedder;
  check(make_embedder(args.embedder, embedder_options, &embedder));
  std::unique_ptr<Store> store = open_store(args, embedder->dim());
  IngestOptions options;
  options.log_pairs = args.pairs == "log";
  options.batch_size = args.batch;
  options.show_progress = Progress::stderr_is_terminal();
  IngestCounts counts;
  check(ingest_dataset(*store, *embedder, dataset, options, &counts));
  check(store->flush());
  std::printf("committed %zu\nlogged %zu pairs\n", counts.documents, counts.pairs);
}

void ingest_vectors(const IngestArgs& args) {
  Matrix vectors;
  check(read_npy(args.npy, &vectors));
  std::vector<std::string> ids = read_ids(args.ids_file, vectors.rows);
  std::vector<Record> records(vectors.rows);
  for (size_t i = 0; i < vectors.rows; ++i) {
    records[i].id = std::move(ids[i]);
    records[i].vector.assign(vectors.row(i), vectors.row(i) + vectors.cols);
  }
  attach_metadata(args.metadata_file, read_metadata_file(args.metadata_file), &records);
  std::unique_ptr<Store> store = open_store(args, static_cast<int>(vectors.cols));
  write_batches(store.get(), records, args.batch);
  check(store->flush());
}

void run_ingest(const IngestArgs& args) {
  if (args.batch == 0) throw Failure{"--batch must be at least 1"};
  if (args.npy.empty() == args.dataset.empty()) throw Failure{"give exactly one of --npy and --dataset"};
  // A failed ingest into a path that held nothing leaves nothing there: the
  // empty store it made kept the failed run's dimension, metric and index,
  // and refused the next try ("store has dim 8, options ask for 16").
  std::error_code ec;
  const bool was_there = std::filesystem::exists(args.db, ec);
  try {
    args.dataset.empty() ? ingest_vectors(args) : ingest_text_dataset(args);
  } catch (const Failure& failure) {
    if (was_there || !std::filesystem::exists(args.db, ec)) throw;
    std::filesystem::remove_all(args.db, ec);  // batches it reported committed go with it
    throw Failure{failure.message + " (the new store " + args.db + " was removed)"};
  } catch (...) {
    if (!was_there) std::filesystem::remove_all(args.db, ec);
    throw;
  }
}

}  // namespace

void add_ingest_command(CLI::App& app) {
  auto args = std::make_shared<IngestArgs>();
  CLI::App* cmd = app.add_subcommand("ingest", "Create or extend a store from vectors or a text dataset");
  cmd->add_option("db", args->db, "Store directory")->required();
  CLI::Option* npy = cmd->add_option("--npy", args->npy, "Vectors, a float32 (rows x dim) .npy file");
  cmd->add_option("--ids", args->ids_file, "With --npy: ids, one per line (default: the row numbers)")
      ->needs(npy);
  cmd->add_option("--metadata", args->metadata_file,
                  "Metadata for filters: JSON lines {\"id\": ..., \"metadata\": {...}} (with --dataset it "
                  "replaces a document's own)");
  CLI::Option* dataset = cmd->add_option(
      "--dataset", args->dataset,
      "A dataset (LlamaIndex JSON, BEIR folder or JSONL pairs): its corpus is embedded and stored");
  // The flags of one input given with the other were ignored without a word.
  cmd->add_option("--embedder", args->embedder,
                  "With --dataset: default, bert:DIR, openai:MODEL or command:CMD")
      ->capture_default_str()
      ->needs(dataset);
  add_embedder_timeout(cmd, &args->timeout_seconds)->needs(dataset);
  cmd->add_option("--pairs", args->pairs, "With --dataset: log its (query, relevant doc) pairs, or none")
      ->capture_default_str()
      ->needs(dataset);
  cmd->add_option("--cache-dir", args->cache_dir,
                  "Embedding cache (default $EMBEDAPT_CACHE_DIR or ~/.cache/embedapt)")
      ->needs(dataset);
  cmd->add_flag("--no-cache", args->no_cache, "Neither read nor write the embedding cache")->needs(dataset);
  cmd->add_option("--index", args->index_spec, "FAISS factory string for a new store (default Flat)");
  cmd->add_option("--metric", args->metric, "cosine, ip or l2, for a new store (default cosine)");
  cmd->add_option("--batch", args->batch, "Rows (or texts) per atomic, durable batch")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_flag("--trust-code", args->trust_code, "Allow a TorchScript active adapter (it is code)");
  cmd->callback([args] { run_ingest(*args); });
}

}  // namespace embedapt::cli
