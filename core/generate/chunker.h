// Splitting documents into chunks of about `chunk_size` tokens along sentence
// boundaries, the unit `generate` asks questions about and `ingest` stores.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/generate/loader.h"
#include "embedapt/status.h"

namespace embedapt {

struct ChunkerOptions {
  // Tokens of the embedding model's tokenizer. The defaults and why they are
  // what they are: see docs/generate.md.
  size_t chunk_size = 1024;
  size_t chunk_overlap = 200;  // tokens repeated from the end of the previous chunk
};

struct Chunk {
  // Stable: a hash of the document name and the chunk's position in it, so the
  // same inputs and options give the same ids on every run and machine.
  std::string id;
  std::string document;  // Document::name
  int first_page = 1;
  int last_page = 1;
  std::string text;
};

// Counts the tokens of a piece of text (the model's WordPiece tokenizer).
using TokenCounter = std::function<size_t(std::string_view)>;

// InvalidArgument unless 0 < chunk_size and chunk_overlap < chunk_size.
Status validate(const ChunkerOptions& options);

// Splits `doc` into chunks: sentences (and, for text with no sentence end,
// lines, then words) are packed greedily up to chunk_size tokens; each chunk
// after the first starts with the last whole sentences of the previous one
// that fit in chunk_overlap tokens. A chunk may span pages. Blank pages give
// no chunk. Appends to *chunks; `options` must be valid.
void chunk_document(const Document& doc, const ChunkerOptions& options, const TokenCounter& count_tokens,
                    std::vector<Chunk>* chunks);

}  // namespace embedapt
