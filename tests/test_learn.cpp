// retrain() (embedapt/learn.h) on real stores: the report, the activation
// policies, a log without signal, cancellation, and the same adapter bytes
// from C++, the C ABI and the CLI.
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "embedapt/embedapt.h"
#include "embedapt/learn.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/cli_run.h"
#include "tests/support/temp_dir.h"
#include "tests/test_trainer_task.h"

using namespace embedapt;
using embedapt::testing::TempDir;

namespace {

// A store holding the synthetic task's documents, its log the task's pairs.
std::unique_ptr<Store> task_store(const std::string& path, bool random_labels) {
  const TrainingSet task = test::distorted_task(random_labels);
  Options options;
  options.dim = static_cast<int>(task.docs.cols);
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(path, options, &store).ok());
  test::fill_store(store.get(), task, "synthetic");
  return store;
}

// Short training that the synthetic task rewards clearly.
RetrainOptions quick() {
  RetrainOptions o;
  o.epochs = 12;
  o.lr = 0.01;
  return o;
}

// hit@1 of the task's queries against the store's active adapter.
double hit_at_1(const Store& store) {
  const TrainingSet task = test::distorted_task(false);
  size_t hits = 0;
  for (size_t q = 0; q < task.queries.rows; ++q) {
    std::vector<Hit> found;
    REQUIRE(store.search(task.queries.row(q), task.queries.cols, 1, &found).ok());
    hits += !found.empty() && found[0].id == "doc" + std::to_string(task.relevant[q][0]);
  }
  return static_cast<double>(hits) / static_cast<double>(task.queries.rows);
}

std::string stored_weights(const Store& store, uint64_t version) {
  AdapterVersion v;
  REQUIRE(store.get_adapter(version, &v).ok());
  return v.weights;
}

}  // namespace

TEST_CASE("retrain stores and activates an adapter that beats the base, with its report", "[learn]") {
  TempDir dir("learn");
  auto store = task_store(dir / "db", false);
  const double before = hit_at_1(*store);

  RetrainReport report;
  Status s = retrain(store.get(), quick(), &report);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(report.decision == RetrainReport::Decision::kActivated);
  CHECK(report.version == 1);
  CHECK(report.previous_active == 0);
  CHECK(report.queries == 360);
  CHECK(report.pairs == 360);
  CHECK(report.dropped_hits == 0);
  CHECK(report.folds == 10);
  CHECK(report.adapter.hit > report.base.hit);
  CHECK(report.adapter.rr > report.base.rr);
  CHECK(report.hit_gain.mean > 0);
  CHECK(report.hit_gain.low < report.hit_gain.mean);
  CHECK(report.hit_gain.high > report.hit_gain.mean);
  CHECK(report.log_rank_gain.low > 0);  // shipped: more than 2.3 standard errors above the base
  CHECK(report.log_rank_gain.low < report.log_rank_gain.mean);
  CHECK(report.log_rank_gain.high > report.log_rank_gain.mean);
  CHECK(report.rr_gain.mean >= 0);  // and the top of the ranking did not fall
  CHECK(report.gain_z >= report.min_gain_z);
  CHECK(report.epochs_run == 12);
  CHECK_THAT(report.summary, Catch::Contains("shipped") && Catch::Contains("rule"));
  CHECK(report.train_seconds > 0);

  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == 1);
  CHECK(hit_at_1(*store) > before);
  AdapterVersion stored;
  REQUIRE(store->get_adapter(1, &stored).ok());
  CHECK(stored.data_fingerprint.rfind("sha256:", 0) == 0);
  CHECK(stored.metrics_json.find("\"improved\":true") != std::string::npos);
  CHECK(stored.metrics_json.find(report.summary) != std::string::npos);

  // If-better against an equal incumbent (same data and seed): stored, not activated.
  report = RetrainReport();
  REQUIRE(retrain(store.get(), quick(), &report).ok());
  CHECK(report.decision == RetrainReport::Decision::kNotBetter);
  CHECK(report.version == 2);
  CHECK(report.previous_active == 1);
  CHECK(report.incumbent.hit > report.base.hit);
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == 1);

  // Never: stored only. Always: activated.
  RetrainOptions never = quick();
  never.activate = ActivationPolicy::kNever;
  REQUIRE(retrain(store.get(), never, &report).ok());
  CHECK(report.decision == RetrainReport::Decision::kStored);
  RetrainOptions always = quick();
  always.activate = ActivationPolicy::kAlways;
  REQUIRE(retrain(store.get(), always, &report).ok());
  CHECK(report.decision == RetrainReport::Decision::kActivated);
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == report.version);
  CHECK(report.version == 4);
  // Every run on the same log and seed trained the same weights.
  CHECK(stored_weights(*store, 1) == stored_weights(*store, 4));

  // A removed document's hits are dropped, and counted.
  REQUIRE(store->remove("doc0").ok());
  REQUIRE(retrain(store.get(), never, &report).ok());
  CHECK(report.dropped_hits == 3);
  CHECK(report.queries == 357);
}

TEST_CASE("retrain says so when every logged hit names a removed document", "[learn]") {
  // The trainer's "no logged query/hit pairs" was all it said, while the
  // store counted 2 logged hits.
  TempDir dir("learn_removed_hits");
  Options options;
  options.dim = 4;
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(dir / "db", options, &store).ok());
  const float a[] = {1, 0, 0, 0}, b[] = {0, 1, 0, 0};
  REQUIRE(store->upsert("a", a, 4, "").ok());
  REQUIRE(store->upsert("b", b, 4, "").ok());
  for (int i = 0; i < 2; ++i) {
    const float q[] = {1, 0.1f * float(i + 1), 0, 0};  // one logged query each
    uint64_t query_id = 0;
    REQUIRE(store->log_query(q, 4, {"a", "b"}, &query_id).ok());
    REQUIRE(store->log_hit(query_id, "a").ok());
  }
  REQUIRE(store->remove("a").ok());
  RetrainReport report;
  const Status s = retrain(store.get(), quick(), &report);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("every one of the 2 logged hits names a document no longer stored") !=
        std::string::npos);
}

TEST_CASE("retrain on a log without signal stores nothing; bad options and cancellation write nothing",
          "[learn]") {
  TempDir dir("learn_noise");
  auto store = task_store(dir / "db", true);
  RetrainOptions o = quick();
  RetrainReport report;
  REQUIRE(retrain(store.get(), o, &report).ok());
  CHECK(report.decision == RetrainReport::Decision::kNoGain);
  CHECK(report.version == 0);
  CHECK(report.signal_z < report.min_signal_z);

  o.loss = "hinge";
  CHECK(retrain(store.get(), o, &report).code() == Code::kInvalidArgument);
  o = quick();
  o.folds = 1;
  CHECK(retrain(store.get(), o, &report).code() == Code::kInvalidArgument);
  o = quick();
  o.threads = 0;
  CHECK(retrain(store.get(), o, &report).code() == Code::kInvalidArgument);
  for (double lr : {std::nan(""), std::numeric_limits<double>::infinity(), -1.0}) {  // NaN was the default
    o = quick();
    o.lr = lr;
    CHECK(retrain(store.get(), o, &report).code() == Code::kInvalidArgument);
  }
  o = quick();
  o.epochs = 2000000000;  // ran for ever
  CHECK(retrain(store.get(), o, &report).code() == Code::kInvalidArgument);
  o = quick();
  o.kind = "torchscript";
  CHECK(retrain(store.get(), o, &report).code() == Code::kFailedPrecondition);

  std::atomic<bool> cancel{true};
  o = quick();
  o.cancel = &cancel;
  Status s = retrain(store.get(), o, &report);
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("cancelled"));

  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.adapter_versions == 0);
  CHECK(stats.active_adapter == 0);
}

TEST_CASE("The loop from C++, the C ABI and the CLI stores the same adapter bytes", "[learn][c_api]") {
  TempDir dir("learn_three");
  const std::string cpp = dir / "cpp", c = dir / "c", cli = dir / "cli";
  std::string cpp_weights;
  {
    auto store = task_store(cpp, false);
    task_store(c, false).reset();
    task_store(cli, false).reset();
    RetrainOptions o = quick();
    o.seed = 7;
    RetrainReport report;
    REQUIRE(retrain(store.get(), o, &report).ok());
    REQUIRE(report.version == 1);
    cpp_weights = stored_weights(*store, 1);
  }

  embedapt_store* handle = nullptr;
  REQUIRE(embedapt_open(c.c_str(), 0, nullptr, nullptr, &handle, nullptr) == EMBEDAPT_OK);
  embedapt_retrain_options options;
  embedapt_retrain_options_init(&options);
  options.epochs = 12;
  options.lr = 0.01;
  options.seed = 7;
  embedapt_retrain_report c_report;
  char* error = nullptr;
  REQUIRE(embedapt_retrain(handle, &options, &c_report, &error) == EMBEDAPT_OK);
  CHECK(c_report.decision == EMBEDAPT_ACTIVATED);
  CHECK(c_report.version == 1);
  embedapt_close(handle);

  testing::CliRun run = testing::run_cli("retrain " + cli + " --epochs 12 --lr 0.01 --seed 7 --activate");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);

  std::unique_ptr<Store> store;
  REQUIRE(Store::open(c, Options(), &store).ok());
  CHECK(stored_weights(*store, 1) == cpp_weights);
  REQUIRE(Store::open(cli, Options(), &store).ok());
  CHECK(stored_weights(*store, 1) == cpp_weights);
}
