#include "core/embed/bert_model.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace embedapt {
namespace {

struct LayerWeights {
  torch::Tensor qkv_weight, qkv_bias;  // query, key and value fused: one matrix product instead of three
  torch::Tensor attention_out_weight, attention_out_bias, attention_norm_weight, attention_norm_bias;
  torch::Tensor intermediate_weight, intermediate_bias;
  torch::Tensor output_weight, output_bias, output_norm_weight, output_norm_bias;
};

enum class Activation { kGelu, kGeluTanh };

// Reads the weights of one tensor name, accepting the "bert." prefix some
// checkpoints (those saved from BertFor* heads) carry.
class WeightReader {
 public:
  WeightReader(const TensorMap& tensors, const std::string& source) : tensors_(tensors), source_(source) {}

  Status get(const std::string& name, const std::vector<int64_t>& shape, torch::Tensor* out) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) it = tensors_.find("bert." + name);
    if (it == tensors_.end())
      return Status::Corruption(source_ + ": model.safetensors has no tensor " + name);
    if (it->second.shape != shape) {
      return Status::Corruption(source_ + ": tensor " + name + " has shape " +
                                shape_string(it->second.shape) + ", config.json implies " +
                                shape_string(shape));
    }
    std::vector<float> values;
    Status s = tensor_to_floats(it->second, &values);
    if (!s.ok()) return s.WithContext(source_ + ": tensor " + name);
    *out = torch::from_blob(values.data(), shape, torch::kFloat32).clone();
    return Status::OK();
  }

 private:
  static std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
  }

  const TensorMap& tensors_;
  const std::string& source_;
};

// Tokens per forward pass: enough rows for the matrix products to run at
// full speed, few enough that the scratch tensors stay a few megabytes.
constexpr int64_t kPassTokens = 2048;

// `t` reshaped for an out= operation: resizing keeps the storage when it is
// large enough (an out= tensor of another shape would be resized with a warning).
torch::Tensor& sized(torch::Tensor& t, at::IntArrayRef shape) {
  t.resize_(shape);
  return t;
}

}  // namespace

struct BertModel::Weights {
  int64_t hidden = 0, heads = 0, vocab = 0, max_positions = 0;
  double norm_eps = 1e-12;
  Activation activation = Activation::kGelu;
  torch::Tensor word_embeddings, position_embeddings, token_type_embedding, embedding_norm_weight,
      embedding_norm_bias;
  std::vector<LayerWeights> layers;
};

// The large intermediate tensors of one embed call, written in place by the
// out= operations and reused by every layer and pass: allocating them per
// operation cost more time in the kernel's page faults than in arithmetic.
struct BertModel::Scratch {
  torch::Tensor qkv = torch::empty({0}), context = torch::empty({0}), hidden = torch::empty({0}),
                inner = torch::empty({0});
  torch::Tensor scores = torch::empty({0}), probabilities = torch::empty({0}),
                head_context = torch::empty({0});
};

BertModel::BertModel(std::unique_ptr<Weights> weights) : weights_(std::move(weights)) {}
BertModel::~BertModel() = default;

int BertModel::hidden_size() const { return static_cast<int>(weights_->hidden); }
size_t BertModel::max_positions() const { return static_cast<size_t>(weights_->max_positions); }

Status BertModel::load(const std::string& config_json, const TensorMap& tensors, const std::string& source,
                       std::unique_ptr<BertModel>* out) {
  auto config = nlohmann::json::parse(config_json, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return Status::Corruption(source + "/config.json: not a JSON object");
  }
  std::string model_type = config.value("model_type", "bert");
  if (model_type != "bert") {
    return Status::NotSupported(source + "/config.json: model_type '" + model_type +
                                "' (this encoder implements BERT only)");
  }
  if (config.value("position_embedding_type", "absolute") != "absolute") {
    return Status::NotSupported(source + "/config.json: only absolute position embeddings are implemented");
  }
  auto w = std::make_unique<Weights>();
  int64_t layers = 0, intermediate = 0;
  try {
    w->hidden = config.at("hidden_size").get<int64_t>();
    w->heads = config.at("num_attention_heads").get<int64_t>();
    w->vocab = config.at("vocab_size").get<int64_t>();
    w->max_positions = config.value("max_position_embeddings", int64_t{512});
    w->norm_eps = config.value("layer_norm_eps", 1e-12);
    layers = config.at("num_hidden_layers").get<int64_t>();
    intermediate = config.at("intermediate_size").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(source + "/config.json: " + e.what());
  }
  if (w->hidden <= 0 || w->heads <= 0 || w->hidden % w->heads != 0 || w->vocab <= 0 || layers <= 0 ||
      intermediate <= 0 || w->max_positions <= 0) {
    return Status::Corruption(source +
                              "/config.json: sizes must be positive and hidden_size a multiple of "
                              "num_attention_heads");
  }
  std::string act = config.value("hidden_act", "gelu");
  if (act == "gelu") {
    w->activation = Activation::kGelu;
  } else if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
    w->activation = Activation::kGeluTanh;
  } else {
    return Status::NotSupported(source + "/config.json: hidden_act '" + act + "'");
  }

  WeightReader read(tensors, source);
  const int64_t h = w->hidden;
  torch::Tensor token_types;
  EMBEDAPT_RETURN_IF_ERROR(read.get("embeddings.word_embeddings.weight", {w->vocab, h}, &w->word_embeddings));
  EMBEDAPT_RETURN_IF_ERROR(
      read.get("embeddings.position_embeddings.weight", {w->max_positions, h}, &w->position_embeddings));
  int64_t type_vocab = config.value("type_vocab_size", int64_t{2});
  EMBEDAPT_RETURN_IF_ERROR(
      read.get("embeddings.token_type_embeddings.weight", {type_vocab, h}, &token_types));
  w->token_type_embedding = token_types[0];  // single-segment input: every token is type 0
  EMBEDAPT_RETURN_IF_ERROR(read.get("embeddings.LayerNorm.weight", {h}, &w->embedding_norm_weight));
  EMBEDAPT_RETURN_IF_ERROR(read.get("embeddings.LayerNorm.bias", {h}, &w->embedding_norm_bias));

  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    LayerWeights l;
    torch::Tensor q, k, v, qb, kb, vb;
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.self.query.weight", {h, h}, &q));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.self.key.weight", {h, h}, &k));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.self.value.weight", {h, h}, &v));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.self.query.bias", {h}, &qb));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.self.key.bias", {h}, &kb));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.self.value.bias", {h}, &vb));
    // Scaling the queries here saves scaling every attention score.
    const int64_t head_dim = h / w->heads;  // exact: the config check requires it
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    l.qkv_weight = torch::cat({q * scale, k, v}, 0);
    l.qkv_bias = torch::cat({qb * scale, kb, vb}, 0);
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.output.dense.weight", {h, h}, &l.attention_out_weight));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.output.dense.bias", {h}, &l.attention_out_bias));
    EMBEDAPT_RETURN_IF_ERROR(
        read.get(p + "attention.output.LayerNorm.weight", {h}, &l.attention_norm_weight));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "attention.output.LayerNorm.bias", {h}, &l.attention_norm_bias));
    EMBEDAPT_RETURN_IF_ERROR(
        read.get(p + "intermediate.dense.weight", {intermediate, h}, &l.intermediate_weight));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "intermediate.dense.bias", {intermediate}, &l.intermediate_bias));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "output.dense.weight", {h, intermediate}, &l.output_weight));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "output.dense.bias", {h}, &l.output_bias));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "output.LayerNorm.weight", {h}, &l.output_norm_weight));
    EMBEDAPT_RETURN_IF_ERROR(read.get(p + "output.LayerNorm.bias", {h}, &l.output_norm_bias));
    w->layers.push_back(std::move(l));
  }
  out->reset(new BertModel(std::move(w)));
  return Status::OK();
}

Status BertModel::embed(const std::vector<std::vector<int32_t>>& sequences, const SentencePooling& pooling,
                        float* out) const {
  const Weights& w = *weights_;
  for (const auto& seq : sequences) {
    if (seq.empty() || static_cast<int64_t>(seq.size()) > w.max_positions) {
      return Status::InvalidArgument("BERT input of " + std::to_string(seq.size()) + " tokens (must be 1.." +
                                     std::to_string(w.max_positions) + ")");
    }
    for (int32_t id : seq) {
      if (id < 0 || id >= w.vocab) {
        return Status::InvalidArgument("token id " + std::to_string(id) + " outside the vocabulary");
      }
    }
  }
  torch::InferenceMode inference;
  Scratch scratch;
  const int64_t budget = std::max<int64_t>(kPassTokens, w.max_positions);
  for (size_t first = 0; first < sequences.size();) {
    size_t end = first;
    int64_t tokens = 0;
    while (end < sequences.size() && tokens + static_cast<int64_t>(sequences[end].size()) <= budget)
      tokens += static_cast<int64_t>(sequences[end++].size());
    run_pass(sequences, first, end, tokens, pooling, &scratch, out + first * w.hidden);
    first = end;
  }
  return Status::OK();
}

void BertModel::run_pass(const std::vector<std::vector<int32_t>>& sequences, size_t first, size_t end,
                         int64_t tokens, const SentencePooling& pooling, Scratch* scratch, float* out) const {
  const Weights& w = *weights_;
  const int64_t h = w.hidden, heads = w.heads, head_dim = h / heads;
  // The pass's sequences one after another, without padding: every operation
  // but attention works token by token, and attention runs per sequence.
  torch::Tensor ids = torch::empty({tokens}, torch::kInt64),
                positions = torch::empty({tokens}, torch::kInt64);
  std::vector<int64_t> offsets;
  int64_t* id_data = ids.data_ptr<int64_t>();
  int64_t* position_data = positions.data_ptr<int64_t>();
  for (size_t i = first, t = 0; i < end; ++i) {
    offsets.push_back(static_cast<int64_t>(t));
    for (size_t p = 0; p < sequences[i].size(); ++p, ++t) {
      id_data[t] = sequences[i][p];
      position_data[t] = static_cast<int64_t>(p);
    }
  }
  offsets.push_back(tokens);

  torch::Tensor x = w.word_embeddings.index_select(0, ids);
  x.add_(w.position_embeddings.index_select(0, positions)).add_(w.token_type_embedding);
  x = torch::layer_norm(x, {h}, w.embedding_norm_weight, w.embedding_norm_bias, w.norm_eps);

  Scratch& s = *scratch;
  for (const LayerWeights& l : w.layers) {
    // The query rows of qkv_weight are pre-scaled by 1/sqrt(head_dim).
    at::addmm_out(sized(s.qkv, {tokens, 3 * h}), l.qkv_bias, x, l.qkv_weight.t());
    sized(s.context, {tokens, h});
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      const int64_t start = offsets[i], length = offsets[i + 1] - start;
      torch::Tensor qkv = s.qkv.narrow(0, start, length).view({length, 3, heads, head_dim});
      torch::Tensor q = qkv.select(1, 0).transpose(0, 1);  // [heads, length, head_dim]
      torch::Tensor k = qkv.select(1, 1).transpose(0, 1);
      torch::Tensor v = qkv.select(1, 2).transpose(0, 1);
      at::bmm_out(sized(s.scores, {heads, length, length}), q, k.transpose(1, 2));
      at::_softmax_out(sized(s.probabilities, {heads, length, length}), s.scores, -1, false);
      at::bmm_out(sized(s.head_context, {heads, length, head_dim}), s.probabilities, v);
      s.context.narrow(0, start, length)
          .view({length, heads, head_dim})
          .copy_(s.head_context.transpose(0, 1));
    }
    at::addmm_out(sized(s.hidden, {tokens, h}), l.attention_out_bias, s.context, l.attention_out_weight.t());
    s.hidden.add_(x);
    torch::Tensor attended =
        torch::layer_norm(s.hidden, {h}, l.attention_norm_weight, l.attention_norm_bias, w.norm_eps);
    at::addmm_out(sized(s.inner, {tokens, l.intermediate_bias.size(0)}), l.intermediate_bias, attended,
                  l.intermediate_weight.t());
    at::gelu_(s.inner, w.activation == Activation::kGelu ? "none" : "tanh");
    at::addmm_out(s.hidden, l.output_bias, s.inner, l.output_weight.t());
    s.hidden.add_(attended);
    x = torch::layer_norm(s.hidden, {h}, l.output_norm_weight, l.output_norm_bias, w.norm_eps);
  }

  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    const int64_t start = offsets[i], length = offsets[i + 1] - start;
    torch::Tensor pooled;
    if (pooling.mode == SentencePooling::Mode::kCls) {
      pooled = x[start];
    } else {
      // A sequence that is all prompt pools to zeros, as sentence-transformers' clamped mean does.
      const int64_t skip = std::min<int64_t>(static_cast<int64_t>(pooling.skip_tokens), length);
      pooled = skip == length ? torch::zeros({h}) : x.narrow(0, start + skip, length - skip).mean(0);
    }
    if (pooling.normalize) pooled = pooled / pooled.norm().clamp_min(1e-12);
    torch::Tensor row = torch::from_blob(out + i * h, {h}, torch::kFloat32);
    row.copy_(pooled);
  }
}

}  // namespace embedapt
