// Throughput of the C++ BERT encoder on a dataset's texts: every corpus chunk
// embedded as a document, then every query as a query, in one call each (the
// encoder sorts and batches them). Prints one JSON line; with OUT.npy also
// writes the vectors (documents then queries, in file order) so the Python
// peer can check it computed the same thing.
//
//   encoder_bench MODEL_DIR DATASET.json THREADS REPEATS [OUT.npy]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/npy.h"
#include "core/embed/bert.h"
#include "tools/bench/bench_common.h"

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "encoder_bench: %s\n", message.c_str());
  return 1;
}

int run(int argc, char** argv) {
  using namespace embedapt;
  const char* usage = "usage: encoder_bench MODEL_DIR DATASET.json THREADS REPEATS [OUT.npy]";
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::puts(usage);
    return 0;
  }
  if (argc < 5) return fail(usage);
  const std::string model_dir = argv[1], dataset_path = argv[2];
  const int threads = std::atoi(argv[3]), repeats = std::atoi(argv[4]);
  if (threads <= 0 || repeats <= 0) return fail("THREADS and REPEATS must be positive");

  std::string text;
  Status s = read_file(dataset_path, &text);
  if (!s.ok()) return fail(s.ToString());
  // ordered_json keeps the file's order, which the Python peer sees too.
  auto dataset = nlohmann::ordered_json::parse(text, nullptr, false);
  if (dataset.is_discarded() || !dataset.contains("corpus") || !dataset.contains("queries")) {
    return fail(dataset_path + ": not an EmbeddingQAFinetuneDataset JSON file");
  }
  std::vector<std::string> documents, queries;
  for (const auto& [id, chunk] : dataset["corpus"].items()) documents.push_back(chunk.get<std::string>());
  for (const auto& [id, query] : dataset["queries"].items()) queries.push_back(query.get<std::string>());

  EmbedderOptions options;
  options.threads = threads;
  std::unique_ptr<Embedder> embedder;
  s = open_bert_embedder(model_dir, options, &embedder);
  if (!s.ok()) return fail(s.ToString());

  std::vector<float> vectors;
  s = embedder->embed({queries.begin(), queries.begin() + std::min<size_t>(32, queries.size())},
                      EmbedSide::kQuery, &vectors);  // warm-up: first-call allocations
  if (!s.ok()) return fail(s.ToString());

  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    vectors.clear();
    auto start = std::chrono::steady_clock::now();
    s = embedder->embed(documents, EmbedSide::kDocument, &vectors);
    if (s.ok()) s = embedder->embed(queries, EmbedSide::kQuery, &vectors);
    if (!s.ok()) return fail(s.ToString());
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (argc > 5) {
    Matrix m{documents.size() + queries.size(), static_cast<size_t>(embedder->dim()), std::move(vectors)};
    s = write_npy(argv[5], m);
    if (!s.ok()) return fail(s.ToString());
  }
  std::sort(seconds.begin(), seconds.end());
  nlohmann::json report = {{"impl", "embedapt C++ (LibTorch)"},
                           {"identity", embedder->identity()},
                           {"threads", threads},
                           {"documents", documents.size()},
                           {"queries", queries.size()},
                           {"seconds", seconds},
                           {"median_seconds", seconds[seconds.size() / 2]}};
  std::printf("%s\n", report.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return embedapt::bench::main_of("encoder_bench", run, argc, argv); }
