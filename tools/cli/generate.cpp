// `embedapt generate`: documents in, a question/chunk dataset out, by asking
// an LLM for questions about each chunk.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/http.h"
#include "core/common/progress.h"
#include "core/embed/bert.h"
#include "core/eval/dataset.h"
#include "core/generate/chunker.h"
#include "core/generate/dataset_builder.h"
#include "core/generate/generator.h"
#include "core/generate/loader.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {

namespace {

struct GenerateArgs {
  std::vector<std::string> inputs;
  std::string out;
  std::string llm_base_url;
  std::string llm_model;
  std::string api_key_env = "OPENAI_API_KEY";
  std::string prompt_file;
  std::string models_dir;
  int questions_per_chunk = 2;
  size_t chunk_size = ChunkerOptions{}.chunk_size;
  size_t chunk_overlap = ChunkerOptions{}.chunk_overlap;
  int concurrency = 4;
  double timeout_seconds = 120;
  int max_attempts = 6;
  double val_fraction = 0;
  uint64_t seed = 42;
  size_t max_chunks = 0;
  double price_per_1k_input = 0;
  double price_per_1k_output = 0;
  bool dry_run = false;
};

// Loads the inputs (reporting skipped files on stderr) and splits them into
// chunks counted with the default model's tokenizer.
std::vector<Chunk> load_chunks(const GenerateArgs& args) {
  std::vector<Document> documents;
  std::vector<Status> skipped;
  Status loaded = load_documents(args.inputs, &documents, &skipped);
  for (const Status& s : skipped) std::fprintf(stderr, "embedapt: skipped %s\n", s.message().c_str());
  check(loaded);

  ChunkerOptions chunking{args.chunk_size, args.chunk_overlap};
  check(validate(chunking));
  EmbedderOptions embedder_options;
  embedder_options.models_dir = args.models_dir;
  std::string model_dir;
  check(resolve_default_model_dir(embedder_options, &model_dir));
  std::unique_ptr<WordPieceTokenizer> tokenizer;
  check(load_model_tokenizer(model_dir, &tokenizer));
  auto count_tokens = [&tokenizer](std::string_view text) { return tokenizer->count_tokens(text); };

  std::vector<Chunk> chunks;
  for (const Document& doc : documents) chunk_document(doc, chunking, count_tokens, &chunks);
  if (chunks.empty()) throw Failure{"the inputs hold no text to ask questions about"};
  std::fprintf(stderr, "%zu documents, %zu chunks of up to %zu tokens\n", documents.size(), chunks.size(),
               args.chunk_size);
  return chunks;
}

std::string cost_line(const char* what, const ChatUsage& usage, const GenerateArgs& args) {
  std::string line = std::string(what) + ": " + std::to_string(usage.input_tokens) + " input + " +
                     std::to_string(usage.output_tokens) + " output tokens, estimated cost ";
  if (args.price_per_1k_input == 0 && args.price_per_1k_output == 0) {
    return line + "unknown (give --price-per-1k-input and --price-per-1k-output)";
  }
  double cost = static_cast<double>(usage.input_tokens) / 1000 * args.price_per_1k_input +
                static_cast<double>(usage.output_tokens) / 1000 * args.price_per_1k_output;
  char amount[32];
  std::snprintf(amount, sizeof amount, "%.4f", cost);
  return line + amount;
}

// "<dir>/<stem>_val<ext>" beside `out`.
std::string val_path(const std::string& out) {
  std::filesystem::path path(out);
  return (path.parent_path() / (path.stem().string() + "_val" + path.extension().string())).string();
}

// Checks CLI11's validators let through: NaN compares false with any bound
// (--timeout nan turned the timeout off and a stalled server hung the run).
void check_numbers(const GenerateArgs& args) {
  const std::string timeout = timeout_problem(args.timeout_seconds);
  if (!timeout.empty()) throw Failure{"--timeout: " + timeout};
  for (const auto& [flag, price] : {std::pair{"--price-per-1k-input", args.price_per_1k_input},
                                    std::pair{"--price-per-1k-output", args.price_per_1k_output}}) {
    if (!(price >= 0 && std::isfinite(price))) {
      throw Failure{std::string(flag) + ": a price must be a finite number >= 0, got " +
                    std::to_string(price)};
    }
  }
}

void run_generate(const GenerateArgs& args) {
  check_numbers(args);
  GenerateOptions options;
  if (!args.prompt_file.empty()) {
    Status read = read_file(args.prompt_file, &options.prompt);
    check(read);
    Status valid = validate_prompt(options.prompt);
    if (!valid.ok()) throw Failure{args.prompt_file + ": " + valid.message()};
  }
  std::vector<Chunk> chunks = load_chunks(args);
  if (args.dry_run) {
    std::printf("%s", render_prompt(options.prompt, chunks.front().text, args.questions_per_chunk).c_str());
    return;
  }
  if (args.llm_base_url.empty() || args.llm_model.empty()) {
    throw Failure{"--llm-base-url and --llm-model are required (unless --dry-run)"};
  }
  QaDataset train, val;
  // The split is checked before any question is paid for.
  Status splittable = build_datasets(chunks, {}, args.val_fraction, args.seed, &train, &val);
  if (!splittable.ok()) throw Failure{"--val-fraction: " + splittable.message()};

  options.chat.base_url = args.llm_base_url;
  options.chat.model = args.llm_model;
  const char* key = std::getenv(args.api_key_env.c_str());
  if (key != nullptr) options.chat.api_key = key;
  options.chat.retry.timeout_seconds = args.timeout_seconds;
  options.chat.retry.max_attempts = args.max_attempts;
  options.questions_per_chunk = args.questions_per_chunk;
  options.concurrency = args.concurrency;
  options.max_chunks = args.max_chunks;
  // The total is known once the journal is read, at the first call.
  std::unique_ptr<Progress> bar;
  size_t shown = 0;
  options.progress = [&bar, &shown](size_t done, size_t total) {
    if (!bar) bar = std::make_unique<Progress>("questions", total, Progress::stderr_is_terminal());
    bar->add(done - shown);
    shown = done;
  };

  GenerateResult result;
  std::string journal_path = args.out + ".journal";
  Status generated = generate_questions(chunks, options, journal_path, &result);
  bar.reset();  // ends the bar's line before the summary
  check(generated);

  std::fprintf(stderr, "%zu chunks asked, %zu answered by %s, %zu with fewer than %d clean questions\n",
               result.asked, result.from_journal, journal_path.c_str(), result.short_answers,
               args.questions_per_chunk);
  std::fprintf(stderr, "%s\n", cost_line("this run", result.usage, args).c_str());
  if (result.from_journal > 0) {
    std::fprintf(stderr, "%s\n", cost_line("earlier runs", result.journal_usage, args).c_str());
  }
  if (!result.failures.empty()) {
    for (const Status& failure : result.failures)
      std::fprintf(stderr, "embedapt: %s\n", failure.message().c_str());
    throw Failure{std::to_string(result.failures.size()) + " chunks failed; " + args.out +
                  " not written. Rerun the same command: answers so far are kept in " + journal_path};
  }

  size_t used = args.max_chunks == 0 ? chunks.size() : std::min(args.max_chunks, chunks.size());
  chunks.resize(used);
  check(build_datasets(chunks, result.questions, args.val_fraction, args.seed, &train, &val));
  check(write_llamaindex_json(args.out, train));
  std::fprintf(stderr, "%s: %zu questions over %zu chunks\n", args.out.c_str(), train.queries.size(),
               train.corpus.size());
  if (args.val_fraction > 0) {
    std::string path = val_path(args.out);
    check(write_llamaindex_json(path, val));
    std::fprintf(stderr, "%s: %zu questions over %zu chunks\n", path.c_str(), val.queries.size(),
                 val.corpus.size());
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Split documents into chunks and ask an LLM for questions about each: a dataset for ingest");
  cmd->add_option("inputs", args->inputs, "PDF, .txt, .md or .html files, or folders of them")->required();
  cmd->add_option("--out", args->out, "The dataset to write (LlamaIndex JSON); OUT.journal keeps progress")
      ->required();
  cmd->add_option("--llm-base-url", args->llm_base_url,
                  "OpenAI-compatible API base, e.g. https://api.openai.com/v1");
  cmd->add_option("--llm-model", args->llm_model, "The chat model to ask");
  cmd->add_option("--api-key-env", args->api_key_env, "The environment variable holding the API key")
      ->capture_default_str();
  cmd->add_option("--prompt-file", args->prompt_file,
                  "A prompt replacing the built-in one; {chunk} and {n} are substituted");
  cmd->add_option("--questions-per-chunk", args->questions_per_chunk, "Questions to ask per chunk")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  cmd->add_option("--chunk-size", args->chunk_size, "Tokens per chunk (the embedding model's tokenizer)")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_option("--chunk-overlap", args->chunk_overlap, "Tokens shared by consecutive chunks")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_option("--concurrency", args->concurrency, "Requests in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--timeout", args->timeout_seconds, "Seconds per request attempt")->capture_default_str();
  cmd->add_option("--max-attempts", args->max_attempts,
                  "Attempts per request (429, 5xx and timeouts retried)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_option("--val-fraction", args->val_fraction,
                  "Share of documents written to <out stem>_val.json instead")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the document split")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_option("--max-chunks", args->max_chunks, "Ask about the first N chunks only (0: all)")
      ->check(kNotNegative)
      ->capture_default_str();
  cmd->add_option("--price-per-1k-input", args->price_per_1k_input,
                  "Price of 1000 input tokens, for the estimate");
  cmd->add_option("--price-per-1k-output", args->price_per_1k_output,
                  "Price of 1000 output tokens, for the estimate");
  cmd->add_option("--models-dir", args->models_dir, "Where the default model (its tokenizer) is found");
  cmd->add_flag("--dry-run", args->dry_run, "Print the first chunk's prompt and stop; nothing is sent");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace embedapt::cli
