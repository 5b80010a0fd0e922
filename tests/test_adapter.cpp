// Adapters: built-in kinds, weights files, the exchange directory, TorchScript
// and registered kinds.
#include <omp.h>
#include <torch/nn/module.h>
#include <torch/script.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <tuple>

#include "core/adapt/trainer.h"
#include "core/common/files.h"
#include "core/common/safetensors.h"
#include "embedapt/adapter_plugin.h"
#include "tests/support/catch.h"
#include "tests/test_trainer_task.h"

using namespace embedapt;
using embedapt::test::distorted_task;
using embedapt::test::kDim;

namespace {

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("embedapt_test_adapter_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string config(const std::string& kind, int in_dim, int out_dim, const nlohmann::json& extra = {}) {
  nlohmann::json j = {{"kind", kind},
                      {"in_dim", in_dim},
                      {"out_dim", out_dim},
                      {"side", "query"},
                      {"embedder", "test-embedder"}};
  if (extra.is_object()) j.update(extra);
  return j.dump();
}

std::vector<float> random_vectors(size_t n, int dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (float& x : v) x = normal(rng);
  return v;
}

// A trained-looking net: its tensors moved off the initial identity.
std::shared_ptr<AdapterNet> perturbed_net(const std::string& config_json) {
  AdapterConfig parsed;
  REQUIRE(parse_adapter_config(config_json, &parsed).ok());
  std::shared_ptr<AdapterNet> net;
  REQUIRE(new_adapter_net(parsed, &net).ok());
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : net->named_tensors()) t.add_(0.1 * torch::randn_like(t));
  return net;
}

std::vector<float> run_adapter(const Adapter& adapter, const std::vector<float>& in) {
  size_t n = in.size() / adapter.in_dim();
  std::vector<float> out(n * adapter.out_dim());
  REQUIRE(adapter.apply(in.data(), n, out.data()).ok());
  return out;
}

}  // namespace

TEST_CASE("a fresh linear or two-layer adapter is the identity", "[adapter]") {
  for (const std::string& cfg : {config("linear", 8, 8), config("two-layer", 8, 8, {{"hidden", 16}}),
                                 config("two-layer", 8, 8, {{"hidden", 16}, {"skip", "linear"}})}) {
    INFO(cfg);
    AdapterConfig parsed;
    REQUIRE(parse_adapter_config(cfg, &parsed).ok());
    std::shared_ptr<AdapterNet> net;
    REQUIRE(new_adapter_net(parsed, &net).ok());
    auto adapter = make_adapter(parsed, net);
    std::vector<float> in = random_vectors(5, 8, 1);
    CHECK(run_adapter(*adapter, in) == in);
  }
}

TEST_CASE("export and import through a directory give identical outputs", "[adapter]") {
  for (const auto& [kind, skip] :
       {std::pair{"linear", ""}, {"two-layer", "identity"}, {"two-layer", "linear"}}) {
    nlohmann::json extra = {{"hidden", 32}, {"activation", "gelu"}};
    if (*skip) extra["skip"] = skip;
    std::string cfg = config(kind, 12, 12, extra);
    auto net = perturbed_net(cfg);
    AdapterConfig parsed;
    REQUIRE(parse_adapter_config(cfg, &parsed).ok());
    auto original = make_adapter(parsed, net);
    std::string weights;
    REQUIRE(save_adapter_weights(*net, &weights).ok());

    std::string dir = temp_dir(std::string(kind) + skip);
    REQUIRE(write_adapter_dir(dir, cfg, weights).ok());
    std::string cfg_back, weights_back;
    REQUIRE(read_adapter_dir(dir, &cfg_back, &weights_back).ok());
    CHECK(cfg_back == cfg);
    std::unique_ptr<Adapter> loaded;
    REQUIRE(load_adapter(cfg_back, weights_back, {}, &loaded).ok());
    CHECK(loaded->kind() == kind);
    std::vector<float> in = random_vectors(7, 12, 2);
    std::vector<float> expected = run_adapter(*original, in);
    CHECK(expected != in);  // the perturbation shows
    CHECK(run_adapter(*loaded, in) == expected);
  }
}

TEST_CASE("a served linear adapter computes what its net computes", "[adapter]") {
  // Served by BLAS, not the net: one query and a batch, with and without a
  // bias, square and rectangular; 1024 inputs make one query several bands
  // of rows (the last one short).
  for (const auto& [in_dim, out_dim, bias] : {std::tuple{12, 12, false},
                                              {12, 12, true},
                                              {12, 5, true},
                                              {384, 384, true},
                                              {384, 50, false},
                                              {1024, 600, true}}) {
    INFO(in_dim << " -> " << out_dim << (bias ? " with bias" : ""));
    std::string cfg = config("linear", in_dim, out_dim, {{"bias", bias}});
    auto net = perturbed_net(cfg);
    AdapterConfig parsed;
    REQUIRE(parse_adapter_config(cfg, &parsed).ok());
    auto adapter = make_adapter(parsed, net);
    for (size_t n : {size_t{1}, size_t{7}}) {
      std::vector<float> in = random_vectors(n, in_dim, 4 + n);
      torch::Tensor expected;
      {
        c10::InferenceMode inference;
        expected = net->forward(torch::from_blob(in.data(), {static_cast<int64_t>(n), in_dim})).contiguous();
      }
      std::vector<float> served = run_adapter(*adapter, in);
      REQUIRE(served.size() == n * out_dim);
      for (size_t i = 0; i < served.size(); ++i)
        CHECK(served[i] == Approx(expected.data_ptr<float>()[i]).margin(1e-5));
    }
  }
  // A weight that overflows still comes back as an error naming the row.
  std::string cfg = config("linear", 3, 3);
  auto net = perturbed_net(cfg);
  {
    torch::NoGradGuard no_grad;
    net->named_tensors()[0].second.fill_(3e38f);
  }
  AdapterConfig parsed;
  REQUIRE(parse_adapter_config(cfg, &parsed).ok());
  std::vector<float> in = {1, 1, 1}, out(3);
  Status s = make_adapter(parsed, net)->apply(in.data(), 1, out.data());
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("non-finite value for input row 0") != std::string::npos);
}

TEST_CASE("weights use names other stacks read", "[adapter]") {
  auto net = perturbed_net(config("linear", 4, 4, {{"bias", true}}));
  std::string weights;
  REQUIRE(save_adapter_weights(*net, &weights).ok());
  TensorMap tensors;
  REQUIRE(parse_safetensors(weights, &tensors).ok());
  REQUIRE(tensors.size() == 2);
  CHECK(tensors.at("linear.weight").dtype == "F32");
  CHECK(tensors.at("linear.weight").shape == std::vector<int64_t>{4, 4});
  CHECK(tensors.at("linear.bias").shape == std::vector<int64_t>{4});
}

// The two-layer net's skip: the identity (LlamaIndex's residual TwoLayerNN,
// whose files peer.py exports with no "skip") or a linear map of its own.
TEST_CASE("a two-layer adapter's skip is the identity or a linear map, named in its config", "[adapter]") {
  const std::string identity = config("two-layer", 6, 6, {{"hidden", 8}});
  const std::string linear = config("two-layer", 6, 6, {{"hidden", 8}, {"skip", "linear"}});
  std::string identity_weights, linear_weights;
  REQUIRE(save_adapter_weights(*perturbed_net(identity), &identity_weights).ok());
  REQUIRE(save_adapter_weights(*perturbed_net(linear), &linear_weights).ok());
  TensorMap tensors;
  REQUIRE(parse_safetensors(linear_weights, &tensors).ok());
  CHECK(tensors.at("linear.weight").shape == std::vector<int64_t>{6, 6});
  CHECK(tensors.count("residual_weight") == 1);

  std::unique_ptr<Adapter> adapter;
  CHECK(load_adapter(identity, identity_weights, {}, &adapter).ok());
  CHECK(load_adapter(linear, linear_weights, {}, &adapter).ok());
  // Each one's weights are refused under the other's config.
  CHECK(load_adapter(linear, identity_weights, {}, &adapter).code() == Code::kInvalidArgument);
  CHECK(load_adapter(identity, linear_weights, {}, &adapter).code() == Code::kInvalidArgument);
  Status unknown =
      load_adapter(config("two-layer", 6, 6, {{"hidden", 8}, {"skip", "mlp"}}), linear_weights, {}, &adapter);
  CHECK(unknown.code() == Code::kInvalidArgument);
  CHECK_THAT(unknown.message(), Catch::Contains("\"skip\" \"mlp\""));
}

TEST_CASE("truncated or mis-shaped weights are clear errors", "[adapter]") {
  std::string cfg = config("linear", 6, 6);
  std::string weights;
  REQUIRE(save_adapter_weights(*perturbed_net(cfg), &weights).ok());
  std::unique_ptr<Adapter> adapter;

  Status truncated = load_adapter(cfg, weights.substr(0, weights.size() - 10), {}, &adapter);
  CHECK(truncated.code() == Code::kCorruption);
  CHECK_THAT(truncated.message(), Catch::Contains("linear adapter weights"));

  Status wrong_shape = load_adapter(config("linear", 8, 8), weights, {}, &adapter);
  CHECK(wrong_shape.code() == Code::kInvalidArgument);
  // Refused by the parameter count, before any tensor is allocated.
  CHECK_THAT(wrong_shape.message(), Catch::Contains("in_dim 8, out_dim 8") && Catch::Contains("hold 36"));

  CHECK(load_adapter(config("nonsense", 6, 6), weights, {}, &adapter).code() == Code::kNotSupported);
  CHECK(load_adapter("{\"kind\": \"linear\"}", weights, {}, &adapter).code() == Code::kInvalidArgument);
  CHECK(load_adapter("not json", weights, {}, &adapter).code() == Code::kCorruption);
  // A config that does not parse is not quoted back (200 kB of it made a
  // 200 kB error line).
  const std::string long_broken = "{\"kind\": \"linear\", " + std::string(200000, ' ') + "oops";
  Status broken = load_adapter(long_broken, weights, {}, &adapter);
  CHECK(broken.code() == Code::kCorruption);
  CHECK(broken.message().size() < 1000);

  std::string cfg_back, weights_back;
  CHECK(read_adapter_dir(temp_dir("empty"), &cfg_back, &weights_back).code() == Code::kNotFound);

  // A NaN weight was imported and activated, and then every search failed.
  auto poisoned = perturbed_net(cfg);
  {
    torch::NoGradGuard no_grad;
    poisoned->named_tensors().front().second.view(-1)[7] = std::nanf("");
  }
  std::string nan_weights;
  REQUIRE(save_adapter_weights(*poisoned, &nan_weights).ok());
  Status nan = load_adapter(cfg, nan_weights, {}, &adapter);
  CHECK(nan.code() == Code::kInvalidArgument);
  CHECK_THAT(nan.message(), Catch::Contains("non-finite value at 7"));
}

TEST_CASE("a TorchScript adapter loads only when trusted", "[adapter]") {
  torch::jit::Module module("Doubler");
  module.register_parameter("weight", 2 * torch::eye(4), /*is_buffer=*/false);
  module.define(R"(
def forward(self, x):
    return torch.matmul(x, self.weight)
)");
  std::string path = temp_dir("torchscript") + "/doubler.pt";
  module.save(path);
  std::string archive;
  REQUIRE(read_file(path, &archive).ok());

  std::shared_ptr<AdapterNet> net;
  CHECK(load_torchscript_net(archive, {}, &net).code() == Code::kFailedPrecondition);
  REQUIRE(load_torchscript_net(archive, {/*trust_code=*/true}, &net).ok());
  std::string weights;
  REQUIRE(save_adapter_weights(*net, &weights).ok());

  std::string cfg = config("torchscript", 4, 4);
  std::unique_ptr<Adapter> adapter;
  Status untrusted = load_adapter(cfg, weights, {}, &adapter);
  CHECK(untrusted.code() == Code::kFailedPrecondition);
  CHECK_THAT(untrusted.message(), Catch::Contains("trust"));
  REQUIRE(load_adapter(cfg, weights, {true}, &adapter).ok());
  std::vector<float> in = random_vectors(3, 4, 4);
  std::vector<float> out = run_adapter(*adapter, in);
  for (size_t i = 0; i < in.size(); ++i) CHECK(out[i] == 2 * in[i]);

  // A config whose out_dim disagrees with what the module returns is caught when applied.
  REQUIRE(load_adapter(config("torchscript", 4, 5), weights, {true}, &adapter).ok());
  std::vector<float> wrong(size_t{3} * 5);
  CHECK(adapter->apply(in.data(), 3, wrong.data()).code() == Code::kInvalidArgument);

  CHECK(load_torchscript_net("not an archive", {true}, &net).code() == Code::kCorruption);
}

TEST_CASE("a trusted TorchScript adapter that raises fails the call, never the process", "[adapter]") {
  // TorchScript's `raise` (here a failed assert) reaches C++ as
  // torch::jit::JITException, a std::runtime_error and not a c10::Error.
  torch::jit::Module module("Refuser");
  module.register_parameter("weight", torch::eye(kDim).requires_grad_(), /*is_buffer=*/false);
  module.define(R"(
def forward(self, x):
    assert bool(x.size(0) == 0), "this adapter refuses every input"
    return torch.matmul(x, self.weight)
)");
  std::string path = temp_dir("torchscript-raises") + "/refuser.pt";
  module.save(path);
  std::string archive;
  REQUIRE(read_file(path, &archive).ok());
  std::shared_ptr<AdapterNet> net;
  REQUIRE(load_torchscript_net(archive, {/*trust_code=*/true}, &net).ok());
  std::string weights;
  REQUIRE(save_adapter_weights(*net, &weights).ok());
  std::unique_ptr<Adapter> adapter;
  REQUIRE(load_adapter(config("torchscript", kDim, kDim), weights, {true}, &adapter).ok());
  std::vector<float> in = random_vectors(2, kDim, 9), out(in.size());
  Status applied = adapter->apply(in.data(), 2, out.data());
  CHECK(applied.code() == Code::kInvalidArgument);
  CHECK_THAT(applied.message(), Catch::Contains("refuses every input"));

  TrainOptions o;
  o.kind = "torchscript";
  o.torchscript_archive = archive;
  o.trust_code = true;
  o.epochs = 1;
  o.threads = 1;
  o.embedder = "synthetic";
  TrainResult result;
  Status trained = train_adapter(distorted_task(false), o, &result);
  CHECK(trained.code() == Code::kInvalidArgument);
  CHECK_THAT(trained.message(), Catch::Contains("refuses every input"));
}

TEST_CASE("an adapter whose output is not finite fails the call", "[adapter]") {
  torch::jit::Module module("NaNMaker");
  module.register_parameter("weight", torch::eye(kDim).requires_grad_(), /*is_buffer=*/false);
  module.define(R"(
def forward(self, x):
    return torch.log(torch.matmul(x, self.weight) * 0.0 - 1.0)
)");
  std::string path = temp_dir("torchscript-nan") + "/nan.pt";
  module.save(path);
  std::string archive, weights;
  REQUIRE(read_file(path, &archive).ok());
  std::shared_ptr<AdapterNet> net;
  REQUIRE(load_torchscript_net(archive, {/*trust_code=*/true}, &net).ok());
  REQUIRE(save_adapter_weights(*net, &weights).ok());
  std::unique_ptr<Adapter> adapter;
  REQUIRE(load_adapter(config("torchscript", kDim, kDim), weights, {true}, &adapter).ok());
  std::vector<float> in = random_vectors(3, kDim, 5), out(in.size());
  Status applied = adapter->apply(in.data(), 3, out.data());
  CHECK(applied.code() == Code::kInvalidArgument);
  CHECK_THAT(applied.message(), Catch::Contains("non-finite value for input row 0"));
}

TEST_CASE("a config with huge dims is refused by its weights before anything is allocated", "[adapter]") {
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(std::vector<float>(16, 1.0f), {4, 4});
  const std::string weights = serialize_safetensors(tensors);
  std::unique_ptr<Adapter> adapter;
  // 65536 x 65536 floats would be 16 GiB (twice, with the identity it starts from).
  Status s = load_adapter(config("linear", 65536, 65536), weights, {}, &adapter);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("describes 4294967296 parameters"));
  s = load_adapter(config("two-layer", 65536, 65536, {{"hidden", 65536}}), weights, {}, &adapter);
  CHECK(s.code() == Code::kInvalidArgument);
  REQUIRE(load_adapter(config("linear", 4, 4), weights, {}, &adapter).ok());
}

namespace {

// A registered kind: y = s * x with one learned scalar.
class ScaleNet : public torch::nn::Module, public AdapterNet {
 public:
  ScaleNet() : scale_(register_parameter("scale", torch::ones({1}))) {}
  torch::Tensor forward(const torch::Tensor& x) override { return scale_ * x; }
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() override { return {{"scale", scale_}}; }

 private:
  torch::Tensor scale_;
};

}  // namespace

TEST_CASE("a registered kind loads like a built-in one", "[adapter]") {
  auto factory = [](const AdapterConfig&, std::shared_ptr<AdapterNet>* out) {
    *out = std::make_shared<ScaleNet>();
    return Status::OK();
  };
  REQUIRE(register_adapter("test-scale", factory).ok());
  CHECK(register_adapter("test-scale", factory).code() == Code::kInvalidArgument);
  CHECK(register_adapter("linear", factory).code() == Code::kInvalidArgument);
  CHECK(register_adapter("torchscript", factory).code() == Code::kInvalidArgument);

  std::string cfg = config("test-scale", 3, 3);
  auto net = perturbed_net(cfg);
  std::string weights;
  REQUIRE(save_adapter_weights(*net, &weights).ok());
  std::unique_ptr<Adapter> adapter;
  REQUIRE(load_adapter(cfg, weights, {}, &adapter).ok());
  std::vector<float> in = {1, 2, 3};
  std::vector<float> out = run_adapter(*adapter, in);
  float scale = net->named_tensors()[0].second.item<float>();
  CHECK(scale != 1.0f);
  CHECK(out[2] == Approx(3 * scale));
}

TEST_CASE("a TorchScript module trains like a built-in kind", "[adapter]") {
  torch::jit::Module module("Linear");
  // As nn.Parameter does in Python: the trainer optimises what requires grad.
  module.register_parameter("weight", torch::eye(kDim).requires_grad_(), /*is_buffer=*/false);
  module.define(R"(
def forward(self, x):
    return torch.matmul(x, self.weight)
)");
  std::string path = temp_dir("script") + "/linear.pt";
  module.save(path);
  TrainOptions o;
  o.epochs = 12;
  o.lr = 1e-2;
  o.threads = 1;
  o.kind = "torchscript";
  REQUIRE(read_file(path, &o.torchscript_archive).ok());
  TrainResult result;
  CHECK(train_adapter(distorted_task(false), o, &result).code() == Code::kFailedPrecondition);
  o.trust_code = true;
  Status trained = train_adapter(distorted_task(false), o, &result);
  INFO(trained.ToString());
  REQUIRE(trained.ok());
  CHECK(result.improved);
  std::unique_ptr<Adapter> adapter;
  CHECK(load_adapter(result.config_json, result.weights, {}, &adapter).code() == Code::kFailedPrecondition);
  REQUIRE(load_adapter(result.config_json, result.weights, {true}, &adapter).ok());
  CHECK(adapter->out_dim() == kDim);
}

// LibTorch's first parallel op on a thread sets the thread's OpenMP count to
// 1 for good; FAISS would then search every batch from that thread on one
// thread. Loading and applying an adapter keep the caller's count. Each half
// runs on a fresh thread, where LibTorch has not run yet.
TEST_CASE("loading and applying an adapter leave the calling thread's OpenMP count as it was", "[adapter]") {
  const int threads = omp_get_max_threads();
  if (threads < 2) return;  // one core: nothing to lose
  int bare = 0, kept = 0;
  std::thread([&] {
    torch::zeros({1000, 1000}).add_(1);  // big enough for LibTorch to go parallel
    bare = omp_get_max_threads();
  }).join();
  CHECK(bare == 1);  // the hazard, with LibTorch called directly

  const std::string cfg = config("two-layer", 64, 64, {{"hidden", 128}});
  std::string weights;
  REQUIRE(save_adapter_weights(*perturbed_net(cfg), &weights).ok());
  const std::vector<float> in = random_vectors(4096, 64, 5);
  std::vector<float> out(in.size());
  Status loaded, applied;
  std::thread([&] {
    omp_set_num_threads(threads);
    std::unique_ptr<Adapter> adapter;
    loaded = load_adapter(cfg, weights, {}, &adapter);
    if (loaded.ok()) applied = adapter->apply(in.data(), 4096, out.data());
    kept = omp_get_max_threads();
  }).join();
  REQUIRE(loaded.ok());
  REQUIRE(applied.ok());
  CHECK(kept == threads);
}
