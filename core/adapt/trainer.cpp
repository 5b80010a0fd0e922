// The trainer, top to bottom: check the input, split off validation, build
// the net, score the base, (resume,) train epoch by epoch with model
// selection on validation, then ship the best epoch only if it beats the base.
#include "core/adapt/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/common/metrics.h"
#include "embedapt/adapter_plugin.h"

namespace embedapt {

namespace {

namespace F = torch::nn::functional;

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
  if (!data.time_unix.empty() && data.time_unix.size() != data.queries.rows) {
    return Status::InvalidArgument("training: query times do not match the queries");
  }
  if (o.loss != "corpus" && o.loss != "in-batch" && o.loss != "hard") {
    return Status::InvalidArgument("training: unknown loss \"" + o.loss + "\" (corpus, in-batch, hard)");
  }
  if (o.epochs < 1 || o.batch_size < 1 || !(o.lr > 0) || !(o.scale > 0) || o.hard_negatives < 1 ||
      o.identity_pull < 0 || o.weight_decay < 0 || o.warmup_steps < 0 || o.clip_norm < 0 || o.patience < 1 ||
      o.top_k < 1) {
    return Status::InvalidArgument(
        "training: epochs, batch size, lr, scale, hard negatives, patience and top-k must be positive; "
        "pull, weight decay, warm-up and clipping non-negative");
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 1)) {
    return Status::InvalidArgument("training: the validation fraction must be in (0, 1)");
  }
  if (o.resume && o.checkpoint_dir.empty()) {
    return Status::InvalidArgument("training: resume needs a checkpoint directory");
  }
  return Status::OK();
}

// ---------------------------------------------------------------- the split

struct Split {
  std::vector<size_t> train;  // query rows
  std::vector<size_t> val;
};

Status split_queries(const TrainingSet& data, const TrainOptions& o, Split* split) {
  const size_t n = data.queries.rows;
  std::vector<bool> held_out(n, false);
  bool timed = !data.time_unix.empty() && std::any_of(data.time_unix.begin(), data.time_unix.end(),
                                                      [&](int64_t t) { return t != data.time_unix.front(); });
  if (timed) {  // the latest queries
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return data.time_unix[a] < data.time_unix[b]; });
    size_t n_val = static_cast<size_t>(std::ceil(o.val_fraction * n));
    for (size_t i = n - std::min(n_val, n); i < n; ++i) held_out[order[i]] = true;
  } else {  // a seeded sample of documents, with every query whose first hit is one of them
    std::vector<size_t> docs;
    for (const auto& rows : data.relevant) docs.push_back(rows.front());
    std::sort(docs.begin(), docs.end());
    docs.erase(std::unique(docs.begin(), docs.end()), docs.end());
    std::mt19937_64 rng(o.seed);
    std::shuffle(docs.begin(), docs.end(), rng);
    size_t n_val = static_cast<size_t>(std::ceil(o.val_fraction * docs.size()));
    std::vector<bool> val_doc(data.docs.rows, false);
    for (size_t i = 0; i < std::min(n_val, docs.size()); ++i) val_doc[docs[i]] = true;
    for (size_t q = 0; q < n; ++q) held_out[q] = val_doc[data.relevant[q].front()];
  }
  for (size_t q = 0; q < n; ++q) (held_out[q] ? split->val : split->train).push_back(q);
  if (split->train.empty() || split->val.empty()) {
    return Status::InvalidArgument("training: " + std::to_string(n) +
                                   " logged queries are too few to hold out a validation split");
  }
  return Status::OK();
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

std::vector<torch::Tensor> snapshot(AdapterNet& net) {
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : net.named_tensors()) out.push_back(t.detach().clone());
  return out;
}

void restore(AdapterNet& net, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  auto current = net.named_tensors();
  for (size_t i = 0; i < current.size(); ++i) current[i].second.copy_(tensors[i]);
}

// Unit vectors of the adapted queries and documents (the store's cosine).
torch::Tensor embed_queries(AdapterNet* net, const torch::Tensor& q) {
  return F::normalize(net ? net->forward(q) : q, F::NormalizeFuncOptions().dim(1));
}
torch::Tensor embed_docs(AdapterNet* net, AdapterSide side, const torch::Tensor& d) {
  bool adapt = net != nullptr && side == AdapterSide::kBoth;
  return F::normalize(adapt ? net->forward(d) : d, F::NormalizeFuncOptions().dim(1));
}

// ---------------------------------------------------------------- validation

struct Ranked {
  ValidationScore mean;
  std::vector<double> per_query;  // ValidationScore::score() of each query
};

// Exact search of `queries` against every document; net == nullptr is the base.
Ranked rank(AdapterNet* net, AdapterSide side, const torch::Tensor& queries, const torch::Tensor& docs,
            const std::vector<std::vector<size_t>>& relevant, int top_k) {
  torch::NoGradGuard no_grad;
  torch::Tensor scores = embed_queries(net, queries).matmul(embed_docs(net, side, docs).t());
  int64_t k = std::min<int64_t>(top_k, docs.size(0));
  torch::Tensor top = std::get<1>(scores.topk(k, 1)).contiguous();
  auto idx = top.accessor<int64_t, 2>();
  Ranked out;
  for (int64_t q = 0; q < top.size(0); ++q) {
    std::vector<bool> hits(k);
    for (int64_t i = 0; i < k; ++i) {
      const auto& rel = relevant[q];
      hits[i] = std::find(rel.begin(), rel.end(), static_cast<size_t>(idx[q][i])) != rel.end();
    }
    RankMetrics m = score_ranking(hits, relevant[q].size(), top_k);
    out.mean.hit += m.hit;
    out.mean.mrr += m.mrr;
    out.per_query.push_back((m.hit + m.mrr) / 2);
  }
  out.mean.hit /= top.size(0);
  out.mean.mrr /= top.size(0);
  return out;
}

// Scores a servable adapter (not a net) like rank() scores an epoch.
Status rank_adapter(const Adapter& adapter, const torch::Tensor& queries, const torch::Tensor& docs,
                    const std::vector<std::vector<size_t>>& relevant, int top_k, Ranked* out) {
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
  *out = rank(nullptr, AdapterSide::kQuery, q, d, relevant, top_k);
  return Status::OK();
}

// The paired gain of `a` over `b` in standard errors (inf if every query gains equally).
double gain_z(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  double mean = 0;
  for (size_t i = 0; i < a.size(); ++i) mean += (a[i] - b[i]) / n;
  double var = 0;
  for (size_t i = 0; i < a.size(); ++i)
    var += (a[i] - b[i] - mean) * (a[i] - b[i] - mean) / std::max(n - 1, 1.0);
  if (var == 0) return mean > 0 ? std::numeric_limits<double>::infinity() : 0;
  return mean / std::sqrt(var / n);
}

// ---------------------------------------------------------------- the loss

// Cross-entropy of each query's positive against its candidates; `negatives`
// holds the mined rows for the batch (loss "hard" only).
torch::Tensor batch_loss(AdapterNet& net, const TrainOptions& o, const torch::Tensor& queries,
                         const torch::Tensor& positives, const torch::Tensor& docs,
                         const torch::Tensor& negatives) {
  torch::Tensor q = embed_queries(&net, queries);
  if (o.loss == "corpus") {
    torch::Tensor logits = o.scale * q.matmul(embed_docs(&net, o.side, docs).t());
    return F::cross_entropy(logits, positives);
  }
  if (o.loss == "in-batch") {
    torch::Tensor d = embed_docs(&net, o.side, docs.index_select(0, positives));
    torch::Tensor logits = o.scale * q.matmul(d.t());
    // Two queries of one document in a batch: the other's copy is no negative.
    torch::Tensor same = positives.unsqueeze(1).eq(positives.unsqueeze(0)) &
                         torch::eye(positives.size(0), torch::kBool).logical_not();
    logits = logits.masked_fill(same, -std::numeric_limits<float>::infinity());
    return F::cross_entropy(logits, torch::arange(positives.size(0)));
  }
  torch::Tensor candidates = torch::cat({positives.unsqueeze(1), negatives}, 1);  // [b, 1 + h]
  torch::Tensor d = embed_docs(&net, o.side, docs.index_select(0, candidates.flatten()))
                        .view({candidates.size(0), candidates.size(1), -1});
  torch::Tensor logits = o.scale * (q.unsqueeze(1) * d).sum(2);
  return F::cross_entropy(logits, torch::zeros({candidates.size(0)}, torch::kInt64));
}

// The documents the current adapter ranks highest for each training query,
// its relevant ones excluded: [queries, h].
torch::Tensor mine_negatives(AdapterNet& net, const TrainOptions& o, const torch::Tensor& queries,
                             const std::vector<std::vector<size_t>>& relevant, const torch::Tensor& docs) {
  torch::NoGradGuard no_grad;
  torch::Tensor scores = embed_queries(&net, queries).matmul(embed_docs(&net, o.side, docs).t());
  for (size_t q = 0; q < relevant.size(); ++q) {
    for (size_t r : relevant[q]) scores[q][r] = -std::numeric_limits<float>::infinity();
  }
  int64_t h = std::min<int64_t>(o.hard_negatives, docs.size(0) - 1);
  return std::get<1>(scores.topk(std::max<int64_t>(h, 1), 1));
}

// ---------------------------------------------------------------- checkpoints

// Everything a resumed run needs to continue exactly where this one was.
struct TrainState {
  int64_t step = 0;
  double epoch_loss = 0;  // summed over the current epoch's steps so far
  double best_score = 0;
  int best_epoch = 0;
  std::vector<torch::Tensor> best;  // the best epoch's tensors (empty: none yet)
  torch::Tensor negatives;          // loss "hard": this epoch's mined rows
  std::vector<EpochReport> history;
};

std::string checkpoint_path(const TrainOptions& o) {
  return (std::filesystem::path(o.checkpoint_dir) / "checkpoint.pt").string();
}

// `shape` identifies the run (data sizes, seed, batch size): a checkpoint of
// another run is refused rather than silently mixed in.
Status save_checkpoint(const TrainOptions& o, AdapterNet& net, torch::optim::Optimizer& optimizer,
                       const TrainState& s, const torch::Tensor& shape) {
  torch::serialize::OutputArchive archive;
  auto tensors = net.named_tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    archive.write("net_" + std::to_string(i), tensors[i].second.detach(), /*is_buffer=*/true);
  }
  for (size_t i = 0; i < s.best.size(); ++i) archive.write("best_" + std::to_string(i), s.best[i], true);
  if (s.negatives.defined()) archive.write("negatives", s.negatives, true);
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("shape", shape, true);
  archive.write("counters",
                torch::tensor({s.step, int64_t{s.best_epoch}, static_cast<int64_t>(s.best.size())}), true);
  archive.write("scores", torch::tensor({s.epoch_loss, s.best_score}, torch::kFloat64), true);
  std::vector<double> history;
  for (const auto& e : s.history) {
    history.insert(history.end(), {double(e.epoch), e.train_loss, e.validation.hit, e.validation.mrr});
  }
  archive.write("history", torch::tensor(history, torch::kFloat64), true);
  std::error_code ec;
  std::filesystem::create_directories(o.checkpoint_dir, ec);
  if (ec) return Status::IOError(o.checkpoint_dir + ": cannot create: " + ec.message());
  std::string path = checkpoint_path(o);
  archive.save_to(path + ".tmp");
  std::filesystem::rename(path + ".tmp", path, ec);
  if (ec) return Status::IOError(path + ": cannot rename the new checkpoint: " + ec.message());
  return Status::OK();
}

Status load_checkpoint(const TrainOptions& o, AdapterNet& net, torch::optim::Optimizer& optimizer,
                       TrainState* s, const torch::Tensor& shape) {
  std::string path = checkpoint_path(o);
  if (!std::filesystem::exists(path)) return Status::OK();  // nothing to resume: start afresh
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    return Status::Corruption(path + ": unreadable checkpoint: " + e.what_without_backtrace());
  }
  torch::Tensor stored_shape, counters, scores, history;
  archive.read("shape", stored_shape, true);
  if (!stored_shape.equal(shape)) {
    return Status::FailedPrecondition(path + ": the checkpoint is of another run (other data or options)");
  }
  std::vector<torch::Tensor> tensors;
  for (size_t i = 0; i < net.named_tensors().size(); ++i) {
    tensors.emplace_back();
    archive.read("net_" + std::to_string(i), tensors.back(), true);
  }
  restore(net, tensors);
  torch::serialize::InputArchive optimizer_archive;
  archive.read("optimizer", optimizer_archive);
  optimizer.load(optimizer_archive);
  archive.read("counters", counters, true);
  archive.read("scores", scores, true);
  s->step = counters[0].item<int64_t>();
  s->best_epoch = static_cast<int>(counters[1].item<int64_t>());
  s->epoch_loss = scores[0].item<double>();
  s->best_score = scores[1].item<double>();
  s->best.resize(counters[2].item<int64_t>());
  for (size_t i = 0; i < s->best.size(); ++i) archive.read("best_" + std::to_string(i), s->best[i], true);
  if (o.loss == "hard") archive.read("negatives", s->negatives, true);
  archive.read("history", history, true);
  auto h = history.view({-1, 4});
  for (int64_t i = 0; i < h.size(0); ++i) {
    s->history.push_back({static_cast<int>(h[i][0].item<double>()),
                          h[i][1].item<double>(),
                          {h[i][2].item<double>(), h[i][3].item<double>()}});
  }
  return Status::OK();
}

// ---------------------------------------------------------------- training

torch::Tensor to_tensor(const Matrix& m, const std::vector<size_t>& rows) {
  torch::Tensor all = torch::from_blob(const_cast<float*>(m.data.data()),
                                       {static_cast<int64_t>(m.rows), static_cast<int64_t>(m.cols)});
  std::vector<int64_t> index(rows.begin(), rows.end());
  return all.index_select(0, torch::tensor(index, torch::kInt64));
}

Status train(const TrainingSet& data, const TrainOptions& o, TrainResult* result) {
  EMBEDAPT_RETURN_IF_ERROR(check_input(data, o));
  if (o.threads > 0) torch::set_num_threads(o.threads);

  // The split, as tensors. Training samples are (query, relevant doc) pairs.
  Split split;
  EMBEDAPT_RETURN_IF_ERROR(split_queries(data, o, &split));
  std::vector<size_t> all_docs(data.docs.rows);
  std::iota(all_docs.begin(), all_docs.end(), 0);
  const torch::Tensor docs = to_tensor(data.docs, all_docs);
  const torch::Tensor train_queries = to_tensor(data.queries, split.train);
  const torch::Tensor val_queries = to_tensor(data.queries, split.val);
  std::vector<std::vector<size_t>> train_relevant, val_relevant;
  std::vector<int64_t> pair_query, pair_doc;  // pair -> row of train_queries, row of docs
  for (size_t i = 0; i < split.train.size(); ++i) {
    train_relevant.push_back(data.relevant[split.train[i]]);
    for (size_t d : train_relevant.back()) {
      pair_query.push_back(static_cast<int64_t>(i));
      pair_doc.push_back(static_cast<int64_t>(d));
    }
  }
  for (size_t q : split.val) val_relevant.push_back(data.relevant[q]);
  result->train_queries = split.train.size();
  result->val_queries = split.val.size();

  // The net, its starting point (for the identity pull) and the optimiser.
  std::string config_json;
  std::shared_ptr<AdapterNet> net;
  EMBEDAPT_RETURN_IF_ERROR(build_net(o, static_cast<int>(data.docs.cols), &config_json, &net));
  const std::vector<torch::Tensor> params = trainable(*net);
  if (params.empty()) return Status::InvalidArgument(o.kind + " adapter has no trainable tensors");
  std::vector<torch::Tensor> initial;
  for (const auto& p : params) initial.push_back(p.detach().clone());
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  // The bar to beat: the base embedder on the validation split.
  const Ranked base = rank(nullptr, o.side, val_queries, docs, val_relevant, o.top_k);
  result->base = base.mean;
  if (o.incumbent) {
    Ranked incumbent;
    EMBEDAPT_RETURN_IF_ERROR(
        rank_adapter(*o.incumbent, val_queries, docs, val_relevant, o.top_k, &incumbent));
    result->incumbent = incumbent.mean;
  }

  TrainState s;
  s.best_score = base.mean.score();
  const int64_t n_pairs = static_cast<int64_t>(pair_query.size());
  const int64_t steps_per_epoch = (n_pairs + o.batch_size - 1) / o.batch_size;
  const torch::Tensor shape =
      torch::tensor({n_pairs, static_cast<int64_t>(data.docs.rows), static_cast<int64_t>(data.docs.cols),
                     int64_t{o.batch_size}, static_cast<int64_t>(o.seed)});
  if (o.resume) EMBEDAPT_RETURN_IF_ERROR(load_checkpoint(o, *net, optimizer, &s, shape));
  auto checkpoint_due = [&] { return o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0; };

  bool stop = !s.history.empty() && s.history.back().epoch - s.best_epoch >= o.patience;
  for (int epoch = static_cast<int>(s.step / steps_per_epoch); epoch < o.epochs && !stop; ++epoch) {
    if (o.loss == "hard" && s.step % steps_per_epoch == 0) {  // a resumed epoch keeps its negatives
      s.negatives = mine_negatives(*net, o, train_queries, train_relevant, docs);
    }
    // This epoch's order depends only on (seed, epoch), so a resumed epoch replays it.
    std::vector<int64_t> order(n_pairs);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(o.seed * 1000003 + static_cast<uint64_t>(epoch));
    std::shuffle(order.begin(), order.end(), rng);

    for (int64_t b = s.step % steps_per_epoch; b < steps_per_epoch; ++b) {
      const double lr =
          o.warmup_steps > 0 && s.step < o.warmup_steps ? o.lr * (s.step + 1) / o.warmup_steps : o.lr;
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      std::vector<int64_t> batch_queries, batch_docs;
      for (int64_t i = b * o.batch_size; i < std::min(n_pairs, (b + 1) * o.batch_size); ++i) {
        batch_queries.push_back(pair_query[order[i]]);
        batch_docs.push_back(pair_doc[order[i]]);
      }
      torch::Tensor query_rows = torch::tensor(batch_queries, torch::kInt64);
      torch::Tensor negatives =
          s.negatives.defined() ? s.negatives.index_select(0, query_rows) : torch::Tensor();
      torch::Tensor loss = batch_loss(*net, o, train_queries.index_select(0, query_rows),
                                      torch::tensor(batch_docs, torch::kInt64), docs, negatives);
      s.epoch_loss += loss.item<double>();
      if (o.identity_pull > 0) {
        for (size_t i = 0; i < params.size(); ++i)
          loss = loss + o.identity_pull * (params[i] - initial[i]).pow(2).sum();
      }
      optimizer.zero_grad();
      loss.backward();
      if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.clip_norm);
      optimizer.step();
      ++s.step;
      if (o.stop_after_steps > 0 && s.step >= o.stop_after_steps) {
        result->interrupted = true;
        return Status::OK();
      }
      if (b + 1 < steps_per_epoch && checkpoint_due()) {
        EMBEDAPT_RETURN_IF_ERROR(save_checkpoint(o, *net, optimizer, s, shape));
      }
    }

    // Model selection: keep the best epoch; stop after `patience` without one.
    Ranked val = rank(net.get(), o.side, val_queries, docs, val_relevant, o.top_k);
    s.history.push_back({epoch + 1, s.epoch_loss / steps_per_epoch, val.mean});
    s.epoch_loss = 0;
    if (val.mean.score() > s.best_score) {
      s.best_score = val.mean.score();
      s.best_epoch = epoch + 1;
      s.best = snapshot(*net);
    }
    stop = epoch + 1 - s.best_epoch >= o.patience;
    if (checkpoint_due()) EMBEDAPT_RETURN_IF_ERROR(save_checkpoint(o, *net, optimizer, s, shape));
  }
  result->epochs = s.history;
  result->stopped_early = stop;

  // Ship the best epoch only if it clearly beats the base.
  result->best_epoch = s.best_epoch;
  if (s.best_epoch == 0) return Status::OK();
  restore(*net, s.best);
  const Ranked best = rank(net.get(), o.side, val_queries, docs, val_relevant, o.top_k);
  result->best = best.mean;
  result->gain_z = gain_z(best.per_query, base.per_query);
  if (result->gain_z < o.min_gain_z) return Status::OK();
  result->improved = true;
  result->config_json = config_json;
  return save_adapter_weights(*net, &result->weights);
}

}  // namespace

Status train_adapter(const TrainingSet& data, const TrainOptions& options, TrainResult* result) {
  *result = TrainResult();
  try {
    return train(data, options, result);
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(options.kind + " adapter training failed: " + e.what_without_backtrace());
  }
}

std::string TrainResult::metrics_json(const TrainOptions& options) const {
  auto score = [](const ValidationScore& v) { return nlohmann::json{{"hit_rate", v.hit}, {"mrr", v.mrr}}; };
  nlohmann::json epochs_json = nlohmann::json::array();
  for (const auto& e : epochs) {
    epochs_json.push_back(
        {{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"validation", score(e.validation)}});
  }
  nlohmann::json j = {{"loss", options.loss},
                      {"top_k", options.top_k},
                      {"train_queries", train_queries},
                      {"val_queries", val_queries},
                      {"base", score(base)},
                      {"adapter", score(best)},
                      {"best_epoch", best_epoch},
                      {"epochs_run", epochs.size()},
                      {"gain_z", std::isfinite(gain_z) ? gain_z : 1e9},
                      {"improved", improved},
                      {"epochs", epochs_json}};
  return j.dump();
}

}  // namespace embedapt
