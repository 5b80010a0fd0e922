// The trainer on synthetic data whose answer is known: it learns a linear
// distortion, refuses to ship on random labels, is deterministic by seed, and
// a run interrupted and resumed from its checkpoint ends bit-identical.
#include <filesystem>

#include "core/adapt/trainer.h"
#include "tests/support/catch.h"
#include "tests/test_trainer_task.h"

using namespace embedapt;
using embedapt::test::distorted_task;
using embedapt::test::kDim;

namespace {

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("embedapt_test_trainer_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

TrainOptions fast_options() {
  TrainOptions o;
  o.epochs = 12;
  o.lr = 1e-2;
  o.threads = 1;
  o.embedder = "synthetic";
  return o;
}

}  // namespace

TEST_CASE("the trainer learns a known linear distortion", "[trainer]") {
  TrainingSet data = distorted_task(false);
  for (const char* loss : {"corpus", "in-batch", "hard"}) {
    TrainOptions o = fast_options();
    o.loss = loss;
    TrainResult result;
    REQUIRE(train_adapter(data, o, &result).ok());
    INFO(loss << ": base hit " << result.base.hit << ", best " << result.best.hit);
    CHECK(result.improved);
    CHECK(result.best.hit > result.base.hit + 0.1);
    CHECK(result.queries == data.queries.rows);
    CHECK(result.folds == 5);
    std::unique_ptr<Adapter> adapter;
    REQUIRE(load_adapter(result.config_json, result.weights, {}, &adapter).ok());
    CHECK(adapter->kind() == "linear");
  }
}

TEST_CASE("the trainer ships nothing when no epoch beats the base", "[trainer]") {
  TrainingSet data = distorted_task(/*random_labels=*/true);
  TrainOptions o = fast_options();
  o.val_fraction = 0.5;
  TrainResult result;
  REQUIRE(train_adapter(data, o, &result).ok());
  CHECK_FALSE(result.improved);
  CHECK(result.config_json.empty());
  CHECK(result.weights.empty());
}

TEST_CASE("the same seed gives the same adapter", "[trainer]") {
  TrainingSet data = distorted_task(false);
  TrainOptions o = fast_options();
  o.kind = "two-layer";
  o.hidden = 32;
  o.epochs = 4;
  TrainResult first, second, other;
  REQUIRE(train_adapter(data, o, &first).ok());
  REQUIRE(train_adapter(data, o, &second).ok());
  o.seed = 43;
  REQUIRE(train_adapter(data, o, &other).ok());
  REQUIRE(first.improved);
  CHECK(first.weights == second.weights);
  CHECK(first.weights != other.weights);
}

TEST_CASE("a resumed run ends with the weights of an uninterrupted one", "[trainer]") {
  TrainingSet data = distorted_task(false);
  for (const char* loss : {"corpus", "hard"}) {
    TrainOptions o = fast_options();
    o.loss = loss;
    o.epochs = 5;
    // An epoch is 57 steps: 9 for each of the 5 fold nets (288 pairs), 12 for
    // the final net (360). Checkpoints every 4 steps fall mid-member, between
    // members and, at step 228, at the end of an epoch.
    o.checkpoint_every = 4;
    o.checkpoint_dir = temp_dir(std::string("whole_") + loss);
    TrainResult whole;
    REQUIRE(train_adapter(data, o, &whole).ok());
    REQUIRE(whole.improved);

    o.checkpoint_dir = temp_dir(std::string("resumed_") + loss);
    for (int64_t stop : {7, 61, 150, 231}) {  // killed four times, each after its last checkpoint
      o.stop_after_steps = stop;
      o.resume = true;
      TrainResult part;
      REQUIRE(train_adapter(data, o, &part).ok());
      CHECK(part.interrupted);
    }
    o.stop_after_steps = 0;
    TrainResult resumed;
    REQUIRE(train_adapter(data, o, &resumed).ok());
    CHECK_FALSE(resumed.interrupted);
    CHECK(resumed.best_epoch == whole.best_epoch);
    CHECK(resumed.weights == whole.weights);
  }
}

TEST_CASE("the trainer rejects input it cannot use", "[trainer]") {
  TrainingSet data = distorted_task(false);
  TrainResult result;
  TrainOptions o = fast_options();
  o.loss = "contrastive";
  CHECK(train_adapter(data, o, &result).code() == Code::kInvalidArgument);
  o = fast_options();
  TrainingSet bad = data;
  bad.relevant[0] = {9999};
  CHECK(train_adapter(bad, o, &result).code() == Code::kInvalidArgument);
  bad = data;
  bad.queries.cols = 8;
  CHECK(train_adapter(bad, o, &result).code() == Code::kInvalidArgument);
  TrainingSet tiny = data;
  tiny.queries.rows = 1;
  tiny.queries.data.resize(kDim);
  tiny.relevant.resize(1);
  CHECK(train_adapter(tiny, o, &result).code() == Code::kInvalidArgument);
}
