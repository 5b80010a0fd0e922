// The learning loop: train an adapter from a store's query log, store it as a
// new version, and activate it per a policy.
//
// The loop, from an app:
//   store->log_query(vector, dim, result_ids, &query_id);  // what the user asked, what they saw
//   store->log_hit(query_id, chosen_id);                    // what they chose
//   RetrainReport report;
//   retrain(store.get(), RetrainOptions(), &report);        // learn; activate only if better
//
// retrain() reads the logged queries with their hits and every stored
// document's raw vector through the store (it never calls the embedder),
// trains K fold nets and a final net for a number of epochs fixed in advance,
// ranks every logged query by the fold net that never saw it, and stores the
// final net only if that honest estimate beats the base model by a one-sided
// test (so a log without signal ships nothing, and small logs with a real
// gain do ship). Nothing is written before training ends: a crash or
// cancellation mid-training leaves the store as it was.
//
// The same call with the same options and the same store contents stores the
// same adapter bytes, whether it comes from C++, the C ABI (embedapt_retrain)
// or the CLI (`embedapt retrain`).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "embedapt/adapter.h"
#include "embedapt/status.h"

namespace embedapt {

class Store;

// What retrain() does with the version it stored.
enum class ActivationPolicy {
  kNever,     // store it only
  kIfBetter,  // activate it if it beats the active version on the logged queries (or none is active)
  kAlways,    // activate it
};

struct RetrainOptions {
  // The adapter: "linear", "two-layer", "torchscript" (with torchscript_archive
  // and trust_code) or a kind registered through adapter_plugin.h.
  std::string kind = "linear";
  std::string torchscript_archive;  // kind "torchscript": the bytes of the scripted module file
  AdapterSide side = AdapterSide::kQuery;
  int hidden = 1024;  // two-layer only

  // Training; 0 or "" mean the trainer's default.
  int epochs = 0;  // every net trains exactly this many epochs, fixed in advance
  double lr = 0;
  std::string loss;    // "corpus", "in-batch" or "hard"
  int folds = 0;       // cross-validation folds over the logged queries (at least 2)
  uint64_t seed = 42;  // same seed, store contents and threads -> same adapter bytes
  // CPU threads while training: LibTorch's, and its BLAS's (OpenBLAS's count
  // is process-wide: while a retrain runs, the process's matrix products use
  // at most this many threads).
  int threads = 1;

  // Checkpoints every `checkpoint_every` optimiser steps to `checkpoint_dir`
  // ("" : none); with `resume`, continue from the checkpoint there.
  std::string checkpoint_dir;
  int checkpoint_every = 50;
  bool resume = false;

  // Required to train (and to compare against) TorchScript adapters: they are code.
  bool trust_code = false;

  ActivationPolicy activate = ActivationPolicy::kIfBetter;

  // If set, training stops soon after it becomes true and retrain() returns
  // Code::kUnavailable, having written nothing.
  const std::atomic<bool>* cancel = nullptr;
};

// Scores over the logged queries: hit@top_k, MRR@top_k and the reciprocal
// rank of the first relevant document at any depth. The adapter's are
// cross-validated: each query ranked by a fold net that never saw it (the
// base and the incumbent are scored on every query).
struct RetrainScore {
  double hit = 0;
  double mrr = 0;
  double rr = 0;
};

// A mean per-query gain over the base with its 95% interval (paired, normal
// approximation).
struct RetrainGain {
  double mean = 0, low = 0, high = 0;
};

struct RetrainReport {
  enum class Decision {
    kNoGain,     // the estimate did not clear the test: nothing stored, the store is unchanged
    kStored,     // stored as `version`, not activated (policy kNever)
    kNotBetter,  // stored as `version`, not activated: the active version scores at least as well
    kActivated,  // stored as `version` and activated
  };
  Decision decision = Decision::kNoGain;
  uint64_t version = 0;          // the stored version (0: none)
  uint64_t previous_active = 0;  // the version active when retrain() started (0: none)

  size_t queries = 0;       // logged queries trained on
  size_t pairs = 0;         // their (query, document) hits
  size_t dropped_hits = 0;  // logged hits whose document is no longer stored (skipped)
  int folds = 0;
  int top_k = 0;
  RetrainScore base;       // the base model (no adapter)
  RetrainScore adapter;    // cross-validated
  RetrainScore incumbent;  // the previously active version (if any)
  // The estimate the decision rests on: the adapter's per-query gains over
  // the base. The tested statistic is the log of the relevant document's
  // rank (log base rank - log adapter rank, per query); it ships when
  // gain_z >= min_gain_z (a one-sided test at 1%, or 1e-4; see signal_z)
  // and neither hit_gain's nor rr_gain's mean is negative (a log-rank gain
  // made of deep ranks rising while top ones fall does not ship).
  RetrainGain hit_gain;       // hit@top_k
  RetrainGain rr_gain;        // reciprocal rank
  RetrainGain log_rank_gain;  // the tested statistic; exp(-mean): the factor the ranks moved by
  double gain_z = 0;          // log_rank_gain's mean in standard errors
  double min_gain_z = 0;
  // The signal check: how far the base ranks the logged hits above where
  // random documents would rank, in standard errors. A log below
  // min_signal_z (random clicks, queries paired with the wrong hits, or a
  // mapping the base cannot see at all) must clear a stricter test (a
  // one-sided 1e-4 instead of 1%); min_gain_z is the bar that applied.
  double signal_z = 0;
  double min_signal_z = 0;
  int epochs_run = 0;
  // One line: the estimated gain with its interval, the rule and whether the
  // adapter passed it (also in the stored version's metrics_json).
  std::string summary;

  double read_seconds = 0;   // reading the log and the documents
  double train_seconds = 0;  // training and validation
  double store_seconds = 0;  // storing (and activating) the version
};

const char* DecisionName(RetrainReport::Decision decision);  // "no-gain", "stored", "not-better", "activated"

// Trains from `store`'s query log and stores and activates per `options`.
// A log without signal is not an error: ok() with decision kNoGain. Errors:
// kInvalidArgument for bad options or a log too small to validate on,
// kFailedPrecondition for TorchScript without trust_code, kUnavailable if
// cancelled, and the store's own errors.
Status retrain(Store* store, const RetrainOptions& options, RetrainReport* report);

// Retraining in the background (Options::background_retrain): once
// `after_hits` hits have been logged since the store was opened or last
// retrained, and at least `min_interval_seconds` after the last background
// retrain began, the store retrains on its own thread with `retrain`
// (activating per retrain.activate). Searches and writes go on meanwhile and
// wait only for the atomic swap of the active adapter (and, for an adapter
// of side kBoth, writes wait for the index rebuild an activation needs).
// Closing the store cancels a retrain still training (nothing of it is
// stored); one already storing its version finishes first. A crash at any
// point leaves the store as a crash without the retrain would.
struct BackgroundRetrain {
  uint64_t after_hits = 0;  // 0: off
  double min_interval_seconds = 600;
  // The retrain thread's nice value (Linux keeps one per thread), 0 to 19:
  // how much CPU it yields to the app's threads when a core is contended (a
  // free core it uses at any value). At 10 a contended core gives it about a
  // tenth of the time (CFS weights 110 to 1024), so searches keep their
  // latency and the retrain still finishes on a busy machine; at 19 it got
  // 3% against a search loop on a loaded 2-core machine.
  int nice = 10;
  RetrainOptions retrain;  // its `cancel` is the store's own
  // Called on the background thread after each retrain, with its outcome
  // (a cancelled one too). Must not destroy the store.
  std::function<void(const Status&, const RetrainReport&)> on_retrain;
};

}  // namespace embedapt
