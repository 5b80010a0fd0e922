// Background retraining (Options::background_retrain): a store fed a log ships
// an adapter without an explicit call while other threads search and write;
// closing it mid-training cancels and stores nothing. Run under TSan too.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "embedapt/learn.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"
#include "tests/test_trainer_task.h"

using namespace embedapt;
using embedapt::testing::TempDir;

namespace {

// What the background thread reported, for the test thread to wait on.
struct Outcomes {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Status> statuses;
  std::vector<RetrainReport> reports;

  void record(const Status& s, const RetrainReport& r) {
    std::lock_guard<std::mutex> lock(mu);
    statuses.push_back(s);
    reports.push_back(r);
    cv.notify_all();
  }
  void wait_for(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return statuses.size() >= n; });
  }
};

Options background_options(uint64_t after_hits, Outcomes* outcomes) {
  Options options;
  options.dim = test::kDim;
  options.background_retrain.after_hits = after_hits;
  options.background_retrain.min_interval_seconds = 0;
  options.background_retrain.retrain.epochs = 12;
  options.background_retrain.retrain.lr = 0.01;
  options.background_retrain.on_retrain = [outcomes](const Status& s, const RetrainReport& r) {
    outcomes->record(s, r);
  };
  return options;
}

void add_documents(Store* store, const TrainingSet& task) {
  REQUIRE(store->set_embedder("synthetic").ok());
  for (size_t i = 0; i < task.docs.rows; ++i) {
    REQUIRE(store->upsert("doc" + std::to_string(i), task.docs.row(i), task.docs.cols, "").ok());
  }
}

void log_task(Store* store, const TrainingSet& task) {
  for (size_t q = 0; q < task.queries.rows; ++q) {
    uint64_t id = 0;
    REQUIRE(store->log_query(task.queries.row(q), task.queries.cols, {}, &id).ok());
    REQUIRE(store->log_hit(id, "doc" + std::to_string(task.relevant[q][0])).ok());
  }
}

// 1000 documents and 3 noisy queries of each: a log big enough that training
// takes many seconds (longer than any test waits for it).
TrainingSet big_task() {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal;
  TrainingSet task;
  const size_t docs = 1000;
  task.docs = {docs, test::kDim, std::vector<float>(docs * test::kDim)};
  task.queries.cols = test::kDim;
  for (float& x : task.docs.data) x = normal(rng);
  for (size_t d = 0; d < docs; ++d) {
    for (int k = 0; k < 3; ++k) {
      for (int c = 0; c < test::kDim; ++c) task.queries.data.push_back(task.docs.row(d)[c] + normal(rng));
      task.relevant.push_back({d});
    }
  }
  task.queries.rows = task.relevant.size();
  return task;
}

}  // namespace

TEST_CASE("A store with background retraining ships an adapter while searches and writes go on",
          "[background]") {
  TempDir dir("background");
  const TrainingSet task = test::distorted_task(false);
  Outcomes outcomes;
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(dir / "db", background_options(task.queries.rows, &outcomes), &store).ok());
  add_documents(store.get(), task);

  std::atomic<bool> done{false};
  std::atomic<int> search_errors{0}, write_errors{0}, searches{0}, writes{0};
  const int searchers = 2;
  std::vector<std::thread> threads;
  threads.reserve(searchers + 1);  // and one writer
  for (int t = 0; t < searchers; ++t) {
    threads.emplace_back([&, t] {
      for (size_t q = t; !done; q = (q + 1) % task.queries.rows) {
        std::vector<Hit> hits;
        if (!store->search(task.queries.row(q), task.queries.cols, 5, &hits).ok() || hits.empty())
          ++search_errors;
        ++searches;
      }
    });
  }
  threads.emplace_back([&] {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal;
    std::vector<float> v(test::kDim);
    for (int i = 0; !done; ++i) {
      for (float& x : v) x = normal(rng);
      if (!store->upsert("extra" + std::to_string(i % 50), v.data(), v.size(), "").ok()) ++write_errors;
      ++writes;
    }
  });

  log_task(store.get(), task);  // the last hit wakes the background thread
  outcomes.wait_for(1);
  done = true;
  for (std::thread& t : threads) t.join();

  INFO(outcomes.statuses[0].ToString());
  REQUIRE(outcomes.statuses[0].ok());
  CHECK(outcomes.reports[0].decision == RetrainReport::Decision::kActivated);
  CHECK(outcomes.reports[0].queries == task.queries.rows);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.active_adapter == outcomes.reports[0].version);
  CHECK(search_errors == 0);
  CHECK(write_errors == 0);
  CHECK(searches > 0);
  CHECK(writes > 0);
  CHECK(store->verify().ok());

  // Fewer new hits than after_hits: no second retrain; the store closes cleanly.
  uint64_t id = 0;
  REQUIRE(store->log_query(task.queries.row(0), task.queries.cols, {}, &id).ok());
  REQUIRE(store->log_hit(id, "doc1").ok());
  store.reset();
  CHECK(outcomes.statuses.size() == 1);
}

TEST_CASE("Closing a store cancels its background retrain; nothing of it is stored", "[background]") {
  TempDir dir("background_close");
  const TrainingSet task = big_task();
  Outcomes outcomes;
  Options options = background_options(task.queries.rows, &outcomes);
  // Checkpointed at every step, so the test can tell training has begun.
  options.background_retrain.retrain.checkpoint_dir = dir / "checkpoints";
  options.background_retrain.retrain.checkpoint_every = 1;
  {
    std::unique_ptr<Store> store;
    REQUIRE(Store::open(dir / "db", options, &store).ok());
    add_documents(store.get(), task);
    log_task(store.get(), task);
    while (!std::filesystem::exists(dir / "checkpoints") || std::filesystem::is_empty(dir / "checkpoints")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }  // closes: cancels the training in progress
  REQUIRE(outcomes.statuses.size() == 1);
  CHECK(outcomes.statuses[0].code() == Code::kUnavailable);
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(dir / "db", Options(), &store).ok());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.adapter_versions == 0);
  CHECK(stats.active_adapter == 0);
  CHECK(stats.logged_hits == task.queries.rows);
}

TEST_CASE("A background retrain interval that is not a number of seconds is refused", "[background]") {
  TempDir dir("background_bad");
  Options options;
  options.dim = 4;
  options.background_retrain.after_hits = 1;
  options.background_retrain.min_interval_seconds = -1;
  std::unique_ptr<Store> store;
  CHECK(Store::open(dir / "db", options, &store).code() == Code::kInvalidArgument);
}

TEST_CASE("A background retrain nice value outside 0..19 is refused, naming the option", "[background]") {
  TempDir dir("background_bad_nice");
  Options options;
  options.dim = 4;
  options.background_retrain.after_hits = 1;
  for (int nice : {-1, 20}) {
    options.background_retrain.nice = nice;
    std::unique_ptr<Store> store;
    const Status s = Store::open(dir / "db", options, &store);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("background_retrain.nice"));
    CHECK(store == nullptr);
  }
}
