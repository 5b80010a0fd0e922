// A store whose active adapter cannot be served where it is opened (here: a
// kind registered in the process that activated it, unknown to the CLI)
// still opens: inspect, verify and rollback work, searches are refused with
// the reason until another version is active.
#include <torch/nn/module.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/common/npy.h"
#include "embedapt/adapter_plugin.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/cli_run.h"
#include "tests/support/temp_dir.h"

using namespace embedapt;
using embedapt::testing::CliRun;
using embedapt::testing::kCliBinary;
using embedapt::testing::run_cli;
using embedapt::testing::TempDir;

namespace {

constexpr int kDim = 4;

// y = 2x: a kind only this test process knows.
class DoubleNet : public torch::nn::Module, public AdapterNet {
 public:
  DoubleNet() : scale_(register_parameter("scale", 2 * torch::ones({1}))) {}
  torch::Tensor forward(const torch::Tensor& x) override { return scale_ * x; }
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() override { return {{"scale", scale_}}; }

 private:
  torch::Tensor scale_;
};

}  // namespace

TEST_CASE("A store whose active adapter's kind is unknown here opens for inspect, verify and rollback",
          "[store][cli]") {
  if (!std::filesystem::exists(kCliBinary)) {
    WARN("skipped: " << kCliBinary << " is not built");
    return;
  }
  REQUIRE(register_adapter("test-double", [](const AdapterConfig&, std::shared_ptr<AdapterNet>* out) {
            *out = std::make_shared<DoubleNet>();
            return Status::OK();
          }).ok());
  TempDir dir("unserved");
  const std::string db = dir / "db", queries = dir / "queries.npy";
  Matrix q;
  q.rows = 1;
  q.cols = kDim;
  q.data = {1, 0, 0, 0};
  REQUIRE(write_npy(queries, q).ok());
  {
    Options options;
    options.dim = kDim;
    std::unique_ptr<Store> store;
    REQUIRE(Store::open(db, options, &store).ok());
    for (int i = 0; i < 10; ++i) {
      std::vector<float> v = {1, float(i), 0, 1};
      REQUIRE(store->upsert("d" + std::to_string(i), v.data(), kDim, "").ok());
    }
    AdapterVersion version;
    version.config_json = R"({"kind":"test-double","in_dim":4,"out_dim":4,"side":"query","embedder":""})";
    AdapterConfig config;
    REQUIRE(parse_adapter_config(version.config_json, &config).ok());
    std::shared_ptr<AdapterNet> net;
    REQUIRE(new_adapter_net(config, &net).ok());
    REQUIRE(save_adapter_weights(*net, &version.weights).ok());
    REQUIRE(store->put_adapter(&version).ok());
    REQUIRE(store->activate_adapter(version.version).ok());
  }

  // The CLI does not know the kind: before, every command failed to open the store.
  CliRun inspect = run_cli("inspect " + db);
  INFO(inspect.output);
  CHECK(inspect.exit_code == 0);
  CHECK_THAT(inspect.output, Catch::Contains("warning") && Catch::Contains("adapter version 1") &&
                                 Catch::Contains("test-double") && Catch::Contains("active_adapter    1"));
  CliRun verify = run_cli("inspect " + db + " verify");
  INFO(verify.output);
  CHECK(verify.exit_code == 0);
  CHECK_THAT(verify.output, Catch::Contains("ok: 10 records"));
  CliRun refused = run_cli("search " + db + " --npy " + queries + " -k 3");
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("not served") && Catch::Contains("adapter version 1"));
  CliRun rollback = run_cli("adapters " + db + " rollback");
  INFO(rollback.output);
  CHECK(rollback.exit_code == 0);
  CHECK_THAT(rollback.output, Catch::Contains("active: 0"));
  CliRun served = run_cli("search " + db + " --npy " + queries + " -k 3");
  INFO(served.output);
  CHECK(served.exit_code == 0);
  CHECK_THAT(served.output, Catch::Contains("d0") && !Catch::Contains("warning"));
}
