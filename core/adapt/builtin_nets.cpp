#include "core/adapt/builtin_nets.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <nlohmann/json.hpp>
#include <string>

namespace embedapt {

namespace {

std::vector<std::pair<std::string, torch::Tensor>> parameters_of(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

class LinearNet : public torch::nn::Module, public AdapterNet {
 public:
  LinearNet(int in_dim, int out_dim, bool bias)
      : linear_(register_module("linear",
                                torch::nn::Linear(torch::nn::LinearOptions(in_dim, out_dim).bias(bias)))) {
    torch::NoGradGuard no_grad;
    linear_->weight.copy_(torch::eye(out_dim, in_dim));
    if (bias) linear_->bias.zero_();
  }

  torch::Tensor forward(const torch::Tensor& x) override { return linear_->forward(x); }
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() override { return parameters_of(*this); }

 private:
  torch::nn::Linear linear_;
};

enum class Activation { kRelu, kGelu, kTanh };

class TwoLayerNet : public torch::nn::Module, public AdapterNet {
 public:
  TwoLayerNet(int dim, int hidden, Activation activation, bool linear_skip)
      : linear1_(register_module("linear1", torch::nn::Linear(dim, hidden))),
        linear2_(register_module("linear2", torch::nn::Linear(hidden, dim))),
        residual_weight_(register_parameter("residual_weight", torch::zeros({1}))),
        activation_(activation) {
    if (linear_skip) {
      skip_ = register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
      torch::NoGradGuard no_grad;
      skip_->weight.copy_(torch::eye(dim));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor h = linear1_->forward(x);
    switch (activation_) {
      case Activation::kRelu:
        h = torch::relu(h);
        break;
      case Activation::kGelu:
        h = torch::gelu(h);
        break;
      case Activation::kTanh:
        h = torch::tanh(h);
        break;
    }
    return (skip_ ? skip_->forward(x) : x) + residual_weight_ * linear2_->forward(h);
  }
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() override { return parameters_of(*this); }

 private:
  torch::nn::Linear linear1_;
  torch::nn::Linear linear2_;
  torch::Tensor residual_weight_;
  Activation activation_;
  torch::nn::Linear skip_{nullptr};  // "skip": "linear"; empty: the identity
};

// Reads the optional key `key` of `config` into *value; errors name the key.
template <typename T>
Status optional_key(const AdapterConfig& config, const char* key, T* value) {
  nlohmann::json j = nlohmann::json::parse(config.config_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains(key)) return Status::OK();
  try {
    *value = j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    return Status::InvalidArgument(std::string("adapter config: \"") + key +
                                   "\" has the wrong type: " + j.at(key).dump());
  }
  return Status::OK();
}

}  // namespace

bool builtin_parameter_count(const AdapterConfig& config, int64_t* count) {
  const int64_t in = config.in_dim, out = config.out_dim;
  if (config.kind == "linear") {
    bool bias = false;
    optional_key(config, "bias", &bias).ok();  // a bad key fails the factory later
    *count = in * out + (bias ? out : 0);
    return true;
  }
  if (config.kind == "two-layer") {
    int hidden = 1024;
    std::string skip = "identity";
    optional_key(config, "hidden", &hidden).ok();
    optional_key(config, "skip", &skip).ok();
    *count = in * hidden + hidden + int64_t(hidden) * out + out + 1 + (skip == "linear" ? in * out : 0);
    return true;
  }
  return false;
}

Status new_linear_net(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out) {
  bool bias = false;
  EMBEDAPT_RETURN_IF_ERROR(optional_key(config, "bias", &bias));
  *out = std::make_shared<LinearNet>(config.in_dim, config.out_dim, bias);
  return Status::OK();
}

Status new_two_layer_net(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out) {
  if (config.in_dim != config.out_dim) {
    return Status::InvalidArgument("adapter config: two-layer is residual, so in_dim (" +
                                   std::to_string(config.in_dim) + ") must equal out_dim (" +
                                   std::to_string(config.out_dim) + ")");
  }
  int hidden = 1024;
  std::string activation_name = "relu", skip = "identity";
  EMBEDAPT_RETURN_IF_ERROR(optional_key(config, "hidden", &hidden));
  EMBEDAPT_RETURN_IF_ERROR(optional_key(config, "activation", &activation_name));
  EMBEDAPT_RETURN_IF_ERROR(optional_key(config, "skip", &skip));
  if (skip != "identity" && skip != "linear") {
    return Status::InvalidArgument("adapter config: unknown \"skip\" \"" + skip + "\" (identity, linear)");
  }
  if (hidden < 1 || hidden > kMaxHidden) {
    return Status::InvalidArgument("adapter config: \"hidden\" must be in [1, " + std::to_string(kMaxHidden) +
                                   "], got " + std::to_string(hidden));
  }
  Activation activation;
  if (activation_name == "relu") {
    activation = Activation::kRelu;
  } else if (activation_name == "gelu") {
    activation = Activation::kGelu;
  } else if (activation_name == "tanh") {
    activation = Activation::kTanh;
  } else {
    return Status::InvalidArgument("adapter config: unknown \"activation\" \"" + activation_name +
                                   "\" (relu, gelu, tanh)");
  }
  *out = std::make_shared<TwoLayerNet>(config.in_dim, hidden, activation, skip == "linear");
  return Status::OK();
}

}  // namespace embedapt
