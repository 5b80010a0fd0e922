// The built-in adapter kinds, as AdapterNet factories.
//
// `linear`: y = W x (+ b), W initialised to the (rectangular) identity.
//   Config keys: "bias" (bool, default false).
// `two-layer`: y = S x + alpha * (W2 act(W1 x + b1) + b2), alpha initialised
//   to 0 so the net starts as the identity; needs in_dim == out_dim. The skip
//   S is the identity (the seed's residual TwoLayerNN, whose files carry no
//   "skip") or, with "skip": "linear", a matrix of its own initialised to the
//   identity: the net the trainer builds. At its start that net takes the
//   linear net's steps and the MLP can only add to them; through an identity
//   skip every linear change has to pass the MLP's hidden units (on in-corpus
//   halves of the 10-K training file its final net gained +0.024 hit@5 on the
//   other half against the linear skip's +0.042, mean of 3 splits). Config
//   keys: "hidden" (default 1024), "activation" ("relu" default, "gelu",
//   "tanh"), "skip" ("identity" default, "linear").
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
