// TorchScript adapters served by the store (real RocksDB and FAISS on disk):
// a scripted module is trained, stored and activated, and searches apply it,
// only in a store opened with Options::trust_code (the CLI's --trust-code).
// Without it, every path that would load one (open with it active, activate,
// rollback) fails with Code::kFailedPrecondition naming the version and the
// switch, and changes nothing.
#include <sys/wait.h>
#include <torch/script.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/adapt/trainer.h"
#include "core/common/files.h"
#include "core/common/npy.h"
#include "embedapt/embedapt.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/cli_run.h"
#include "tests/support/temp_dir.h"
#include "tests/test_trainer_task.h"

using namespace embedapt;
using embedapt::test::distorted_task;
using embedapt::test::kDim;
using embedapt::testing::CliRun;
using embedapt::testing::kCliBinary;
using embedapt::testing::run_cli;
using embedapt::testing::TempDir;

namespace {

// What a user gets from torch.jit.save(torch.jit.script(m)) for
// `y = x @ W`, W an nn.Parameter starting at the identity.
std::string save_scripted_linear(const std::string& path) {
  torch::jit::Module module("UserLinear");
  module.register_parameter("weight", torch::eye(kDim).requires_grad_(), /*is_buffer=*/false);
  module.define(R"(
def forward(self, x):
    return torch.matmul(x, self.weight)
)");
  module.save(path);
  std::string archive;
  REQUIRE(read_file(path, &archive).ok());
  return archive;
}

// The scripted module trained on the synthetic task, as a version to store.
AdapterVersion trained_torchscript(const std::string& archive, AdapterSide side) {
  TrainOptions o;
  o.kind = "torchscript";
  o.torchscript_archive = archive;
  o.trust_code = true;
  o.side = side;
  o.epochs = 12;
  o.lr = 1e-2;
  o.threads = 1;
  o.embedder = "synthetic";
  TrainResult result;
  Status trained = train_adapter(distorted_task(false), o, &result);
  INFO(trained.ToString());
  REQUIRE(trained.ok());
  REQUIRE(result.improved);
  AdapterVersion v;
  v.config_json = result.config_json;
  v.weights = result.weights;
  return v;
}

Options store_options(bool trust_code) {
  Options options;
  options.dim = kDim;
  options.trust_code = trust_code;
  return options;
}

std::unique_ptr<Store> open_store(const std::string& path, bool trust_code) {
  std::unique_ptr<Store> store;
  Status s = Store::open(path, store_options(trust_code), &store);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return store;
}

using Results = std::vector<std::vector<Hit>>;

Results search_all(const Store& store, const TrainingSet& task, int k = 5) {
  Results results;
  REQUIRE(store.search_batch(task.queries.data.data(), task.queries.rows, {k}, &results).ok());
  return results;
}

// The same queries searched with no adapter at all.
Results search_base(const Store& store, const std::vector<float>& queries, size_t n, int k = 5) {
  std::unique_ptr<SearchView> base;
  REQUIRE(store.view(nullptr, &base).ok());
  Results results;
  REQUIRE(base->search(queries.data(), n, {k}, &results).ok());
  return results;
}

void check_same(const Results& a, const Results& b) {
  REQUIRE(a.size() == b.size());
  for (size_t q = 0; q < a.size(); ++q) {
    REQUIRE(a[q].size() == b[q].size());
    for (size_t r = 0; r < a[q].size(); ++r) {
      CHECK(a[q][r].id == b[q][r].id);
      CHECK(a[q][r].score == Approx(b[q][r].score).margin(1e-6));
    }
  }
}

// Queries whose top result is the document they were asked about.
size_t top1_hits(const Results& results, const TrainingSet& task) {
  size_t hits = 0;
  for (size_t q = 0; q < results.size(); ++q) {
    if (!results[q].empty() && results[q][0].id == "doc" + std::to_string(task.relevant[q][0])) ++hits;
  }
  return hits;
}

void check_untrusted(const Status& s, uint64_t version) {
  INFO(s.ToString());
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("adapter version " + std::to_string(version)) &&
                              Catch::Contains("TorchScript") && Catch::Contains("Options::trust_code") &&
                              Catch::Contains("--trust-code"));
}

// Opened without trust, a store whose active version is TorchScript opens
// but does not serve it: searches are refused naming the version and the
// switch, the statistics say why, and verify still runs.
void check_opens_unserved(Store* store, const TrainingSet& task, uint64_t version) {
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == version);
  CHECK_THAT(stats.active_adapter_error, Catch::Contains("adapter version " + std::to_string(version)) &&
                                             Catch::Contains("Options::trust_code"));
  Results results;
  check_untrusted(store->search_batch(task.queries.data.data(), task.queries.rows, 5, &results), version);
  std::vector<Hit> hits;
  check_untrusted(store->search(task.queries.row(0), kDim, 5, &hits), version);
  CHECK(store->verify().ok());
}

uint64_t active_version(const Store& store) {
  StoreStats stats;
  REQUIRE(store.stats(&stats).ok());
  return stats.active_adapter;
}

}  // namespace

TEST_CASE("a trusted store serves a TorchScript adapter; reopening it untrusted is refused",
          "[torchscript][store]") {
  TempDir dir("ts_serve");
  const std::string db = dir / "db";
  TrainingSet task = distorted_task(false);
  AdapterVersion version = trained_torchscript(save_scripted_linear(dir / "linear.pt"), AdapterSide::kQuery);

  Results adapted;
  {
    auto store = open_store(db, /*trust_code=*/true);
    test::fill_store(store.get(), task, "synthetic");
    REQUIRE(store->put_adapter(&version).ok());
    REQUIRE(version.version == 1);
    Results base = search_all(*store, task);
    REQUIRE(store->activate_adapter(1).ok());
    CHECK(active_version(*store) == 1);
    adapted = search_all(*store, task);

    // Exactly the scripted module applied by hand, then a search without adapter.
    std::unique_ptr<Adapter> by_hand;
    REQUIRE(load_adapter(version.config_json, version.weights, {/*trust_code=*/true}, &by_hand).ok());
    std::vector<float> mapped(task.queries.data.size());
    REQUIRE(by_hand->apply(task.queries.data.data(), task.queries.rows, mapped.data()).ok());
    CHECK(mapped != task.queries.data);
    check_same(adapted, search_base(*store, mapped, task.queries.rows));

    // And it does what it was trained for: it undoes the task's distortion.
    INFO("top-1 hits: base " << top1_hits(base, task) << ", adapted " << top1_hits(adapted, task));
    CHECK(top1_hits(adapted, task) > top1_hits(base, task) + task.queries.rows / 10);
  }

  auto store = open_store(db, /*trust_code=*/false);
  check_opens_unserved(store.get(), task, 1);
  store.reset();

  store = open_store(db, /*trust_code=*/true);
  CHECK(active_version(*store) == 1);
  check_same(search_all(*store, task), adapted);
  CHECK(store->verify().ok());
  store.reset();

  // The C ABI: the same refusal, and the same results with the flag.
  embedapt_store* handle = nullptr;
  char* error = nullptr;
  embedapt_results* results = nullptr;
  REQUIRE(embedapt_open(db.c_str(), 0, nullptr, nullptr, &handle, nullptr) == EMBEDAPT_OK);
  CHECK(embedapt_search(handle, task.queries.row(0), kDim, 5, &results, &error) ==
        EMBEDAPT_FAILED_PRECONDITION);
  REQUIRE(error != nullptr);
  CHECK_THAT(std::string(error), Catch::Contains("adapter version 1"));
  embedapt_free(error);
  embedapt_close(handle);
  CHECK(embedapt_open_flags(db.c_str(), 0, nullptr, nullptr, 2, &handle, nullptr) ==
        EMBEDAPT_INVALID_ARGUMENT);
  REQUIRE(embedapt_open_flags(db.c_str(), 0, nullptr, nullptr, EMBEDAPT_OPEN_TRUST_CODE, &handle, nullptr) ==
          EMBEDAPT_OK);
  REQUIRE(embedapt_search(handle, task.queries.row(0), kDim, 5, &results, nullptr) == EMBEDAPT_OK);
  REQUIRE(embedapt_results_count(results) == adapted[0].size());
  for (size_t r = 0; r < adapted[0].size(); ++r) CHECK(embedapt_results_id(results, r) == adapted[0][r].id);
  embedapt_results_free(results);
  embedapt_close(handle);
}

TEST_CASE("without trust_code, activating or rolling back to a TorchScript version changes nothing",
          "[torchscript][store]") {
  TempDir dir("ts_refuse");
  const std::string db = dir / "db";
  TrainingSet task = distorted_task(false);
  AdapterVersion version = trained_torchscript(save_scripted_linear(dir / "linear.pt"), AdapterSide::kQuery);
  Results base;
  {
    auto store = open_store(db, /*trust_code=*/false);
    test::fill_store(store.get(), task, "synthetic");
    REQUIRE(store->put_adapter(&version).ok());
    base = search_all(*store, task);

    check_untrusted(store->activate_adapter(1), 1);
    CHECK(active_version(*store) == 0);
    check_same(search_all(*store, task), base);
    CHECK(store->rollback_adapter().code() == Code::kFailedPrecondition);  // no history was pushed
  }
  {
    auto store = open_store(db, /*trust_code=*/false);  // nothing persisted by the refusal
    CHECK(active_version(*store) == 0);
  }
  {
    auto store = open_store(db, /*trust_code=*/true);
    REQUIRE(store->activate_adapter(1).ok());
    REQUIRE(store->activate_adapter(0).ok());
  }
  {
    // Active 0 needs no trust; going back to version 1 does.
    auto store = open_store(db, /*trust_code=*/false);
    check_untrusted(store->rollback_adapter(), 1);
    CHECK(active_version(*store) == 0);
    check_same(search_all(*store, task), base);
  }
  {
    // The refused rollback left the history as it was: a trusted one still returns to 1.
    auto store = open_store(db, /*trust_code=*/true);
    REQUIRE(store->rollback_adapter().ok());
    CHECK(active_version(*store) == 1);
    CHECK(top1_hits(search_all(*store, task), task) > top1_hits(base, task));
  }
}

TEST_CASE("a both-side TorchScript adapter maps the documents and survives a trusted reopen",
          "[torchscript][store]") {
  TempDir dir("ts_both");
  const std::string db = dir / "db";
  TrainingSet task = distorted_task(false);
  AdapterVersion version = trained_torchscript(save_scripted_linear(dir / "linear.pt"), AdapterSide::kBoth);
  std::unique_ptr<Adapter> adapter;
  REQUIRE(load_adapter(version.config_json, version.weights, {/*trust_code=*/true}, &adapter).ok());
  REQUIRE(adapter->side() == AdapterSide::kBoth);
  std::shared_ptr<const Adapter> shared(std::move(adapter));

  Results adapted;
  {
    auto store = open_store(db, /*trust_code=*/true);
    test::fill_store(store.get(), task, "synthetic");
    REQUIRE(store->put_adapter(&version).ok());
    REQUIRE(store->activate_adapter(version.version).ok());
    adapted = search_all(*store, task);
    std::unique_ptr<SearchView> view;  // an index built separately under the same adapter
    REQUIRE(store->view(shared, &view).ok());
    Results expected;
    REQUIRE(view->search(task.queries.data.data(), task.queries.rows, {5}, &expected).ok());
    check_same(adapted, expected);
    CHECK(store->verify().ok());
  }
  auto store = open_store(db, /*trust_code=*/false);
  check_opens_unserved(store.get(), task, version.version);
  store.reset();
  store = open_store(db, /*trust_code=*/true);
  CHECK(active_version(*store) == version.version);
  CHECK(store->verify().ok());
  check_same(search_all(*store, task), adapted);
}

TEST_CASE("the CLI trains, activates and serves a TorchScript adapter only with --trust-code",
          "[torchscript][cli]") {
  if (!std::filesystem::exists(kCliBinary)) {
    WARN("skipped: " << kCliBinary << " is not built");
    return;
  }
  TempDir dir("ts_cli");
  const std::string db = dir / "db", module = dir / "linear.pt", queries = dir / "queries.npy";
  TrainingSet task = distorted_task(false);
  save_scripted_linear(module);
  {
    auto store = open_store(db, /*trust_code=*/false);
    test::fill_store(store.get(), task, "synthetic");
  }
  REQUIRE(write_npy(queries, task.queries).ok());

  CliRun trained = run_cli("retrain " + db + " --adapter torchscript:" + module +
                           " --trust-code --epochs 12 --lr 0.01 --threads 1 --activate");
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  CHECK_THAT(trained.output, Catch::Contains("adapter version 1") && Catch::Contains("activated version 1"));

  // search: refused without the flag (one clear line), served with it.
  CliRun refused = run_cli("search " + db + " --npy " + queries + " -k 5 --json " + (dir / "refused.json"));
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("adapter version 1") && Catch::Contains("--trust-code"));
  CHECK_FALSE(std::filesystem::exists(dir / "refused.json"));
  CliRun served =
      run_cli("search " + db + " --npy " + queries + " -k 5 --trust-code --json " + (dir / "out.json"));
  INFO(served.output);
  REQUIRE(served.exit_code == 0);
  std::string json_text;
  REQUIRE(read_file(dir / "out.json", &json_text).ok());
  nlohmann::json json = nlohmann::json::parse(json_text);
  Results expected;
  {
    auto store = open_store(db, /*trust_code=*/true);
    expected = search_all(*store, task);
  }
  REQUIRE(json["results"].size() == expected.size());
  for (size_t q = 0; q < expected.size(); ++q) {
    for (size_t r = 0; r < expected[q].size(); ++r) {
      CHECK(json["results"][q]["ids"][r].get<std::string>() == expected[q][r].id);
    }
  }

  // inspect and adapters open the store too.
  CliRun untrusted_inspect = run_cli("inspect " + db);  // opens, with a warning
  CHECK(untrusted_inspect.exit_code == 0);
  CHECK_THAT(untrusted_inspect.output, Catch::Contains("warning") && Catch::Contains("adapter version 1") &&
                                           Catch::Contains("--trust-code"));
  CHECK_THAT(run_cli("inspect " + db + " --trust-code").output, Catch::Contains("active_adapter    1"));
  CHECK_THAT(run_cli("inspect " + db + " verify --trust-code").output, Catch::Contains("ok:"));
  CHECK(run_cli("adapters " + db + " list").exit_code == 0);
  CliRun deactivated = run_cli("adapters " + db + " activate 0 --trust-code");
  INFO(deactivated.output);
  CHECK(deactivated.exit_code == 0);
  CHECK_THAT(deactivated.output, Catch::Contains("active: 0"));

  // rollback to the TorchScript version: refused untrusted, the store unchanged.
  CliRun rollback = run_cli("adapters " + db + " rollback");
  INFO(rollback.output);
  CHECK(rollback.exit_code == 1);
  CHECK_THAT(rollback.output, Catch::Contains("adapter version 1") && Catch::Contains("--trust-code"));
  CliRun listed = run_cli("adapters " + db + " list");
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.output, !Catch::Contains("* 1"));
  CliRun rolled = run_cli("adapters " + db + " rollback --trust-code");
  INFO(rolled.output);
  CHECK(rolled.exit_code == 0);
  CHECK_THAT(rolled.output, Catch::Contains("active: 1"));
}
