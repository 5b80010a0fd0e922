// Serving from Milvus (embedapt/milvus.h) against the real embedded server:
// a Flat collection answers like the store's own Flat index, traffic served
// by Milvus is logged, retrained on, and the new adapter serves at once
// without a re-upload, and an incremental sync sends only what changed.
// One test case, so the suite starts one server (it takes tens of seconds).
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/milvus/client.h"
#include "embedapt/milvus.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/cli_run.h"
#include "tests/support/milvus_server.h"
#include "tests/support/store.h"
#include "tests/support/temp_dir.h"
#include "tests/test_trainer_task.h"

namespace embedapt {
namespace {

using testing::CliRun;
using testing::open_store;
using testing::run_cli;

// The same top-k, rank by rank, except where two results tie in score (the
// engines may order equal scores either way).
void require_same_rankings(const std::vector<std::vector<Hit>>& store_hits,
                           const std::vector<std::vector<Hit>>& milvus_hits) {
  REQUIRE(store_hits.size() == milvus_hits.size());
  for (size_t q = 0; q < store_hits.size(); ++q) {
    INFO("query " << q);
    REQUIRE(store_hits[q].size() == milvus_hits[q].size());
    for (size_t r = 0; r < store_hits[q].size(); ++r) {
      CHECK(milvus_hits[q][r].score == Approx(store_hits[q][r].score).margin(1e-5));
      if (store_hits[q][r].id != milvus_hits[q][r].id) {
        const bool tied = (r > 0 && std::abs(store_hits[q][r].score - store_hits[q][r - 1].score) < 1e-5) ||
                          (r + 1 < store_hits[q].size() &&
                           std::abs(store_hits[q][r].score - store_hits[q][r + 1].score) < 1e-5);
        CHECK(tied);
      }
    }
  }
}

// The collection holds every stored record at its current version, and nothing else.
void require_collection_matches(const Store& store, const MilvusCollection& collection) {
  std::vector<std::pair<std::string, uint64_t>> expected;
  REQUIRE(store
              .scan([&](const Record& r) {
                expected.emplace_back(r.id, r.version);
                return true;
              })
              .ok());
  MilvusClient client;
  REQUIRE(MilvusClient::make(collection, &client).ok());
  uint64_t rows = 0;
  REQUIRE(client.count("version >= 0", &rows).ok());
  CHECK(rows == expected.size());
  for (size_t i = 0; i < expected.size(); i += 500) {
    std::vector<std::string> ids;
    for (size_t j = i; j < std::min(expected.size(), i + 500); ++j) ids.push_back(expected[j].first);
    std::vector<std::pair<std::string, uint64_t>> found;
    REQUIRE(client.versions(ids, &found).ok());
    std::sort(found.begin(), found.end());
    std::vector<std::pair<std::string, uint64_t>> want(expected.begin() + i,
                                                       expected.begin() + i + ids.size());
    std::sort(want.begin(), want.end());
    CHECK(found == want);
  }
}

TEST_CASE("a store served from Milvus: same results, learning from its traffic, incremental sync",
          "[milvus]") {
  testing::MilvusServer server;
  testing::TempDir dir("milvus");
  const std::string db = dir / "db";
  const TrainingSet task = test::distorted_task(false);
  const MilvusCollection collection{server.uri(), "embedapt_test"};

  // The task's 120 documents and 1880 others, so the collection spans segments' worth of rows.
  auto store = open_store(db, test::kDim);
  REQUIRE(store->set_embedder("synthetic").ok());
  std::vector<Record> records;
  for (size_t i = 0; i < task.docs.rows; ++i) {
    records.push_back(
        {"doc" + std::to_string(i), std::vector<float>(task.docs.row(i), task.docs.row(i) + test::kDim), ""});
  }
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 1880; ++i) {
    std::vector<float> v(test::kDim);
    for (float& x : v) x = normal(rng);
    records.push_back({"other" + std::to_string(i), v, ""});
  }
  REQUIRE(store->upsert_batch(records).ok());

  MilvusSyncOptions options;
  options.index = MilvusIndex::kFlat;
  MilvusSyncReport report;
  Status synced = milvus_sync(*store, collection, options, &report);
  INFO(synced.ToString());
  REQUIRE(synced.ok());
  CHECK(report.full);
  CHECK(report.upserted == 2000);

  // Flat in Milvus, Flat in the store: the same top-10 for every query.
  const size_t n = task.queries.rows;
  std::vector<std::vector<Hit>> from_store, from_milvus;
  REQUIRE(store->search_batch(task.queries.data.data(), n, 10, &from_store).ok());
  REQUIRE(milvus_search(*store, collection, task.queries.data.data(), n, 10, false, &from_milvus).ok());
  require_same_rankings(from_store, from_milvus);
  const std::vector<std::vector<Hit>> before = from_milvus;

  // The app logs what Milvus served and what its users chose.
  for (size_t q = 0; q < n; ++q) {
    std::vector<std::string> shown;
    for (const Hit& hit : from_milvus[q]) shown.push_back(hit.id);
    uint64_t query_id = 0;
    REQUIRE(store->log_query(task.queries.row(q), test::kDim, shown, &query_id).ok());
    REQUIRE(store->log_hit(query_id, "doc" + std::to_string(task.relevant[q][0])).ok());
  }
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  const uint64_t seq_before_retrain = stats.journal_seq;
  store.reset();

  // Retrain from that log (a query-side adapter) and activate it.
  CliRun trained = run_cli("retrain " + db + " --epochs 12 --lr 0.01 --threads 1 --activate");
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  REQUIRE_THAT(trained.output, Catch::Contains("activated version 1"));

  // The next Milvus query goes through the new adapter, with nothing re-uploaded.
  store = open_store(db, test::kDim);
  REQUIRE(milvus_search(*store, collection, task.queries.data.data(), n, 10, false, &from_milvus).ok());
  size_t changed = 0;
  for (size_t q = 0; q < n; ++q) changed += before[q][0].id != from_milvus[q][0].id;
  CHECK(changed > n / 10);
  REQUIRE(store->search_batch(task.queries.data.data(), n, 10, &from_store).ok());
  require_same_rankings(from_store, from_milvus);
  report = MilvusSyncReport();
  REQUIRE(milvus_sync(*store, collection, options, &report).ok());
  CHECK_FALSE(report.full);
  CHECK(report.upserted == 0);
  CHECK(report.deleted == 0);
  CHECK(report.seq == seq_before_retrain);

  // 1% of the records change and 10 are removed; the store is closed (its
  // snapshot trims the journal, but not past the sync's cursor) and reopened.
  std::vector<Record> changes;
  for (int i = 0; i < 20; ++i) {
    std::vector<float> v(test::kDim);
    for (float& x : v) x = normal(rng);
    changes.push_back({"other" + std::to_string(i * 7), v, ""});
  }
  REQUIRE(store->upsert_batch(changes).ok());
  for (int i = 0; i < 10; ++i) REQUIRE(store->remove("other" + std::to_string(1000 + i)).ok());
  store.reset();
  store = open_store(db, test::kDim);
  REQUIRE(milvus_sync(*store, collection, options, &report).ok());
  CHECK_FALSE(report.full);
  CHECK(report.upserted == 20);
  CHECK(report.deleted == 30);  // the 20 replaced versions and the 10 removed records
  require_collection_matches(*store, collection);
  REQUIRE(store->search_batch(task.queries.data.data(), n, 10, &from_store).ok());
  REQUIRE(milvus_search(*store, collection, task.queries.data.data(), n, 10, false, &from_milvus).ok());
  require_same_rankings(from_store, from_milvus);

  // A changed index type rebuilds the collection, and says why.
  options.index = MilvusIndex::kHnsw;
  REQUIRE(milvus_sync(*store, collection, options, &report).ok());
  CHECK(report.full);
  CHECK_THAT(report.reason, Catch::Contains("FLAT to HNSW"));
  CHECK(report.upserted == 1990);
}

TEST_CASE("Milvus targets are checked before anything is sent", "[milvus]") {
  testing::TempDir dir("milvus-args");
  auto store = open_store(dir / "db", test::kDim);
  MilvusSyncReport report;
  Status s = milvus_sync(*store, {"ftp://127.0.0.1:1", "c"}, MilvusSyncOptions(), &report);
  CHECK(s.code() == Code::kInvalidArgument);
  s = milvus_sync(*store, {"http://127.0.0.1:1", "9bad-name"}, MilvusSyncOptions(), &report);
  CHECK(s.code() == Code::kInvalidArgument);
  MilvusIndex index;
  CHECK(ParseMilvusIndex("IVF_PQ", &index).code() == Code::kInvalidArgument);
  std::unique_ptr<SearchView> view;
  s = milvus_view(*store, {"http://127.0.0.1:1", "never_synced"}, nullptr, &view);
  CHECK(s.code() == Code::kFailedPrecondition);
  CliRun refused =
      run_cli("milvus sync " + dir / "db" + " --uri http://127.0.0.1:1 --collection c --index IVF_PQ");
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("--index: unknown Milvus index type 'IVF_PQ'"));
}

}  // namespace
}  // namespace embedapt
