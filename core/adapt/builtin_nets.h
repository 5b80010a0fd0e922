// The built-in adapter kinds, as AdapterNet factories.
//
// `linear`: y = W x (+ b), W initialised to the (rectangular) identity.
//   Config keys: "bias" (bool, default false).
// `two-layer`: y = x + alpha * W2 act(W1 x + b1) + b2, alpha initialised to 0
//   so the net starts as the identity (the seed's residual TwoLayerNN); needs
//   in_dim == out_dim. Config keys: "hidden" (default 1024), "activation"
//   ("relu" default, "gelu", "tanh").
#pragma once

#include <memory>

#include "embedapt/adapter_plugin.h"

namespace embedapt {

// Largest accepted two-layer hidden size (a guard against absurd configs).
constexpr int kMaxHidden = 65536;

Status new_linear_net(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out);
Status new_two_layer_net(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out);

// How many parameters the built-in net `config` describes, without making it
// (a config is checked against its weights before anything is allocated);
// false if config.kind is not built in.
bool builtin_parameter_count(const AdapterConfig& config, int64_t* count);

}  // namespace embedapt
