// The trainer on synthetic data whose answer is known: it learns a linear
// distortion, ships nothing on logs without signal, is deterministic by seed,
// and a run interrupted and resumed from its checkpoint ends bit-identical,
// while a checkpoint that is not sound or not the run's is refused.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/adapt/trainer.h"
#include "core/common/files.h"
#include "core/common/safetensors.h"
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
  for (Loss loss : {Loss::kCorpus, Loss::kInBatch, Loss::kHard}) {
    TrainOptions o = fast_options();
    o.loss = loss;
    TrainResult result;
    REQUIRE(train_adapter(data, o, &result).ok());
    INFO(LossName(loss) << ": " << result.summary(o));
    CHECK(result.improved);
    CHECK(result.cross_validated.hit > result.base.hit + 0.1);
    // The honest estimate sees the gain too, and its interval excludes zero.
    CHECK(result.hit_gain.low > 0);
    CHECK(result.log_rank_gain.low > 0);
    CHECK(result.gain_z >= o.min_gain_z);
    CHECK(keeps_top(result));
    CHECK(result.queries == data.queries.rows);
    CHECK(result.folds == 10);
    std::unique_ptr<Adapter> adapter;
    REQUIRE(load_adapter(result.config_json, result.weights, {}, &adapter).ok());
    CHECK(adapter->kind() == "linear");
  }
}

// The two-layer net the trainer builds has a linear skip starting at the
// identity beside its residual MLP, so it can learn whatever linear map the
// linear net learns. With the identity skip alone (LlamaIndex's net) the map
// had to go through the MLP's hidden units.
TEST_CASE("the trainer's two-layer net learns most of a linear distortion the linear net learns",
          "[trainer]") {
  const TrainingSet data = distorted_task(false);
  TrainOptions o = fast_options();
  TrainResult linear, two_layer;
  REQUIRE(train_adapter(data, o, &linear).ok());
  o.kind = "two-layer";
  o.hidden = 32;
  REQUIRE(train_adapter(data, o, &two_layer).ok());
  INFO("linear: " << linear.summary(o) << "\ntwo-layer: " << two_layer.summary(o));
  CHECK(two_layer.improved);
  CHECK_THAT(two_layer.config_json, Catch::Contains("\"skip\":\"linear\""));
  // Its MLP adds a little noise (hit@5 +0.356 against the linear net's
  // +0.364; +0.33 when the MLP trained at the full lr).
  CHECK(two_layer.hit_gain.mean >= 0.9 * linear.hit_gain.mean);
}

// The two-layer net's residual MLP trains at residual_lr times the lr, its
// linear skip at the lr: at 0 the MLP stays off (its weight is exactly 0)
// while the skip learns; at the default it turns on more slowly than at the
// full lr.
TEST_CASE("the two-layer net's residual MLP trains at residual_lr of the lr", "[trainer]") {
  const TrainingSet data = distorted_task(false);
  TrainOptions o = fast_options();
  o.kind = "two-layer";
  o.hidden = 32;
  o.folds = 0;  // a plain run: the net after exactly `epochs`
  auto trained = [&](double residual_lr, const char* tensor) {
    o.residual_lr = residual_lr;
    TrainResult result;
    REQUIRE(train_adapter(data, o, &result).ok());
    TensorMap tensors;
    REQUIRE(parse_safetensors(result.weights, &tensors).ok());
    std::vector<float> values;
    REQUIRE(tensor_to_floats(tensors.at(tensor), &values).ok());
    return values;
  };
  CHECK(trained(0, "residual_weight") == std::vector<float>{0});
  std::vector<float> skip = trained(0, "linear.weight");
  float moved = 0;
  for (int r = 0; r < kDim; ++r) {
    for (int c = 0; c < kDim; ++c) moved = std::max(moved, std::abs(skip[r * kDim + c] - (r == c)));
  }
  CHECK(moved > 0.05);
  const float at_default = std::abs(trained(TrainOptions().residual_lr, "residual_weight")[0]);
  const float at_full = std::abs(trained(1, "residual_weight")[0]);
  INFO("|residual weight| at the default " << at_default << ", at the full lr " << at_full);
  CHECK(at_default > 0);
  CHECK(at_default < 0.75 * at_full);  // 0.31 against 0.60
  o.residual_lr = -1;
  TrainResult refused;
  CHECK(train_adapter(data, o, &refused).code() == Code::kInvalidArgument);
}

// The null-log property: on logs whose labels carry no signal, the gain test
// alone holds its level, and the signal check sets them the stricter bar. Two
// kinds of null log, eight seeds each: every query paired with a random
// document, and the real pairs with the query vectors shuffled among them.
// At the one-sided 1% test two passes in sixteen would be unlikely (p =
// 0.01); the real log's signal is far above the bar.
TEST_CASE("the trainer ships nothing on logs without signal", "[trainer]") {
  const TrainingSet real = distorted_task(false);
  {
    TrainOptions o = fast_options();
    TrainResult result;
    REQUIRE(train_adapter(real, o, &result).ok());
    CHECK(result.signal_z > 3 * o.min_signal_z);
  }
  int passed_gain_test = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    std::mt19937_64 rng(seed);
    TrainingSet random_documents = real;
    std::uniform_int_distribution<size_t> any_doc(0, real.docs.rows - 1);
    for (auto& rel : random_documents.relevant) rel = {any_doc(rng)};
    TrainingSet shuffled_queries = real;
    std::vector<size_t> perm(real.queries.rows);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (size_t q = 0; q < perm.size(); ++q) {
      std::copy(real.queries.row(perm[q]), real.queries.row(perm[q]) + kDim,
                shuffled_queries.queries.data.begin() + static_cast<std::ptrdiff_t>(q * kDim));
    }
    for (const TrainingSet* data : {&random_documents, &shuffled_queries}) {
      TrainOptions o = fast_options();
      o.seed = seed;
      TrainResult result;
      REQUIRE(train_adapter(*data, o, &result).ok());
      INFO(result.summary(o));
      if (result.gain_z >= o.min_gain_z) ++passed_gain_test;
      CHECK(result.signal_z < o.min_signal_z);
      CHECK_FALSE(result.improved);
      CHECK(result.weights.empty());
      CHECK(result.summary(o).find("no signal") != std::string::npos);
    }
  }
  CHECK(passed_gain_test <= 1);
}

// A mapping the base cannot see at all (queries embedded by another model:
// here every query vector turned by one random rotation) shows no signal, yet
// its gain is overwhelming: it ships, past the stricter bar.
TEST_CASE("a log the base cannot read ships only on overwhelming evidence, and does", "[trainer]") {
  TrainingSet data = distorted_task(false);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> random(size_t(kDim) * kDim);
  for (float& x : random) x = normal(rng);
  const torch::Tensor rotation =
      std::get<0>(torch::linalg_qr(torch::from_blob(random.data(), {kDim, kDim}).clone()));
  const torch::Tensor turned =
      torch::from_blob(data.queries.data.data(), {static_cast<int64_t>(data.queries.rows), kDim})
          .matmul(rotation)
          .contiguous();
  std::copy(turned.data_ptr<float>(), turned.data_ptr<float>() + turned.numel(), data.queries.data.begin());
  TrainOptions o = fast_options();
  TrainResult result;
  REQUIRE(train_adapter(data, o, &result).ok());
  INFO(result.summary(o));
  CHECK(result.signal_z < o.min_signal_z);
  CHECK(gain_bar(o, result.signal_z) == o.min_gain_z_without_signal);
  CHECK(result.gain_z >= o.min_gain_z_without_signal);
  CHECK(result.improved);
  CHECK(result.summary(o).find("no signal") != std::string::npos);
}

TEST_CASE("a plain run (no folds) ships the net after exactly the given epochs", "[trainer]") {
  TrainingSet data = distorted_task(/*random_labels=*/true);
  TrainOptions o = fast_options();
  o.folds = 0;
  o.epochs = 3;
  TrainResult result;
  REQUIRE(train_adapter(data, o, &result).ok());
  CHECK(result.improved);
  CHECK(result.epochs.size() == 3);
  CHECK_FALSE(result.weights.empty());
}

// A big log costs a bounded amount: an epoch visits epoch_pairs sampled
// pairs, and past the scoring budget the estimate ranks a seeded sample of
// the queries (never fewer than 2,000).
TEST_CASE("a big log trains on sampled pairs and is scored on a sample of its queries", "[trainer]") {
  const TrainingSet task = distorted_task(false);
  TrainingSet big = task;  // the task's 360 queries, seven times over
  for (int copy = 1; copy < 7; ++copy) {
    big.queries.data.insert(big.queries.data.end(), task.queries.data.begin(), task.queries.data.end());
    big.relevant.insert(big.relevant.end(), task.relevant.begin(), task.relevant.end());
  }
  big.queries.rows = big.relevant.size();
  TrainOptions o = fast_options();
  o.epochs = 2;
  o.epoch_pairs = 64;  // two batches of 32 per net and epoch: 11 nets x 2 x 2 = 44 steps in all
  TrainResult result;
  o.stop_after_steps = 44;
  REQUIRE(train_adapter(big, o, &result).ok());
  CHECK(result.interrupted);  // the 44th step is the last
  o.stop_after_steps = 45;
  REQUIRE(train_adapter(big, o, &result).ok());
  CHECK_FALSE(result.interrupted);
  CHECK(result.queries == 2520);
  CHECK(result.scored == 2520);  // 2520 x 120 products: far within the default budget
  CHECK(result.summary(o).find("sample") == std::string::npos);

  o.scoring_budget = 1;
  TrainResult sampled, again;
  REQUIRE(train_adapter(big, o, &sampled).ok());
  REQUIRE(train_adapter(big, o, &again).ok());
  CHECK(sampled.scored == 2000);
  CHECK(sampled.summary(o).find("a sample of 2000 of the 2520 logged queries") != std::string::npos);
  CHECK(sampled.metrics_json(o) == again.metrics_json(o));  // the sample is seeded
  CHECK(sampled.base.hit != result.base.hit);               // and is not the whole log
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
  CHECK(first.metrics_json(o) == second.metrics_json(o));  // the same estimate and decision
  o.seed = 43;
  REQUIRE(train_adapter(data, o, &other).ok());
  REQUIRE(first.improved);
  CHECK(first.weights == second.weights);
  CHECK(first.weights != other.weights);
}

TEST_CASE("a resumed run ends with the weights of an uninterrupted one", "[trainer]") {
  TrainingSet data = distorted_task(false);
  for (Loss loss : {Loss::kCorpus, Loss::kHard}) {
    TrainOptions o = fast_options();
    o.loss = loss;
    o.epochs = 5;
    // An epoch is 122 steps: 11 for each of the 10 fold nets (324 pairs), 12
    // for the final net (360). Checkpoints every 4 steps fall mid-member,
    // between members and, at step 244, at the end of an epoch.
    o.checkpoint_every = 4;
    o.checkpoint_dir = temp_dir(std::string("whole_") + LossName(loss));
    TrainResult whole;
    REQUIRE(train_adapter(data, o, &whole).ok());
    REQUIRE(whole.improved);

    o.checkpoint_dir = temp_dir(std::string("resumed_") + LossName(loss));
    for (int64_t stop : {7, 61, 150, 247}) {  // killed four times, each after its last checkpoint
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
    CHECK(resumed.weights == whole.weights);
    CHECK(resumed.metrics_json(o) == whole.metrics_json(o));
  }
}

// Each bad checkpoint is the real one of an interrupted run with one thing
// changed; resuming from it must fail with a Status naming the file and the
// problem (a step or negative out of range used to index out of bounds).
TEST_CASE("a resume refuses a checkpoint that is unsound or of another run", "[trainer][checkpoint]") {
  TrainingSet data = distorted_task(false);
  TrainOptions o = fast_options();
  o.loss = Loss::kHard;  // the checkpoint holds mined negatives too
  o.epochs = 2;          // 122 steps an epoch: the run ends at step 244
  o.checkpoint_every = 10;
  o.checkpoint_dir = temp_dir("refused");
  o.stop_after_steps = 55;  // within the first epoch, within the fifth fold net
  TrainResult part;
  REQUIRE(train_adapter(data, o, &part).ok());
  REQUIRE(part.interrupted);
  const std::string path = o.checkpoint_dir + "/checkpoint.safetensors";
  std::string good;
  REQUIRE(read_file(path, &good).ok());
  TensorMap tensors;
  std::map<std::string, std::string> metadata;
  REQUIRE(parse_safetensors(good, &tensors, &metadata).ok());
  const nlohmann::json counters = nlohmann::json::parse(metadata.at("embedapt.checkpoint"));
  REQUIRE(counters["step"] == 50);
  REQUIRE(tensors.count("m0.negatives") == 1);

  o.stop_after_steps = 0;
  o.checkpoint_every = 0;  // a resumed run must not replace the file under test
  o.resume = true;
  auto edited = [&](const std::function<void(TensorMap&, nlohmann::json&)>& edit) {
    TensorMap t = tensors;
    nlohmann::json c = counters;
    edit(t, c);
    return serialize_safetensors(t, {{"embedapt.checkpoint", c.dump()}});
  };
  auto refused = [&](const std::string& bytes, Code code, const std::string& words) {
    REQUIRE(write_file_atomic(path, bytes).ok());
    TrainResult result;
    Status s = train_adapter(data, o, &result);
    INFO("expected \"" << words << "\", got: " << s.ToString());
    CHECK(s.code() == code);
    CHECK_THAT(s.message(), Catch::Contains(path) && Catch::Contains(words));
    CHECK(result.weights.empty());
  };
  const std::string weight = tensors.lower_bound("m0.net.")->first;

  refused(edited([](TensorMap&, nlohmann::json& c) { c["step"] = -5; }), Code::kCorruption,
          "step -5 is outside the run's 0 to 244");
  refused(edited([](TensorMap&, nlohmann::json& c) { c["step"] = 245; }), Code::kCorruption,
          "step 245 is outside the run's 0 to 244");
  refused(edited([](TensorMap&, nlohmann::json& c) { c["step"] = 130; }), Code::kCorruption,
          "one loss for each of the 1 finished epochs");
  refused(edited([](TensorMap&, nlohmann::json& c) { c["adam_steps"][0][0] = 1000; }), Code::kCorruption,
          "net 0 has taken 11 steps");
  refused(edited([](TensorMap&, nlohmann::json& c) { c["epoch_loss"] = "NaN"; }), Code::kCorruption,
          "\"epoch_loss\" is not a finite number");
  refused(edited([&](TensorMap& t, nlohmann::json&) {
            t[weight] = floats_to_tensor(std::vector<float>(size_t(kDim) * (kDim + 1)), {kDim, kDim + 1});
          }),
          Code::kCorruption, "tensor \"" + weight + "\" has shape [16, 17], the run's is [16, 16]");
  refused(edited([&](TensorMap& t, nlohmann::json&) {
            const float nan = std::nanf("");
            t["m3.adam.0.exp_avg"].data.replace(4, sizeof nan, reinterpret_cast<const char*>(&nan),
                                                sizeof nan);
          }),
          Code::kCorruption, "tensor \"m3.adam.0.exp_avg\" holds a non-finite value");
  refused(edited([&](TensorMap& t, nlohmann::json&) {
            const int64_t row = 100000;
            t["m0.negatives"].data.replace(0, sizeof row, reinterpret_cast<const char*>(&row), sizeof row);
          }),
          Code::kCorruption, "tensor \"m0.negatives\" names a document row outside 0 to 119");
  refused(edited([](TensorMap& t, nlohmann::json&) { t.erase("m1.adam.0.exp_avg_sq"); }), Code::kCorruption,
          "tensor \"m1.adam.0.exp_avg_sq\" is missing");
  refused(edited([](TensorMap& t, nlohmann::json&) { t["m0.net.extra"] = floats_to_tensor({1}, {1}); }),
          Code::kCorruption, "1 tensors that are not the run's");
  refused(good.substr(0, good.size() / 2), Code::kCorruption, "lies outside the data (truncated file?)");
  refused(serialize_safetensors(tensors), Code::kCorruption, "not a checkpoint (no \"embedapt.checkpoint\"");

  // A LibTorch archive (TorchScript's serialisation, which can carry code)
  // at the path is not read as one.
  {
    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor({int64_t{50}}), /*is_buffer=*/true);
    std::ostringstream out;
    archive.save_to(out);
    refused(out.str(), Code::kCorruption, "not a checkpoint: safetensors:");
  }

  // Another run's checkpoint: the same data with another seed.
  TrainOptions other = o;
  other.seed = 43;
  other.resume = false;
  other.checkpoint_every = 10;
  other.checkpoint_dir = temp_dir("other_run");
  other.stop_after_steps = 55;
  REQUIRE(train_adapter(data, other, &part).ok());
  std::string others;
  REQUIRE(read_file(other.checkpoint_dir + "/checkpoint.safetensors", &others).ok());
  refused(others, Code::kFailedPrecondition, "the checkpoint is of another run");

  // The sound checkpoint still resumes, to the end of the run.
  REQUIRE(write_file_atomic(path, good).ok());
  TrainResult resumed;
  REQUIRE(train_adapter(data, o, &resumed).ok());
  CHECK_FALSE(resumed.interrupted);
  CHECK(resumed.epochs.size() == 2);
}

// Ranking goes through blocks of 4,096 queries and documents; across block
// edges it must count exactly what a search of every document counts.
TEST_CASE("the base ranks across scoring blocks are those of an exact search", "[trainer]") {
  constexpr size_t docs = 5000, queries = 4200, dim = 8;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<size_t> any_doc(0, docs - 1);
  TrainingSet data;
  data.docs = {docs, dim, std::vector<float>(docs * dim)};
  for (float& x : data.docs.data) x = normal(rng);
  data.queries = {queries, dim, std::vector<float>(queries * dim)};
  for (size_t q = 0; q < queries; ++q) {
    data.relevant.push_back({any_doc(rng)});
    if (q % 3 == 0) data.relevant.back().push_back(any_doc(rng));
    for (size_t c = 0; c < dim; ++c) {
      data.queries.data[q * dim + c] = data.docs.data[data.relevant.back()[0] * dim + c] + 0.8f * normal(rng);
    }
  }
  auto unit = [&](const Matrix& m, size_t row) {
    std::vector<double> v(m.row(row), m.row(row) + dim);
    double norm = 0;
    for (double x : v) norm += x * x;
    for (double& x : v) x /= std::sqrt(norm);
    return v;
  };
  double hit = 0, rr = 0;
  for (size_t q = 0; q < queries; ++q) {
    const std::vector<double> qv = unit(data.queries, q);
    std::vector<double> score(docs);
    for (size_t d = 0; d < docs; ++d) {
      const std::vector<double> dv = unit(data.docs, d);
      score[d] = std::inner_product(qv.begin(), qv.end(), dv.begin(), 0.0);
    }
    double best = -2;
    for (size_t d : data.relevant[q]) best = std::max(best, score[d]);
    int64_t rank = 1;
    for (size_t d = 0; d < docs; ++d) {
      const bool relevant = std::count(data.relevant[q].begin(), data.relevant[q].end(), d) > 0;
      rank += !relevant && score[d] > best;
    }
    hit += rank <= 5 ? 1.0 / queries : 0;
    rr += 1.0 / static_cast<double>(rank) / queries;
  }
  TrainOptions o = fast_options();
  o.folds = 0;
  o.epochs = 1;
  TrainResult result;
  REQUIRE(train_adapter(data, o, &result).ok());
  REQUIRE(hit > 0.05);  // the task ranks many relevant documents high, not all
  REQUIRE(hit < 0.95);
  // float scores against double ones: a near-tie may fall the other way.
  CHECK(result.base.hit == Approx(hit).margin(2.0 / queries));
  CHECK(result.base.rr == Approx(rr).margin(1e-3));
}

TEST_CASE("the trainer rejects input it cannot use", "[trainer]") {
  TrainingSet data = distorted_task(false);
  TrainResult result;
  Loss loss = Loss::kInBatch;
  CHECK(ParseLoss("contrastive", &loss).code() == Code::kInvalidArgument);
  CHECK(loss == Loss::kInBatch);
  REQUIRE(ParseLoss("hard", &loss).ok());
  CHECK(loss == Loss::kHard);
  TrainOptions o = fast_options();
  o.folds = 1;
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
