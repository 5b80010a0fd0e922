#include "core/adapt/torchscript_net.h"

#include <torch/script.h>

#include <sstream>

namespace embedapt {

namespace {

class TorchScriptNet : public AdapterNet {
 public:
  explicit TorchScriptNet(const torch::jit::Module& module) : module_(module) {}

  torch::Tensor forward(const torch::Tensor& x) override { return module_.forward({x}).toTensor(); }

  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) out.emplace_back(p.name, p.value);
    return out;
  }

  std::string archive() const {
    std::ostringstream stream;
    module_.save(stream);
    return std::move(stream).str();
  }

 private:
  torch::jit::Module module_;
};

}  // namespace

Status load_torchscript_net(const std::string& archive, const AdapterLoadOptions& options,
                            std::shared_ptr<AdapterNet>* out) {
  if (!options.trust_code) {
    return Status::FailedPrecondition(
        "a torchscript adapter is code: it loads only when trusted (--trust-code)");
  }
  try {
    std::istringstream stream(archive);
    *out = std::make_shared<TorchScriptNet>(torch::jit::load(stream));
  } catch (const c10::Error& e) {
    return Status::Corruption(std::string("torchscript archive cannot be loaded: ") +
                              e.what_without_backtrace());
  } catch (const std::exception& e) {  // the JIT's own errors are std::runtime_error subclasses
    return Status::Corruption(std::string("torchscript archive cannot be loaded: ") + e.what());
  }
  return Status::OK();
}

Status save_torchscript_archive(AdapterNet& net, std::string* archive) {
  auto* scripted = dynamic_cast<TorchScriptNet*>(&net);
  if (scripted == nullptr) return Status::InvalidArgument("not a torchscript adapter net");
  try {
    *archive = scripted->archive();
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("torchscript archive cannot be saved: ") +
                            e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::Internal(std::string("torchscript archive cannot be saved: ") + e.what());
  }
  return Status::OK();
}

}  // namespace embedapt
