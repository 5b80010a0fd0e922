// Adapter configs, the registry of kinds, weights (de)serialisation and serving.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/adapt/builtin_nets.h"
#include "core/adapt/compute_threads.h"
#include "core/adapt/torchscript_net.h"
#include "core/common/json.h"
#include "core/common/safetensors.h"
#include "embedapt/adapter_plugin.h"

namespace embedapt {

const char* AdapterSideName(AdapterSide side) {
  switch (side) {
    case AdapterSide::kQuery:
      return "query";
    case AdapterSide::kBoth:
      return "both";
  }
  return "?";
}

Status parse_adapter_config(const std::string& config_json, AdapterConfig* out) {
  // The config is not quoted back: a config.json of 200 kB made a 200 kB
  // error line.
  nlohmann::json j;
  const Status parsed = parse_json(config_json, "adapter config", &j);
  if (!parsed.ok()) return Status::Corruption(parsed.message());
  if (!j.is_object())
    return Status::Corruption(std::string("adapter config is a JSON ") + j.type_name() + ", not an object");
  AdapterConfig config;
  config.config_json = config_json;
  if (!j.contains("kind") || !j["kind"].is_string()) {
    return Status::InvalidArgument("adapter config: \"kind\" missing or not a string");
  }
  config.kind = j["kind"].get<std::string>();
  for (const char* key : {"in_dim", "out_dim"}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 1 ||
        j[key].get<int64_t>() > kMaxDim) {
      return Status::InvalidArgument(std::string("adapter config: \"") + key +
                                     "\" must be an integer in [1, " + std::to_string(kMaxDim) + "]");
    }
  }
  config.in_dim = j["in_dim"].get<int>();
  config.out_dim = j["out_dim"].get<int>();
  std::string side = j.value("side", "");
  if (side == "query") {
    config.side = AdapterSide::kQuery;
  } else if (side == "both") {
    config.side = AdapterSide::kBoth;
    if (config.in_dim != config.out_dim) {
      return Status::InvalidArgument("adapter config: a \"both\" adapter must keep the dimension (in_dim " +
                                     std::to_string(config.in_dim) + ", out_dim " +
                                     std::to_string(config.out_dim) + ")");
    }
  } else {
    return Status::InvalidArgument("adapter config: \"side\" must be \"query\" or \"both\"");
  }
  if (!j.contains("embedder") || !j["embedder"].is_string()) {
    return Status::InvalidArgument("adapter config: \"embedder\" missing or not a string");
  }
  config.embedder = j["embedder"].get<std::string>();
  *out = std::move(config);
  return Status::OK();
}

Status check_adapter_fits(const AdapterConfig& config, int dim, const std::string& embedder) {
  if (config.in_dim != dim || config.out_dim != dim) {
    return Status::InvalidArgument("the adapter maps " + std::to_string(config.in_dim) + " -> " +
                                   std::to_string(config.out_dim) + " dims; the store's vectors have " +
                                   std::to_string(dim));
  }
  if (!embedder.empty() && !config.embedder.empty() && config.embedder != embedder) {
    return Status::FailedPrecondition("the adapter was trained on embedder '" + config.embedder +
                                      "', the vectors are from '" + embedder + "'");
  }
  return Status::OK();
}

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, AdapterFactory> factories{{"linear", new_linear_net},
                                                  {"two-layer", new_two_layer_net}};
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: factories may be looked up during exit
  return *r;
}

}  // namespace

Status register_adapter(const std::string& kind, AdapterFactory factory) {
  if (kind.empty() || kind == kTorchScriptKind || !factory) {
    return Status::InvalidArgument("register_adapter: invalid or reserved kind \"" + kind + "\"");
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.factories.emplace(kind, std::move(factory)).second) {
    return Status::InvalidArgument("register_adapter: kind \"" + kind + "\" is already registered");
  }
  return Status::OK();
}

Status new_adapter_net(const AdapterConfig& config, std::shared_ptr<AdapterNet>* out) {
  if (config.kind == kTorchScriptKind) {
    return Status::InvalidArgument("a torchscript net is made from its archive (load_torchscript_net)");
  }
  AdapterFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.factories.find(config.kind);
    if (it == r.factories.end()) {
      return Status::NotSupported("unknown adapter kind \"" + config.kind +
                                  "\" (built in: linear, two-layer, torchscript; others must be registered)");
    }
    factory = it->second;
  }
  try {
    return factory(config, out);
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("adapter kind \"" + config.kind +
                                   "\" failed to build: " + e.what_without_backtrace());
  } catch (const std::exception& e) {  // a registered factory's own failure
    return Status::InvalidArgument("adapter kind \"" + config.kind + "\" failed to build: " + e.what());
  }
}

Status save_adapter_weights(AdapterNet& net, std::string* weights) {
  TensorMap tensors;
  std::string archive;
  if (save_torchscript_archive(net, &archive).ok()) {
    RawTensor t;
    t.dtype = "U8";
    t.shape = {static_cast<int64_t>(archive.size())};
    t.data = std::move(archive);
    tensors.emplace(kTorchScriptTensor, std::move(t));
  } else {
    for (auto& [name, tensor] : net.named_tensors()) {
      torch::Tensor t = tensor.detach().to(torch::kFloat32).contiguous();
      std::vector<float> values(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
      tensors.emplace(name, floats_to_tensor(values, t.sizes().vec()));
    }
  }
  *weights = serialize_safetensors(tensors);
  return Status::OK();
}

namespace {

// Copies each tensor of `stored` into the net's tensor of the same name.
Status fill_net(const TensorMap& stored, AdapterNet& net, const std::string& kind) {
  auto tensors = net.named_tensors();
  if (stored.size() != tensors.size()) {
    return Status::InvalidArgument(kind + " adapter weights: expected " + std::to_string(tensors.size()) +
                                   " tensors, found " + std::to_string(stored.size()));
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : tensors) {
    auto it = stored.find(name);
    if (it == stored.end())
      return Status::InvalidArgument(c10::str(kind, " adapter weights: tensor \"", name, "\" missing"));
    if (it->second.shape != tensor.sizes().vec()) {
      return Status::InvalidArgument(c10::str(kind, " adapter weights: tensor \"", name, "\" has shape ",
                                              c10::IntArrayRef(it->second.shape), ", the config needs ",
                                              tensor.sizes()));
    }
    std::vector<float> values;
    Status s = tensor_to_floats(it->second, &values);
    if (!s.ok()) return s.WithContext(c10::str(kind, " adapter weights: tensor \"", name, "\""));
    // A NaN weight imported and activated made every search fail after.
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    if (bad != values.end()) {
      return Status::InvalidArgument(c10::str(kind, " adapter weights: tensor \"", name,
                                              "\" holds a non-finite value at ", bad - values.begin()));
    }
    tensor.copy_(torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kFloat32)
                     .view(tensor.sizes()));
  }
  return Status::OK();
}

}  // namespace

Status load_adapter_net(const std::string& config_json, const std::string& weights,
                        const AdapterLoadOptions& options, AdapterConfig* config,
                        std::shared_ptr<AdapterNet>* out) {
  const KeepOpenMpThreads openmp;
  EMBEDAPT_RETURN_IF_ERROR(parse_adapter_config(config_json, config));
  TensorMap stored;
  Status s = parse_safetensors(weights, &stored);
  if (!s.ok()) return s.WithContext(config->kind + " adapter weights");
  if (config->kind == kTorchScriptKind) {
    auto it = stored.find(kTorchScriptTensor);
    if (it == stored.end() || stored.size() != 1) {
      return Status::InvalidArgument(std::string("torchscript adapter weights: expected one tensor \"") +
                                     kTorchScriptTensor + "\"");
    }
    return load_torchscript_net(it->second.data, options, out);
  }
  // A config naming huge dims must not allocate before the weights refute
  // it (fill_net names the tensor whose shape is off once the net exists).
  int64_t needed = 0, supplied = 0;
  for (const auto& [name, tensor] : stored) supplied += tensor.numel();
  if (builtin_parameter_count(*config, &needed) && needed > supplied) {
    return Status::InvalidArgument(config->kind + " adapter: the config describes " + std::to_string(needed) +
                                   " parameters (in_dim " + std::to_string(config->in_dim) + ", out_dim " +
                                   std::to_string(config->out_dim) + "), the weights hold " +
                                   std::to_string(supplied));
  }
  EMBEDAPT_RETURN_IF_ERROR(new_adapter_net(*config, out));
  return fill_net(stored, **out, config->kind);
}

namespace {

// Every served adapter's output passes this: a NaN or Inf would be indexed,
// or ruin every score of a query.
Status check_finite(const AdapterConfig& config, const float* out, size_t n) {
  const size_t values = n * static_cast<size_t>(config.out_dim);
  for (size_t i = 0; i < values; ++i) {
    if (!std::isfinite(out[i])) {
      return Status::InvalidArgument(config.kind + " adapter returned a non-finite value for input row " +
                                     std::to_string(i / config.out_dim));
    }
  }
  return Status::OK();
}

class NetAdapter : public Adapter {
 public:
  NetAdapter(AdapterConfig config, std::shared_ptr<AdapterNet> net)
      : config_(std::move(config)), net_(std::move(net)) {}

  const std::string& kind() const override { return config_.kind; }
  int in_dim() const override { return config_.in_dim; }
  int out_dim() const override { return config_.out_dim; }
  AdapterSide side() const override { return config_.side; }

  Status apply(const float* in, size_t n, float* out) const override {
    if (n == 0) return Status::OK();
    const KeepOpenMpThreads openmp;
    try {
      c10::InferenceMode inference;
      torch::Tensor x = torch::from_blob(const_cast<float*>(in), {static_cast<int64_t>(n), config_.in_dim},
                                         torch::kFloat32);
      torch::Tensor y = net_->forward(x);
      if (y.scalar_type() != torch::kFloat32 || y.dim() != 2 || y.size(0) != static_cast<int64_t>(n) ||
          y.size(1) != config_.out_dim) {
        return Status::InvalidArgument(config_.kind + " adapter returned " + c10::str(y.sizes()) + " " +
                                       c10::toString(y.scalar_type()) + ", expected float [" +
                                       std::to_string(n) + ", " + std::to_string(config_.out_dim) + "]");
      }
      y = y.contiguous();
      std::memcpy(out, y.data_ptr<float>(), n * config_.out_dim * sizeof(float));
      EMBEDAPT_RETURN_IF_ERROR(check_finite(config_, out, n));
    } catch (const c10::Error& e) {
      return Status::InvalidArgument(config_.kind + " adapter failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {  // TorchScript's `raise` arrives as a std::runtime_error subclass
      return Status::InvalidArgument(config_.kind + " adapter failed: " + e.what());
    }
    return Status::OK();
  }

 private:
  const AdapterConfig config_;
  const std::shared_ptr<AdapterNet> net_;
};

// The linear kind served without LibTorch: y = W x (+ b) by BLAS. Through
// the net, LibTorch's dispatch of the matmul cost a store search about
// 0.15 ms of CPU per query (store_bench, IVF1024,Flat at nprobe 1: more than
// the index search itself); the multiply of one 384-d query is some
// microseconds. One query is never threaded: OpenBLAS hands a single
// 384 x 384 sgemv to a helper thread, and on a busy machine that call then
// waited for the helper to be scheduled (5 ms of wall time against 12 us of
// CPU, measured under a load of 12 on 2 cores), as FAISS's OpenMP threads did
// (OneThreadFor in index/vector_index.cpp). OpenBLAS (0.3) runs an sgemm on
// the caller alone up to kOneThreadGemm products, so one query is an sgemm of
// one row by a band of W's rows, as many bands as that takes (one for a
// square W up to 512 x 512). 6.7 us for 384 x 384, against 7.4 us for sgemvs
// of 20-row bands (the sgemv's own limit is 9,216 products) and 6.8 us for
// one sgemv with OpenBLAS capped at one thread (a process-wide setting); 53
// against 60 us at 1024 x 1024 (the best of 100 runs of 50 each, AVX-512
// kernels). A batch is one sgemm, whose threads pay off. The weights are
// copied once: a served net is not trained.
class LinearAdapter : public Adapter {
  // OpenBLAS's interface/gemm.c: at most 65536 * GEMM_MULTITHREAD_THRESHOLD
  // (4 by default) products run on the calling thread.
  static constexpr int kOneThreadGemm = 65536 * 4;

 public:
  LinearAdapter(AdapterConfig config, AdapterNet& net) : config_(std::move(config)) {
    for (auto& [name, tensor] : net.named_tensors()) {
      torch::Tensor t = tensor.detach().to(torch::kFloat32).contiguous();
      std::vector<float>& to = name == "linear.bias" ? bias_ : weight_;
      to.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
  }

  const std::string& kind() const override { return config_.kind; }
  int in_dim() const override { return config_.in_dim; }
  int out_dim() const override { return config_.out_dim; }
  AdapterSide side() const override { return config_.side; }

  Status apply(const float* in, size_t n, float* out) const override {
    const int rows = config_.out_dim, cols = config_.in_dim;
    if (n == 1) {  // out[r, r + m) = bias + in (1 x cols) * W[r, r + m)^T
      const int band = std::max(1, kOneThreadGemm / cols);
      for (int r = 0; r < rows; r += band) {
        const int m = std::min(band, rows - r);
        if (!bias_.empty()) std::copy_n(bias_.begin() + r, m, out + r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, m, cols, 1.0f, in, cols,
                    weight_.data() + size_t(r) * cols, cols, bias_.empty() ? 0.0f : 1.0f, out + r, m);
      }
    } else if (n > 1) {  // out (n x rows) = bias + in (n x cols) * W^T
      for (size_t i = 0; i < n && !bias_.empty(); ++i) std::copy(bias_.begin(), bias_.end(), out + i * rows);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), rows, cols, 1.0f, in, cols,
                  weight_.data(), cols, bias_.empty() ? 0.0f : 1.0f, out, rows);
    }
    return check_finite(config_, out, n);
  }

 private:
  const AdapterConfig config_;
  std::vector<float> weight_;  // out_dim x in_dim, row-major (torch::nn::Linear's layout)
  std::vector<float> bias_;    // out_dim, or empty
};

}  // namespace

std::unique_ptr<Adapter> make_adapter(const AdapterConfig& config, std::shared_ptr<AdapterNet> net) {
  if (config.kind == "linear") return std::make_unique<LinearAdapter>(config, *net);
  return std::make_unique<NetAdapter>(config, std::move(net));
}

Status load_adapter(const std::string& config_json, const std::string& weights,
                    const AdapterLoadOptions& options, std::unique_ptr<Adapter>* out) {
  AdapterConfig config;
  std::shared_ptr<AdapterNet> net;
  EMBEDAPT_RETURN_IF_ERROR(load_adapter_net(config_json, weights, options, &config, &net));
  *out = make_adapter(config, std::move(net));
  return Status::OK();
}

}  // namespace embedapt
