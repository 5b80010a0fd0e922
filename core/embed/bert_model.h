// The BERT transformer itself: embeddings, encoder layers and pooling, run on
// LibTorch with the weights of a Hugging Face BertModel. Knows nothing about
// tokenizers or sentence-transformers directories (bert.cpp reads those).
// Torch is hidden behind a pointer so includers do not compile it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/common/safetensors.h"
#include "embedapt/status.h"

namespace embedapt {

struct SentencePooling {
  enum class Mode { kCls, kMean };
  Mode mode = Mode::kMean;
  bool normalize = false;  // L2-normalise the pooled vector
  // Mean pooling ignores the first `skip_tokens` positions (a prompt that
  // sentence-transformers excludes from the mean); CLS pooling ignores it.
  size_t skip_tokens = 0;
};

class BertModel {
 public:
  ~BertModel();

  // `config_json` is config.json's text; `weights` the tensors of
  // model.safetensors (names with or without the "bert." prefix). `source`
  // names the directory in messages. NotSupported for architectures this
  // encoder does not implement; Corruption for missing or misshapen weights.
  static Status load(const std::string& config_json, const TensorMap& weights, const std::string& source,
                     std::unique_ptr<BertModel>* out);

  int hidden_size() const;
  size_t max_positions() const;

  // Writes sequences.size() * hidden_size() floats to `out`, one pooled row
  // per sequence, in order. Each sequence is [CLS] ... [SEP], 1..max_positions()
  // ids below the vocabulary size. Sequences are packed without padding into
  // passes of a few thousand tokens, so a sequence's vector does not depend on
  // the others beside it (beyond float rounding). Uses the calling thread's
  // torch thread count.
  Status embed(const std::vector<std::vector<int32_t>>& sequences, const SentencePooling& pooling,
               float* out) const;

 private:
  struct Weights;
  struct Scratch;
  explicit BertModel(std::unique_ptr<Weights> weights);

  // Runs sequences[first, end) (`tokens` ids in all) and writes their rows.
  void run_pass(const std::vector<std::vector<int32_t>>& sequences, size_t first, size_t end, int64_t tokens,
                const SentencePooling& pooling, Scratch* scratch, float* out) const;

  std::unique_ptr<Weights> weights_;
};

}  // namespace embedapt
