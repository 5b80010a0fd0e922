#include "core/embed/bert_model.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
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

  Status get(const std::string& name, std::vector<int64_t> shape, torch::Tensor* out) const {
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

}  // namespace

struct BertModel::Weights {
  int64_t hidden = 0, heads = 0, vocab = 0, max_positions = 0;
  double norm_eps = 1e-12;
  Activation activation = Activation::kGelu;
  torch::Tensor word_embeddings, position_embeddings, token_type_embedding, embedding_norm_weight,
      embedding_norm_bias;
  std::vector<LayerWeights> layers;
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
    l.qkv_weight = torch::cat({q, k, v}, 0);
    l.qkv_bias = torch::cat({qb, kb, vb}, 0);
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

Status BertModel::embed_batch(const std::vector<std::vector<int32_t>>& sequences,
                              const SentencePooling& pooling, float* out) const {
  const Weights& w = *weights_;
  const int64_t batch = static_cast<int64_t>(sequences.size());
  if (batch == 0) return Status::OK();
  int64_t length = 0;
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
    length = std::max<int64_t>(length, static_cast<int64_t>(seq.size()));
  }

  torch::InferenceMode inference;
  torch::Tensor ids = torch::zeros({batch, length}, torch::kInt64);
  torch::Tensor mask = torch::zeros({batch, length}, torch::kFloat32);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<float, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    for (size_t t = 0; t < sequences[b].size(); ++t) {
      ids_a[b][t] = sequences[b][t];
      mask_a[b][t] = 1.0f;
    }
  }

  const int64_t h = w.hidden, heads = w.heads, head_dim = h / heads;
  torch::Tensor x = w.word_embeddings.index_select(0, ids.view(-1)).view({batch, length, h});
  x = x + w.position_embeddings.narrow(0, 0, length) + w.token_type_embedding;
  x = torch::layer_norm(x, {h}, w.embedding_norm_weight, w.embedding_norm_bias, w.norm_eps);

  // Padding gets a large negative score, so softmax gives it exactly zero weight.
  torch::Tensor attention_bias = ((1.0f - mask) * -1e9f).view({batch, 1, 1, length});
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  for (const LayerWeights& l : w.layers) {
    torch::Tensor qkv = torch::linear(x, l.qkv_weight, l.qkv_bias).view({batch, length, 3, heads, head_dim});
    torch::Tensor q = qkv.select(2, 0).transpose(1, 2);  // [batch, heads, length, head_dim]
    torch::Tensor k = qkv.select(2, 1).transpose(1, 2);
    torch::Tensor v = qkv.select(2, 2).transpose(1, 2);
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).mul_(scale).add_(attention_bias);
    torch::Tensor context =
        torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({batch, length, h});
    torch::Tensor attended =
        torch::layer_norm(torch::linear(context, l.attention_out_weight, l.attention_out_bias) + x, {h},
                          l.attention_norm_weight, l.attention_norm_bias, w.norm_eps);
    torch::Tensor inner = torch::linear(attended, l.intermediate_weight, l.intermediate_bias);
    inner = torch::gelu(inner, w.activation == Activation::kGelu ? "none" : "tanh");
    x = torch::layer_norm(torch::linear(inner, l.output_weight, l.output_bias) + attended, {h},
                          l.output_norm_weight, l.output_norm_bias, w.norm_eps);
  }

  torch::Tensor pooled;
  if (pooling.mode == SentencePooling::Mode::kCls) {
    pooled = x.select(1, 0);
  } else {
    torch::Tensor weights = mask.clone();
    weights.narrow(1, 0, std::min<int64_t>(static_cast<int64_t>(pooling.skip_tokens), length)).zero_();
    weights = weights.unsqueeze(-1);
    pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
  }
  if (pooling.normalize)
    pooled =
        torch::nn::functional::normalize(pooled, torch::nn::functional::NormalizeFuncOptions().p(2).dim(1));
  pooled = pooled.contiguous();
  std::memcpy(out, pooled.data_ptr<float>(), sizeof(float) * batch * h);
  return Status::OK();
}

}  // namespace embedapt
