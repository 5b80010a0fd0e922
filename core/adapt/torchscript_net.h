// `torchscript` adapters: a user's scripted torch.nn.Module, trained and
// served like a built-in kind.
//
// The weights blob of such an adapter is the whole TorchScript archive (code
// and current parameters) as one U8 tensor named "torchscript.archive", so a
// stored version is self-contained; loading it runs that code, hence the
// trust flag.
#pragma once

#include <string>

#include "embedapt/adapter_plugin.h"

namespace embedapt {

constexpr const char* kTorchScriptKind = "torchscript";
constexpr const char* kTorchScriptTensor = "torchscript.archive";

// The archive of a net made by load_torchscript_net, with its current
// parameters; kInvalidArgument if `net` is not a TorchScript net.
Status save_torchscript_archive(AdapterNet& net, std::string* archive);

}  // namespace embedapt
