// The offline sentence encoder: a BERT-family Hugging Face model directory
// (config.json, model.safetensors, vocab.txt, tokenizer_config.json and the
// sentence-transformers configs) run on LibTorch, no Python at run time.
//
// Torch stays out of this header: only bert.cpp pays its compile time.
#pragma once

#include <memory>
#include <string>

#include "core/embed/tokenizer.h"
#include "embedapt/embedder.h"
#include "embedapt/status.h"

namespace embedapt {

// The directory "default" names, the first that holds a model.safetensors of:
// options.models_dir/all-MiniLM-L6-v2 (or options.models_dir itself),
// $EMBEDAPT_MODELS_DIR (likewise), <exe dir>/../../models/all-MiniLM-L6-v2
// (the build tree), <exe dir>/../share/embedapt/models/all-MiniLM-L6-v2
// (installed), then the source tree's models/. NotFound says to run
// `make models` when none does.
Status resolve_default_model_dir(const EmbedderOptions& options, std::string* dir);

// Loads the model in `model_dir`. The embedder is uncached (make_embedder
// wraps it), thread-compatible (one embed() call at a time), and uses
// options.threads CPU threads (0 = all). Its identity names the weights,
// prompts, pooling, normalisation and max length, so it changes with any.
Status open_bert_embedder(const std::string& model_dir, const EmbedderOptions& options,
                          std::unique_ptr<Embedder>* out);

// The tokenizer the model in `model_dir` uses (vocab.txt with the casing
// rules of tokenizer_config.json), e.g. for counting tokens when chunking.
Status load_model_tokenizer(const std::string& model_dir, std::unique_ptr<WordPieceTokenizer>* out);

}  // namespace embedapt
