// "openai:MODEL": any OpenAI-compatible embeddings endpoint (OpenAI, vLLM,
// TEI, Ollama, a proxy), POST {base_url}/embeddings with
// {"model": MODEL, "input": [texts...]}.
//
// Texts go in batches, several requests in flight; each response's rows are
// put back in order by their "index". Transient failures are retried by
// http_send. The API key is sent as a bearer token and never appears in a
// Status message, even when a server quotes it back.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/common/http.h"
#include "embedapt/embedder.h"
#include "embedapt/status.h"

namespace embedapt {

struct OpenAIOptions {
  std::string model;
  std::string base_url;  // e.g. "https://api.openai.com/v1"
  std::string api_key;   // "" = send no Authorization header (local servers)
  int dimensions = 0;    // > 0: ask the API for this many (text-embedding-3 models)
  int known_dim = 0;     // > 0: the dimension is known (e.g. from the cache), skip the probe
  int batch_size = 64;   // texts per request
  int max_in_flight = 4;
  bool show_progress = false;
  RetryPolicy retry;
};

// The options "openai:MODEL" names given the embedder options: base URL from
// options.api_base_url, else $OPENAI_BASE_URL, else https://api.openai.com/v1;
// key from options.api_key, else $OPENAI_API_KEY; each attempt's timeout from
// options.openai_timeout_seconds.
OpenAIOptions openai_options(const std::string& model, const EmbedderOptions& options);

// "openai:MODEL@HOST[:PORT][PATH]" (plus "/dimensions=N" when asked for):
// what the vectors depend on, without the key; PATH is the base URL's path
// unless it is "/v1" or empty.
std::string openai_identity(const OpenAIOptions& options);

// Opens the embedder. Unless options.known_dim or options.dimensions says
// it, the dimension is learned by embedding one short text, so a wrong URL,
// model or key fails here. An empty text is refused (the API rejects it).
Status open_openai_embedder(const OpenAIOptions& options, std::unique_ptr<Embedder>* out);

// Reads an embeddings response {"data": [{"index": i, "embedding": [...]}]}
// for `n` texts of dimension `dim` (0: the first row decides) into *rows, in
// input order; kCorruption for anything else.
Status parse_openai_embeddings(const std::string& body, size_t n, size_t dim,
                               std::vector<std::vector<float>>* rows);

}  // namespace embedapt
