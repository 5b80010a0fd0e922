// Training checkpoints (`retrain --resume`): the input is the file found in
// the checkpoint directory of a small fixed run (loss "hard", so it holds net
// tensors, AdamW moments and mined negatives). Any bytes give an error Status
// or a finished run, never a crash; the adapter a finished run ships loads
// and maps a vector to finite values.
//
// The seed is the real checkpoint of this run stopped within its first epoch:
//   build-fuzz/bin/fuzz_checkpoint -write_seed=tests/fuzz/corpus/fuzz_checkpoint
// (rewrite it when the checkpoint format or the run's fingerprint changes:
// a seed of another run only reaches the fingerprint check).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/adapt/trainer.h"

namespace {

using namespace embedapt;

constexpr size_t kDocs = 12, kQueries = 8, kDim = 4;

// Documents and queries near them, fixed; two folds, 8 steps an epoch.
TrainingSet task() {
  TrainingSet data;
  data.docs = {kDocs, kDim, std::vector<float>(kDocs * kDim)};
  for (size_t i = 0; i < data.docs.data.size(); ++i)
    data.docs.data[i] = static_cast<float>((i * 7919) % 17) - 8;
  data.queries = {kQueries, kDim, {}};
  for (size_t q = 0; q < kQueries; ++q) {
    for (size_t c = 0; c < kDim; ++c)
      data.queries.data.push_back(data.docs.data[q * kDim + c] + (c == q % kDim));
    data.relevant.push_back({q});
  }
  return data;
}

TrainOptions options(const std::string& dir) {
  TrainOptions o;
  o.loss = Loss::kHard;
  o.hard_negatives = 3;
  o.folds = 2;
  o.epochs = 2;
  o.batch_size = 2;
  o.lr = 1e-2;
  o.embedder = "fuzz";
  o.min_gain_z = -1e300;  // ship every finished run, so the oracle sees its adapter
  o.checkpoint_dir = dir;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const std::string flag = "-write_seed=";
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp((*argv)[i], flag.c_str(), flag.size()) != 0) continue;
    TrainOptions o = options((*argv)[i] + flag.size());
    o.checkpoint_every = 3;
    o.stop_after_steps = 5;
    TrainResult result;
    Status s = train_adapter(task(), o, &result);
    std::error_code ec;
    std::filesystem::rename(o.checkpoint_dir + "/checkpoint.safetensors", o.checkpoint_dir + "/mid-epoch",
                            ec);
    std::fprintf(stderr, "%s\n", s.ok() && !ec ? "seed written" : (s.ToString() + ec.message()).c_str());
    std::exit(s.ok() && !ec ? 0 : 1);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TrainingSet set = task();
  static const std::string dir =
      (std::filesystem::temp_directory_path() / ("embedapt-fuzz-checkpoint-" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir + "/checkpoint.safetensors", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) std::abort();
  }
  TrainOptions o = options(dir);
  o.resume = true;
  TrainResult result;
  if (!train_adapter(set, o, &result).ok() || !result.improved) return 0;
  std::unique_ptr<Adapter> adapter;
  if (!load_adapter(result.config_json, result.weights, {}, &adapter).ok()) std::abort();
  std::vector<float> out(kDim);
  if (!adapter->apply(set.queries.data.data(), 1, out.data()).ok()) std::abort();
  return 0;
}
