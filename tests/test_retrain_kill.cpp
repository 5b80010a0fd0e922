// Resume after a real crash: `embedapt retrain --checkpoint-dir` runs as a
// child process and is killed with SIGKILL as soon as its first checkpoint
// exists (no orderly shutdown, possibly in the middle of writing the next one);
// `--resume` then finishes the run, and the stored adapter must be exactly
// the one an uninterrupted run with the same options stores.
//
// The kill is triggered by observing the checkpoint file, never by a timer,
// and the test checks that it landed before training ended (the killed run
// printed no validation summary), so a fast or slow machine cannot turn it
// into a test of two uninterrupted runs.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/adapt/trainer.h"
#include "core/common/files.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace embedapt;
using embedapt::testing::TempDir;

namespace {

const std::string kBinary = std::string(EMBEDAPT_BINARY_DIR) + "/bin/embedapt";

constexpr int kDim = 32;
constexpr size_t kDocs = 600;  // 3 queries each: 1800 logged pairs

// Queries are their document plus noise seen through a fixed distortion (as
// in tests/test_trainer_task.h, larger): learnable, so the run ships an
// adapter, and slow enough to learn that training lasts many epochs.
void make_store(const std::string& path) {
  std::mt19937_64 rng(23);
  std::normal_distribution<float> normal;
  auto normalized = [](std::vector<float> v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
    return v;
  };
  Options options;
  options.dim = kDim;
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(path, options, &store).ok());
  REQUIRE(store->set_embedder("synthetic").ok());
  std::vector<float> a(size_t(kDim) * kDim);
  for (int r = 0; r < kDim; ++r) {
    for (int c = 0; c < kDim; ++c) a[r * kDim + c] = (r == c ? 1.0f : 0.0f) + 0.3f * normal(rng);
  }
  std::vector<Record> docs(kDocs);
  for (size_t d = 0; d < kDocs; ++d) {
    docs[d].id = "doc" + std::to_string(d);
    docs[d].vector.resize(kDim);
    for (float& x : docs[d].vector) x = normal(rng);
    docs[d].vector = normalized(docs[d].vector);
  }
  REQUIRE(store->upsert_batch(docs).ok());
  for (size_t d = 0; d < kDocs; ++d) {
    for (int k = 0; k < 3; ++k) {
      std::vector<float> clean(kDim), seen(kDim, 0.0f);
      for (int c = 0; c < kDim; ++c) clean[c] = docs[d].vector[c] + 0.3f * normal(rng);
      for (int r = 0; r < kDim; ++r) {
        for (int c = 0; c < kDim; ++c) seen[r] += a[r * kDim + c] * clean[c];
      }
      uint64_t id = 0;
      REQUIRE(store->log_query(seen.data(), kDim, {}, &id).ok());
      REQUIRE(store->log_hit(id, docs[d].id).ok());
    }
  }
  REQUIRE(store->flush().ok());
}

// Starts `embedapt args...` with stdout and stderr going to `output`.
pid_t spawn(const std::vector<std::string>& args, const std::string& output) {
  std::vector<std::string> all = {kBinary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  argv.reserve(all.size() + 1);
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kBinary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

std::string slurp(const std::string& path) {
  std::string text;
  REQUIRE(read_file(path, &text).ok());
  return text;
}

struct Run {
  int exit_code = -1;
  std::string output;
};

Run run(const std::vector<std::string>& args, const std::string& output) {
  pid_t pid = spawn(args, output);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(output)};
}

}  // namespace

TEST_CASE("retrain killed with SIGKILL mid-run resumes to the adapter of an uninterrupted run",
          "[retrain][crash]") {
  if (!fs::exists(kBinary)) {
    WARN("skipped: " << kBinary << " is not built");
    return;
  }
  TempDir dir("retrain_kill");
  const std::string db = dir / "db", checkpoints = dir / "checkpoints";
  const std::string checkpoint = checkpoints + "/checkpoint.safetensors";
  make_store(db);
  // An epoch of the eleven nets (ten folds and the final one) is 567 steps;
  // the first checkpoint comes a sixth of the way into the first of 10.
  const std::vector<std::string> options = {"--epochs", "10", "--lr",      "0.001",
                                            "--seed",   "7",  "--threads", "1"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"retrain", db});
    args.insert(args.end(), options.begin(), options.end());
    return args;
  };
  const std::vector<std::string> checkpointed = {"--checkpoint-dir", checkpoints, "--checkpoint-every",
                                                 "100"};

  // 1. Start, wait for the first checkpoint, kill.
  pid_t pid = spawn(with(checkpointed), dir / "killed.txt");
  int status = 0;
  bool exited = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!fs::exists(checkpoint) && std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!exited) {
    REQUIRE(kill(pid, SIGKILL) == 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
  }
  const std::string killed_output = slurp(dir / "killed.txt");
  INFO("killed run's output:\n" << killed_output);
  REQUIRE_FALSE(exited);
  REQUIRE(fs::exists(checkpoint));
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
  // The summary is printed when training returns: the kill came before the end.
  REQUIRE_THAT(killed_output, !Catch::Contains("validation:") && !Catch::Contains("adapter version"));

  // 2. --resume reads that checkpoint (a copy replaced by garbage is refused)...
  const std::string garbage = dir / "garbage";
  fs::create_directories(garbage);
  REQUIRE(write_file_atomic(garbage + "/checkpoint.safetensors", "not a checkpoint").ok());
  Run refused = run(with({"--checkpoint-dir", garbage, "--resume"}), dir / "garbage.txt");
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains(garbage + "/checkpoint.safetensors: not a checkpoint"));

  // ...and finishes the run from it.
  std::vector<std::string> resume = checkpointed;
  resume.push_back("--resume");
  Run resumed = run(with(resume), dir / "resumed.txt");
  INFO("resumed run's output:\n" << resumed.output);
  REQUIRE(resumed.exit_code == 0);
  REQUIRE_THAT(resumed.output, Catch::Contains("adapter version 1"));

  // 3. The same options, never interrupted, never checkpointed.
  Run whole = run(with({}), dir / "whole.txt");
  INFO("uninterrupted run's output:\n" << whole.output);
  REQUIRE(whole.exit_code == 0);
  REQUIRE_THAT(whole.output, Catch::Contains("adapter version 2"));

  std::unique_ptr<Store> store;
  REQUIRE(Store::open(db, Options(), &store).ok());
  AdapterVersion after_kill, uninterrupted;
  REQUIRE(store->get_adapter(1, &after_kill).ok());
  REQUIRE(store->get_adapter(2, &uninterrupted).ok());
  CHECK(after_kill.config_json == uninterrupted.config_json);
  CHECK(after_kill.weights == uninterrupted.weights);
  // The same training history too: every epoch's loss and validation score.
  nlohmann::json a = nlohmann::json::parse(after_kill.metrics_json);
  nlohmann::json b = nlohmann::json::parse(uninterrupted.metrics_json);
  CHECK(a == b);
  CHECK(a.value("epochs_run", 0) > 1);
}
