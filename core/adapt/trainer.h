// The trainer: fits an adapter to (query, relevant document) pairs.
//
// Input is vectors only (the logged raw query vectors and the raw vectors of
// ALL stored documents), so training never calls the embedder. The trainer
// holds out a validation split, scores every epoch by exact search of the
// held-out queries against every document, keeps the best epoch, stops early,
// and produces an adapter only if that best epoch beats the identity (the base
// embedder) on validation: it never ships a regression.
//
// Torch-free on purpose: the CLI and tests include it without LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/common/npy.h"
#include "embedapt/adapter.h"
#include "embedapt/status.h"

namespace embedapt {

struct TrainOptions {
  // The adapter.
  std::string kind = "linear";  // "linear", "two-layer", "torchscript" or a registered kind
  AdapterSide side = AdapterSide::kQuery;
  int hidden = 1024;                // two-layer only
  std::string torchscript_archive;  // kind "torchscript": the bytes of the scripted module file
  bool trust_code = false;          // required for "torchscript"
  std::string embedder;             // identity of the embedder, written into the config

  // The objective. Logits are `scale` * cosine (scale = 1 / temperature).
  //   "corpus":   softmax over every document (the retrieval task itself);
  //   "in-batch": softmax over the batch's documents (the seed's loss);
  //   "hard":     softmax over the positive and the `hard_negatives` documents
  //               the current adapter ranks highest, mined again every epoch.
  // The defaults (in-batch, lr 1e-4) won on the validation splits of the
  // training logs in tools/experiments (see tests/test_trainer_defaults.cpp):
  // "corpus" overfits 400-document corpora within one or two epochs.
  std::string loss = "in-batch";
  double scale = 20;
  int hard_negatives = 16;
  // Adds identity_pull * ||w - w_init||^2 (summed over trainable tensors): a
  // prior that the base embedder is nearly right, which small logs need.
  double identity_pull = 0;

  // The optimiser: AdamW, linear warm-up then constant lr, gradient clipping.
  int epochs = 30;
  int batch_size = 32;
  double lr = 1e-4;
  double weight_decay = 0;  // AdamW's decay toward zero (not identity)
  int warmup_steps = 0;
  double clip_norm = 1.0;  // 0: no clipping
  int threads = 0;         // LibTorch intra-op threads (0: its default)
  uint64_t seed = 42;      // same seed, data and threads -> same weights

  // Model selection.
  double val_fraction = 0.2;
  int patience = 5;  // stop after this many epochs without a better validation score
  int top_k = 5;     // validation metrics are hit@top_k and MRR@top_k
  // The best epoch ships only if its mean per-query gain over the base is at
  // least min_gain_z standard errors: picking the best of many epochs on a
  // few hundred queries finds one-standard-error "gains" on random labels.
  double min_gain_z = 2.0;
  // If set, also scored on the validation split (e.g. the store's active
  // adapter), so a caller can tell whether the new adapter beats it.
  std::shared_ptr<const Adapter> incumbent;

  // Checkpoints: every `checkpoint_every` steps (and at the end) to
  // `checkpoint_dir`; with `resume`, training continues from the checkpoint
  // there and ends with exactly the weights of an uninterrupted run.
  std::string checkpoint_dir;
  int checkpoint_every = 0;
  bool resume = false;
  // For tests of resume: stop (as if killed) after this many optimiser steps.
  int64_t stop_after_steps = 0;
};

struct TrainingSet {
  Matrix docs;                                // raw document vectors, one row per document
  Matrix queries;                             // raw query vectors, one row per logged query
  std::vector<std::vector<size_t>> relevant;  // per query: rows of `docs` it hit
  // Per query, when it was logged. If the times differ, the validation split
  // is the latest queries; otherwise it is grouped by document (all queries of
  // a held-out document are held out), so validation measures new documents'
  // queries rather than paraphrases of training ones.
  std::vector<int64_t> time_unix;
};

struct ValidationScore {
  double hit = 0;  // mean hit@top_k
  double mrr = 0;  // mean MRR@top_k
  // The selection score: the mean of the two (MRR alone is noisy at the top,
  // hit alone is coarse on a few dozen queries).
  double score() const { return (hit + mrr) / 2; }
};

struct EpochReport {
  int epoch = 0;  // 1-based
  double train_loss = 0;
  ValidationScore validation;
};

struct TrainResult {
  // True if an adapter beat the base on validation; then config_json and
  // weights hold it (load_adapter() reads them), else they are empty.
  bool improved = false;
  std::string config_json;
  std::string weights;

  ValidationScore base;       // the identity on the validation split
  ValidationScore best;       // the best epoch
  ValidationScore incumbent;  // TrainOptions::incumbent, if given
  double gain_z = 0;          // the best epoch's paired gain over base, in standard errors
  int best_epoch = 0;         // 0: no epoch beat the base
  std::vector<EpochReport> epochs;
  size_t train_queries = 0;
  size_t val_queries = 0;
  bool stopped_early = false;
  bool interrupted = false;  // stop_after_steps was reached

  // {"loss", "top_k", "train_queries", "val_queries", "base": {"hit_rate", "mrr"},
  //  "adapter": {...}, "best_epoch", "epochs_run", "gain_z", "improved"}
  std::string metrics_json(const TrainOptions& options) const;
};

Status train_adapter(const TrainingSet& data, const TrainOptions& options, TrainResult* result);

}  // namespace embedapt
