// `embedapt retrain` and `embedapt adapters` against real stores on disk.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/common/files.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/cli_run.h"
#include "tests/test_trainer_task.h"

using namespace embedapt;
using embedapt::testing::CliRun;
using embedapt::testing::kCliBinary;
using embedapt::testing::run_cli;

namespace {

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("embedapt_test_retrain_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

// A store holding the synthetic task's documents, its query log the task's pairs.
void make_store(const std::string& path, const TrainingSet& task, const std::string& embedder) {
  Options options;
  options.dim = static_cast<int>(task.docs.cols);
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(path, options, &store).ok());
  test::fill_store(store.get(), task, embedder);
}

std::unique_ptr<Adapter> stored_adapter(const std::string& path, uint64_t version) {
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(path, Options(), &store).ok());
  AdapterVersion v;
  REQUIRE(store->get_adapter(version, &v).ok());
  std::unique_ptr<Adapter> adapter;
  REQUIRE(load_adapter(v.config_json, v.weights, {}, &adapter).ok());
  return adapter;
}

bool have_binary() {
  if (std::filesystem::exists(kCliBinary)) return true;
  WARN("skipped: " << kCliBinary << " is not built");
  return false;
}

}  // namespace

TEST_CASE("retrain stores, activates and exports an adapter that moves between stores", "[retrain]") {
  if (!have_binary()) return;
  TrainingSet task = test::distorted_task(false);
  std::string db = temp_dir("db"), out = temp_dir("export");
  make_store(db, task, "synthetic");

  // An --out that cannot be a directory fails before anything is stored (it
  // failed after the version was stored and activated).
  REQUIRE(embedapt::write_file_atomic(out + "-file", "x").ok());
  CliRun bad_out = run_cli("retrain " + db + " --epochs 2 --activate --out " + out + "-file");
  CHECK(bad_out.exit_code == 1);
  CHECK_THAT(bad_out.output, Catch::StartsWith("embedapt: --out ") && Catch::Contains("not a directory"));
  CHECK(run_cli("adapters " + db + " list").output.find("* ") == std::string::npos);
  CliRun every = run_cli("retrain " + db + " --checkpoint-dir " + out + "-ck --checkpoint-every -1");
  CHECK(every.exit_code != 0);
  CHECK_THAT(every.output, Catch::StartsWith("embedapt: --checkpoint-every: must not be negative"));

  CliRun trained = run_cli("retrain " + db + " --epochs 12 --lr 0.01 --threads 1 --activate --out " + out);
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  CHECK_THAT(trained.output, Catch::Contains("adapter version 1") && Catch::Contains("activated version 1"));
  CHECK(std::filesystem::exists(out + "/config.json"));
  CHECK(std::filesystem::exists(out + "/adapter.safetensors"));

  CliRun listed = run_cli("adapters " + db + " list");
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.output, Catch::Contains("* 1"));

  // Import into a second store of the same embedder: identical outputs.
  std::string twin = temp_dir("twin");
  make_store(twin, task, "synthetic");
  CliRun imported = run_cli("adapters " + twin + " import " + out);
  INFO(imported.output);
  REQUIRE(imported.exit_code == 0);
  auto original = stored_adapter(db, 1), copy = stored_adapter(twin, 1);
  std::vector<float> a(task.queries.data.size()), b(task.queries.data.size());
  REQUIRE(original->apply(task.queries.data.data(), task.queries.rows, a.data()).ok());
  REQUIRE(copy->apply(task.queries.data.data(), task.queries.rows, b.data()).ok());
  CHECK(a == b);
  CHECK(a != task.queries.data);

  // Another embedder, another dimension: refused, nothing stored.
  std::string stranger = temp_dir("stranger");
  make_store(stranger, task, "another-model");
  CliRun refused = run_cli("adapters " + stranger + " import " + out);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("embedder"));
  TrainingSet wide = task;
  wide.docs.cols = 8;  // only the shape matters here
  wide.docs.data.resize(wide.docs.rows * 8);
  wide.queries.cols = 8;
  wide.queries.data.resize(wide.queries.rows * 8);
  std::string narrow = temp_dir("narrow");
  make_store(narrow, wide, "synthetic");
  refused = run_cli("adapters " + narrow + " import " + out);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("16 -> 16 dims"));
  CHECK_THAT(run_cli("adapters " + narrow + " list").output, Catch::Contains("no adapter versions"));

  // Rollback returns to the base.
  CliRun rolled = run_cli("adapters " + db + " rollback");
  CHECK(rolled.exit_code == 0);
  CHECK_THAT(rolled.output, Catch::Contains("active: 0"));
}

TEST_CASE("retrain on a log with no signal stores nothing", "[retrain]") {
  if (!have_binary()) return;
  std::string db = temp_dir("noise");
  make_store(db, test::distorted_task(/*random_labels=*/true), "synthetic");
  CliRun trained = run_cli("retrain " + db + " --epochs 12 --lr 0.01 --threads 1 --activate");
  INFO(trained.output);
  CHECK(trained.exit_code == 0);
  CHECK_THAT(trained.output, Catch::Contains("no adapter"));
  CHECK_THAT(trained.output, Catch::Contains("no signal"));
  CHECK_THAT(run_cli("adapters " + db + " list").output, Catch::Contains("no adapter versions"));
}

TEST_CASE("retrain refuses a TorchScript file without --trust-code", "[retrain]") {
  if (!have_binary()) return;
  std::string db = temp_dir("script");
  make_store(db, test::distorted_task(false), "synthetic");
  CliRun refused = run_cli("retrain " + db + " --adapter torchscript:/nonexistent.pt");
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("--trust-code"));
}
