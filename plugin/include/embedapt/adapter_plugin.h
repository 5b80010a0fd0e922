// Adapter plugins: the trainable side of an adapter, and how to add a kind.
//
// An AdapterNet is the LibTorch function behind an Adapter: the trainer
// optimises its tensors, load_adapter() serves it. The built-in kinds
// (`linear`, `two-layer`) and `torchscript` are AdapterNets too; a C++ program
// adds its own kind with register_adapter() before loading or training one.
//
// This header includes LibTorch's tensor type (<torch/types.h>, slow to
// compile): include it only where a net is built or trained, never from widely
// included headers. A net's file includes the parts of LibTorch it uses
// (<torch/nn/...> for modules), not the whole of <torch/torch.h>.
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "embedapt/adapter.h"
#include "embedapt/status.h"

namespace embedapt {

class AdapterNet {
 public:
  virtual ~AdapterNet() = default;

  // [n, in_dim] float32 -> [n, out_dim] float32. Differentiable; the trainer
  // calls it with autograd on, load_adapter() under torch::InferenceMode.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

  // Every tensor the weights file holds, by a stable name ("linear.weight").
  // Tensors with requires_grad() are the ones the trainer optimises; a net
  // must start as (or close to) the identity so training starts from the base.
  virtual std::vector<std::pair<std::string, torch::Tensor>> named_tensors() = 0;
};

// Builds a freshly initialised net for `config` (in_dim, out_dim and the
// kind's own keys); errors name the bad key.
using AdapterFactory = std::function<Status(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out)>;

// Makes `kind` loadable and trainable in this process. kInvalidArgument if the
// kind is already taken (the built-ins and "torchscript" are reserved).
Status register_adapter(const std::string& kind, AdapterFactory factory);

// A fresh (identity-initialised) net of a registered or built-in kind.
Status new_adapter_net(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out);

// A TorchScript module (the bytes of a file saved by torch.jit.save or
// torch::jit::Module::save) as a net; refused unless options.trust_code.
Status load_torchscript_net(const std::string& archive, const AdapterLoadOptions& options,
                            std::shared_ptr<AdapterNet>* out);

// The net's weights as safetensors bytes, and back: load_adapter_net builds
// the net `config_json` names and fills it from `weights`, checking names and
// shapes.
Status save_adapter_weights(AdapterNet& net, std::string* weights);
Status load_adapter_net(const std::string& config_json, const std::string& weights,
                        const AdapterLoadOptions& options, AdapterConfig* config,
                        std::shared_ptr<AdapterNet>* out);

// Wraps a net as a servable Adapter (the net must no longer be trained).
std::unique_ptr<Adapter> make_adapter(const AdapterConfig& config, std::shared_ptr<AdapterNet> net);

}  // namespace embedapt
