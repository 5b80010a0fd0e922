// Store faults found in review, each reproduced on real RocksDB + FAISS: an
// index update failing after RocksDB committed, snapshots that are not this
// store's or are older than its journal, and query-log growth.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/common/files.h"
#include "embedapt/store.h"
#include "index/vector_index.h"
#include "tests/support/catch.h"
#include "tests/support/store.h"
#include "tests/support/temp_dir.h"

using namespace embedapt;
using embedapt::testing::open_store;
using embedapt::testing::TempDir;

namespace {

constexpr int kDim = 8;

std::vector<Record> records(size_t first, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<Record> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].id = "doc" + std::to_string(first + i);
    for (int j = 0; j < kDim; ++j) out[i].vector.push_back(normal(rng));
    out[i].payload = "p" + std::to_string(first + i);
  }
  return out;
}

// The record is stored and is its own nearest neighbour.
void require_served(Store* store, const Record& r) {
  std::vector<Hit> hits;
  Status s = store->search(r.vector.data(), kDim, 1, &hits);
  INFO(s.ToString());
  REQUIRE(s.ok());
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].id == r.id);
}

std::string recovery_of(Store* store) {
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  return stats.recovery;
}

}  // namespace

TEST_CASE("An index add failing past the commit point leaves the store correct", "[store][fault]") {
  const std::string spec = GENERATE(std::string("Flat"), std::string("HNSW16"));
  TempDir dir("store-fault-" + spec);
  {
    auto store = open_store(dir.path, kDim, spec);
    REQUIRE(store->upsert_batch(records(0, 40, 1)).ok());

    // One failure: the store rebuilds the index from RocksDB at once and the
    // durable write succeeds.
    const std::vector<Record> batch = records(40, 5, 2);
    VectorIndex::failing_adds_for_testing = 1;
    Status s = store->upsert_batch(batch);
    INFO(s.ToString());
    REQUIRE(s.ok());
    CHECK(VectorIndex::failing_adds_for_testing == 0);
    for (const Record& r : batch) require_served(store.get(), r);
    REQUIRE(store->verify().ok());

    // The rebuild fails too: the write is durable, the call says so, and the
    // stale index is neither searched nor verified nor snapshotted...
    const std::vector<Record> late = records(45, 1, 3);
    VectorIndex::failing_adds_for_testing = 2;
    s = store->upsert_batch(late);
    CHECK(s.code() == Code::kInternal);
    CHECK(s.message().find("durable") != std::string::npos);
    std::vector<Hit> hits;
    CHECK(store->search(late[0].vector.data(), kDim, 1, &hits).code() == Code::kUnavailable);
    CHECK(!store->verify().ok());
    Record got;
    REQUIRE(store->get(late[0].id, &got).ok());
    // ...until the next write rebuilds it first.
    REQUIRE(store->remove("doc0").ok());
    REQUIRE(store->verify().ok());
    require_served(store.get(), late[0]);

    // Failing while the index is rebuilt after the flush of a stale index.
    VectorIndex::failing_adds_for_testing = 2;
    CHECK(!store->upsert_batch(records(46, 3, 4)).ok());
    REQUIRE(store->flush().ok());
    REQUIRE(store->verify().ok());
  }
  auto store = open_store(dir.path, kDim, spec);
  REQUIRE(store->verify().ok());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 48);
  CHECK(stats.recovery.find("snapshot at seq") != std::string::npos);
  for (const Record& r : records(46, 3, 4)) require_served(store.get(), r);
}

TEST_CASE("A snapshot from another store is refused and the index rebuilt from RocksDB", "[store][fault]") {
  TempDir a("store-a"), b("store-b");
  { REQUIRE(open_store(a.path, kDim)->upsert_batch(records(0, 30, 1)).ok()); }
  {
    auto store = open_store(b.path, kDim);
    REQUIRE(store->upsert_batch(records(100, 30, 2)).ok());
    REQUIRE(store->upsert_batch(records(130, 30, 3)).ok());
  }
  std::filesystem::copy_file(a / "index.snap", b / "index.snap",
                             std::filesystem::copy_options::overwrite_existing);
  auto store = open_store(b.path, kDim);
  const std::string recovery = recovery_of(store.get());
  CHECK(recovery.find("rebuilt from RocksDB") != std::string::npos);
  CHECK(recovery.find("another store") != std::string::npos);
  REQUIRE(store->verify().ok());
  require_served(store.get(), records(100, 30, 2)[0]);
}

TEST_CASE("A read-only open refuses a store whose table file is missing or cut short", "[store][fault]") {
  // A writable open refuses such a database; a read-only one (a RocksDB
  // secondary instance) served each damaged family as it was before the file,
  // empty here: searches named no hits, or get() missed a record a search
  // returned, with every call OK.
  TempDir whole("store-whole");
  const std::vector<Record> stored = records(0, 50, 4);
  { REQUIRE(open_store(whole.path, kDim)->upsert_batch(stored).ok()); }
  std::vector<std::filesystem::path> tables;
  for (const auto& entry : std::filesystem::directory_iterator(whole / "db")) {
    if (entry.path().extension() == ".sst") tables.push_back(entry.path().filename());
  }
  REQUIRE(tables.size() >= 3);
  Options read_only;
  read_only.read_only = true;
  read_only.create_if_missing = false;
  for (const auto& table : tables) {
    for (const bool truncate : {false, true}) {
      CAPTURE(table, truncate);
      TempDir damaged("store-damaged");
      std::filesystem::remove_all(damaged.path);
      std::filesystem::copy(whole.path, damaged.path, std::filesystem::copy_options::recursive);
      if (truncate) {
        std::filesystem::resize_file(damaged / "db" / table, 500);
      } else {
        std::filesystem::remove(damaged / "db" / table);
      }
      // Refused, or every record served (the journal's table: it holds
      // nothing the snapshot does not cover).
      std::unique_ptr<Store> store;
      if (!Store::open(damaged.path, read_only, &store).ok()) continue;
      for (const Record& r : stored) {
        Record got;
        REQUIRE(store->get(r.id, &got).ok());
        require_served(store.get(), r);
      }
    }
  }
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(whole.path, read_only, &store).ok());  // the undamaged store opens
  require_served(store.get(), stored[7]);
}

TEST_CASE("A read-only open names a CURRENT whose MANIFEST is gone", "[store][fault]") {
  // RocksDB's answer, "Try again: the primary may have switched to a new
  // MANIFEST", was the message, naming no file (and it was not retried, though
  // a writer switching MANIFESTs is the one case where trying again helps).
  TempDir dir("store-no-manifest");
  { REQUIRE(open_store(dir.path, kDim)->upsert_batch(records(0, 5, 5)).ok()); }
  {
    std::ofstream current(dir / "db/CURRENT", std::ios::trunc);
    current << "MANIFEST-999999\n";
  }
  Options read_only;
  read_only.read_only = true;
  read_only.create_if_missing = false;
  std::unique_ptr<Store> store;
  const Status s = Store::open(dir.path, read_only, &store);
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("CURRENT names the MANIFEST 'MANIFEST-999999', which is not in") !=
        std::string::npos);
}

TEST_CASE("A snapshot older than the trimmed journal is refused and the index rebuilt", "[store][fault]") {
  TempDir dir("store-old-snap");
  const std::string backup = dir / "old.snap";
  {
    auto store = open_store(dir.path, kDim);
    REQUIRE(store->upsert_batch(records(0, 20, 1)).ok());
    REQUIRE(store->flush().ok());
    std::filesystem::copy_file(dir / "index.snap", backup);
    REQUIRE(store->upsert_batch(records(20, 20, 2)).ok());
    REQUIRE(store->flush().ok());  // trims the journal up to here
    REQUIRE(store->upsert_batch(records(40, 5, 3)).ok());
  }
  {
    // A clean close snapshots and trims, so the journal is empty: replaying
    // it onto the backup would silently lose records 20..44.
    std::filesystem::copy_file(backup, dir / "index.snap", std::filesystem::copy_options::overwrite_existing);
    auto store = open_store(dir.path, kDim);
    CHECK(recovery_of(store.get()).find("older than the journal") != std::string::npos);
    REQUIRE(store->verify().ok());
    require_served(store.get(), records(20, 20, 2)[10]);  // doc30, a record only the trimmed journal held
  }
  // Reopened, the store wrote a snapshot of its own.
  auto store = open_store(dir.path, kDim);
  CHECK(recovery_of(store.get()).find("snapshot at seq 45") != std::string::npos);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 45);
}

TEST_CASE("The query log's limit evicts the oldest queries with their hits", "[store][fault]") {
  TempDir dir("store-query-log");
  Options options;
  options.dim = kDim;
  options.query_log_max_hits = 5;
  const std::vector<Record> queries = records(0, 40, 7);
  {
    std::unique_ptr<Store> store;
    REQUIRE(Store::open(dir.path, options, &store).ok());
    for (size_t i = 0; i < queries.size(); ++i) {
      uint64_t id = 0;
      REQUIRE(store->log_query(queries[i].vector.data(), kDim, {}, &id).ok());
      if (i % 4 == 0) REQUIRE(store->log_hit(id, "doc" + std::to_string(i)).ok());
    }
    StoreStats stats;
    REQUIRE(store->stats(&stats).ok());
    CHECK(stats.logged_queries == 5);
    CHECK(stats.logged_hits == 1);  // query 36's: the others left with their queries (0..34)
  }
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(dir.path, options, &store).ok());
  std::vector<std::string> hit_ids;  // of every logged query, in order
  REQUIRE(store
              ->scan_log([&](const LoggedQuery& q) {
                hit_ids.insert(hit_ids.end(), q.hit_ids.begin(), q.hit_ids.end());
                return true;
              })
              .ok());
  REQUIRE(hit_ids.size() == 1);
  CHECK(hit_ids[0] == "doc36");
  // The evicted query's hash went with it: logging it again makes a new query.
  uint64_t again = 0;
  REQUIRE(store->log_query(queries[0].vector.data(), kDim, {}, &again).ok());
  CHECK(again == queries.size() + 1);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.logged_queries == 5);
}
