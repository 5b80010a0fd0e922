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
  // Tokens of the embedding model's tokenizer. The defaults are LlamaIndex
  // SentenceSplitter's (1024, overlap 200; not 20). Chunking each PDF page on
  // its own as LlamaIndex does, they give 372 chunks for the shared
  // uber_2021.pdf (LlamaIndex: 410) and 289 for lyft_2021.pdf (344); the gap
  // is LlamaIndex counting page metadata against the size. Overlap 20 would
  // give the same counts here, since few pages need more than one chunk.
  size_t chunk_size = 1024;
  size_t chunk_overlap = 200;  // tokens repeated from the end of the previous chunk
};

struct Chunk {
  // Stable: a hash of the document name, the page and the chunk's place on
  // it, so the same inputs and options give the same ids on every run.
  std::string id;
  std::string document;  // Document::name
  int page = 1;
  std::string text;
};

// Counts the tokens of a piece of text (the model's WordPiece tokenizer).
using TokenCounter = std::function<size_t(std::string_view)>;

// InvalidArgument unless 0 < chunk_size and chunk_overlap < chunk_size.
Status validate(const ChunkerOptions& options);

// Splits `doc` into chunks, each page on its own (as LlamaIndex reads a PDF
// as one document per page): sentences (and, for text with no sentence end,
// lines, then words) are packed greedily up to chunk_size tokens; each chunk
// after a page's first starts with the last whole sentences of the previous
// one that fit in chunk_overlap tokens. Blank pages give no chunk. Appends
// to *chunks; `options` must be valid.
void chunk_document(const Document& doc, const ChunkerOptions& options, const TokenCounter& count_tokens,
                    std::vector<Chunk>* chunks);

}  // namespace embedapt
