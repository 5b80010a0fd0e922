// The trainer: fits an adapter to (query, relevant document) pairs.
//
// Input is vectors only (the logged raw query vectors and the raw vectors of
// ALL stored documents), so training never calls the embedder.
//
// Model selection is K-fold cross-validation over the logged queries: K fold
// nets, each trained without one fold and scored on it by exact search against
// every document, advance epoch by epoch in lockstep with a final net trained
// on every query. After each epoch every logged query has been scored once by
// a net that never saw it; the epoch with the best such score is kept (its
// final net's weights), training stops early when it stops improving, and an
// adapter ships only if that epoch beats the identity (the base embedder)
// clearly: the trainer never ships a regression.
//
// Folds are random over queries, not grouped by document: an adapter serves
// future queries, which (like the logged ones) mostly ask about documents that
// have been asked about before. Holding out whole documents instead estimates
// documents nobody has queried yet; on the 10-K training data it picked
// under-trained adapters (tools/experiments, tests/test_trainer_defaults.cpp).
//
// Torch-free on purpose: the CLI and tests include it without LibTorch.
#pragma once

#include <atomic>
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
  // The defaults (in-batch, lr 3e-4, up to 40 epochs) won on in-corpus halves
  // of the 10-K training data (tests/test_trainer_defaults.cpp): "corpus"
  // overfits 400-document corpora within a few epochs, lr 1e-4 needs twice
  // the epochs for the same gain, and 1e-3 overfits the two-layer net.
  std::string loss = "in-batch";
  double scale = 20;
  int hard_negatives = 16;
  // Adds identity_pull * ||w - w_init||^2 (summed over trainable tensors): a
  // prior that the base embedder is nearly right, which small logs need.
  double identity_pull = 0;

  // The optimiser: AdamW, linear warm-up then constant lr, gradient clipping.
  int epochs = 40;
  int batch_size = 32;
  double lr = 3e-4;
  double weight_decay = 0;  // AdamW's decay toward zero (not identity)
  int warmup_steps = 0;
  double clip_norm = 1.0;  // 0: no clipping
  // LibTorch intra-op threads while training (restored after). The nets are
  // small: splitting each op across threads costs more than it saves
  // (retrain of a 724-query log: 4.5 s on one thread, 12.7 s on two busy cores).
  int threads = 1;
  uint64_t seed = 42;  // same seed, data and threads -> same weights

  // Model selection: round(1 / val_fraction) folds, each holding out this
  // share of the logged queries (so at most 0.5: two folds).
  double val_fraction = 0.2;
  // Stop after this many epochs without a better validation score: longer
  // than the first epochs of a two-layer net, whose residual gate opens from 0.
  int patience = 10;
  int top_k = 5;  // validation metrics are hit@top_k and MRR@top_k
  // The best epoch ships only if its mean per-query gain over the base is at
  // least min_gain_z standard errors: picking the best of many epochs finds
  // one-standard-error "gains" on random labels.
  double min_gain_z = 2.0;
  // If set, also scored on every logged query (e.g. the store's active
  // adapter), so a caller can tell whether the new adapter beats it. The
  // incumbent may have been trained on those queries, so the comparison
  // favours it: a new adapter replaces it only when clearly better.
  std::shared_ptr<const Adapter> incumbent;

  // Checkpoints: every `checkpoint_every` steps (and at the end) to
  // `checkpoint_dir`; with `resume`, training continues from the checkpoint
  // there and ends with exactly the weights of an uninterrupted run.
  std::string checkpoint_dir;
  int checkpoint_every = 0;
  bool resume = false;
  // For tests of resume: stop (as if killed) after this many optimiser steps.
  int64_t stop_after_steps = 0;
  // If set, training stops at the next optimiser step after it becomes true
  // (a store closing while it retrains in the background).
  const std::atomic<bool>* cancel = nullptr;
};

struct TrainingSet {
  Matrix docs;                                // raw document vectors, one row per document
  Matrix queries;                             // raw query vectors, one row per logged query
  std::vector<std::vector<size_t>> relevant;  // per query: rows of `docs` it hit
};

struct ValidationScore {
  double hit = 0;  // mean hit@top_k
  double mrr = 0;  // mean MRR@top_k
  // The selection score: the mean of the two (MRR alone is noisy at the top,
  // hit alone is coarse on a few dozen queries).
  double score() const { return (hit + mrr) / 2; }
};

struct EpochReport {
  int epoch = 0;               // 1-based
  double train_loss = 0;       // the final net's mean batch loss
  ValidationScore validation;  // cross-validated over every logged query
};

struct TrainResult {
  // True if an adapter beat the base on validation; then config_json and
  // weights hold it (load_adapter() reads them), else they are empty.
  bool improved = false;
  std::string config_json;
  std::string weights;

  ValidationScore base;       // the identity on every logged query
  ValidationScore best;       // the best epoch, cross-validated
  ValidationScore incumbent;  // TrainOptions::incumbent on every logged query, if given
  double gain_z = 0;          // the best epoch's paired gain over base, in standard errors
  int best_epoch = 0;         // 0: no epoch beat the base
  std::vector<EpochReport> epochs;
  size_t queries = 0;  // logged queries, each held out by one of `folds` folds
  int folds = 0;
  bool stopped_early = false;
  bool interrupted = false;  // stop_after_steps was reached or cancel was set

  // {"loss", "top_k", "queries", "folds", "base": {"hit_rate", "mrr"},
  //  "adapter": {...}, "best_epoch", "epochs_run", "gain_z", "improved", "epochs": [...]}
  std::string metrics_json(const TrainOptions& options) const;
};

Status train_adapter(const TrainingSet& data, const TrainOptions& options, TrainResult* result);

}  // namespace embedapt
