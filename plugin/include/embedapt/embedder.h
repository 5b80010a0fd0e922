// Embedder: the black-box embedding model, behind one interface.
//
// Specs name an embedder: "default" (the bundled BERT-family model),
// "bert:DIR" (a Hugging Face model directory), "openai:MODEL" (any
// OpenAI-compatible /v1/embeddings endpoint), "command:CMD" (a subprocess
// speaking JSON lines). Wrapped in a cache, each distinct text is embedded once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

// Queries and documents may be embedded differently (e.g. an instruction
// prefix for queries), so every call names the side.
enum class EmbedSide { kQuery, kDocument };

class Embedder {
 public:
  virtual ~Embedder() = default;

  virtual int dim() const = 0;

  // Names everything that changes the vectors: model, revision, prompts,
  // pooling, normalisation. Caches key on it; adapters record it.
  virtual const std::string& identity() const = 0;

  // Appends texts.size() * dim() floats, row-major, to *out.
  virtual Status embed(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) = 0;
};

struct EmbedderOptions {
  std::string models_dir;  // where "default" looks for its model ("" = built-in search path)
  // The embedding cache ("" = $EMBEDAPT_CACHE_DIR, $XDG_CACHE_HOME/embedapt or ~/.cache/embedapt).
  std::string cache_dir;
  bool use_cache = true;
  std::string api_base_url;    // openai: ("" = $OPENAI_BASE_URL or https://api.openai.com/v1)
  std::string api_key;         // openai: ("" = $OPENAI_API_KEY); never logged or written
  int dimensions = 0;          // openai: ask for this many dimensions (text-embedding-3); 0 = the model's
  int threads = 0;             // 0 = hardware concurrency
  bool show_progress = false;  // progress bar on stderr
  // command: longest wait for the child to take a request and answer it (<= 0: no limit).
  double command_timeout_seconds = 300;
  // openai: longest wait for one HTTP attempt (each failed attempt may be
  // retried); 0.001 to 86400, or the first request fails saying so.
  double openai_timeout_seconds = 120;
};

// Sets both of `options`' request timeouts (command: and openai:) to
// `seconds`, one bound for whichever kind the spec names: the CLI's --timeout
// and Python's Embedder(timeout=). InvalidArgument, saying the range (0.001 to
// 86400, every HTTP timeout's), leaving `options` as they were, otherwise.
Status set_request_timeout(double seconds, EmbedderOptions* options);

// Creates the embedder a spec names, wrapped in the cache unless disabled.
Status make_embedder(const std::string& spec, const EmbedderOptions& options, std::unique_ptr<Embedder>* out);

}  // namespace embedapt
