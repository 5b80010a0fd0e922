// `embedapt embed`: texts in (JSON lines), vectors out (.npy or JSON lines),
// through any embedder spec and the cache. Scripts (e.g. a LlamaIndex
// wrapper) call it to use embedapt's embedders from another language.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/json.h"
#include "core/common/npy.h"
#include "core/common/progress.h"
#include "embedapt/embedder.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {

namespace {

// Texts go to the embedder in chunks this size, so the cache keeps what is
// done if a long run is interrupted, and the progress bar moves.
constexpr size_t kChunk = 256;

struct EmbedArgs {
  std::string embedder = "default";
  bool query = false;
  std::string input = "-";
  std::string out;
  std::string cache_dir;
  bool no_cache = false;
  std::string api_base_url;
  std::string api_key_env;
  int dimensions = 0;
  std::optional<double> timeout_seconds;
  bool progress = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Each non-blank line is a JSON string or an object with a string "text".
std::vector<std::string> read_texts(const std::string& input) {
  std::string data;
  std::string name = input == "-" ? "<stdin>" : input;
  if (input == "-") {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    data = std::move(buffer).str();
  } else {
    check(read_file(input, &data));
  }
  std::vector<std::string> texts;
  std::istringstream lines(data);
  std::string line;
  for (size_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto where = [&] { return name + ":" + std::to_string(number) + ": "; };
    nlohmann::json value;
    check(parse_json(line, name + ":" + std::to_string(number), &value));
    if (value.is_object() && value.contains("text")) value = value["text"];
    if (!value.is_string())
      throw Failure{where() + "expected a JSON string or an object with a string \"text\""};
    texts.push_back(value.get<std::string>());
  }
  return texts;
}

std::string to_jsonl(const std::vector<float>& rows, size_t dim) {
  std::string out;
  for (size_t begin = 0; begin < rows.size(); begin += dim) {
    out += '[';
    for (size_t j = 0; j < dim; ++j) {
      if (j > 0) out += ',';
      out += fmt::format("{}", rows[begin + j]);  // shortest form that reads back exactly
    }
    out += "]\n";
  }
  return out;
}

void run_embed(const EmbedArgs& args) {
  const bool npy = ends_with(args.out, ".npy");
  if (!npy && !ends_with(args.out, ".jsonl"))
    throw Failure{"--out " + args.out + ": must end in .npy or .jsonl"};
  EmbedderOptions options;
  options.cache_dir = args.cache_dir;
  options.use_cache = !args.no_cache;
  options.api_base_url = args.api_base_url;
  options.dimensions = args.dimensions;
  set_embedder_timeout(args.timeout_seconds, &options);
  if (!args.api_key_env.empty()) {
    const char* key = std::getenv(args.api_key_env.c_str());
    if (key == nullptr || key[0] == '\0') {
      throw Failure{"--api-key-env " + args.api_key_env + ": the variable is not set"};
    }
    options.api_key = key;
  }
  std::vector<std::string> texts = read_texts(args.input);

  std::unique_ptr<Embedder> embedder;
  check(make_embedder(args.embedder, options, &embedder));
  const size_t dim = static_cast<size_t>(embedder->dim());
  const EmbedSide side = args.query ? EmbedSide::kQuery : EmbedSide::kDocument;
  std::vector<float> rows;
  rows.reserve(texts.size() * dim);
  {
    Progress progress("embedding", texts.size(), args.progress || Progress::stderr_is_terminal());
    for (size_t begin = 0; begin < texts.size(); begin += kChunk) {
      size_t end = std::min(texts.size(), begin + kChunk);
      std::vector<std::string> chunk(texts.begin() + begin, texts.begin() + end);
      check(embedder->embed(chunk, side, &rows));
      progress.add(chunk.size());
    }
  }
  if (npy) {
    Matrix m;
    m.rows = texts.size();
    m.cols = dim;
    m.data = std::move(rows);
    check(write_npy(args.out, m));
  } else {
    check(write_file_atomic(args.out, to_jsonl(rows, dim)));
  }
}

}  // namespace

void add_embed_command(CLI::App& app) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* cmd = app.add_subcommand("embed", "Embed texts (JSON lines) with an embedder; write vectors");
  cmd->add_option("--embedder", args->embedder, "default, bert:DIR, openai:MODEL or command:CMD")
      ->capture_default_str();
  cmd->add_flag("--query", args->query, "Embed the texts as queries (default: as documents)");
  cmd->add_option("--input", args->input, "JSON lines: strings or objects with \"text\"; - for stdin")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Output: .npy (float32 rows) or .jsonl (one array a line)")->required();
  cmd->add_option("--cache-dir", args->cache_dir,
                  "Embedding cache (default $EMBEDAPT_CACHE_DIR or ~/.cache/embedapt)");
  cmd->add_flag("--no-cache", args->no_cache, "Neither read nor write the embedding cache");
  cmd->add_option("--api-base-url", args->api_base_url,
                  "openai: endpoint base (default $OPENAI_BASE_URL or https://api.openai.com/v1)");
  cmd->add_option("--api-key-env", args->api_key_env,
                  "openai: the variable holding the key (default OPENAI_API_KEY)");
  cmd->add_option("--dimensions", args->dimensions,
                  "openai: ask for this many dimensions (text-embedding-3)");
  add_embedder_timeout(cmd, &args->timeout_seconds);
  cmd->add_flag("--progress", args->progress, "Draw a progress bar on stderr even when it is not a terminal");
  cmd->callback([args] { run_embed(*args); });
}

}  // namespace embedapt::cli
