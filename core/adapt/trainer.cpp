// The trainer, top to bottom: check the input, deal the queries into folds,
// build the fold nets and the final net, rank the base, (resume,) train them
// epoch by epoch in lockstep for the fixed number of epochs, rank every query
// by the fold net that never saw it, and ship the final net only if the
// per-query gains over the base clear a one-sided test (in log rank; hit@k
// and reciprocal rank must not fall).
#include "core/adapt/trainer.h"

#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/adapt/compute_threads.h"
#include "core/common/files.h"
#include "core/common/safetensors.h"
#include "core/common/sha256.h"
#include "embedapt/adapter_plugin.h"

namespace embedapt {

namespace {

namespace F = torch::nn::functional;

constexpr std::pair<Loss, const char*> kLossNames[] = {
    {Loss::kCorpus, "corpus"}, {Loss::kInBatch, "in-batch"}, {Loss::kHard, "hard"}};

// ---------------------------------------------------------------- the input

Status check_input(const TrainingSet& data, const TrainOptions& o) {
  if (data.docs.rows == 0) return Status::InvalidArgument("training: no documents");
  if (data.queries.rows == 0) return Status::InvalidArgument("training: no logged query/hit pairs");
  if (data.queries.cols != data.docs.cols) {
    return Status::InvalidArgument("training: queries have " + std::to_string(data.queries.cols) +
                                   " dimensions, documents " + std::to_string(data.docs.cols));
  }
  if (data.relevant.size() != data.queries.rows) {
    return Status::InvalidArgument("training: relevant lists do not match the queries");
  }
  for (const auto& rows : data.relevant) {
    if (rows.empty()) return Status::InvalidArgument("training: a query has no relevant document");
    for (size_t r : rows) {
      if (r >= data.docs.rows) return Status::InvalidArgument("training: relevant row out of range");
    }
  }
  if (o.epochs < 1 || o.batch_size < 1 || o.threads < 1 || !(o.lr > 0) || !(o.scale > 0) ||
      o.hard_negatives < 1 || o.identity_pull < 0 || o.weight_decay < 0 || o.warmup_steps < 0 ||
      o.clip_norm < 0 || o.top_k < 1 || o.folds < 0 || o.folds == 1 || o.epoch_pairs < 1 ||
      o.scoring_budget < 1 || !(o.residual_lr >= 0)) {
    return Status::InvalidArgument(
        "training: epochs, epoch pairs, batch size, threads, lr, scale, hard negatives, top-k and the "
        "scoring "
        "budget must be positive, folds 0 or at least 2; pull, weight decay, warm-up, clipping and the "
        "residual lr non-negative");
  }
  if (o.resume && o.checkpoint_dir.empty()) {
    return Status::InvalidArgument("training: resume needs a checkpoint directory");
  }
  return Status::OK();
}

// ---------------------------------------------------------------- the folds

// A seeded deal of the queries into o.folds folds of equal size (within
// one): fold_of[q] for each query row.
Status deal_folds(size_t n, const TrainOptions& o, std::vector<int>* fold_of) {
  if (n < static_cast<size_t>(o.folds)) {
    return Status::InvalidArgument("training: " + std::to_string(n) + " logged queries are too few for " +
                                   std::to_string(o.folds) + "-fold cross-validation");
  }
  fold_of->assign(n, 0);
  if (o.folds == 0) return Status::OK();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < n; ++i) (*fold_of)[order[i]] = static_cast<int>(i % o.folds);
  return Status::OK();
}

// The query rows the estimate ranks, ascending: all n, or on a big store a
// seeded sample sized to o.scoring_budget (see there).
std::vector<size_t> scored_queries(size_t n, size_t docs, const TrainOptions& o) {
  constexpr size_t kMinScored = 2000;
  const size_t budget = std::max(kMinScored, static_cast<size_t>(o.scoring_budget) / docs);
  std::vector<size_t> rows(n);
  std::iota(rows.begin(), rows.end(), 0);
  if (n <= budget) return rows;
  std::mt19937_64 rng(o.seed ^ 0x5C0EDULL);  // a stream apart from the folds' deal
  std::shuffle(rows.begin(), rows.end(), rng);
  rows.resize(budget);
  std::sort(rows.begin(), rows.end());
  return rows;
}

// ---------------------------------------------------------------- the net

std::string config_for(const TrainOptions& o, int in_dim, int out_dim) {
  nlohmann::json j = {{"kind", o.kind},
                      {"in_dim", in_dim},
                      {"out_dim", out_dim},
                      {"side", AdapterSideName(o.side)},
                      {"embedder", o.embedder}};
  if (o.kind == "linear") j["bias"] = false;
  if (o.kind == "two-layer") {
    j["hidden"] = o.hidden;
    j["activation"] = "relu";
    j["skip"] = "linear";
  }
  return j.dump();
}

Status build_net(const TrainOptions& o, int dim, std::string* config_json, std::shared_ptr<AdapterNet>* net) {
  torch::manual_seed(o.seed);  // the only torch randomness: initial weights
  if (o.kind == "torchscript") {
    EMBEDAPT_RETURN_IF_ERROR(load_torchscript_net(o.torchscript_archive, {o.trust_code}, net));
    torch::NoGradGuard no_grad;
    torch::Tensor probe = (*net)->forward(torch::zeros({1, dim}));
    if (probe.dim() != 2 || probe.size(0) != 1 || probe.scalar_type() != torch::kFloat32) {
      return Status::InvalidArgument("torchscript adapter: forward([1, " + std::to_string(dim) +
                                     "]) must return a float [1, out_dim] tensor");
    }
    *config_json = config_for(o, dim, static_cast<int>(probe.size(1)));
  } else {
    *config_json = config_for(o, dim, dim);
    AdapterConfig config;
    EMBEDAPT_RETURN_IF_ERROR(parse_adapter_config(*config_json, &config));
    EMBEDAPT_RETURN_IF_ERROR(new_adapter_net(config, net));
  }
  AdapterConfig config;
  return parse_adapter_config(*config_json, &config);  // e.g. a "both" side needs out_dim == in_dim
}

std::vector<torch::Tensor> trainable(AdapterNet& net) {
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : net.named_tensors()) {
    if (t.requires_grad()) out.push_back(t);
  }
  return out;
}

// Unit vectors of the adapted queries and documents (the store's cosine).
torch::Tensor embed_queries(AdapterNet* net, const torch::Tensor& q) {
  return F::normalize(net ? net->forward(q) : q, F::NormalizeFuncOptions().dim(1));
}
torch::Tensor embed_docs(AdapterNet* net, AdapterSide side, const torch::Tensor& d) {
  bool adapt = net != nullptr && side == AdapterSide::kBoth;
  return F::normalize(adapt ? net->forward(d) : d, F::NormalizeFuncOptions().dim(1));
}

// ---------------------------------------------------------------- ranking

// Queries and documents are scored in blocks of this many rows: ranking and
// mining hold at most kBlock x kBlock scores (64 MB) whatever the number of
// queries and documents (a [queries x documents] matrix of 2,000 scored
// queries against 1M documents alone was 8 GB).
constexpr int64_t kBlock = 4096;

// Exact search of `queries` against every document: for each query, the rank
// (1-based) of its best-ranked relevant document, i.e. one plus the number of
// other documents scoring above it. net == nullptr is the base. The
// relevant documents' scores are computed apart from the block products (and
// may differ from them in the last bit), so they never count against their
// own query.
std::vector<int64_t> rank(AdapterNet* net, AdapterSide side, const torch::Tensor& queries,
                          const torch::Tensor& docs, const std::vector<std::vector<size_t>>& relevant) {
  torch::NoGradGuard no_grad;
  const float inf = std::numeric_limits<float>::infinity();
  const int64_t n_docs = docs.size(0);
  std::vector<int64_t> out;
  for (int64_t q0 = 0; q0 < queries.size(0); q0 += kBlock) {
    const int64_t q1 = std::min(queries.size(0), q0 + kBlock);
    const torch::Tensor q = embed_queries(net, queries.slice(0, q0, q1));
    std::vector<int64_t> pair_query, pair_doc;  // the block's (query, relevant document) pairs
    for (int64_t i = q0; i < q1; ++i) {
      for (size_t d : relevant[i]) {
        pair_query.push_back(i - q0);
        pair_doc.push_back(static_cast<int64_t>(d));
      }
    }
    const torch::Tensor pair_scores =
        (q.index_select(0, torch::tensor(pair_query, torch::kInt64)) *
         embed_docs(net, side, docs.index_select(0, torch::tensor(pair_doc, torch::kInt64))))
            .sum(1);
    std::vector<float> bar(q1 - q0, -inf);  // each query's best relevant score
    const auto scored = pair_scores.accessor<float, 1>();
    for (size_t p = 0; p < pair_query.size(); ++p) {
      bar[pair_query[p]] = std::max(bar[pair_query[p]], scored[static_cast<int64_t>(p)]);
    }
    const torch::Tensor best = torch::tensor(bar).unsqueeze(1);
    torch::Tensor above = torch::zeros({q1 - q0}, torch::kInt64);
    for (int64_t d0 = 0; d0 < n_docs; d0 += kBlock) {
      const int64_t d1 = std::min(n_docs, d0 + kBlock);
      torch::Tensor scores = q.matmul(embed_docs(net, side, docs.slice(0, d0, d1)).t());
      std::vector<int64_t> own;  // positions of the block's relevant documents in `scores`
      for (size_t p = 0; p < pair_doc.size(); ++p) {
        if (pair_doc[p] >= d0 && pair_doc[p] < d1)
          own.push_back(pair_query[p] * (d1 - d0) + pair_doc[p] - d0);
      }
      if (!own.empty()) scores.view(-1).index_fill_(0, torch::tensor(own, torch::kInt64), -inf);
      above += scores.gt(best).sum(1);
    }
    const auto counts = above.accessor<int64_t, 1>();
    for (int64_t i = 0; i < q1 - q0; ++i) out.push_back(counts[i] + 1);
  }
  return out;
}

// Scores a servable adapter (not a net) like rank() scores an epoch.
Status rank_adapter(const Adapter& adapter, const torch::Tensor& queries, const torch::Tensor& docs,
                    const std::vector<std::vector<size_t>>& relevant, std::vector<int64_t>* out) {
  if (adapter.in_dim() != queries.size(1)) {
    return Status::InvalidArgument("training: the incumbent adapter takes " +
                                   std::to_string(adapter.in_dim()) + " dimensions, the vectors have " +
                                   std::to_string(queries.size(1)));
  }
  auto apply = [&](const torch::Tensor& in, torch::Tensor* result) {
    *result = torch::empty({in.size(0), adapter.out_dim()});
    return adapter.apply(in.contiguous().data_ptr<float>(), in.size(0), result->data_ptr<float>());
  };
  torch::Tensor q, d = docs;
  EMBEDAPT_RETURN_IF_ERROR(apply(queries, &q));
  if (adapter.side() == AdapterSide::kBoth) EMBEDAPT_RETURN_IF_ERROR(apply(docs, &d));
  *out = rank(nullptr, AdapterSide::kQuery, q, d, relevant);
  return Status::OK();
}

// What a rank is worth: the log of the rank is the statistic the test uses
// (finer than hit@5 on a few dozen queries, and unlike the reciprocal rank
// not dominated by rank 1 against 2: see TrainOptions::min_gain_z); hit@top_k
// and the reciprocal rank guard the top of the ranking, MRR is reported.
double reciprocal(int64_t rank) { return 1.0 / static_cast<double>(rank); }
double log_rank(int64_t rank) { return std::log(static_cast<double>(rank)); }
double hit_at(int64_t rank, int k) { return rank <= k ? 1.0 : 0.0; }
double mrr_at(int64_t rank, int k) { return rank <= k ? reciprocal(rank) : 0.0; }

ValidationScore mean_score(const std::vector<int64_t>& ranks, int k) {
  ValidationScore v;
  for (int64_t r : ranks) {
    v.hit += hit_at(r, k) / static_cast<double>(ranks.size());
    v.mrr += mrr_at(r, k) / static_cast<double>(ranks.size());
    v.rr += reciprocal(r) / static_cast<double>(ranks.size());
  }
  return v;
}

// The probability that the best of `relevant` documents placed at random
// among `docs` ranks at or above `rank` (1-based; 0 for rank 0).
double chance_at_or_above(int64_t rank, size_t relevant, size_t docs) {
  double none_above = 1;  // none of them in the first `rank` places
  for (size_t i = 0; i < relevant; ++i) {
    const double left = static_cast<double>(docs) - static_cast<double>(rank) - static_cast<double>(i);
    none_above *= std::max(left, 0.0) / static_cast<double>(docs - i);
  }
  return 1 - none_above;
}

// TrainResult::signal_z. A mid-p value (half the probability of the rank
// itself) has mean exactly 1/2 and variance at most 1/12 under the null, so
// the z below is conservative for every corpus size.
double signal_z(const std::vector<int64_t>& base, const std::vector<std::vector<size_t>>& relevant,
                size_t docs) {
  double mean = 0;
  for (size_t q = 0; q < base.size(); ++q) {
    const size_t r = std::min(relevant[q].size(), docs);
    const double mid_p =
        (chance_at_or_above(base[q] - 1, r, docs) + chance_at_or_above(base[q], r, docs)) / 2;
    mean += mid_p / static_cast<double>(base.size());
  }
  return (0.5 - mean) / std::sqrt(1.0 / (12.0 * static_cast<double>(base.size())));
}

// Mean and 95% interval of per-query gains.
Gain gain_of(const std::vector<double>& diff, double* z) {
  const double n = static_cast<double>(diff.size());
  double mean = 0, var = 0;
  for (double d : diff) mean += d / n;
  for (double d : diff) var += (d - mean) * (d - mean) / std::max(n - 1, 1.0);
  const double se = std::sqrt(var / n);
  if (z != nullptr) {
    *z = se > 0 ? mean / se : mean > 0 ? std::numeric_limits<double>::infinity() : 0;
  }
  return {mean, mean - 1.96 * se, mean + 1.96 * se};
}

// ---------------------------------------------------------------- the loss

// Cross-entropy of each query's positive against its candidates; `negatives`
// holds the mined rows for the batch (loss "hard" only).
torch::Tensor batch_loss(AdapterNet& net, const TrainOptions& o, const torch::Tensor& queries,
                         const torch::Tensor& positives, const torch::Tensor& docs,
                         const torch::Tensor& negatives) {
  torch::Tensor q = embed_queries(&net, queries);
  if (o.loss == Loss::kCorpus) {
    torch::Tensor logits = o.scale * q.matmul(embed_docs(&net, o.side, docs).t());
    return F::cross_entropy(logits, positives);
  }
  if (o.loss == Loss::kInBatch) {
    torch::Tensor d = embed_docs(&net, o.side, docs.index_select(0, positives));
    torch::Tensor logits = o.scale * q.matmul(d.t());
    // Two queries of one document in a batch: the other's copy is no negative.
    // Most batches have no such pair, and building the mask is a few percent
    // of a linear net's step.
    const int64_t* rows = positives.data_ptr<int64_t>();
    std::vector<int64_t> sorted(rows, rows + positives.size(0));
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      torch::Tensor same = positives.unsqueeze(1).eq(positives.unsqueeze(0)) &
                           torch::eye(positives.size(0), torch::kBool).logical_not();
      logits = logits.masked_fill(same, -std::numeric_limits<float>::infinity());
    }
    return F::cross_entropy(logits, torch::arange(positives.size(0)));
  }
  torch::Tensor candidates = torch::cat({positives.unsqueeze(1), negatives}, 1);  // [b, 1 + h]
  torch::Tensor d = embed_docs(&net, o.side, docs.index_select(0, candidates.flatten()))
                        .view({candidates.size(0), candidates.size(1), -1});
  torch::Tensor logits = o.scale * (q.unsqueeze(1) * d).sum(2);
  return F::cross_entropy(logits, torch::zeros({candidates.size(0)}, torch::kInt64));
}

// The documents the current adapter ranks highest for each query at `rows`
// (of `queries`), its relevant ones excluded: [rows, h]. Each block of
// documents gives its top h, merged into the running top h.
torch::Tensor mine_negatives(AdapterNet& net, const TrainOptions& o, const torch::Tensor& queries,
                             const std::vector<int64_t>& rows,
                             const std::vector<std::vector<size_t>>& relevant, const torch::Tensor& docs) {
  torch::NoGradGuard no_grad;
  const int64_t n_docs = docs.size(0);
  const int64_t h = std::max<int64_t>(std::min<int64_t>(o.hard_negatives, n_docs - 1), 1);
  std::vector<torch::Tensor> mined;
  for (size_t q0 = 0; q0 < rows.size(); q0 += kBlock) {
    const size_t q1 = std::min(rows.size(), q0 + static_cast<size_t>(kBlock));
    const std::vector<int64_t> block(rows.begin() + q0, rows.begin() + q1);
    const torch::Tensor q = embed_queries(&net, queries.index_select(0, torch::tensor(block, torch::kInt64)));
    torch::Tensor top_scores, top_rows;  // the running top h: [block, <= h]
    for (int64_t d0 = 0; d0 < n_docs; d0 += kBlock) {
      const int64_t d1 = std::min(n_docs, d0 + kBlock);
      torch::Tensor scores = q.matmul(embed_docs(&net, o.side, docs.slice(0, d0, d1)).t());
      for (size_t i = 0; i < block.size(); ++i) {
        for (size_t r : relevant[block[i]]) {
          const auto d = static_cast<int64_t>(r);
          if (d >= d0 && d < d1)
            scores[static_cast<int64_t>(i)][d - d0] = -std::numeric_limits<float>::infinity();
        }
      }
      const int64_t kept = top_rows.defined() ? top_rows.size(1) : 0;
      if (kept > 0) scores = torch::cat({top_scores, scores}, 1);
      auto [values, index] = scores.topk(std::min<int64_t>(h, scores.size(1)), 1);
      // Columns below `kept` are the running top's, the others this block's documents.
      torch::Tensor doc_rows = index - kept + d0;
      if (kept > 0)
        doc_rows = torch::where(index < kept, top_rows.gather(1, index.clamp_max(kept - 1)), doc_rows);
      top_scores = values;
      top_rows = doc_rows;
    }
    mined.push_back(top_rows);
  }
  return mined.empty() ? torch::empty({0, h}, torch::kInt64) : torch::cat(mined, 0);
}

// ---------------------------------------------------------------- the members

// One net in training: a fold's (trained without the fold's queries and
// scored on them) or the final one (trained on every query: the one shipped).
struct Member {
  std::shared_ptr<AdapterNet> net;
  std::vector<torch::Tensor> params;   // its trainable tensors
  std::vector<torch::Tensor> initial;  // their starting values (the identity pull)
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<double> group_lr;  // each of its parameter groups' lr, as a fraction of o.lr
  // Rows of the logged queries, not copies: a log of a million queries has
  // eleven members.
  std::vector<int64_t> train_rows;            // the query rows it trains on
  std::vector<int64_t> pair_query, pair_doc;  // training pairs: index into train_rows, document row
  int64_t steps_per_epoch = 0;
  torch::Tensor negatives;       // loss "hard": this epoch's mined rows, one row per training query
  std::vector<size_t> held_out;  // query rows of the data it is scored on (none: the final net)
  torch::Tensor held_queries;
  std::vector<std::vector<size_t>> held_relevant;
};

// A tensor over the matrix's memory, without a copy; never written to.
torch::Tensor view_of(const Matrix& m) {
  return torch::from_blob(const_cast<float*>(m.data.data()),
                          {static_cast<int64_t>(m.rows), static_cast<int64_t>(m.cols)});
}

torch::Tensor to_tensor(const Matrix& m, const std::vector<size_t>& rows) {
  std::vector<int64_t> index(rows.begin(), rows.end());
  return view_of(m).index_select(0, torch::tensor(index, torch::kInt64));
}

Status new_member(const TrainingSet& data, const TrainOptions& o, const std::vector<size_t>& train_rows,
                  const std::vector<size_t>& held_rows, std::string* config_json, Member* m) {
  EMBEDAPT_RETURN_IF_ERROR(build_net(o, static_cast<int>(data.docs.cols), config_json, &m->net));
  m->params = trainable(*m->net);
  if (m->params.empty()) return Status::InvalidArgument(o.kind + " adapter has no trainable tensors");
  for (const auto& p : m->params) m->initial.push_back(p.detach().clone());
  // The two-layer net's residual MLP is a group of its own at residual_lr
  // (see there): every tensor but its linear skip's ("linear.weight").
  std::vector<torch::Tensor> main_part, residual_part;
  for (auto& [name, t] : m->net->named_tensors()) {
    if (!t.requires_grad()) continue;
    (o.kind == "two-layer" && name.rfind("linear.", 0) != 0 ? residual_part : main_part).push_back(t);
  }
  const auto adamw = [&](double lr) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).weight_decay(o.weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(main_part, adamw(o.lr));
  m->group_lr = {1.0};
  if (!residual_part.empty()) {
    groups.emplace_back(residual_part, adamw(o.lr * o.residual_lr));
    m->group_lr.push_back(o.residual_lr);
  }
  m->optimizer = std::make_unique<torch::optim::AdamW>(groups, *adamw(o.lr));
  m->train_rows.assign(train_rows.begin(), train_rows.end());
  for (size_t i = 0; i < train_rows.size(); ++i) {
    for (size_t d : data.relevant[train_rows[i]]) {
      m->pair_query.push_back(static_cast<int64_t>(i));
      m->pair_doc.push_back(static_cast<int64_t>(d));
    }
  }
  const auto pairs = std::min(static_cast<int64_t>(m->pair_query.size()), o.epoch_pairs);
  m->steps_per_epoch = (pairs + o.batch_size - 1) / o.batch_size;
  m->held_out = held_rows;
  if (!held_rows.empty()) m->held_queries = to_tensor(data.queries, held_rows);
  for (size_t q : held_rows) m->held_relevant.push_back(data.relevant[q]);
  return Status::OK();
}

// One optimiser step on batch `b` of an epoch whose pair order is `order`;
// returns the batch's loss (before the identity pull).
double train_step(Member& m, const TrainOptions& o, const torch::Tensor& queries, const torch::Tensor& docs,
                  const std::vector<int64_t>& order, int64_t b, int64_t step) {
  const double lr = o.warmup_steps > 0 && step < o.warmup_steps ? o.lr * (step + 1) / o.warmup_steps : o.lr;
  for (size_t g = 0; g < m.group_lr.size(); ++g) {
    static_cast<torch::optim::AdamWOptions&>(m.optimizer->param_groups()[g].options()).lr(lr * m.group_lr[g]);
  }
  std::vector<int64_t> batch_members, batch_queries, batch_docs;
  const auto pairs = static_cast<int64_t>(order.size());
  for (int64_t i = b * o.batch_size; i < std::min(pairs, (b + 1) * o.batch_size); ++i) {
    batch_members.push_back(m.pair_query[order[i]]);
    batch_queries.push_back(m.train_rows[m.pair_query[order[i]]]);
    batch_docs.push_back(m.pair_doc[order[i]]);
  }
  torch::Tensor negatives = m.negatives.defined()
                                ? m.negatives.index_select(0, torch::tensor(batch_members, torch::kInt64))
                                : torch::Tensor();
  torch::Tensor loss =
      batch_loss(*m.net, o, queries.index_select(0, torch::tensor(batch_queries, torch::kInt64)),
                 torch::tensor(batch_docs, torch::kInt64), docs, negatives);
  const double value = loss.item<double>();
  if (o.identity_pull > 0) {
    for (size_t i = 0; i < m.params.size(); ++i)
      loss = loss + o.identity_pull * (m.params[i] - m.initial[i]).pow(2).sum();
  }
  m.optimizer->zero_grad();
  loss.backward();
  if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(m.params, o.clip_norm);
  m.optimizer->step();
  return value;
}

// ---------------------------------------------------------------- checkpoints

// A checkpoint is plain data, never code: one safetensors file holding each
// member's net tensors, AdamW moments and (loss "hard") mined negatives, with
// the counters and the run's fingerprint as JSON in the header's metadata.
// One file, so write_file_atomic replaces all of it or none. Resume reads it
// with the adapters' safetensors parser and checks every value against the
// run before anything is used: it comes from disk, and a step or a negative
// out of range would index out of bounds.
constexpr const char* kCheckpointFile = "checkpoint.safetensors";
constexpr const char* kCheckpointKey = "embedapt.checkpoint";  // the metadata entry holding the JSON
constexpr int kCheckpointFormat = 1;

// Everything a resumed run needs, besides the members, to continue exactly
// where this one was.
struct TrainState {
  int64_t step = 0;            // optimiser steps, summed over the members
  double epoch_loss = 0;       // the final net's, summed over this epoch's steps so far
  std::vector<double> losses;  // the final net's mean batch loss, per finished epoch
};

std::string checkpoint_path(const TrainOptions& o) {
  return (std::filesystem::path(o.checkpoint_dir) / kCheckpointFile).string();
}

// What makes two runs the same: the data and every option that changes the
// steps taken. A checkpoint of another run is refused rather than mixed in.
std::string run_fingerprint(const TrainingSet& data, const TrainOptions& o) {
  nlohmann::json options = {{"kind", o.kind},
                            {"side", AdapterSideName(o.side)},
                            {"hidden", o.hidden},
                            {"embedder", o.embedder},
                            {"torchscript", hex(sha256(o.torchscript_archive))},
                            {"loss", LossName(o.loss)},
                            {"scale", o.scale},
                            {"hard_negatives", o.hard_negatives},
                            {"identity_pull", o.identity_pull},
                            {"epochs", o.epochs},
                            {"epoch_pairs", o.epoch_pairs},
                            {"batch_size", o.batch_size},
                            {"lr", o.lr},
                            {"weight_decay", o.weight_decay},
                            {"warmup_steps", o.warmup_steps},
                            {"clip_norm", o.clip_norm},
                            {"seed", o.seed},
                            {"folds", o.folds}};
  // Only a two-layer net has a residual MLP (so a linear run's fingerprint,
  // e.g. fuzz_checkpoint's seed, is the one it had before the option).
  if (o.kind == "two-layer") options["residual_lr"] = o.residual_lr;
  Sha256 hash;
  hash.add(options.dump());
  for (const Matrix* m : {&data.docs, &data.queries}) {
    const uint64_t dims[] = {m->rows, m->cols};
    hash.add({reinterpret_cast<const char*>(dims), sizeof dims});
    hash.add({reinterpret_cast<const char*>(m->data.data()), m->data.size() * sizeof(float)});
  }
  for (const auto& rows : data.relevant) {
    const uint64_t count = rows.size();
    hash.add({reinterpret_cast<const char*>(&count), sizeof count});
    hash.add({reinterpret_cast<const char*>(rows.data()), rows.size() * sizeof(size_t)});
  }
  return "sha256:" + hex(hash.digest());
}

// The optimiser steps member `m` has taken after `step` steps of the run
// (each round runs the members in order, each for its steps_per_epoch).
int64_t member_steps(const std::vector<Member>& members, size_t m, int64_t step, int64_t steps_per_round) {
  int64_t done = step % steps_per_round;
  for (size_t i = 0; i < m; ++i) done -= members[i].steps_per_epoch;
  return step / steps_per_round * members[m].steps_per_epoch +
         std::clamp<int64_t>(done, 0, members[m].steps_per_epoch);
}

RawTensor raw_tensor(const torch::Tensor& t, const char* dtype) {
  RawTensor raw;
  raw.dtype = dtype;
  raw.shape = t.sizes().vec();
  torch::Tensor c = t.detach().contiguous();
  raw.data.assign(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return raw;
}

Status save_checkpoint(const TrainOptions& o, const std::vector<Member>& members, const TrainState& s,
                       const std::string& fingerprint) {
  TensorMap tensors;
  nlohmann::json adam_steps = nlohmann::json::array();
  for (size_t m = 0; m < members.size(); ++m) {
    const std::string prefix = "m" + std::to_string(m) + ".";
    const std::string net_prefix = prefix + "net.";
    for (auto& [name, t] : members[m].net->named_tensors()) {
      tensors.emplace(net_prefix + name, raw_tensor(t, "F32"));
    }
    // A parameter has AdamW state once it has had a gradient: its step count
    // and both moments (amsgrad is off).
    nlohmann::json steps = nlohmann::json::array();
    const auto& state = members[m].optimizer->state();
    for (size_t p = 0; p < members[m].params.size(); ++p) {
      auto it = state.find(c10::guts::to_string(members[m].params[p].unsafeGetTensorImpl()));
      if (it == state.end()) {
        steps.push_back(0);
        continue;
      }
      const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      steps.push_back(adam.step());
      tensors.emplace(prefix + "adam." + std::to_string(p) + ".exp_avg", raw_tensor(adam.exp_avg(), "F32"));
      tensors.emplace(prefix + "adam." + std::to_string(p) + ".exp_avg_sq",
                      raw_tensor(adam.exp_avg_sq(), "F32"));
    }
    adam_steps.push_back(steps);
    if (members[m].negatives.defined())
      tensors.emplace(prefix + "negatives", raw_tensor(members[m].negatives, "I64"));
  }
  const nlohmann::json counters = {
      {"format", kCheckpointFormat}, {"fingerprint", fingerprint}, {"step", s.step},
      {"epoch_loss", s.epoch_loss},  {"losses", s.losses},         {"adam_steps", adam_steps}};
  std::error_code ec;
  std::filesystem::create_directories(o.checkpoint_dir, ec);
  if (ec) return Status::IOError(o.checkpoint_dir + ": cannot create: " + ec.message());
  return write_file_atomic(checkpoint_path(o),
                           serialize_safetensors(tensors, {{kCheckpointKey, counters.dump()}}));
}

// Reads the checkpoint of this run (fingerprint) into the members and *s; a
// missing file means nothing to resume. Every error names the file and what
// is wrong with it; members may be half-filled then (the run stops).
Status load_checkpoint(const TrainOptions& o, const std::string& fingerprint, int64_t steps_per_round,
                       int64_t docs, std::vector<Member>* members, TrainState* s) {
  const std::string path = checkpoint_path(o);
  if (!std::filesystem::exists(path)) return Status::OK();  // nothing to resume: start afresh
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  std::string bytes;
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, &bytes));
  TensorMap stored;
  std::map<std::string, std::string> metadata;
  Status parsed = parse_safetensors(bytes, &stored, &metadata);
  if (!parsed.ok()) return bad("not a checkpoint: " + parsed.message());
  bytes.clear();
  auto entry = metadata.find(kCheckpointKey);
  if (entry == metadata.end())
    return bad(std::string("not a checkpoint (no \"") + kCheckpointKey + "\" metadata)");
  const nlohmann::json j = nlohmann::json::parse(entry->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("format", nlohmann::json()) != kCheckpointFormat) {
    return bad("the counters are not a format-" + std::to_string(kCheckpointFormat) + " JSON object");
  }
  if (!j.contains("fingerprint") || j["fingerprint"] != fingerprint) {
    return Status::FailedPrecondition(path + ": the checkpoint is of another run (other data or options)");
  }

  // The counters: a step within the run, a loss for each finished epoch.
  const int64_t end = steps_per_round * o.epochs;
  if (!j.contains("step") || !j["step"].is_number_integer()) return bad("\"step\" is not an integer");
  s->step = j["step"].get<int64_t>();
  if (s->step < 0 || s->step > end) {
    return bad("step " + j["step"].dump() + " is outside the run's 0 to " + std::to_string(end));
  }
  if (!j.contains("epoch_loss") || !j["epoch_loss"].is_number() ||
      !std::isfinite(j["epoch_loss"].get<double>())) {
    return bad("\"epoch_loss\" is not a finite number");
  }
  s->epoch_loss = j["epoch_loss"].get<double>();
  const auto finished = static_cast<size_t>(s->step / steps_per_round);
  if (!j.contains("losses") || !j["losses"].is_array() || j["losses"].size() != finished) {
    return bad("\"losses\" must hold one loss for each of the " + std::to_string(finished) +
               " finished epochs");
  }
  s->losses.clear();
  for (const auto& loss : j["losses"]) {
    if (!loss.is_number() || !std::isfinite(loss.get<double>()))
      return bad("a loss in \"losses\" is not finite");
    s->losses.push_back(loss.get<double>());
  }
  const nlohmann::json adam_steps = j.value("adam_steps", nlohmann::json());
  if (!adam_steps.is_array() || adam_steps.size() != members->size()) {
    return bad("\"adam_steps\" must hold one list per net (" + std::to_string(members->size()) + ")");
  }

  // The tensors: each one the run has, of its shape, finite; none other.
  size_t used = 0;
  auto take = [&](const std::string& name, const char* dtype, c10::IntArrayRef shape, torch::Tensor* out) {
    auto it = stored.find(name);
    if (it == stored.end()) return bad("tensor \"" + name + "\" is missing");
    const RawTensor& raw = it->second;
    if (raw.dtype != dtype) return bad("tensor \"" + name + "\" is " + raw.dtype + ", not " + dtype);
    if (raw.shape != shape.vec()) {
      return bad("tensor \"" + name + "\" has shape " + c10::str(c10::IntArrayRef(raw.shape)) +
                 ", the run's is " + c10::str(shape));
    }
    const auto type = std::string(dtype) == "F32" ? torch::kFloat32 : torch::kInt64;
    *out = torch::from_blob(const_cast<char*>(raw.data.data()), shape, type).clone();
    if (type == torch::kFloat32 && !torch::isfinite(*out).all().item<bool>()) {
      return bad("tensor \"" + name + "\" holds a non-finite value");
    }
    ++used;
    return Status::OK();
  };
  torch::NoGradGuard no_grad;
  for (size_t m = 0; m < members->size(); ++m) {
    Member& member = (*members)[m];
    const std::string prefix = "m" + std::to_string(m) + ".";
    const std::string net_prefix = prefix + "net.";
    for (auto& [name, t] : member.net->named_tensors()) {
      torch::Tensor value;
      EMBEDAPT_RETURN_IF_ERROR(take(net_prefix + name, "F32", t.sizes(), &value));
      t.copy_(value);
    }
    const nlohmann::json& steps = adam_steps[m];
    if (!steps.is_array() || steps.size() != member.params.size()) {
      return bad("\"adam_steps\" of net " + std::to_string(m) + " must hold " +
                 std::to_string(member.params.size()) + " counts");
    }
    const int64_t taken = member_steps(*members, m, s->step, steps_per_round);
    auto& state = member.optimizer->state();
    state.clear();
    for (size_t p = 0; p < member.params.size(); ++p) {
      const int64_t adam_step = steps[p].is_number_integer() ? steps[p].get<int64_t>() : -1;
      if (adam_step < 0 || adam_step > taken) {
        return bad("net " + std::to_string(m) + " has taken " + std::to_string(taken) +
                   " steps, its \"adam_steps\" say " + steps[p].dump());
      }
      if (adam_step == 0) continue;  // no gradient yet: no state
      auto adam = std::make_unique<torch::optim::AdamWParamState>();
      adam->step(adam_step);
      torch::Tensor avg, avg_sq;
      const std::string name = prefix + "adam." + std::to_string(p);
      EMBEDAPT_RETURN_IF_ERROR(take(name + ".exp_avg", "F32", member.params[p].sizes(), &avg));
      EMBEDAPT_RETURN_IF_ERROR(take(name + ".exp_avg_sq", "F32", member.params[p].sizes(), &avg_sq));
      if ((avg_sq < 0).any().item<bool>())
        return bad("tensor \"" + name + ".exp_avg_sq\" holds a negative value");
      adam->exp_avg(avg);
      adam->exp_avg_sq(avg_sq);
      state[c10::guts::to_string(member.params[p].unsafeGetTensorImpl())] = std::move(adam);
    }
    // Negatives are mined at the start of each epoch: a run stopped within
    // one resumes with them.
    member.negatives = torch::Tensor();
    if (o.loss == Loss::kHard && (s->step % steps_per_round != 0 || stored.count(prefix + "negatives"))) {
      const int64_t h = std::max<int64_t>(std::min<int64_t>(o.hard_negatives, docs - 1), 1);
      EMBEDAPT_RETURN_IF_ERROR(take(prefix + "negatives", "I64",
                                    {static_cast<int64_t>(member.train_rows.size()), h}, &member.negatives));
      if ((member.negatives < 0).any().item<bool>() || (member.negatives >= docs).any().item<bool>()) {
        return bad("tensor \"" + prefix + "negatives\" names a document row outside 0 to " +
                   std::to_string(docs - 1));
      }
    }
  }
  if (used != stored.size()) {
    return bad(std::to_string(stored.size() - used) +
               " tensors that are not the run's (another kind of net?)");
  }
  return Status::OK();
}

// ---------------------------------------------------------------- training

Status train(const TrainingSet& data, const TrainOptions& o, TrainResult* result) {
  EMBEDAPT_RETURN_IF_ERROR(check_input(data, o));
  ComputeThreads compute_threads(o.threads);
  const size_t n = data.queries.rows;
  const torch::Tensor docs = view_of(data.docs);
  const torch::Tensor logged = view_of(data.queries);

  // The members: one net per fold, then the final net on every query. A
  // fold net trains on every query outside its fold and is scored on the
  // scored ones inside it.
  const int folds = o.folds;
  std::vector<int> fold_of;
  EMBEDAPT_RETURN_IF_ERROR(deal_folds(n, o, &fold_of));
  const std::vector<size_t> scored = scored_queries(n, data.docs.rows, o);
  std::vector<bool> is_scored(n, false);
  for (size_t q : scored) is_scored[q] = true;
  std::string config_json;
  std::vector<Member> members(folds + 1);
  for (int f = 0; f <= folds; ++f) {
    std::vector<size_t> train_rows, held_rows;
    for (size_t q = 0; q < n; ++q) {
      if (f == folds || fold_of[q] != f) {
        train_rows.push_back(q);
      } else if (is_scored[q]) {
        held_rows.push_back(q);
      }
    }
    EMBEDAPT_RETURN_IF_ERROR(new_member(data, o, train_rows, held_rows, &config_json, &members[f]));
  }
  Member& final_net = members.back();
  result->queries = n;
  result->scored = scored.size();
  result->folds = folds;

  // The bar to beat: the base embedder on every scored query.
  std::vector<std::vector<size_t>> scored_relevant;
  scored_relevant.reserve(scored.size());
  for (size_t q : scored) scored_relevant.push_back(data.relevant[q]);
  const torch::Tensor queries = to_tensor(data.queries, scored);
  const std::vector<int64_t> base = rank(nullptr, o.side, queries, docs, scored_relevant);
  result->base = mean_score(base, o.top_k);
  result->signal_z = signal_z(base, scored_relevant, data.docs.rows);
  if (o.incumbent) {
    std::vector<int64_t> incumbent;
    EMBEDAPT_RETURN_IF_ERROR(rank_adapter(*o.incumbent, queries, docs, scored_relevant, &incumbent));
    result->incumbent = mean_score(incumbent, o.top_k);
  }

  TrainState s;
  int64_t steps_per_round = 0;  // an epoch of every member
  for (const Member& m : members) steps_per_round += m.steps_per_epoch;
  const std::string fingerprint = o.checkpoint_dir.empty() ? "" : run_fingerprint(data, o);
  if (o.resume) {
    EMBEDAPT_RETURN_IF_ERROR(
        load_checkpoint(o, fingerprint, steps_per_round, static_cast<int64_t>(data.docs.rows), &members, &s));
  }
  auto checkpoint_due = [&] { return o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0; };

  for (int epoch = static_cast<int>(s.step / steps_per_round); epoch < o.epochs; ++epoch) {
    // A resumed epoch skips the steps already taken and keeps its negatives.
    int64_t done = s.step % steps_per_round;
    if (o.loss == Loss::kHard && done == 0) {
      for (Member& m : members) {
        m.negatives = mine_negatives(*m.net, o, logged, m.train_rows, data.relevant, docs);
      }
    }
    for (size_t i = 0; i < members.size(); ++i) {
      Member& m = members[i];
      if (done >= m.steps_per_epoch) {
        done -= m.steps_per_epoch;
        continue;
      }
      // The pair order depends only on (seed, member, epoch), so a resumed epoch replays it.
      std::vector<int64_t> order(m.pair_query.size());
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(o.seed * 1000003 + static_cast<uint64_t>(epoch) * 1009 + i);
      std::shuffle(order.begin(), order.end(), rng);
      order.resize(std::min<size_t>(order.size(), static_cast<size_t>(o.epoch_pairs)));
      for (int64_t b = done; b < m.steps_per_epoch; ++b) {
        const double loss = train_step(m, o, logged, docs, order, b, epoch * m.steps_per_epoch + b);
        if (&m == &final_net) s.epoch_loss += loss;
        ++s.step;
        if ((o.stop_after_steps > 0 && s.step >= o.stop_after_steps) || (o.cancel && o.cancel->load())) {
          result->interrupted = true;
          return Status::OK();
        }
        if (s.step % steps_per_round != 0 && checkpoint_due()) {
          EMBEDAPT_RETURN_IF_ERROR(save_checkpoint(o, members, s, fingerprint));
        }
      }
      done = 0;
    }

    s.losses.push_back(s.epoch_loss / static_cast<double>(final_net.steps_per_epoch));
    s.epoch_loss = 0;
    if (checkpoint_due()) EMBEDAPT_RETURN_IF_ERROR(save_checkpoint(o, members, s, fingerprint));
  }
  // A diverged net would score every query as ranked first (NaN compares
  // false), so it must never reach the estimate.
  for (const Member& m : members) {
    for (const torch::Tensor& p : m.params) {
      if (!torch::isfinite(p).all().item<bool>()) {
        return Status::InvalidArgument("training diverged: a net's weights are not finite (lower the lr)");
      }
    }
  }
  for (size_t e = 0; e < s.losses.size(); ++e)
    result->epochs.push_back({static_cast<int>(e + 1), s.losses[e]});
  result->config_json = config_json;
  if (folds == 0) {  // a plain run ships as it is
    result->improved = true;
    return save_adapter_weights(*final_net.net, &result->weights);
  }

  // The estimate: every scored query ranked by the fold net that never saw
  // it, its gain over the base a paired difference; none of it chose anything.
  std::vector<int64_t> by_row(n);
  for (int f = 0; f < folds; ++f) {
    const Member& m = members[f];
    if (m.held_out.empty()) continue;
    std::vector<int64_t> ranks = rank(m.net.get(), o.side, m.held_queries, docs, m.held_relevant);
    for (size_t i = 0; i < m.held_out.size(); ++i) by_row[m.held_out[i]] = ranks[i];
  }
  std::vector<int64_t> held;  // in the order of `scored`, like `base`
  held.reserve(scored.size());
  for (size_t q : scored) held.push_back(by_row[q]);
  result->cross_validated = mean_score(held, o.top_k);
  std::vector<double> hit, mrr, rr, log_gain;
  for (size_t q = 0; q < scored.size(); ++q) {
    hit.push_back(hit_at(held[q], o.top_k) - hit_at(base[q], o.top_k));
    mrr.push_back(mrr_at(held[q], o.top_k) - mrr_at(base[q], o.top_k));
    rr.push_back(reciprocal(held[q]) - reciprocal(base[q]));
    log_gain.push_back(log_rank(base[q]) - log_rank(held[q]));
  }
  result->hit_gain = gain_of(hit, nullptr);
  result->mrr_gain = gain_of(mrr, nullptr);
  result->rr_gain = gain_of(rr, nullptr);
  result->log_rank_gain = gain_of(log_gain, &result->gain_z);

  // Ship the final net only if the estimate clears the one-sided test (a
  // stricter one for a log whose hits look random under the base) without
  // giving up the top of the ranking.
  result->improved = result->gain_z >= gain_bar(o, result->signal_z) && keeps_top(*result);
  if (!result->improved) {
    result->config_json.clear();
    return Status::OK();
  }
  return save_adapter_weights(*final_net.net, &result->weights);
}

}  // namespace

bool keeps_top(const TrainResult& result) { return result.hit_gain.mean >= 0 && result.rr_gain.mean >= 0; }

double gain_bar(const TrainOptions& options, double signal_z) {
  return signal_z >= options.min_signal_z ? options.min_gain_z : options.min_gain_z_without_signal;
}

const char* LossName(Loss loss) {
  for (const auto& [value, name] : kLossNames) {
    if (value == loss) return name;
  }
  return "?";
}

Status ParseLoss(const std::string& name, Loss* loss) {
  for (const auto& [value, known] : kLossNames) {
    if (name == known) {
      *loss = value;
      return Status::OK();
    }
  }
  return Status::InvalidArgument("unknown loss \"" + name + "\" (corpus, in-batch, hard)");
}

Status train_adapter(const TrainingSet& data, const TrainOptions& options, TrainResult* result) {
  *result = TrainResult();
  try {
    return train(data, options, result);
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(options.kind + " adapter training failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {  // a TorchScript `raise`, std::bad_alloc, ...
    return Status::InvalidArgument(options.kind + " adapter training failed: " + e.what());
  }
}

std::string TrainResult::summary(const TrainOptions& options) const {
  char rule[256] = "";
  if (folds > 0 && signal_z < options.min_signal_z) {
    std::snprintf(rule, sizeof(rule),
                  " (the log shows no signal: under the base its hits rank no better than random documents "
                  "would, %.2f standard errors above chance)",
                  signal_z);
  }
  char line[1024];
  std::snprintf(
      line, sizeof(line),
      "estimated gain over the base: hit@%d %+.3f (95%% interval %+.3f to %+.3f), reciprocal rank "
      "%+.3f, log rank %+.3f (95%% interval %+.3f to %+.3f, %.2f standard errors; ranks x%.2f, geometric "
      "mean); rule: ship if the "
      "log-rank gain is above 0 at one-sided z >= %.3g%s and neither hit@%d nor reciprocal rank "
      "falls: %s",
      options.top_k, hit_gain.mean, hit_gain.low, hit_gain.high, rr_gain.mean, log_rank_gain.mean,
      log_rank_gain.low, log_rank_gain.high, std::isfinite(gain_z) ? gain_z : 99.0,
      std::exp(-log_rank_gain.mean), gain_bar(options, signal_z), rule, options.top_k,
      improved ? "shipped" : "not shipped");
  if (scored == queries) return line;
  return std::string(line) + " (estimated on a sample of " + std::to_string(scored) + " of the " +
         std::to_string(queries) + " logged queries)";
}

std::string TrainResult::metrics_json(const TrainOptions& options) const {
  auto score = [](const ValidationScore& v) {
    return nlohmann::json{{"hit_rate", v.hit}, {"mrr", v.mrr}, {"rr", v.rr}};
  };
  auto gain = [](const Gain& g) {
    return nlohmann::json{{"mean", g.mean}, {"low", g.low}, {"high", g.high}};
  };
  nlohmann::json epochs_json = nlohmann::json::array();
  for (const auto& e : epochs) {
    epochs_json.push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}});
  }
  nlohmann::json j = {{"loss", LossName(options.loss)},
                      {"top_k", options.top_k},
                      {"queries", queries},
                      {"scored", scored},
                      {"folds", folds},
                      {"base", score(base)},
                      {"adapter", score(cross_validated)},
                      {"epochs_run", epochs.size()},
                      {"estimate",
                       {{"hit_rate", gain(hit_gain)},
                        {"mrr", gain(mrr_gain)},
                        {"rr", gain(rr_gain)},
                        {"log_rank", gain(log_rank_gain)},
                        {"z", std::isfinite(gain_z) ? gain_z : 1e9},
                        {"min_z", gain_bar(options, signal_z)}}},
                      {"signal", {{"z", signal_z}, {"min_z", options.min_signal_z}}},
                      {"improved", improved},
                      {"summary", summary(options)},
                      {"epochs", epochs_json}};
  return j.dump();
}

}  // namespace embedapt
